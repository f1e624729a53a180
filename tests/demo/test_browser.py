"""The demo in a real browser: headless Chromium (Debian's package) driven by Playwright.

CI installs chromium (``.ci/run``) and the playwright client (the [dev] extra); there these tests never
skip. Elsewhere they skip only when /usr/bin/chromium is missing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from regionspot.demo.service import result_table
from regionspot.inference.predictor import RegionSpotPredictor
from regionspot.text.presets import preset_vocabulary

CHROMIUM = Path(os.environ.get("REGIONSPOT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
TIMEOUT_MS = 180_000  # a recognition on a busy 2-core CI machine

if not CHROMIUM.exists() and not os.environ.get("CI"):
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); CI installs it", allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser, demo_url):
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(demo_url, wait_until="load")
    page.wait_for_selector("#example")
    yield page
    page.close()


def load_example(page) -> None:
    page.click("#example")
    page.wait_for_function("() => document.querySelector('#status textarea').value.startsWith('Loaded')")
    page.wait_for_selector("#canvas img")


def recognise(page) -> str:
    """Click Recognise and return the status line once the answer is on the page."""
    page.click("#recognise")
    page.wait_for_function("() => / regions, /.test(document.querySelector('#status textarea').value)")
    return page.input_value("#status textarea")


def table_lines(page) -> list[str]:
    """The table's text, one cell per line (gradio renders the grid in its own elements)."""
    page.wait_for_function("() => document.querySelector('#table').innerText.includes(' 0.')")
    return [line.strip() for line in page.inner_text("#table").splitlines() if line.strip()]


def expected_row(model, image, **prompts) -> list[str]:
    """Region 0's row of the table as a separate predictor on the same model computes it."""
    predictor = RegionSpotPredictor(model)
    predictor.set_image(image)
    predictor.set_vocabulary(preset_vocabulary("shapesworld"))
    return result_table(predictor.predict(top_k=5, **prompts))[0]


def test_click_a_point_and_see_its_label(page, demo_service, example_image, tmp_path):
    load_example(page)
    canvas = page.locator("#canvas img")
    box = canvas.bounding_box()
    natural = page.eval_on_selector("#canvas img", "e => [e.naturalWidth, e.naturalHeight]")
    assert natural == [256, 256]
    # click the red heart of the example (image pixel ~ (88, 126)) in point mode
    page.mouse.click(box["x"] + 88 * box["width"] / 256, box["y"] + 126 * box["height"] / 256)
    page.wait_for_function("() => document.querySelector('#points textarea').value.length > 0")
    x, y = (float(v) for v in page.input_value("#points textarea").split(","))
    assert abs(x - 88) <= 2 and abs(y - 126) <= 2
    status = recognise(page)
    row = expected_row(demo_service.predictor.model, example_image, points=[[x, y]])
    lines = table_lines(page)
    shown = lines[lines.index(row[1]) + 1]  # the cell after region 0's box: its top-1 "label score"
    assert shown == row[2] and lines[lines.index(row[1]):][:6] == row[1:]
    assert status.startswith("1 regions") and status.endswith(f"Region 0: {row[2]}")
    page.wait_for_selector("#picture img")
    shot = tmp_path / "demo.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.is_file() and shot.stat().st_size > 10_000


def test_typed_names_become_the_vocabulary_without_touching_the_dropdown(page, demo_service, example_image):
    load_example(page)
    page.fill("#boxes textarea", "62,98,114,155")
    page.fill("#typed textarea", "red heart, blue star, green ring")
    status = recognise(page)  # clicked at once: the dropdown switched in the page, before any request
    assert status.startswith("1 regions, 3 class names (typed).")
    assert page.input_value("#preset input") == "Typed names"
    predictor = RegionSpotPredictor(demo_service.predictor.model)
    predictor.set_image(example_image)
    predictor.set_vocabulary(["red heart", "blue star", "green ring"])
    row = result_table(predictor.predict(boxes=[[62, 98, 114, 155]], top_k=5))[0]
    lines = table_lines(page)
    assert lines[lines.index(row[1]):][:4] == row[1:5] and status.endswith(f"Region 0: {row[2]}")
    page.fill("#typed textarea", "")  # erasing the names goes back to the preset
    page.wait_for_function("() => document.querySelector('#preset input').value.startsWith('ShapesWorld')")


def test_a_names_file_becomes_the_vocabulary(page, tmp_path):
    names = tmp_path / "mine.txt"
    names.write_text("red heart\nblue star\n")
    load_example(page)
    page.fill("#boxes textarea", "62,98,114,155")
    page.set_input_files("#names-file input[type=file]", str(names))
    page.wait_for_function("() => document.querySelector('#preset input').value === 'Names file'")
    status = recognise(page)
    assert status.startswith("1 regions, 2 class names (from the names file).")


def test_a_bad_upload_clears_the_previous_results_and_says_why(page, demo_service, example_image, tmp_path):
    load_example(page)
    page.fill("#boxes textarea", "62,98,114,155")
    recognise(page)
    page.wait_for_selector("#picture img")
    table_lines(page)
    page.wait_for_selector("#download a")
    corrupt = tmp_path / "holiday.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 200)
    page.set_input_files("#upload input[type=file]", str(corrupt))
    page.wait_for_function("() => document.querySelector('#status textarea').value.startsWith('Upload failed')")
    status = page.input_value("#status textarea")
    assert "Cannot decode image holiday.png" in status and "valid image file" in status
    assert "previous image and its results were cleared" in status
    page.wait_for_function("() => !document.querySelector('#picture img') && !document.querySelector('#canvas img')")
    assert " 0." not in page.inner_text("#table") and page.query_selector("#download a") is None
    assert page.input_value("#boxes textarea") == ""
    assert page.get_by_text("Error", exact=True).count() == 0  # no error badge: the status line says it
    page.click("#recognise")  # nothing loaded now: asked for an image, not the old one recognised
    page.get_by_text(re.compile("Upload an image first")).first.wait_for()
    load_example(page)  # and the next image works
    page.fill("#boxes textarea", "62,98,114,155")
    status = recognise(page)
    row = expected_row(demo_service.predictor.model, example_image, boxes=[[62, 98, 114, 155]])
    lines = table_lines(page)
    assert lines[lines.index("62, 98, 114, 155") + 1] == row[2] and status.endswith(f"Region 0: {row[2]}")
