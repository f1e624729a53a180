"""Write the README's demo screenshots (docs/demo_*.png) by driving the demo in headless Chromium, and
record which model they show (docs/demo_screenshots.json).

    python scripts/demo_screenshots.py            # after any change to the embedded model, the page or the pictures

Needs the [dev] extra (gradio, playwright) and Debian's chromium (``apt-get install chromium``; another
binary: ``--chromium PATH``). Starts the demo (embedded model, offline) on a free loopback port, then on the
bundled example: a click on one shape and boxes around three others → ``demo_labelled.png`` (the whole
page); the attention map of region 0, every layer → ``demo_attention.png``; "recognise everything" →
``demo_everything.png``. Last it writes ``demo_screenshots.json``: the embedded model's weights
fingerprints (head, segmenter, vision-language model; ``regionspot.utils.fingerprint``), its vocabulary and
example image, and each picture's sha256. ``tests/scripts/test_demo_screenshots.py`` fails when the
shipped model no longer matches that record, or a picture no longer matches its hash: rerun this script.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
WAIT_MS = 600_000
SHOTS = ("demo_labelled.png", "demo_attention.png", "demo_everything.png")
RECORD = "demo_screenshots.json"
DOCS = Path(__file__).resolve().parents[1] / "docs"


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def shipped_model() -> dict[str, Any]:
    """What the screenshots depend on, for the embedded model: its weights fingerprints, its vocabulary (the
    "shapesworld" preset) and the bundled example image. Loads the model (a few seconds, offline)."""
    from regionspot.cli.predict import bundled_example
    from regionspot.model import RegionSpot
    from regionspot.text.presets import preset_vocabulary
    from regionspot.utils.fingerprint import weights_fingerprint

    model = RegionSpot.from_pretrained()
    names = preset_vocabulary("shapesworld")
    return {
        "model": "shapesworld",
        "weights_fingerprint": {part: weights_fingerprint(getattr(model, part))
                                for part in ("head", "segmenter", "vision_language")},
        "vocabulary": {"classes": len(names), "sha256": hashlib.sha256("\n".join(names).encode()).hexdigest()},
        "example_sha256": sha256(bundled_example()[0]),
    }


def recognise(page, count: int) -> None:
    """Click Recognise and wait for the answer with ``count`` regions (the status line starts with it)."""
    page.click("#recognise")
    page.wait_for_function(f"() => document.querySelector('#status textarea').value.startsWith('{count} regions')")


def take(out: Path, chromium: str) -> None:
    """Drive the page and write the three PNGs into ``out``."""
    from playwright.sync_api import sync_playwright

    from regionspot.cli.predict import bundled_example
    from regionspot.demo.app import start_in_background
    from regionspot.demo.service import DemoService
    from regionspot.inference.predictor import RegionSpotPredictor
    from regionspot.model import RegionSpot

    image, boxes, _ = bundled_example()
    # a click on the last annotated shape (its box centre), boxes around the others
    (x1, y1, x2, y2), typed = boxes[-1], "; ".join(",".join(f"{v:.0f}" for v in box) for box in boxes[:-1])
    url, app = start_in_background(DemoService(RegionSpotPredictor(RegionSpot.from_pretrained())), image)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1300})
            page.set_default_timeout(WAIT_MS)
            page.goto(url, wait_until="load")
            page.click("#example")
            page.wait_for_function("() => document.querySelector('#status textarea').value.startsWith('Loaded')")
            canvas = page.locator("#canvas img")
            canvas.wait_for()
            size = page.eval_on_selector("#canvas img", "e => [e.naturalWidth, e.naturalHeight]")
            shown = canvas.bounding_box()
            scale = min(shown["width"] / size[0], shown["height"] / size[1])  # the picture is fitted, centred
            left = shown["x"] + (shown["width"] - size[0] * scale) / 2
            top = shown["y"] + (shown["height"] - size[1] * scale) / 2
            page.mouse.click(left + (x1 + x2) / 2 * scale, top + (y1 + y2) / 2 * scale)
            page.wait_for_function("() => document.querySelector('#points textarea').value.length > 0")
            page.fill("#boxes textarea", typed)
            recognise(page, len(boxes))
            page.locator("#picture img").wait_for()
            page.screenshot(path=str(out / SHOTS[0]), full_page=True)

            page.check("#explain input")
            page.check("#per-layer input")
            recognise(page, len(boxes))
            page.locator("#attention img").wait_for()
            page.locator("#attention").screenshot(path=str(out / SHOTS[1]))

            page.uncheck("#explain input")
            page.check("#everything input")
            before = page.input_value("#status textarea")
            page.click("#recognise")
            page.wait_for_function("before => { const now = document.querySelector('#status textarea').value; "
                                   "return now !== before && / regions, .* Region 0/.test(now); }", arg=before)
            page.locator("#picture img").wait_for()
            page.locator("#picture").screenshot(path=str(out / SHOTS[2]))
            browser.close()
    finally:
        app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DOCS, help="Folder of the PNGs and the record (default: docs).")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="The Chromium binary Playwright drives.")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    take(args.out, args.chromium)
    record = {**shipped_model(), "files": {name: sha256(args.out / name) for name in SHOTS}}
    (args.out / RECORD).write_text(json.dumps(record, indent=1) + "\n")
    for name in (*SHOTS, RECORD):
        print(args.out / name)


if __name__ == "__main__":
    main()
