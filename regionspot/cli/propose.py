"""``regionspot propose``: write a detections file (LVIS results format) for ``regionspot eval --boxes FILE``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regionspot.cli.app import app, best_device, friendly
from regionspot.errors import RegionSpotError

QUERIES = ("dataset", "none")


@app.command()
@friendly
def propose(
    data: Annotated[Path, typer.Option(help="COCO/LVIS-format JSON whose images get boxes (e.g. lvis_v1_val.json).")],
    images: Annotated[Path, typer.Option(help="Image root the JSON's file names are relative to.", file_okay=False)],
    out: Annotated[Path, typer.Option(help="Detections file to write (a list of image_id, category_id, bbox, score).")],
    detector: Annotated[str, typer.Option(help="An OWLv2 detector (hub id or folder, e.g. google/owlv2-base-patch16-ensemble), "
                                               "or 'sam' for SAM's automatic proposals.")] = "google/owlv2-base-patch16-ensemble",
    queries: Annotated[str, typer.Option(help="OWLv2: 'dataset' (query the dataset's class names, as GLIP's boxes were made) "
                                              "or 'none' (class-agnostic objectness).")] = "dataset",
    max_per_image: Annotated[int, typer.Option(help="Boxes kept per image, best first.")] = 300,
    min_score: Annotated[float, typer.Option(help="Drop boxes scored below this.")] = 0.0,
    nms_iou: Annotated[float | None, typer.Option(help="Class-agnostic NMS at this IoU before the cap (default: none).")] = None,
    sam: Annotated[str, typer.Option(help="With --detector sam: the segmenter (registered name, hub id or folder).")] = "facebook/sam-vit-base",
    points_per_side: Annotated[int, typer.Option(help="With --detector sam: point grid side.")] = 16,
    limit: Annotated[int | None, typer.Option(help="Only the first N images (by id), as eval --limit.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ...")] = None,
    overwrite: Annotated[bool, typer.Option(help="Start over instead of resuming an interrupted run.")] = False,
) -> None:
    """Boxes of our own for `regionspot eval --boxes`: OWLv2 (open-vocabulary or class-agnostic) or SAM proposals."""
    from regionspot.data.coco_json import CocoDetectionDataset
    from regionspot.engine.propose import propose_boxes

    if queries not in QUERIES:
        raise RegionSpotError(f"--queries must be one of {', '.join(QUERIES)}, got {queries!r}.")
    dataset = CocoDetectionDataset(data, images)
    device = device or best_device()
    settings: dict = {"detector": detector}
    category_ids = None
    if detector == "sam":
        from regionspot.backbones.segmenter import load_segmenter
        from regionspot.inference.proposals import proposal_source
        from regionspot.registry import resolve_backbone

        settings.update(sam=sam, points_per_side=points_per_side)
        source = proposal_source(load_segmenter(resolve_backbone(sam, "segmenter"), device=device), points_per_side, max_per_image)
    else:
        from regionspot.inference.detector_boxes import load_owlv2_boxes

        owl = load_owlv2_boxes(detector, device=device)
        if queries == "dataset":
            owl.set_queries(dataset.category_names)
            category_ids = dataset.category_ids
        settings.update(queries=queries, min_score=min_score, nms_iou=nms_iou, template=owl.template)

        def source(image):
            return owl.detect(image, max_detections=max_per_image, min_score=min_score, nms_iou=nms_iou)

    stats = propose_boxes(dataset, source, out, settings, category_ids=category_ids, max_per_image=max_per_image,
                          limit=limit, overwrite=overwrite)
    typer.echo(
        f"wrote {stats.out}: {stats.boxes:,} boxes on {stats.images:,} images "
        f"({stats.boxes / max(stats.images, 1):.1f} per image; {stats.resumed:,} images resumed) in {stats.seconds:.1f} s"
    )
    for line in stats.failed[:5]:
        typer.echo(f"skipped image {line}")
    if len(stats.failed) > 5:
        typer.echo(f"... and {len(stats.failed) - 5} more images that could not be read")
    typer.echo(f"next: regionspot eval --data {data} --images {images} --boxes {out} --head HEAD")
