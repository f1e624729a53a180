"""Write the README's demo screenshots (docs/demo_*.png) by driving the demo in headless Chromium.

    .venv/bin/python scripts/demo_screenshots.py [--out docs]

Starts the demo (embedded model, offline) on a free loopback port, then: a point and a box on the bundled
example → ``demo_labelled.png`` (the whole page); the attention map of region 0, every layer →
``demo_attention.png``; "recognise everything" → ``demo_everything.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
WAIT_MS = 600_000


def recognise(page, count: int) -> None:
    """Click Recognise and wait for the ``count``-th answer (the status names the request)."""
    page.click("#recognise")
    page.wait_for_function(f"() => document.querySelector('#status textarea').value.startsWith('{count} regions')")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from regionspot.cli.predict import bundled_example
    from regionspot.demo.app import start_in_background
    from regionspot.demo.service import DemoService
    from regionspot.inference.predictor import RegionSpotPredictor
    from regionspot.model import RegionSpot

    url, app = start_in_background(DemoService(RegionSpotPredictor(RegionSpot.from_pretrained())), bundled_example()[0])
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1300})
            page.set_default_timeout(WAIT_MS)
            page.goto(url, wait_until="load")
            page.click("#example")
            page.wait_for_function("() => document.querySelector('#status textarea').value.startsWith('Loaded')")
            canvas = page.locator("#canvas img")
            canvas.wait_for()
            box = canvas.bounding_box()
            page.mouse.click(box["x"] + 30 * box["width"] / 256, box["y"] + 160 * box["height"] / 256)  # the cross
            page.wait_for_function("() => document.querySelector('#points textarea').value.length > 0")
            page.fill("#boxes textarea", "62,98,114,155; 51,125,137,216")
            recognise(page, 3)
            page.locator("#picture img").wait_for()
            page.screenshot(path=str(args.out / "demo_labelled.png"), full_page=True)

            page.check("#explain input")
            page.check("#per-layer input")
            recognise(page, 3)
            page.locator("#attention img").wait_for()
            page.locator("#attention").screenshot(path=str(args.out / "demo_attention.png"))

            page.uncheck("#explain input")
            page.check("#everything input")
            page.click("#recognise")
            page.wait_for_function("() => / regions, .* Region 0/.test(document.querySelector('#status textarea').value) "
                                   "&& !document.querySelector('#status textarea').value.startsWith('3 regions')")
            page.locator("#picture img").wait_for()
            page.locator("#picture").screenshot(path=str(args.out / "demo_everything.png"))
            browser.close()
    finally:
        app.close()
    for name in ("demo_labelled", "demo_attention", "demo_everything"):
        print(args.out / f"{name}.png")


if __name__ == "__main__":
    main()
