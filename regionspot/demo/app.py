"""The web page (Gradio) over ``DemoService``: upload, click, see.

Left: the image (upload one or take the bundled example); a click adds a point, or in box mode two clicks
make a box; boxes and points can also be typed. Right: the vocabulary (a preset, typed names or a names
file: typing names or giving a file switches the choice to them, in the browser, before any request),
"recognise everything", the attention-map toggle. Below: the regions drawn, the attention map, the top-5
table (each class's confidence, the number the picture shows) and the COCO results JSON to download.

Every bad input gets the library's one-line message: a bad upload clears the previous image and its
results and says what happened in the status line (:func:`load_outputs`); a bad request raises a
``gr.Error``. The server keeps serving.

The same app answers API clients: ``/label`` takes (image file, class names, boxes, points, everything)
and returns the regions as JSON (see the README's three-line ``gradio_client`` example). One model
instance serves all: the queue runs one request at a time.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no phone-home

import gradio as gr  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from regionspot.backbones.typed_prompts import parse_numbers  # noqa: E402
from regionspot.demo.service import NAMES_FILE, TABLE_HEADERS, TYPED, DemoRequest, DemoService  # noqa: E402
from regionspot.errors import RegionSpotError  # noqa: E402
from regionspot.text.presets import PRESETS, split_names  # noqa: E402

LOG = logging.getLogger("regionspot.demo")
INTRO = ("**RegionSpot**: click points or draw boxes on an image and name the classes to look for; "
         "a frozen SAM gives each region a token, a frozen CLIP the image and the names, a small trained "
         "head scores every region against every name.")
# the drawn results fill their frame (a small image is shown larger, its labels readable); the clickable
# canvas keeps the browser's own sizing, so a click maps to the pixel under the pointer
PAGE_CSS = "#picture img, #attention img { width: 100%; height: 100%; object-fit: contain; }"


def shown(function):
    """Turn errors into a message on the page: a user error's one line, or a short internal-error line."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except gr.Error:
            raise
        except RegionSpotError as error:
            raise gr.Error(str(error), title="Cannot do that", print_exception=False) from None
        except Exception as error:  # the server must keep serving: log it, say it, go on
            LOG.exception("request failed")
            raise gr.Error(f"Internal error ({type(error).__name__}: {error}); the server is still running.",
                           print_exception=False) from None

    return wrapper


def preview(image: Image.Image, boxes: str, points: str, corner: list[float] | None) -> Image.Image:
    """The image with the typed/clicked prompts drawn (boxes white, points green, a pending corner red)."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    radius = max(3, round(max(out.size) / 120))
    for x1, y1, x2, y2 in parse_numbers(boxes or "", 4, "box"):
        draw.rectangle([x1, y1, x2, y2], outline=(255, 255, 255), width=max(1, radius // 2))
    for x, y in parse_numbers(points or "", 2, "point"):
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=(0, 220, 0), outline=(0, 0, 0))
    if corner is not None:
        x, y = corner
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=(230, 0, 0))
    return out


def load_outputs(service: DemoService, path: str | None) -> tuple:
    """What the page shows after an image is chosen, in the order of ``build_app``'s ``loaded`` outputs:
    (path, canvas, boxes, points, corner, picture, attention, table, download, status).

    Either way the previous image's prompts and results are cleared (they belong to another image). A bad
    file (not an image, truncated, too large, a decompression bomb) leaves nothing loaded (path None, so
    Recognise asks for an image) and the status line says what went wrong and what was cleared.
    """
    try:
        image = service.open_image(path)
    except RegionSpotError as error:
        loaded, canvas = None, None
        status = f"Upload failed: {error} The previous image and its results were cleared; upload another image."
    else:
        loaded, canvas = path, image
        status = f"Loaded a {image.width}x{image.height} image. Click to add prompts, then Recognise."
    return (loaded, canvas, "", "", None, None, gr.update(value=None, visible=False), [], None, status)


def vocabulary_switches(default: str) -> dict[str, str]:
    """Browser-side (JavaScript) rules that keep the vocabulary dropdown on what the user gave last:
    typing names chooses "Typed names" (erasing them all goes back to the names file when one is given,
    else to ``default``); uploading a names file chooses "Names file" (removing it goes back to the typed
    names when there are some, else to ``default``). They run in the page, so a Recognise clicked right
    after typing already sends the new choice. Keys: "typed" (inputs: typed, names file, dropdown),
    "file_added" (no inputs), "file_removed" (inputs: typed, dropdown)."""
    typed, file, fallback = json.dumps(TYPED), json.dumps(NAMES_FILE), json.dumps(default)
    return {
        "typed": f"(text, names_file, current) => (text && text.trim()) ? {typed} : "
                 f"(current === {typed} ? (names_file ? {file} : {fallback}) : current)",
        "file_added": f"() => {file}",
        "file_removed": f"(text, current) => current === {file} ? ((text && text.trim()) ? {typed} : {fallback}) : current",
    }


def build_app(service: DemoService, example: Path | None = None) -> gr.Blocks:
    """The Blocks app. example: the image the "bundled example" button loads (None: no button)."""
    choices = [(label, key) for key, label in PRESETS.items()] + [("Typed names", TYPED), ("Names file", NAMES_FILE)]

    @shown
    def load(path):
        outputs = load_outputs(service, path)
        if outputs[0] is None:
            gr.Warning(outputs[-1], title="Cannot use that file")
        return outputs

    @shown
    def click(path, mode, boxes, points, corner, event: gr.SelectData):
        image = service.open_image(path)
        x, y = (float(v) for v in event.index)
        if mode == "box":
            if corner is None:
                return boxes, points, [x, y], preview(image, boxes, points, [x, y])
            x0, y0 = corner
            box = f"{min(x0, x):.0f},{min(y0, y):.0f},{max(x0, x):.0f},{max(y0, y):.0f}"
            boxes = f"{boxes}; {box}" if boxes and boxes.strip() else box
        else:
            points = f"{points}; {x:.0f},{y:.0f}" if points and points.strip() else f"{x:.0f},{y:.0f}"
        return boxes, points, None, preview(image, boxes, points, None)

    @shown
    def clear(path):
        return "", "", None, (service.open_image(path) if path else None)

    @shown
    def recognise(path, preset, typed, names_file, boxes, points, everything, max_regions, explain, region, per_layer):
        names = service.vocabulary(preset, typed, names_file)
        request = DemoRequest(image=path, vocabulary=names, boxes=boxes, points=points, everything=everything,
                              max_regions=int(max_regions), explain_region=int(region or 0) if explain else None,
                              explain_per_layer=bool(per_layer))
        response = service.recognise(request)
        for message in response.messages:
            gr.Warning(message)
        found = response.result
        source = {TYPED: "typed", NAMES_FILE: "from the names file"}.get(preset, preset)
        status = f"{len(found)} regions, {len(names)} class names ({source})." + "".join(f" {m}" for m in response.messages)
        if len(found):
            status += " Region 0: " + response.table[0][2]
        return (response.picture, gr.update(value=response.attention, visible=response.attention is not None),
                response.table, str(response.results_json), status)

    @shown
    def label_api(path, vocabulary, boxes, points, everything):
        names = service.vocabulary(TYPED, vocabulary) if split_names(vocabulary or "") else \
            service.vocabulary(service.default_preset)
        response = service.recognise(DemoRequest(image=path, vocabulary=names, boxes=boxes or "", points=points or "",
                                                 everything=bool(everything)))
        return response.result.to_dict()

    with gr.Blocks(title="RegionSpot") as app:
        gr.Markdown(INTRO)
        path, corner = gr.State(None), gr.State(None)
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="Upload an image", type="filepath", elem_id="upload")
                use_example = gr.Button("Use the bundled example", elem_id="example", visible=example is not None)
                canvas = gr.Image(label="Click to add prompts", type="pil", interactive=False, elem_id="canvas")
                mode = gr.Radio(["point", "box"], value="point", label="A click adds a", elem_id="mode")
                boxes = gr.Textbox(label="Boxes: x1,y1,x2,y2; ... (image pixels)", elem_id="boxes")
                points = gr.Textbox(label="Points: x,y; ...", elem_id="points")
                clear_button = gr.Button("Clear prompts", elem_id="clear")
            with gr.Column():
                preset = gr.Dropdown(choices, value=service.default_preset, label="Vocabulary", elem_id="preset")
                typed = gr.Textbox(label="Or type class names (commas or lines): they become the vocabulary", lines=2,
                                   elem_id="typed")
                names_file = gr.File(label="Or give a names file (one per line): it becomes the vocabulary",
                                     type="filepath", elem_id="names-file")
                everything = gr.Checkbox(label="Recognise everything (no prompts: SAM proposes regions)",
                                         elem_id="everything")
                max_regions = gr.Slider(1, 100, value=10, step=1, label="At most this many regions (everything)")
                explain = gr.Checkbox(label="Show the attention map (where the head looked)", elem_id="explain")
                region = gr.Number(value=0, precision=0, label="Attention map of region #", elem_id="region")
                per_layer = gr.Checkbox(label="Every layer (else the last, averaged over heads)", elem_id="per-layer")
                run = gr.Button("Recognise", variant="primary", elem_id="recognise")
        status = gr.Textbox(label="Status", interactive=False, elem_id="status")
        with gr.Row():
            with gr.Column():
                picture = gr.Image(label="Regions", type="pil", interactive=False, format="png", height=420,
                                   elem_id="picture")
            with gr.Column():
                attention = gr.Image(label="Attention", type="pil", interactive=False, format="png", height=420,
                                     visible=False, elem_id="attention")
        table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, elem_id="table")
        download = gr.File(label="COCO results JSON", interactive=False, elem_id="download")
        with gr.Row(visible=False):  # the API's own inputs: /label
            api_inputs = [gr.File(type="filepath"), gr.Textbox(), gr.Textbox(), gr.Textbox(), gr.Checkbox()]
            api_output, api_button = gr.JSON(), gr.Button()

        loaded = [path, canvas, boxes, points, corner, picture, attention, table, download, status]
        upload.upload(load, upload, loaded, api_visibility="private")
        switches = vocabulary_switches(service.default_preset)
        typed.change(None, [typed, names_file, preset], preset, js=switches["typed"])
        names_file.upload(None, None, preset, js=switches["file_added"])
        names_file.clear(None, [typed, preset], preset, js=switches["file_removed"])
        if example is not None:
            use_example.click(lambda: load(str(example)), None, loaded, api_visibility="private")
        canvas.select(click, [path, mode, boxes, points, corner], [boxes, points, corner, canvas], api_visibility="private")
        clear_button.click(clear, path, [boxes, points, corner, canvas], api_visibility="private")
        run.click(recognise, [path, preset, typed, names_file, boxes, points, everything, max_regions, explain, region,
                              per_layer], [picture, attention, table, download, status], api_name="recognise")
        api_button.click(label_api, api_inputs, api_output, api_name="label")
    return app


def launch(app: gr.Blocks, host: str = "127.0.0.1", port: int = 7860, queue_size: int = 64,
           max_file_size: str = "25mb", block: bool = True, allowed_paths: list[str] | None = None) -> str:
    """Queue (one request at a time, at most ``queue_size`` waiting) and serve; returns the local URL.

    block=False returns once the server is up (tests, benchmarks); call ``app.close()`` to stop it.
    """
    app.queue(default_concurrency_limit=1, max_size=queue_size)
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    _, url, _ = app.launch(server_name=host, server_port=port, prevent_thread_lock=not block, show_error=True,
                           quiet=True, max_file_size=max_file_size, allowed_paths=allowed_paths, ssr_mode=False,
                           theme=theme, css=PAGE_CSS, footer_links=["api"])
    return url


def start_in_background(service: DemoService, example: Path | None = None) -> tuple[str, gr.Blocks]:
    """Serve ``build_app(service, example)`` on a free loopback port without blocking (tests, benchmarks,
    screenshots). Returns (url, app); ``app.close()`` stops it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = build_app(service, example)
    url = launch(app, port=port, block=False, allowed_paths=[str(example.parent)] if example else None)
    return url, app
