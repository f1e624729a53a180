"""``regionspot predict`` (and ``regionspot models``): label regions of one image, write JSON and a picture.

Its options are ``inference.options.PredictOptions``' fields (defaults included). The command reads like a
``main``: check the options, read the inputs, then one image (read it, load the model, label, write) or many
(``cli/predict_many.py``). Box and point strings are read by ``backbones.typed_prompts.parse_numbers`` (shared with
the demo), names files by ``text.presets``; everything that needs no model is checked first (``cli.checks``,
``PredictOptions.validate``).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

import regionspot.cli.checks as checks
from regionspot.cli.app import app, best_device, friendly
from regionspot.cli.options import flag_messages
from regionspot.errors import PromptError, RegionSpotError, VocabularyError
from regionspot.inference.options import PredictOptions
from regionspot.utils.startup_gc import start_up


def read_boxes_json(path: Path, box_format: str = "xyxy") -> list[list[float]]:
    """Boxes from JSON: [[x1,y1,x2,y2], ...] (or [[x,y,w,h], ...] with box_format "xywh"), {"boxes": [...]},
    or COCO-style [{"bbox": [x,y,w,h]}, ...]; returned XYXY."""
    if not path.is_file():
        raise PromptError(f"Boxes file not found: {path}.")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise PromptError(f"{path} is not valid JSON ({error.msg} at line {error.lineno}).") from None
    if isinstance(data, dict):
        data = data.get("boxes", data.get("annotations"))
    if not isinstance(data, list):
        raise PromptError(f"{path}: expected a list of [x1, y1, x2, y2] boxes or a {{'boxes': [...]}} object.")
    boxes = []
    for item in data:
        if isinstance(item, dict) and "bbox" in item:
            x, y, w, h = item["bbox"]
            boxes.append([x, y, x + w, y + h])
        elif isinstance(item, (list, tuple)) and len(item) == 4:
            boxes.extend(checks.check_box_orientation([[float(v) for v in item]], box_format, path.name))
        else:
            raise PromptError(f"{path}: cannot read box {item!r:.60}; use [x1, y1, x2, y2] or {{'bbox': [x, y, w, h]}}.")
    return boxes


def read_vocabulary(vocab: str | None, vocab_file: Path | None, preset: str | None = None) -> list[str] | None:
    """The names of --vocab (comma-separated), --vocab-file (one per line) or --vocab-preset; None if none."""
    from regionspot.text.presets import preset_vocabulary, read_names_file

    if sum(x is not None for x in (vocab, vocab_file, preset)) > 1:
        raise VocabularyError("Pass one of --vocab, --vocab-file or --vocab-preset, not several.")
    if vocab_file is not None:
        return read_names_file(vocab_file)
    if preset is not None:
        return preset_vocabulary(preset)
    if vocab is not None:
        return [name.strip() for name in vocab.split(",")]
    return None


def guarded_fast_path(device: str) -> str:
    """The fastest path that passed its accuracy and speed guard on this machine; fp32, with the reason in one
    line (no verdicts here yet, or verdicts without speed: the command that makes them), otherwise."""
    from regionspot.inference.fast import choose_fast_path, no_choice_reason

    chosen = choose_fast_path(device)
    if chosen is None:
        typer.echo(f"--fast: fp32 path: {no_choice_reason(device)}.")
        return "fp32"
    typer.echo(f"--fast: {chosen} path" + (" (no faster path passed the guard on this machine)" if chosen == "fp32" else ""))
    return chosen


# --- the steps ------------------------------------------------------------------------------------
def bundled_example() -> tuple[Path, list[list[float]], list[str]]:
    """The bundled ShapesWorld example: image path, its boxes and its vocabulary."""
    from regionspot.registry import assets_dir

    example = assets_dir() / "shapesworld" / "example.json"
    if not example.is_file():
        raise RegionSpotError("No image given and no bundled example in this install; pass an IMAGE path.")
    spec = json.loads(example.read_text())
    return example.parent / spec["image"], spec["boxes"], spec["vocabulary"]


@dataclass
class Inputs:
    """What predict reads before any model: the class names (None: not given) and the prompts given on the
    command line (boxes XYXY, points XY, original-image pixels; None: not given)."""

    names: list[str] | None
    boxes: list[list[float]] | None
    points: list[list[float]] | None


def check_options(options: PredictOptions) -> PredictOptions:
    """Every check that needs neither a model nor a file, each bad value one line; the device normalised."""
    options = dataclasses.replace(options, device=checks.check_device(options.device))
    options.validate()
    return options


def read_inputs(options: PredictOptions) -> Inputs:
    """The class names and prompts as typed or in the files named, checked."""
    names = checks.check_names(read_vocabulary(options.vocab, options.vocab_file, options.vocab_preset), options.vocab)
    boxes = checks.read_box_option(options.boxes, options.box_format) if options.boxes is not None else None
    if options.boxes_json is not None:
        boxes = read_boxes_json(options.boxes_json, checks.check_box_format(options.box_format))
    points = checks.read_point_option(options.points) if options.points is not None else None
    return Inputs(names, boxes, points)


def is_many(options: PredictOptions) -> bool:
    """Many-images mode: several inputs, a folder, a glob, --prompts, --format coco, or --out not a .json."""
    images = options.images or []
    if len(images) > 1 or options.prompts_file is not None or options.output_format != "json":
        return True
    if options.out is not None and options.out.suffix.lower() != ".json":
        return True
    if not images or images[0].is_dir() or images[0].exists():
        return bool(images) and images[0].is_dir()
    from regionspot.inference.batch import is_glob  # only for a name that is no file

    return is_glob(images[0])


def default_vocabulary(names: list[str] | None, options: PredictOptions) -> list[str]:
    """The class names to use: those given, else the embedded model's own 64 (other weights need names)."""
    if names is not None:
        return names
    if options.embedded:
        return read_vocabulary(None, None, "shapesworld")
    raise VocabularyError("Pass the class names to recognise: --vocab 'cat,dog', --vocab-file names.txt or --vocab-preset.")


@start_up()  # the imports and the weights: no garbage collection until the model is loaded
def load_model(options: PredictOptions) -> tuple:
    """(backend, its "model" record for a result JSON): the predictor of the model ``options`` name (weights,
    backbones, device, --fast numerics) on ``options.backend`` (``inference.backends``: torch, or the exported
    graphs under ONNX Runtime / OpenVINO, exported into the model home on first use)."""
    if options.backend != "torch":
        return load_onnx_backend(options)
    from transformers.utils import logging as transformers_logging

    from regionspot.inference.predictor import RegionSpotPredictor
    from regionspot.model import RegionSpot

    transformers_logging.disable_progress_bar()  # its per-tensor "Loading weights" bars: noise on the terminal
    device = options.device or best_device()
    model = RegionSpot.from_pretrained(options.weights, segmenter=options.segmenter,
                                       vision_language=options.vision_language, device=device,
                                       fast_path=guarded_fast_path(device) if options.fast else None)
    return RegionSpotPredictor(model, reject=options.reject), {"name": options.weights or "shapesworld", "segmenter": model.config.segmenter,
                                        "vision_language": model.config.vision_language}


def load_onnx_backend(options: PredictOptions) -> tuple:
    """(ONNX backend, its record): the graphs of ``--onnx``, or of the weights' export in the model home."""
    from regionspot.inference.backends import open_backend

    backend = open_backend(options.backend, options.weights, segmenter=options.segmenter,
                           vision_language=options.vision_language, onnx_dir=options.onnx,
                           log=lambda line: typer.echo(f"note: {line}"))
    backend.reject = options.reject
    config = backend.runtime.graphs.config["regionspot_config"]
    name = str(options.onnx) if options.onnx is not None else options.weights or "shapesworld"
    return backend, {"name": name, "segmenter": config.get("segmenter"), "vision_language": config.get("vision_language"),
                     "backend": options.backend}


@app.command()
@friendly
@flag_messages
def predict(
    images: Annotated[list[Path] | None, typer.Argument(help="Image files, folders or quoted globs ('photos/*.jpg'). "
                                                             "Default: the bundled ShapesWorld example.")] = PredictOptions.images,
    vocab: Annotated[str | None, typer.Option(help="Comma-separated class names, e.g. 'cat,dog'.")] = PredictOptions.vocab,
    vocab_file: Annotated[Path | None, typer.Option(help="A file with one class name per line.")] = PredictOptions.vocab_file,
    vocab_preset: Annotated[str | None, typer.Option(help="A ready vocabulary: coco, lvis or shapesworld.")] = PredictOptions.vocab_preset,
    boxes: Annotated[str | None, typer.Option(help="Boxes in image pixels, separated by ';': 'x1,y1,x2,y2; x1 y1 x2 y2' "
                                                   "(commas or spaces between numbers).")] = PredictOptions.boxes,
    box_format: Annotated[str, typer.Option(help="How --boxes / --boxes-json lists read: xyxy (corners) or xywh "
                                                 "(x, y, width, height).")] = PredictOptions.box_format,
    boxes_json: Annotated[Path | None, typer.Option(help="Boxes from a JSON file.")] = PredictOptions.boxes_json,
    points: Annotated[str | None, typer.Option(help="One foreground point per region: 'x,y; x,y' (or 'x y; x y').")] = PredictOptions.points,
    prompts_file: Annotated[Path | None, typer.Option("--prompts", help="Many images: a JSON file {\"a.jpg\": {\"boxes\": "
                            "\\[\\[x1,y1,x2,y2], ...], \"points\": \\[\\[x,y], ...]}, ...}, or a COCO file (each image's annotation "
                            "boxes; its ids go into --format coco). An image without an entry takes --boxes/--points, "
                            "or with --everything the proposals; else it is an error.")] = PredictOptions.prompts_file,
    everything: Annotated[bool, typer.Option("--everything", help="No prompts: the segmenter proposes the regions "
                                                               "(point grid + crops) and all are labelled.")] = PredictOptions.everything,
    out: Annotated[Path | None, typer.Option(help="One image: the JSON result (default result.json). Many images: "
                                                  "a folder (default predictions/) for <name>.json and <name>.png.")] = PredictOptions.out,
    output_format: Annotated[str, typer.Option("--format", help="json: a result JSON per image. coco: also one "
                             "COCO results file OUT/results.coco.json and OUT/image_ids.json.")] = PredictOptions.output_format,
    masks: Annotated[bool, typer.Option("--masks", help="Put each region's mask in the JSON (COCO RLE).")] = PredictOptions.masks,
    viz: Annotated[Path | None, typer.Option(help="One image: where to write a PNG with masks, boxes and labels "
                                                  "(default result.png).")] = PredictOptions.viz,
    no_viz: Annotated[bool, typer.Option("--no-viz", help="Write no pictures.")] = PredictOptions.no_viz,
    explain: Annotated[Path | None, typer.Option(help="Write the head's attention maps over the image (PNG), "
                                                      "one panel per region (the first --explain-regions).")] = PredictOptions.explain,
    explain_regions: Annotated[int, typer.Option(help="How many regions --explain draws.")] = PredictOptions.explain_regions,
    explain_per_layer: Annotated[bool, typer.Option(help="--explain draws every layer, not only the last.")] = PredictOptions.explain_per_layer,
    model: Annotated[str | None, typer.Option(help="Registered weights by name (see `regionspot models`): "
                                                   "shapesworld (default), BB, BL, BL@336.")] = PredictOptions.model,
    segmenter: Annotated[str | None, typer.Option("--sam", help="Segmenter: registered name (e.g. shapesworld, BL), hub id or folder.")] = PredictOptions.segmenter,
    vision_language: Annotated[str | None, typer.Option("--clip", help="Vision-language model: registered name, hub id or folder.")] = PredictOptions.vision_language,
    head: Annotated[str | None, typer.Option(help="Head checkpoint (.safetensors, official .pth) or a registered name.")] = PredictOptions.head,
    top_k: Annotated[int, typer.Option(help="Classes kept per region.")] = PredictOptions.top_k,
    reject: Annotated[bool, typer.Option("--reject/--no-reject", help="Mark regions that are none of the vocabulary's "
                      "classes as unknown (everything mode hides them), by the head's threshold from `regionspot "
                      "calibrate HEAD --data val.json --images DIR` (default: on; a head without one labels every region).")] = PredictOptions.reject,
    grid: Annotated[int, typer.Option(help="Proposals: a GRID x GRID point grid on the image and on each crop.")] = PredictOptions.grid,
    max_regions: Annotated[int, typer.Option(help="Everything mode: show at most this many regions.")] = PredictOptions.max_regions,
    min_confidence: Annotated[float, typer.Option(help="Everything mode: hide regions below this confidence.")] = PredictOptions.min_confidence,
    nms_iou: Annotated[float, typer.Option(help="Everything mode: hide a region overlapping a more stable one "
                                                "above this box IoU (1: keep all).")] = PredictOptions.nms_iou,
    nms_per_class: Annotated[bool, typer.Option("--nms-per-class", help="Everything mode: suppress overlaps only "
                                                "within a class (class-aware; default: across classes).")] = PredictOptions.nms_per_class,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1, mps (default: best available).")] = PredictOptions.device,
    fast: Annotated[bool, typer.Option("--fast", help="Use the fastest path (bf16 / int8) that `regionspot guard` found accurate and faster than fp32 on this machine.")] = PredictOptions.fast,
    max_megapixels: Annotated[float | None, typer.Option(help="Decode image files up to this many megapixels (default: PIL's "
                                                                "decompression-bomb limit, 89.5; or $REGIONSPOT_MAX_MEGAPIXELS).")] = PredictOptions.max_megapixels,
    backend: Annotated[str, typer.Option(help="What runs the model: torch, or its exported ONNX graphs on the CPU under "
                                              "onnxruntime, onnxruntime-int8, openvino or openvino-bf16 (given boxes or "
                                              "points only; see docs/export.md); auto: the fastest that passed "
                                              "`regionspot guard --backend` on this machine, else torch.")] = PredictOptions.backend,
    onnx: Annotated[Path | None, typer.Option(help="An ONNX backend: the folder of `regionspot export onnx --out DIR` (default: "
                                                   "the model's export kept in the model home, made on first use).")] = PredictOptions.onnx,
) -> None:
    """Label regions (boxes, points, or --everything the segmenter finds) of one or many images; write JSON
    (schema regionspot.result/1, see docs/output.md) and pictures.

    Without --boxes, --boxes-json or --points, the segmenter proposes the regions (everything mode, slower);
    a note says so unless --everything asks for it. Bad input (boxes, names, files, --device) is one error
    line before any model loads. The embedded ShapesWorld model (no --model/--head/--sam/--clip) notes names
    and images it cannot know.

    Many images (several files, a folder, a glob, or --out a folder): the model loads once; OUT/<name>.json
    and OUT/<name>.png per image; a rerun skips the images already done with the same options. A file that
    cannot be read is reported in one line and skipped; the others finish, and the exit status is then 1.
    """
    status = run_predict(PredictOptions(**locals()))
    if status:
        raise typer.Exit(status)


def run_predict(options: PredictOptions) -> int:
    """``predict``'s steps: check the options, read the inputs, label one image or many; the exit status."""
    options = check_options(options)
    inputs = read_inputs(options)
    options = settle_backend(options, inputs)
    if is_many(options):
        from regionspot.cli.predict_many import predict_many

        return predict_many(options, check_many(options, inputs), inputs.boxes, inputs.points, load_model)
    predict_one(options, inputs)
    return 0


def settle_backend(options: PredictOptions, inputs: Inputs) -> PredictOptions:
    """``options`` with ``--backend auto`` resolved (``PredictOptions.resolve_backend``); the reason printed when
    the guard's verdicts decided."""
    has_prompts = (inputs.boxes is not None or inputs.points is not None or options.prompts_file is not None
                   or (not options.images and not options.everything))  # the bundled example brings its boxes
    name, line = options.resolve_backend(has_prompts)
    if line:
        typer.echo(f"note: {line}")
    # --fast asks for the fastest guarded choice: a guarded backend runs in its own numerics
    fast = options.fast and name == "torch"
    return dataclasses.replace(options, backend=name, fast=fast)


def check_many(options: PredictOptions, inputs: Inputs) -> list[str]:
    """What only many-images mode refuses; the vocabulary (the embedded model's notes printed)."""
    if not options.images:
        raise RegionSpotError("Name the images: regionspot predict photos/ --out results/.")
    if options.viz is not None or options.explain is not None:
        raise RegionSpotError("--viz and --explain name one picture; with many images the pictures go to "
                              "OUT/<name>.png (--no-viz: none).")
    vocabulary = default_vocabulary(inputs.names, options)
    if options.embedded:
        for note in checks.embedded_model_notes(vocabulary, None, ""):
            typer.echo(f"note: {note}")
    return vocabulary


# --- one image ------------------------------------------------------------------------------------
def predict_one(options: PredictOptions, inputs: Inputs) -> None:
    """One image: the JSON at --out, the picture at --viz (--no-viz: none), the attention maps at --explain,
    the regions on stdout."""
    out = options.out or Path("result.json")
    viz = None if options.no_viz else options.viz or Path("result.png")
    checks.check_writable(out, viz, options.explain)
    start = time.perf_counter()
    image, picture, inputs = read_image(options, inputs)
    if options.backend != "torch" and inputs.boxes is None and inputs.points is None:
        raise RegionSpotError(f"--backend {options.backend} labels the regions it is given: pass --boxes or --points "
                              "(everything mode needs --backend torch).")
    predictor, record = load_model(options)
    loaded = time.perf_counter()
    result = label(predictor, picture, inputs, options, want_masks=viz is not None or options.masks)
    done = time.perf_counter()
    written = write_outputs(options, image, predictor, result, record, out, viz,
                            {"load": round(loaded - start, 3), "predict": round(done - loaded, 3)})
    known = result.is_known
    for i, name in enumerate(result.labels):
        box = ", ".join(f"{v:.0f}" for v in result.boxes[i])
        shown = f"{name}  {result.display_scores[i]:.2f}" if known[i] else f"{result.display_labels[i]}  (best: {name} {result.display_scores[i]:.2f})"
        typer.echo(f"[{box}]  {shown}")
    typer.echo(f"wrote {' and '.join(str(p) for p in written)}  (load {loaded - start:.1f}s, predict {done - loaded:.1f}s)")


def read_image(options: PredictOptions, inputs: Inputs):
    """(path, decoded image, inputs with the class names settled): the image given, or the bundled example with
    its boxes and names; decoded before the model loads, so a bad or oversized file is one line at once. Prints
    the notes (everything mode chosen for lack of prompts, what the embedded model cannot know)."""
    from regionspot.data.images import load_image

    image, names, boxes, points = (options.images or [None])[0], inputs.names, inputs.boxes, inputs.points
    own_image = image is not None
    if image is None:
        image, example_boxes, example_names = bundled_example()
        if boxes is None and points is None and not options.everything:
            boxes = example_boxes
        names = names if names is not None else example_names
    else:
        checks.check_prompts_fit(image, boxes, points)
        if boxes is None and points is None and not options.everything:
            typer.echo(f"note: {checks.EVERYTHING_NOTE}")
    names = default_vocabulary(names, options)
    picture = load_image(image, decode_limit=options.decode_limit)
    if options.embedded:  # the embedded model says what it cannot know
        for note in checks.embedded_model_notes(names, picture if own_image else None, image.name):
            typer.echo(f"note: {note}")
    return image, picture, Inputs(names, boxes, points)


def label(predictor, picture, inputs: Inputs, options: PredictOptions, want_masks: bool):
    """The RegionResult: the prompted regions labelled by ``predictor`` (a backend), or without prompts (or with
    --everything) the regions the segmenter proposes; its notes printed."""
    predictor.set_image(picture)
    predictor.set_vocabulary(inputs.names)
    want_attention = options.explain is not None
    if options.everything or (inputs.boxes is None and inputs.points is None):
        proposals, region_filter = options.proposals(), options.region_filter()
        result = predictor.predict_everything(proposals, top_k=options.top_k, return_masks=want_masks,
                                              return_attention=want_attention, region_filter=region_filter)
        overlap = "of its class" if region_filter.per_class else "of any class"
        typer.echo(f"everything: {len(result)} of the regions proposed by the segmenter "
                   f"({proposals.points_per_side}x{proposals.points_per_side} point grid + crops) shown: "
                   f"confidence >= {region_filter.min_confidence:g}, box IoU <= {region_filter.nms_iou:g} "
                   f"with a more stable region {overlap}")
    else:
        result = predictor.predict(boxes=inputs.boxes, points=inputs.points, top_k=options.top_k,
                                   return_masks=want_masks, return_attention=want_attention)
    for message in result.messages:
        typer.echo(f"note: {message}")
    if options.reject and result.known is None and len(result):
        typer.echo("note: this head has no rejection threshold, so every region is labelled; fit one with "
                   "`regionspot calibrate HEAD --data val.json --images DIR` (or pass --no-reject)")
    return result


def write_outputs(options: PredictOptions, image: Path, predictor, result, model: dict, out: Path, viz: Path | None,
                  timing: dict) -> list[Path]:
    """The result JSON (``model`` and ``timing`` recorded in it), the picture and the attention maps; their paths."""
    from regionspot.inference.visualize import draw_result

    payload = result.to_dict(image_path=image, masks=options.masks)
    payload.update({"model": model, "timing_s": timing})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2))
    written = [out]
    if viz is not None:
        viz.parent.mkdir(parents=True, exist_ok=True)
        draw_result(predictor.image, result).save(viz)
        written.append(viz)
    if options.explain is not None and len(result):
        from regionspot.inference.explain import explain_figure

        options.explain.parent.mkdir(parents=True, exist_ok=True)
        explain_figure(predictor.image, result, max_regions=options.explain_regions,
                       per_layer=options.explain_per_layer).save(options.explain)
        written.append(options.explain)
    return written


@app.command("models")
def models() -> None:
    """List registered model names, and the named variants with their FLOPs."""
    from regionspot.registry import list_pretrained

    for name, weights in list_pretrained().items():
        typer.echo(f"{name:12s} {weights.description}")
    from regionspot.registry import variant_costs

    typer.echo("\nVariants (frozen segmenter + vision-language model; FLOPs at full size, counted once; "
               "docs/performance.md has CPU seconds):")
    typer.echo(f"{'name':8s} {'segmenter':29s} {'vision-language':34s} {'TFLOP/image':>11s} {'GFLOP/box':>9s}  head")
    for row in variant_costs():
        head = f"regionspot download {row.name}" if row.released else "train it: docs/train.md#variants"
        typer.echo(f"{row.name:8s} {row.segmenter:29s} {row.vision_language:34s} {row.image_tflops:11.2f} "
                   f"{row.box_flops / 1e9:9.1f}  {head}")
