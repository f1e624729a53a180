"""``regionspot eval``: zero-shot region recognition AP with the paper's LVIS protocol (resumable,
shardable with ``accelerate launch``). Its options are ``EvalOptions``' fields (defaults included);
``engine.evaluate.run_evaluation`` runs them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from regionspot.cli.app import app, friendly
from regionspot.cli.checks import check_device
from regionspot.cli.options import flag_messages
from regionspot.engine.config import EvalOptions

if TYPE_CHECKING:
    from regionspot.engine.evaluate import EvalSummary


def read_templates(templates: str | None) -> str | list[str] | None:
    """A template-set name, or a file with one template per line."""
    if templates is None:
        return None
    path = Path(templates)
    if path.is_file():
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return templates


def split_list(text: str) -> tuple[str, ...]:
    """'bbox, segm' -> ('bbox', 'segm')."""
    return tuple(t.strip() for t in text.split(",") if t.strip())


def echo_report(summary: EvalSummary | None, out: Path) -> None:
    """The report's Markdown table (main process), and how many images could not be decoded."""
    if summary is None:
        return
    table = Path(out) / "report.md"
    if table.is_file():
        typer.echo(table.read_text())
    failed = summary.meta.get("num_images_failed", 0)
    if failed:
        typer.echo(f"{failed} image(s) could not be decoded and were skipped; see {table}.")


@app.command("eval")
@friendly
@flag_messages
def evaluate(
    data: Annotated[Path, typer.Option(help="COCO/LVIS-format ground-truth JSON (e.g. lvis_v1_val.json).")],
    images: Annotated[Path, typer.Option(help="Image root (LVIS: the folder holding train2017/ and val2017/).")],
    boxes: Annotated[str, typer.Option(help="'gt' or a detections file in COCO results format.")] = EvalOptions.boxes,
    methods: Annotated[list[str] | None, typer.Option("--method", help="regionspot, clip-box, clip-mask (repeat for several rows).")] = None,
    head: Annotated[str | None, typer.Option(help="Head checkpoint or registered name.")] = EvalOptions.head,
    segmenter: Annotated[str | None, typer.Option("--sam", help="Segmenter override: registered name (e.g. shapesworld), hub id or folder.")] = EvalOptions.segmenter,
    vision_language: Annotated[str | None, typer.Option("--clip", help="Vision-language override: registered name (e.g. shapesworld), hub id or folder.")] = EvalOptions.vision_language,
    max_dets_per_image: Annotated[int, typer.Option(help="LVIS per-image cap.")] = EvalOptions.max_dets_per_image,
    fixed_ap: Annotated[bool, typer.Option(help="Fixed AP: no per-image cap, 10,000 per class.")] = EvalOptions.fixed_ap,
    iou_types: Annotated[str, typer.Option(help="bbox, segm or bbox,segm.")] = ",".join(EvalOptions.iou_types),
    out: Annotated[Path, typer.Option(help="Output folder (predictions, report.md, report.json, per_category.csv, ap_by_frequency.png).")] = EvalOptions.out,
    limit: Annotated[int | None, typer.Option(help="Only the first N images.")] = EvalOptions.limit,
    batch_size: Annotated[int, typer.Option(help="Images per SAM image-encoder / CLIP call (GPU: 8-32).")] = EvalOptions.batch_size,
    workers: Annotated[int | None, typer.Option(
        help="Processes decoding and resizing images ahead of the model (0: threads; default: 0 on CPU, "
             "min(4, CPUs-1) on GPU).")] = EvalOptions.workers,
    chunk_size: Annotated[int | None, typer.Option(help="Boxes per SAM decoder call (default: all boxes of an image).")] = EvalOptions.chunk_size,
    max_boxes_per_image: Annotated[int, typer.Option(help="With a detections file: keep the top N boxes per image.")] = EvalOptions.max_boxes_per_image,
    text_cache_dir: Annotated[str | None, typer.Option(help="Text-embedding cache folder (default: ~/.cache/regionspot/text).")] = EvalOptions.text_cache_dir,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ...")] = EvalOptions.device,
    evaluator: Annotated[str, typer.Option(help="faster_coco_eval or lvis.")] = EvalOptions.evaluator,
    templates: Annotated[str | None, typer.Option(help="Template set name (default: the model's).")] = EvalOptions.templates,
    overwrite: Annotated[bool, typer.Option(help="Start over instead of resuming.")] = EvalOptions.overwrite,
    merge_only: Annotated[bool, typer.Option(help="Only merge per-process predictions and score them.")] = EvalOptions.merge_only,
    paper_protocol: Annotated[bool, typer.Option(
        "--paper-protocol",
        help="Reproduce the released RegionSpot evaluation exactly: images resized to shortest edge 800 / long side "
             "<= 1333 before SAM and CLIP, masks returned by nearest-neighbour (CLIP resize, class names and SAM eps "
             "come from the head checkpoint; a converted official head carries the released ones).")] = EvalOptions.paper_protocol,
    eval_resize: Annotated[str | None, typer.Option(
        "--input-resize", help="none or shortest-edge: the image SAM and CLIP see (default: the head's recorded choice).")] = EvalOptions.eval_resize,
    mask_return: Annotated[str, typer.Option(
        help="sam (SAM's logits upsampled to the original size, default) or nearest (the released code's).")] = EvalOptions.mask_return,
    fast_path: Annotated[str, typer.Option(
        help="Backbone numerics: fp32 (default), bf16 (GPUs, AMX CPUs), int8 (CPU), compile (torch.compile), eager, or "
             "auto (the fastest whose accuracy guard passed here); see docs/performance.md.")] = EvalOptions.fast_path,
    backend: Annotated[str, typer.Option(help="What runs the model: torch, or its exported ONNX graphs on the CPU under "
                                              "onnxruntime, onnxruntime-int8, openvino or openvino-bf16 (the regionspot "
                                              "method, one process; see docs/export.md).")] = EvalOptions.backend,
    onnx: Annotated[Path | None, typer.Option(help="An ONNX backend: the folder of `regionspot export onnx --out DIR` (default: "
                                                   "the head's export kept in the model home, made on first use).")] = EvalOptions.onnx,
) -> None:
    """Zero-shot region recognition AP with the paper's LVIS protocol (resumable, shardable with accelerate)."""
    options = EvalOptions(**{**locals(), "methods": tuple(methods or EvalOptions.methods),
                             "iou_types": split_list(iou_types), "templates": read_templates(templates)})
    check_device(device)  # before any loading: a missing GPU is one line
    from regionspot.utils.startup_gc import start_up

    with start_up():  # the imports (and, below, the model load): no garbage collection while they run
        import regionspot.evaluation.lvis  # noqa: F401  the evaluator the scoring imports
        import regionspot.evaluation.report  # noqa: F401
        from regionspot.engine.evaluate import run_evaluation

    echo_report(run_evaluation(options, log=lambda line: typer.echo(f"note: {line}"), setup=start_up), options.out)
