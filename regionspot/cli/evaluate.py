"""``regionspot eval``: zero-shot region recognition AP with the paper's LVIS protocol (resumable,
shardable with ``accelerate launch``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from regionspot.cli.app import app, friendly
from regionspot.cli.checks import check_device
from regionspot.data.coco_json import CocoDetectionDataset
from regionspot.engine.config import EvalOptions
from regionspot.engine.evaluate import (
    EvalSummary,
    evaluate_dataset,
    load_parts,
    merge_and_evaluate,
    select_records,
)
from regionspot.errors import RegionSpotError


def _read_templates(templates: str | None) -> str | list[str] | None:
    """A template-set name, or a file with one template per line."""
    if templates is None:
        return None
    path = Path(templates)
    if path.is_file():
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return templates


def run_eval(
    data: Path,
    images: Path,
    boxes: str = "gt",
    methods: Sequence[str] = ("regionspot",),
    head: str | None = None,
    sam: str | None = None,
    clip: str | None = None,
    max_dets_per_image: int = 300,
    fixed_ap: bool = False,
    iou_types: str = "bbox,segm",
    out: Path = Path("eval"),
    limit: int | None = None,
    batch_size: int = 4,
    workers: int | None = None,
    chunk_size: int | None = None,
    max_boxes_per_image: int = 300,
    device: str | None = None,
    evaluator: str = "faster_coco_eval",
    templates: str | None = None,
    text_cache_dir: str | None = None,
    overwrite: bool = False,
    merge_only: bool = False,
    show_progress: bool = True,
    paper_protocol: bool = False,
    input_resize: str | None = None,
    mask_return: str = "sam",
    fast_path: str = "fp32",
) -> EvalSummary | None:
    """Box/mask AP of RegionSpot and/or the CLIP crop baselines on a COCO/LVIS json; prints the table.

    Resumes into ``out`` (finished images are skipped) unless ``overwrite``. Under ``accelerate launch``
    the images are sharded over processes. ``merge_only`` skips prediction and re-evaluates what is stored.
    Prints the Markdown table and returns the summary (main process).
    """
    options = EvalOptions(
        methods=tuple(methods), boxes=str(boxes), iou_types=tuple(t.strip() for t in iou_types.split(",") if t.strip()),
        max_dets_per_image=max_dets_per_image, fixed_ap=fixed_ap, limit=limit, batch_size=batch_size,
        workers=workers, chunk_size=chunk_size, max_boxes_per_image=max_boxes_per_image, evaluator=evaluator,
        templates=_read_templates(templates), text_cache_dir=text_cache_dir, overwrite=overwrite,
        input_resize=input_resize, mask_return=mask_return, paper_protocol=paper_protocol, fast_path=fast_path,
    )
    options.validate()
    if not Path(data).is_file():
        raise RegionSpotError(f"Annotation file not found: {data}; pass --data ANN.json.")
    if not Path(images).is_dir():
        raise RegionSpotError(f"Image folder not found: {images}; pass --images ROOT.")
    if merge_only:
        dataset = CocoDetectionDataset(data, images)
        ids = [r.image_id for r in select_records(dataset, limit)]
        summary = merge_and_evaluate(data, out, options, ids, {"dataset": str(data), "merge_only": True})
    else:
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=device == "cpu")
        segmenter, vision_language, model = load_parts(options.methods, head, sam, clip, device or accelerator.device,
                                                       fast_path=options.fast_path)
        summary = evaluate_dataset(
            data, images, out, segmenter=segmenter, vision_language=vision_language, model=model,
            options=options, accelerator=accelerator, show_progress=show_progress,
        )
    if summary is not None and show_progress:
        table = Path(out) / "report.md"
        if table.is_file():
            typer.echo(table.read_text())
        failed = summary.meta.get("num_images_failed", 0)
        if failed:
            typer.echo(f"{failed} image(s) could not be decoded and were skipped; see {Path(out) / 'report.md'}.")
    return summary


@app.command("eval")
@friendly
def evaluate(
    data: Annotated[Path, typer.Option(help="COCO/LVIS-format ground-truth JSON (e.g. lvis_v1_val.json).")],
    images: Annotated[Path, typer.Option(help="Image root (LVIS: the folder holding train2017/ and val2017/).")],
    boxes: Annotated[str, typer.Option(help="'gt' or a detections file in COCO results format.")] = "gt",
    method: Annotated[list[str] | None, typer.Option(help="regionspot, clip-box, clip-mask (repeat for several rows).")] = None,
    head: Annotated[str | None, typer.Option(help="Head checkpoint or registered name.")] = None,
    sam: Annotated[str | None, typer.Option(help="Segmenter override: registered name (e.g. shapesworld), hub id or folder.")] = None,
    clip: Annotated[str | None, typer.Option(help="Vision-language override: registered name (e.g. shapesworld), hub id or folder.")] = None,
    max_dets_per_image: Annotated[int, typer.Option(help="LVIS per-image cap.")] = 300,
    fixed_ap: Annotated[bool, typer.Option(help="Fixed AP: no per-image cap, 10,000 per class.")] = False,
    iou_types: Annotated[str, typer.Option(help="bbox, segm or bbox,segm.")] = "bbox,segm",
    out: Annotated[Path, typer.Option(help="Output folder (predictions, report.md, report.json, per_category.csv, ap_by_frequency.png).")] = Path("eval"),
    limit: Annotated[int | None, typer.Option(help="Only the first N images.")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per SAM image-encoder / CLIP call (GPU: 8-32).")] = 4,
    workers: Annotated[int | None, typer.Option(
        help="Processes decoding and resizing images ahead of the model (0: threads; default: 0 on CPU, "
             "min(4, CPUs-1) on GPU).")] = None,
    chunk_size: Annotated[int | None, typer.Option(help="Boxes per SAM decoder call (default: all boxes of an image).")] = None,
    max_boxes_per_image: Annotated[int, typer.Option(help="With a detections file: keep the top N boxes per image.")] = 300,
    text_cache_dir: Annotated[str | None, typer.Option(help="Text-embedding cache folder (default: ~/.cache/regionspot/text).")] = None,
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
    fast_path: Annotated[str, typer.Option(
        help="Backbone numerics: fp32 (default), bf16 (GPUs, AMX CPUs), int8 (CPU), compile (torch.compile), eager, or "
             "auto (the fastest whose accuracy guard passed here); see docs/performance.md.")] = "fp32",
) -> None:
    """Zero-shot region recognition AP with the paper's LVIS protocol (resumable, shardable with accelerate)."""
    check_device(device)  # before any loading: a missing GPU is one line
    run_eval(data=data, images=images, boxes=boxes, methods=tuple(method or ["regionspot"]), head=head, sam=sam, clip=clip,
             max_dets_per_image=max_dets_per_image, fixed_ap=fixed_ap, iou_types=iou_types, out=out, limit=limit,
             batch_size=batch_size, workers=workers, device=device, evaluator=evaluator, templates=templates, overwrite=overwrite,
             merge_only=merge_only, paper_protocol=paper_protocol, input_resize=input_resize, mask_return=mask_return,
             chunk_size=chunk_size, max_boxes_per_image=max_boxes_per_image, text_cache_dir=text_cache_dir,
             fast_path=fast_path)


