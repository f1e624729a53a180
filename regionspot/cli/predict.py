"""``regionspot predict`` (and ``regionspot models``): label regions of one image, write JSON and a picture.

Box and point strings are read by ``backbones.prompts.parse_numbers`` (shared with the demo), names files
by ``text.presets``; everything that needs no model is checked first by ``cli.checks``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

import regionspot.cli.checks as checks
from regionspot.cli.app import app, best_device, friendly
from regionspot.errors import ImageError, PromptError, RegionSpotError, VocabularyError
from regionspot.inference.region_filter import RegionFilter


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
    """The fastest path that passed its accuracy guard on this machine; runs the guard once if never run."""
    from regionspot.inference.fast import candidate_paths, choose_fast_path

    chosen = choose_fast_path(device)
    if chosen is None:
        from regionspot.shapesworld.guard import run_guard

        typer.echo("--fast: checking the fast paths against fp32 on ShapesWorld val once for this machine ...")
        run_guard(candidate_paths(device)[:-1], device=device)
        chosen = choose_fast_path(device) or "fp32"
    typer.echo(f"--fast: {chosen} path")
    return chosen


# --- predict --------------------------------------------------------------------------------------
def bundled_example() -> tuple[Path, list[list[float]], list[str]]:
    """The bundled ShapesWorld example: image path, its boxes and its vocabulary."""
    from regionspot.registry import assets_dir

    example = assets_dir() / "shapesworld" / "example.json"
    if not example.is_file():
        raise RegionSpotError("No image given and no bundled example in this install; pass an IMAGE path.")
    spec = json.loads(example.read_text())
    return example.parent / spec["image"], spec["boxes"], spec["vocabulary"]


@app.command()
@friendly
def predict(
    image: Annotated[Path | None, typer.Argument(help="Image file. Default: the bundled ShapesWorld example.")] = None,
    vocab: Annotated[str | None, typer.Option(help="Comma-separated class names, e.g. 'cat,dog'.")] = None,
    vocab_file: Annotated[Path | None, typer.Option(help="A file with one class name per line.")] = None,
    vocab_preset: Annotated[str | None, typer.Option(help="A ready vocabulary: coco, lvis or shapesworld.")] = None,
    boxes: Annotated[str | None, typer.Option(help="Boxes in image pixels, separated by ';': 'x1,y1,x2,y2; x1 y1 x2 y2' "
                                                   "(commas or spaces between numbers).")] = None,
    box_format: Annotated[str, typer.Option(help="How --boxes / --boxes-json lists read: xyxy (corners) or xywh "
                                                 "(x, y, width, height).")] = "xyxy",
    boxes_json: Annotated[Path | None, typer.Option(help="Boxes from a JSON file.")] = None,
    points: Annotated[str | None, typer.Option(help="One foreground point per region: 'x,y; x,y' (or 'x y; x y').")] = None,
    everything: Annotated[bool, typer.Option("--everything", help="No prompts: the segmenter proposes the regions "
                                                               "(point grid + crops) and all are labelled.")] = False,
    out: Annotated[Path, typer.Option(help="Where to write the JSON result.")] = Path("result.json"),
    viz: Annotated[Path | None, typer.Option(help="Where to write a PNG with masks, boxes and labels.")] = Path("result.png"),
    explain: Annotated[Path | None, typer.Option(help="Write the head's attention maps over the image (PNG), "
                                                      "one panel per region (the first --explain-regions).")] = None,
    explain_regions: Annotated[int, typer.Option(help="How many regions --explain draws.")] = 6,
    explain_per_layer: Annotated[bool, typer.Option(help="--explain draws every layer, not only the last.")] = False,
    sam: Annotated[str | None, typer.Option(help="Segmenter: hub id or local folder.")] = None,
    clip: Annotated[str | None, typer.Option(help="Vision-language model: hub id or local folder.")] = None,
    head: Annotated[str | None, typer.Option(help="Head checkpoint (.safetensors, official .pth) or a registered name.")] = None,
    top_k: Annotated[int, typer.Option(help="Classes kept per region.")] = 3,
    grid: Annotated[int, typer.Option(help="Proposals: a GRID x GRID point grid on the image and on each crop.")] = 16,
    max_regions: Annotated[int, typer.Option(help="Everything mode: show at most this many regions.")] = 100,
    min_confidence: Annotated[float, typer.Option(help="Everything mode: hide regions below this confidence.")] = RegionFilter.min_confidence,
    nms_iou: Annotated[float, typer.Option(help="Everything mode: hide a region overlapping a more stable one "
                                                "(any class) above this box IoU (1: keep all).")] = RegionFilter.nms_iou,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1, mps (default: best available).")] = None,
    fast: Annotated[bool, typer.Option("--fast", help="Use the fastest path (bf16 / int8) that passes its accuracy guard on this machine.")] = False,
    max_megapixels: Annotated[float | None, typer.Option(help="Decode image files up to this many megapixels (default: PIL's "
                                                                "decompression-bomb limit, 89.5; or $REGIONSPOT_MAX_MEGAPIXELS).")] = None,
) -> None:
    """Label regions (boxes, points, or --everything the segmenter finds) of IMAGE; write JSON and pictures.

    Without --boxes, --boxes-json or --points, the segmenter proposes the regions (everything mode, slower);
    a note says so unless --everything asks for it. Bad input (boxes, names, files, --device) is one error
    line before any model loads. The embedded ShapesWorld model (no --head/--sam/--clip) notes names and
    images it cannot know.
    """
    from regionspot.data.images import load_image
    from regionspot.inference.predictor import RegionSpotPredictor
    from regionspot.inference.proposals import ProposalOptions
    from regionspot.inference.visualize import draw_result
    from regionspot.model import RegionSpot

    start = time.perf_counter()
    # checks that need no model (regionspot/cli/checks.py): each bad input is one line before any loading
    device = checks.check_device(device)
    checks.check_positive(top_k=top_k, grid=grid, max_regions=max_regions, explain_regions=explain_regions)
    checks.check_writable(out, viz, explain)
    embedded = checks.uses_embedded_model(head, sam, clip)
    names = checks.check_names(read_vocabulary(vocab, vocab_file, vocab_preset), vocab)
    box_list = None
    if boxes is not None and boxes_json is not None:
        raise PromptError("Pass either --boxes or --boxes-json, not both.")
    if boxes is not None:
        box_list = checks.read_box_option(boxes, box_format)
    elif boxes_json is not None:
        box_list = read_boxes_json(boxes_json, checks.check_box_format(box_format))
    point_list = checks.read_point_option(points) if points is not None else None
    if everything and (box_list is not None or point_list is not None):
        raise PromptError("--everything labels the regions the segmenter proposes; drop --boxes/--points (or --everything).")

    own_image = image is not None
    if image is None:
        image, example_boxes, example_names = bundled_example()
        if box_list is None and point_list is None and not everything:
            box_list = example_boxes
        names = names if names is not None else example_names
    else:
        checks.check_prompts_fit(image, box_list, point_list)
        if box_list is None and point_list is None and not everything:
            typer.echo(f"note: {checks.EVERYTHING_NOTE}")
    if names is None:
        if head is None and sam is None and clip is None:
            names = read_vocabulary(None, None, "shapesworld")
        else:
            raise VocabularyError("Pass the class names to recognise: --vocab 'cat,dog', --vocab-file names.txt or --vocab-preset.")
    everything = everything or (box_list is None and point_list is None)
    if max_megapixels is not None and not max_megapixels > 0:
        raise ImageError(f"--max-megapixels must be a positive number, got {max_megapixels}.")
    # before the model: a bad or oversized file is one line, at once
    picture = load_image(image, decode_limit=None if max_megapixels is None else int(max_megapixels * 1e6))
    if embedded:  # the embedded model says what it cannot know
        for note in checks.embedded_model_notes(names, picture if own_image else None, image.name):
            typer.echo(f"note: {note}")
    proposal_options = ProposalOptions(points_per_side=grid, max_regions=max_regions) if everything else None
    region_filter = RegionFilter(min_confidence=min_confidence, nms_iou=nms_iou)

    dev = device or best_device()
    model = RegionSpot.from_pretrained(head, segmenter=sam, vision_language=clip, device=dev,
                                       fast_path=guarded_fast_path(dev) if fast else None)
    loaded = time.perf_counter()
    predictor = RegionSpotPredictor(model)
    predictor.set_image(picture)
    predictor.set_vocabulary(names)
    want_attention = explain is not None
    if everything:
        result = predictor.predict_everything(proposal_options, top_k=top_k, return_masks=viz is not None,
                                              return_attention=want_attention, region_filter=region_filter)
        typer.echo(f"everything: {len(result)} of the regions proposed by the segmenter ({grid}x{grid} point grid + crops) "
                   f"shown: confidence >= {min_confidence:g}, box IoU <= {nms_iou:g} with a more stable one")
    else:
        result = predictor.predict(boxes=box_list, points=point_list, top_k=top_k, return_masks=viz is not None,
                                   return_attention=want_attention)
    done = time.perf_counter()
    for message in result.messages:
        typer.echo(f"note: {message}")

    payload = result.to_dict()
    payload.update({"image": str(image), "model": {"segmenter": model.config.segmenter,
                    "vision_language": model.config.vision_language, "head": head or "shapesworld"},
                    "timing_s": {"load": round(loaded - start, 3), "predict": round(done - loaded, 3)}})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2))
    written = [out]
    if viz is not None:
        viz.parent.mkdir(parents=True, exist_ok=True)
        draw_result(predictor.image, result).save(viz)
        written.append(viz)
    if explain is not None and len(result):
        from regionspot.inference.explain import explain_figure

        explain.parent.mkdir(parents=True, exist_ok=True)
        explain_figure(predictor.image, result, max_regions=explain_regions, per_layer=explain_per_layer).save(explain)
        written.append(explain)
    for i, label in enumerate(result.labels):
        box = ", ".join(f"{v:.0f}" for v in result.boxes[i])
        typer.echo(f"[{box}]  {label}  {result.display_scores[i]:.2f}")
    typer.echo(f"wrote {' and '.join(str(p) for p in written)}  (load {loaded - start:.1f}s, predict {done - loaded:.1f}s)")


@app.command("models")
def models() -> None:
    """List registered model names."""
    from regionspot.registry import list_pretrained

    for name, weights in list_pretrained().items():
        typer.echo(f"{name:12s} {weights.description}")

