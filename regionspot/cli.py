"""The ``regionspot`` command line: predict | convert | cache | train | eval | shapesworld | models.

Commands only parse arguments and call library functions; user errors (RegionSpotError) print one line
to stderr and exit with status 2, without a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from regionspot import __version__
from regionspot.errors import PromptError, RegionSpotError, VocabularyError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Recognize any region of an image with an open vocabulary.")
convert_app = typer.Typer(no_args_is_help=True, help="Convert official checkpoints (SAM, OpenAI CLIP, RegionSpot) to our formats.")
shapes_app = typer.Typer(no_args_is_help=True, help="ShapesWorld: the synthetic world we measure on.")
app.add_typer(convert_app, name="convert")
app.add_typer(shapes_app, name="shapesworld")


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def friendly(func):
    """Turn user errors into one red line and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except RegionSpotError as error:
            _fail(str(error))
        except KeyboardInterrupt:
            typer.secho("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"regionspot {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool | None, typer.Option("--version", callback=_version_callback, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    """Recognize any region of an image with an open vocabulary (RegionSpot)."""


# --- argument parsing helpers ---------------------------------------------------------------------
def parse_numbers(text: str, width: int, name: str) -> list[list[float]]:
    """"x1,y1,x2,y2;x1,y1,x2,y2" → [[...], [...]] with exactly ``width`` numbers per group."""
    groups = [g for g in text.replace(" ", "").split(";") if g]
    out = []
    for group in groups:
        try:
            values = [float(v) for v in group.split(",")]
        except ValueError:
            raise PromptError(f"Cannot read {name} {group!r}; write {width} comma-separated numbers per item, items separated by ';'.") from None
        if len(values) != width:
            raise PromptError(f"{name} {group!r} has {len(values)} numbers; each needs {width} (separate items with ';').")
        out.append(values)
    return out


def read_boxes_json(path: Path) -> list[list[float]]:
    """Boxes from JSON: [[x1,y1,x2,y2], ...], {"boxes": [...]}, or COCO-style [{"bbox": [x,y,w,h]}, ...]."""
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
            boxes.append([float(v) for v in item])
        else:
            raise PromptError(f"{path}: cannot read box {item!r:.60}; use [x1, y1, x2, y2] or {{'bbox': [x, y, w, h]}}.")
    return boxes


def read_vocabulary(vocab: str | None, vocab_file: Path | None) -> list[str] | None:
    if vocab and vocab_file:
        raise VocabularyError("Pass either --vocab or --vocab-file, not both.")
    if vocab_file is not None:
        if not vocab_file.is_file():
            raise VocabularyError(f"Vocabulary file not found: {vocab_file}.")
        return [line.strip() for line in vocab_file.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if vocab is not None:
        return [name.strip() for name in vocab.split(",")]
    return None


# --- predict --------------------------------------------------------------------------------------
@app.command()
@friendly
def predict(
    image: Annotated[Path | None, typer.Argument(help="Image file. Default: the bundled ShapesWorld example.")] = None,
    vocab: Annotated[str | None, typer.Option(help="Comma-separated class names, e.g. 'cat,dog'.")] = None,
    vocab_file: Annotated[Path | None, typer.Option(help="A file with one class name per line.")] = None,
    boxes: Annotated[str | None, typer.Option(help="Boxes 'x1,y1,x2,y2;x1,y1,x2,y2' in image pixels.")] = None,
    boxes_json: Annotated[Path | None, typer.Option(help="Boxes from a JSON file.")] = None,
    points: Annotated[str | None, typer.Option(help="One foreground point per region: 'x,y;x,y'.")] = None,
    out: Annotated[Path, typer.Option(help="Where to write the JSON result.")] = Path("result.json"),
    viz: Annotated[Path | None, typer.Option(help="Where to write a PNG with masks, boxes and labels.")] = Path("result.png"),
    sam: Annotated[str | None, typer.Option(help="Segmenter: hub id or local folder.")] = None,
    clip: Annotated[str | None, typer.Option(help="Vision-language model: hub id or local folder.")] = None,
    head: Annotated[str | None, typer.Option(help="Head checkpoint (.safetensors, official .pth) or a registered name.")] = None,
    top_k: Annotated[int, typer.Option(help="Classes kept per region.")] = 3,
    grid: Annotated[int, typer.Option(help="Without boxes/points: propose regions from a GRID×GRID point grid.")] = 16,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1, mps (default: best available).")] = None,
) -> None:
    """Label regions (boxes or points) of IMAGE with your vocabulary; write JSON and a picture."""
    from regionspot.inference.predictor import RegionSpotPredictor
    from regionspot.inference.visualize import draw_result
    from regionspot.model import RegionSpot
    from regionspot.registry import assets_dir

    start = time.perf_counter()
    names = read_vocabulary(vocab, vocab_file)
    box_list = None
    if boxes is not None and boxes_json is not None:
        raise PromptError("Pass either --boxes or --boxes-json, not both.")
    if boxes is not None:
        box_list = parse_numbers(boxes, 4, "box")
    elif boxes_json is not None:
        box_list = read_boxes_json(boxes_json)
    point_list = parse_numbers(points, 2, "point") if points is not None else None

    if image is None:
        example = assets_dir() / "shapesworld" / "example.json"
        if not example.is_file():
            raise RegionSpotError("No image given and no bundled example in this install; pass an IMAGE path.")
        spec = json.loads(example.read_text())
        image = example.parent / spec["image"]
        if box_list is None and point_list is None:
            box_list = spec["boxes"]
        if names is None:
            names = spec["vocabulary"]
    if names is None:
        default_vocab = assets_dir() / "shapesworld" / "vocabulary.txt"
        if head is None and sam is None and clip is None and default_vocab.is_file():
            names = read_vocabulary(None, default_vocab)
        else:
            raise VocabularyError("Pass the class names to recognise: --vocab 'cat,dog' or --vocab-file names.txt.")

    dev = device or _best_device()
    model = RegionSpot.from_pretrained(head, segmenter=sam, vision_language=clip, device=dev)
    loaded = time.perf_counter()
    predictor = RegionSpotPredictor(model)
    predictor.set_image(image)
    predictor.set_vocabulary(names)
    if box_list is None and point_list is None:
        proposed = predictor.propose(points_per_side=grid)
        if len(proposed) == 0:
            raise PromptError("No regions found automatically; pass --boxes 'x1,y1,x2,y2;...' or --points 'x,y;...'.")
        typer.echo(f"no boxes given: {len(proposed)} regions proposed by the segmenter from a {grid}x{grid} point grid")
        box_list = proposed.tolist()
    result = predictor.predict(boxes=box_list, points=point_list, top_k=top_k, return_masks=viz is not None)
    done = time.perf_counter()

    payload = result.to_dict()
    payload.update({"image": str(image), "model": {"segmenter": model.config.segmenter,
                    "vision_language": model.config.vision_language, "head": head or "shapesworld"},
                    "timing_s": {"load": round(loaded - start, 3), "predict": round(done - loaded, 3)}})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2))
    if viz is not None:
        viz.parent.mkdir(parents=True, exist_ok=True)
        draw_result(predictor.image, result).save(viz)
    for i, label in enumerate(result.labels):
        box = ", ".join(f"{v:.0f}" for v in result.boxes[i])
        typer.echo(f"[{box}]  {label}  {result.scores[i]:.2f}")
    typer.echo(f"wrote {out}" + (f" and {viz}" if viz else "") + f"  (load {loaded - start:.1f}s, predict {done - loaded:.1f}s)")


def _best_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    return "cpu"


@app.command("models")
def models() -> None:
    """List registered model names."""
    from regionspot.registry import list_pretrained

    for name, weights in list_pretrained().items():
        typer.echo(f"{name:12s} {weights.description}")


# --- convert --------------------------------------------------------------------------------------
@convert_app.command("regionspot")
@friendly
def convert_regionspot(
    checkpoint: Annotated[Path, typer.Argument(help="Official RegionSpot .pth (BB, BL or BL@336).")],
    out: Annotated[Path, typer.Option(help="Output .safetensors head checkpoint.")] = Path("head.safetensors"),
    variant: Annotated[str | None, typer.Option(help="Check it is this variant: BB, BL or BL@336.")] = None,
) -> None:
    """Official RegionSpot checkpoint → regionspot head checkpoint (frozen backbone weights dropped)."""
    from regionspot.checkpoint import convert_official_regionspot, load_head_checkpoint

    path = convert_official_regionspot(checkpoint, out, variant)
    _, config, _ = load_head_checkpoint(path)
    typer.echo(f"wrote {path}  (segmenter {config.segmenter}, vision-language {config.vision_language} @ {config.image_size})")


@convert_app.command("sam")
@friendly
def convert_sam(
    checkpoint: Annotated[Path, typer.Argument(help="Official segment-anything checkpoint, e.g. sam_vit_b_01ec64.pth.")],
    out: Annotated[Path, typer.Option(help="Output folder (transformers SamModel).")] = Path("sam-vit-base"),
    model_type: Annotated[str, typer.Option(help="vit_b, vit_l, vit_h or auto.")] = "auto",
) -> None:
    """Official SAM .pth → a transformers SamModel folder usable with --sam."""
    from regionspot.backbones.convert_sam import convert_sam_checkpoint

    path = convert_sam_checkpoint(checkpoint, out, model_type=model_type)
    typer.echo(f"wrote {path}")


@convert_app.command("clip")
@friendly
def convert_clip(
    checkpoint: Annotated[Path, typer.Argument(help="OpenAI CLIP checkpoint, e.g. ViT-L-14.pt.")],
    out: Annotated[Path, typer.Option(help="Output folder (transformers CLIPModel).")] = Path("clip"),
    tokenizer: Annotated[Path | None, typer.Option(help="Folder with a CLIP tokenizer to copy alongside.")] = None,
) -> None:
    """OpenAI CLIP .pt → a transformers CLIPModel folder usable with --clip."""
    from regionspot.backbones.convert_clip import convert_openai_clip

    path = convert_openai_clip(checkpoint, out, tokenizer=tokenizer)
    typer.echo(f"wrote {path}")


# --- cache / train / eval ------------------------------------------------------------------------
@app.command()
@friendly
def cache(
    dataset: Annotated[Path, typer.Option(help="COCO-format annotation JSON (COCO, LVIS, Objects365, V3Det, ShapesWorld).")],
    images: Annotated[Path, typer.Option(help="Image root the JSON's file names are relative to.")],
    out: Annotated[Path, typer.Option(help="Cache folder (shards + index + manifest).")],
    sam: Annotated[str, typer.Option(help="Segmenter: hub id or local folder.")] = "facebook/sam-vit-base",
    clip: Annotated[str | None, typer.Option(help="Also cache this vision-language model's feature maps (fp16).")] = None,
    image_size: Annotated[int | None, typer.Option(help="Vision-language input size (with --clip).")] = None,
    dataset_name: Annotated[str | None, typer.Option(help="Name recorded with every record (default: file stem).")] = None,
    flip: Annotated[bool, typer.Option(help="Also cache tokens of the horizontally flipped image (for consistent augmentation).")] = True,
    shard_size: Annotated[int, typer.Option(help="Images per shard.")] = 64,
    chunk_size: Annotated[int, typer.Option(help="Boxes per SAM decoder call.")] = 16,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ...")] = None,
    dtype: Annotated[str | None, typer.Option(help="fp32, fp16 or bf16 for the backbones.")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N images.")] = None,
    preprocess: Annotated[str, typer.Option(
        help="'default' (regionspot's) or 'released' (the released RegionSpot code's SAM eps 1e-5 and bilinear CLIP "
             "resize); a head trained on the cache records it (set model.preprocess in the training config to match).")] = "default",
) -> None:
    """Run SAM once over every annotated box and store the tokens in sharded, memory-mapped files (resumable)."""
    from regionspot.cache.extract import cli_cache

    cli_cache(dataset=dataset, images=images, out=out, segmenter=sam, vision_language=clip, image_size=image_size,
              dataset_name=dataset_name, flip=flip, shard_size=shard_size, chunk_size=chunk_size, device=device,
              dtype=dtype, limit=limit, preprocess=preprocess)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
@friendly
def train(
    config: Annotated[Path, typer.Option(help="Training recipe YAML (see configs/).")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides, e.g. optim.lr=1e-4 steps=200.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the run folder's last checkpoint.")] = False,
    resume_from: Annotated[Path | None, typer.Option(help="Continue from this checkpoint file.")] = None,
) -> None:
    """Train the head on cached tokens (CPU, one GPU, or many with `accelerate launch -m regionspot.cli train ...`)."""
    from regionspot.engine.train import cli_train

    cli_train(config, list(overrides or []), resume_from if resume_from is not None else resume)


@app.command("eval")
@friendly
def evaluate(
    data: Annotated[Path, typer.Option(help="COCO/LVIS-format ground-truth JSON (e.g. lvis_v1_val.json).")],
    images: Annotated[Path, typer.Option(help="Image root (LVIS: the folder holding train2017/ and val2017/).")],
    boxes: Annotated[str, typer.Option(help="'gt' or a detections file in COCO results format.")] = "gt",
    method: Annotated[list[str] | None, typer.Option(help="regionspot, clip-box, clip-mask (repeat for several rows).")] = None,
    head: Annotated[str | None, typer.Option(help="Head checkpoint or registered name.")] = None,
    sam: Annotated[str | None, typer.Option(help="Segmenter id/folder override.")] = None,
    clip: Annotated[str | None, typer.Option(help="Vision-language id/folder override.")] = None,
    max_dets_per_image: Annotated[int, typer.Option(help="LVIS per-image cap.")] = 300,
    fixed_ap: Annotated[bool, typer.Option(help="Fixed AP: no per-image cap, 10,000 per class.")] = False,
    iou_types: Annotated[str, typer.Option(help="bbox, segm or bbox,segm.")] = "bbox,segm",
    out: Annotated[Path, typer.Option(help="Output folder (predictions, report.md, metrics.json, per-category CSV, PNG).")] = Path("eval"),
    limit: Annotated[int | None, typer.Option(help="Only the first N images.")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per batch.")] = 4,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ...")] = None,
    evaluator: Annotated[str, typer.Option(help="faster_coco_eval or lvis.")] = "faster_coco_eval",
    templates: Annotated[str | None, typer.Option(help="Template set name (default: the model's).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Start over instead of resuming.")] = False,
    merge_only: Annotated[bool, typer.Option(help="Only merge per-process predictions and score them.")] = False,
    paper_protocol: Annotated[bool, typer.Option(
        "--paper-protocol",
        help="Reproduce the released RegionSpot evaluation exactly: images resized to shortest edge 800 / long side "
             "<= 1333 before SAM and CLIP, masks returned by nearest-neighbour (CLIP resize, class names and SAM eps "
             "come from the head checkpoint; a converted official head carries the released ones).")] = False,
    input_resize: Annotated[str | None, typer.Option(
        help="none or shortest-edge: the image SAM and CLIP see (default: the head's recorded choice).")] = None,
    mask_return: Annotated[str, typer.Option(
        help="sam (SAM's logits upsampled to the original size, default) or nearest (the released code's).")] = "sam",
) -> None:
    """Zero-shot region recognition AP with the paper's LVIS protocol (resumable, shardable with accelerate)."""
    from regionspot.engine.evaluate import cli_eval

    cli_eval(data=data, images=images, boxes=boxes, methods=tuple(method or ["regionspot"]), head=head, sam=sam, clip=clip,
             max_dets_per_image=max_dets_per_image, fixed_ap=fixed_ap, iou_types=iou_types, out=out, limit=limit,
             batch_size=batch_size, device=device, evaluator=evaluator, templates=templates, overwrite=overwrite,
             merge_only=merge_only, paper_protocol=paper_protocol, input_resize=input_resize, mask_return=mask_return)


# --- shapesworld ----------------------------------------------------------------------------------
@shapes_app.command("generate")
@friendly
def shapesworld_generate(
    out: Annotated[Path, typer.Option(help="Output folder.")],
    train: Annotated[int, typer.Option(help="Training images.")] = 1000,
    val: Annotated[int, typer.Option(help="Validation images.")] = 200,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 0,
    image_size: Annotated[int, typer.Option(help="Image side in pixels.")] = 256,
) -> None:
    """Generate a ShapesWorld dataset (COCO JSON with RLE masks and LVIS-style frequencies)."""
    from regionspot.data.shapesworld import cli_generate

    cli_generate(out=out, train=train, val=val, seed=seed, image_size=image_size)


@shapes_app.command("build")
@friendly
def shapesworld_build(
    out: Annotated[Path, typer.Option(help="Work folder (data, caches, runs, report.md, build.json).")] = Path("runs/shapesworld_build"),
    quick: Annotated[bool, typer.Option(help="A few-minute smoke build; installs nothing.")] = False,
    install: Annotated[bool, typer.Option(help="Copy the models into the package's assets (the embedded default).")] = True,
    resume: Annotated[bool, typer.Option(help="Skip stages already finished in OUT.")] = False,
) -> None:
    """Rebuild the embedded ShapesWorld models (tiny CLIP, tiny SAM, RegionSpot heads) and write the table."""
    from regionspot.engine.shapesworld_build import cli_build

    cli_build(out=out, quick=quick, install=install and not quick, resume=resume)


def main() -> None:
    try:
        app()
    except RegionSpotError as error:  # errors raised outside a command body
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
