"""``regionspot predict`` (and ``regionspot models``): label regions of one image, write JSON and a picture.

Box and point strings are read by ``backbones.prompts.parse_numbers`` (shared with the demo), names files
by ``text.presets``; everything that needs no model is checked first by ``cli.checks``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
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
    """The fastest path that passed its accuracy guard on this machine; fp32, with the command that runs the
    guard, when it has not run here."""
    from regionspot.inference.fast import GUARD_COMMAND, choose_fast_path

    chosen = choose_fast_path(device)
    if chosen is None:
        typer.echo(f"--fast: fp32 path: no accuracy-guard verdicts for this machine yet; `{GUARD_COMMAND}` makes them.")
        return "fp32"
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


def read_prompt_options(boxes: str | None, boxes_json: Path | None, points: str | None, everything: bool,
                        box_format: str = "xyxy") -> tuple[list | None, list | None]:
    """The boxes (--boxes or --boxes-json, XYXY after --box-format) and points (--points) given on the
    command line, checked."""
    if boxes is not None and boxes_json is not None:
        raise PromptError("Pass either --boxes or --boxes-json, not both.")
    box_list = checks.read_box_option(boxes, box_format) if boxes is not None else None
    if boxes_json is not None:
        box_list = read_boxes_json(boxes_json, checks.check_box_format(box_format))
    point_list = checks.read_point_option(points) if points is not None else None
    if everything and (box_list is not None or point_list is not None):
        raise PromptError("--everything labels the regions the segmenter proposes; drop --boxes/--points (or --everything).")
    return box_list, point_list


@dataclass(frozen=True)
class ModelChoice:
    """Which weights to load and how: --model or --head (``weights``), --sam, --clip, --device, --fast."""

    weights: str | None = None
    sam: str | None = None
    clip: str | None = None
    device: str | None = None
    fast: bool = False

    @classmethod
    def from_options(cls, model: str | None, head: str | None, **others) -> ModelChoice:
        if model is not None and head is not None:
            raise RegionSpotError("Pass --model NAME (registered weights) or --head PATH (your own head), not both.")
        return cls(model if model is not None else head, **others)

    @property
    def embedded(self) -> bool:
        return self.weights in (None, "shapesworld") and self.sam is None and self.clip is None

    def load(self):
        from transformers.utils import logging as transformers_logging

        from regionspot.model import RegionSpot

        transformers_logging.disable_progress_bar()  # its per-tensor "Loading weights" bars: noise on the terminal
        dev = self.device or best_device()
        return RegionSpot.from_pretrained(self.weights, segmenter=self.sam, vision_language=self.clip, device=dev,
                                          fast_path=guarded_fast_path(dev) if self.fast else None)

    def record(self, model) -> dict:
        """The "model" field of a result JSON."""
        return {"name": self.weights or "shapesworld", "segmenter": model.config.segmenter,
                "vision_language": model.config.vision_language}


def default_vocabulary(names: list[str] | None, choice: ModelChoice) -> list[str]:
    """The class names to use: those given, else the embedded model's own 64 (other weights need names)."""
    if names is not None:
        return names
    if choice.embedded:
        return read_vocabulary(None, None, "shapesworld")
    raise VocabularyError("Pass the class names to recognise: --vocab 'cat,dog', --vocab-file names.txt or --vocab-preset.")


def decode_limit(max_megapixels: float | None) -> int | None:
    if max_megapixels is not None and not max_megapixels > 0:
        raise ImageError(f"--max-megapixels must be a positive number, got {max_megapixels}.")
    return None if max_megapixels is None else int(max_megapixels * 1e6)


def is_many(images: list[Path], out: Path | None, output_format: str, prompts_file: Path | None) -> bool:
    """Many-images mode: several inputs, a folder, a glob, --prompts, --format coco, or --out not a .json."""
    if len(images) > 1 or prompts_file is not None or output_format != "json":
        return True
    if out is not None and out.suffix.lower() != ".json":
        return True
    from regionspot.inference.batch import is_glob

    return bool(images) and (images[0].is_dir() or not images[0].exists() and is_glob(images[0]))


@app.command()
@friendly
def predict(
    images: Annotated[list[Path] | None, typer.Argument(help="Image files, folders or quoted globs ('photos/*.jpg'). "
                                                             "Default: the bundled ShapesWorld example.")] = None,
    vocab: Annotated[str | None, typer.Option(help="Comma-separated class names, e.g. 'cat,dog'.")] = None,
    vocab_file: Annotated[Path | None, typer.Option(help="A file with one class name per line.")] = None,
    vocab_preset: Annotated[str | None, typer.Option(help="A ready vocabulary: coco, lvis or shapesworld.")] = None,
    boxes: Annotated[str | None, typer.Option(help="Boxes in image pixels, separated by ';': 'x1,y1,x2,y2; x1 y1 x2 y2' "
                                                   "(commas or spaces between numbers).")] = None,
    box_format: Annotated[str, typer.Option(help="How --boxes / --boxes-json lists read: xyxy (corners) or xywh "
                                                 "(x, y, width, height).")] = "xyxy",
    boxes_json: Annotated[Path | None, typer.Option(help="Boxes from a JSON file.")] = None,
    points: Annotated[str | None, typer.Option(help="One foreground point per region: 'x,y; x,y' (or 'x y; x y').")] = None,
    prompts_file: Annotated[Path | None, typer.Option("--prompts", help="Many images: a JSON file {\"a.jpg\": {\"boxes\": "
                            "\\[\\[x1,y1,x2,y2], ...], \"points\": \\[\\[x,y], ...]}, ...}, or a COCO file (each image's annotation "
                            "boxes; its ids go into --format coco). An image without an entry takes --boxes/--points, "
                            "or with --everything the proposals; else it is an error.")] = None,
    everything: Annotated[bool, typer.Option("--everything", help="No prompts: the segmenter proposes the regions "
                                                               "(point grid + crops) and all are labelled.")] = False,
    out: Annotated[Path | None, typer.Option(help="One image: the JSON result (default result.json). Many images: "
                                                  "a folder (default predictions/) for <name>.json and <name>.png.")] = None,
    output_format: Annotated[str, typer.Option("--format", help="json: a result JSON per image. coco: also one "
                             "COCO results file OUT/results.coco.json and OUT/image_ids.json.")] = "json",
    masks: Annotated[bool, typer.Option("--masks", help="Put each region's mask in the JSON (COCO RLE).")] = False,
    viz: Annotated[Path | None, typer.Option(help="One image: where to write a PNG with masks, boxes and labels "
                                                  "(default result.png).")] = None,
    no_viz: Annotated[bool, typer.Option("--no-viz", help="Write no pictures.")] = False,
    explain: Annotated[Path | None, typer.Option(help="Write the head's attention maps over the image (PNG), "
                                                      "one panel per region (the first --explain-regions).")] = None,
    explain_regions: Annotated[int, typer.Option(help="How many regions --explain draws.")] = 6,
    explain_per_layer: Annotated[bool, typer.Option(help="--explain draws every layer, not only the last.")] = False,
    model: Annotated[str | None, typer.Option(help="Registered weights by name (see `regionspot models`): "
                                                   "shapesworld (default), BB, BL, BL@336.")] = None,
    sam: Annotated[str | None, typer.Option(help="Segmenter: registered name (e.g. shapesworld, BL), hub id or folder.")] = None,
    clip: Annotated[str | None, typer.Option(help="Vision-language model: registered name, hub id or folder.")] = None,
    head: Annotated[str | None, typer.Option(help="Head checkpoint (.safetensors, official .pth) or a registered name.")] = None,
    top_k: Annotated[int, typer.Option(help="Classes kept per region.")] = 3,
    grid: Annotated[int, typer.Option(help="Proposals: a GRID x GRID point grid on the image and on each crop.")] = 16,
    max_regions: Annotated[int, typer.Option(help="Everything mode: show at most this many regions.")] = 100,
    min_confidence: Annotated[float, typer.Option(help="Everything mode: hide regions below this confidence.")] = RegionFilter.min_confidence,
    nms_iou: Annotated[float, typer.Option(help="Everything mode: hide a region overlapping a more stable one "
                                                "above this box IoU (1: keep all).")] = RegionFilter.nms_iou,
    nms_per_class: Annotated[bool, typer.Option("--nms-per-class", help="Everything mode: suppress overlaps only "
                                                "within a class (class-aware; default: across classes).")] = False,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1, mps (default: best available).")] = None,
    fast: Annotated[bool, typer.Option("--fast", help="Use the fastest path (bf16 / int8) that passes its accuracy guard on this machine.")] = False,
    max_megapixels: Annotated[float | None, typer.Option(help="Decode image files up to this many megapixels (default: PIL's "
                                                                "decompression-bomb limit, 89.5; or $REGIONSPOT_MAX_MEGAPIXELS).")] = None,
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
    from regionspot.inference.proposals import ProposalOptions

    # checks that need no model (regionspot/cli/checks.py): each bad input is one line before any loading
    device = checks.check_device(device)
    checks.check_positive(top_k=top_k, grid=grid, max_regions=max_regions, explain_regions=explain_regions)
    names = checks.check_names(read_vocabulary(vocab, vocab_file, vocab_preset), vocab)
    box_list, point_list = read_prompt_options(boxes, boxes_json, points, everything, box_format)
    choice = ModelChoice.from_options(model, head, sam=sam, clip=clip, device=device, fast=fast)
    limit = decode_limit(max_megapixels)
    if output_format not in ("json", "coco"):
        raise RegionSpotError(f"--format must be json or coco, got {output_format!r}.")
    proposals = ProposalOptions(points_per_side=grid, max_regions=max_regions)
    region_filter = RegionFilter(min_confidence=min_confidence, nms_iou=nms_iou, per_class=nms_per_class)
    if is_many(images or [], out, output_format, prompts_file):
        from regionspot.cli.predict_many import ManyImages, predict_many

        if not images:
            raise RegionSpotError("Name the images: regionspot predict photos/ --out results/.")
        if viz is not None or explain is not None:
            raise RegionSpotError("--viz and --explain name one picture; with many images the pictures go to "
                                  "OUT/<name>.png (--no-viz: none).")
        vocabulary = default_vocabulary(names, choice)
        if choice.embedded:
            for note in checks.embedded_model_notes(vocabulary, None, ""):
                typer.echo(f"note: {note}")
        request = ManyImages(images, vocabulary, box_list, point_list, everything, prompts_file,
                             out or Path("predictions"), output_format, masks, not no_viz, limit, top_k, proposals,
                             region_filter)
        raise typer.Exit(predict_many(request, choice))
    out, viz = out or Path("result.json"), None if no_viz else viz or Path("result.png")
    checks.check_writable(out, viz, explain)
    predict_one(images[0] if images else None, names, box_list, point_list, everything, choice, out, viz, masks,
                top_k, proposals, region_filter, limit, explain, explain_regions, explain_per_layer)


def predict_one(image: Path | None, names: list[str] | None, box_list: list | None, point_list: list | None,
                everything: bool, choice: ModelChoice, out: Path, viz: Path | None, masks: bool, top_k: int,
                proposals, region_filter: RegionFilter, limit: int | None, explain: Path | None, explain_regions: int,
                explain_per_layer: bool) -> None:
    """One image: the JSON at ``out``, the picture at ``viz`` (None: none), the regions on stdout."""
    from regionspot.data.images import load_image
    from regionspot.inference.predictor import RegionSpotPredictor
    from regionspot.inference.visualize import draw_result

    start = time.perf_counter()
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
    names = default_vocabulary(names, choice)
    everything = everything or (box_list is None and point_list is None)
    picture = load_image(image, decode_limit=limit)  # before the model: a bad or oversized file is one line, at once
    if choice.embedded:  # the embedded model says what it cannot know
        for note in checks.embedded_model_notes(names, picture if own_image else None, image.name):
            typer.echo(f"note: {note}")

    model = choice.load()
    loaded = time.perf_counter()
    predictor = RegionSpotPredictor(model)
    predictor.set_image(picture)
    predictor.set_vocabulary(names)
    want_masks, want_attention = viz is not None or masks, explain is not None
    if everything:
        result = predictor.predict_everything(proposals, top_k=top_k, return_masks=want_masks,
                                              return_attention=want_attention, region_filter=region_filter)
        overlap = "of its class" if region_filter.per_class else "of any class"
        typer.echo(f"everything: {len(result)} of the regions proposed by the segmenter "
                   f"({proposals.points_per_side}x{proposals.points_per_side} point grid + crops) shown: "
                   f"confidence >= {region_filter.min_confidence:g}, box IoU <= {region_filter.nms_iou:g} "
                   f"with a more stable region {overlap}")
    else:
        result = predictor.predict(boxes=box_list, points=point_list, top_k=top_k, return_masks=want_masks,
                                   return_attention=want_attention)
    done = time.perf_counter()
    for message in result.messages:
        typer.echo(f"note: {message}")

    payload = result.to_dict(image_path=image, masks=masks)
    payload.update({"model": choice.record(model),
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

