"""``regionspot predict`` (and ``regionspot models``): label regions of one image, write JSON and a picture.

The argument readers here are the only code that parses box, point and vocabulary strings.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from regionspot.cli.app import app, best_device, friendly
from regionspot.errors import PromptError, RegionSpotError, VocabularyError


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
    fast: Annotated[bool, typer.Option("--fast", help="Use the fastest path (bf16 / int8) that passes its accuracy guard on this machine.")] = False,
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

    dev = device or best_device()
    model = RegionSpot.from_pretrained(head, segmenter=sam, vision_language=clip, device=dev,
                                       fast_path=guarded_fast_path(dev) if fast else None)
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
        typer.echo(f"[{box}]  {label}  {result.display_scores[i]:.2f}")
    typer.echo(f"wrote {out}" + (f" and {viz}" if viz else "") + f"  (load {loaded - start:.1f}s, predict {done - loaded:.1f}s)")


@app.command("models")
def models() -> None:
    """List registered model names."""
    from regionspot.registry import list_pretrained

    for name, weights in list_pretrained().items():
        typer.echo(f"{name:12s} {weights.description}")

