"""The evaluation loop: boxes given (ground truth or a detector's), classes predicted, LVIS box/mask AP.

Protocol (the paper's): every box of an image is a prompt. Per box, class probabilities are a softmax
over the dataset's vocabulary; the image keeps its top (box, class) pairs over all N×V pairs (several
labels per box), at most ``max_dets_per_image`` (LVIS: 300). With a detections file the score is
detector score × class probability. Masks for mask AP come from the segmenter with the same box
prompts, for every method. Methods (one table row each, all from one pass over the images):

- ``regionspot``: SAM token per box + CLIP feature map of the image → the trained head.
- ``clip-box`` / ``clip-mask``: CLIP on the box crop / SAM-mask crop (``regionspot.evaluation.baselines``).

The image the backbones see and how masks come back are the run's ``Protocol``
(``regionspot.evaluation.protocol``): the original image and SAM's own mask upsampling by default, the
head's recorded input size when it has one, the released evaluation's with ``paper_protocol``. The CLIP
crop baselines always crop the original image with the original boxes.

Per batch of ``batch_size`` images: decode and resize them ahead of the model (``workers`` processes; a
failure is recorded and skipped, not fatal), encode them with one SAM image-encoder call and one CLIP
feature-map call; per image: decode all its boxes (one decoder call unless ``chunk_size`` is set), score
every method, append the image to the prediction store (flushed; fsync'ed per batch), and move on
(``regionspot.engine.eval_loop``). A rerun into the same ``out_dir`` skips finished images. Images are sharded round-robin
over accelerate processes; rank 0 merges the shards and evaluates after all finished.

``run_evaluation(EvalOptions(...))`` is the whole ``regionspot eval`` command (its options are ``EvalOptions``'
fields); ``evaluate_dataset`` is the same run with the model parts built by the caller.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from regionspot.backbones.base import Segmenter, VisionLanguage
from regionspot.data.coco_json import CocoDetectionDataset, ImageRecord
from regionspot.engine.config import EvalOptions
from regionspot.engine.eval_loop import PredictStats, predict_images
from regionspot.errors import RegionSpotError
from regionspot.evaluation import predictions as store_lib
from regionspot.evaluation.detections import load_detections
from regionspot.evaluation.protocol import Protocol
from regionspot.utils.fingerprint import weights_fingerprint

__all__ = [
    "ROW_NAMES",
    "EvalSummary",
    "select_records",
    "merge_and_evaluate",
    "evaluate_dataset",
    "load_parts",
    "run_evaluation",
]

ROW_NAMES = {"clip-box": "CLIP w/ box", "clip-mask": "CLIP w/ mask", "regionspot": "RegionSpot"}
PREDICTIONS_DIR = "predictions"


@dataclass
class EvalSummary:
    """The outcome of an evaluation: ``results[row][iou_type]`` (an ``EvalResult``), the meta and files."""

    results: dict[str, dict[str, Any]]
    meta: dict[str, Any]
    out_dir: Path
    files: list[Path] = field(default_factory=list)


# ----------------------------------------------------------------------------- inputs


def select_records(dataset: CocoDetectionDataset, limit: int | None = None) -> list[ImageRecord]:
    """The images to evaluate, in id order: all, or the first ``limit``."""
    records = [dataset[i] for i in range(len(dataset))]
    return records if limit is None else records[:limit]


# ----------------------------------------------------------------------------- merge + AP


def _ground_truth(annotation_file: str | os.PathLike, image_ids: Sequence[int]) -> tuple[dict, list[str]]:
    """The LVIS-style ground truth restricted to ``image_ids``; notes on what was adapted."""
    from regionspot.evaluation.lvis import as_lvis_style

    with open(annotation_file, encoding="utf-8") as handle:
        gt = json.load(handle)
    notes = []
    lvis_style = all(c.get("frequency") in ("r", "c", "f") for c in gt["categories"]) and all(
        "neg_category_ids" in im and "not_exhaustive_category_ids" in im for im in gt["images"]
    )
    if not lvis_style:
        # Frequencies from the whole file, before restricting to the evaluated images.
        gt = as_lvis_style(gt)
        notes.append("COCO-style ground truth read as exhaustively labelled (as_lvis_style)")
    wanted = set(int(i) for i in image_ids)
    gt["images"] = [im for im in gt["images"] if int(im["id"]) in wanted]
    gt["annotations"] = [a for a in gt["annotations"] if int(a["image_id"]) in wanted]
    for ann in gt["annotations"]:
        ann.setdefault("area", float(ann["bbox"][2]) * float(ann["bbox"][3]))
    return gt, notes


def merge_and_evaluate(
    annotation_file: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: EvalOptions,
    image_ids: Sequence[int] | None = None,
    meta: dict[str, Any] | None = None,
    write: bool = True,
) -> EvalSummary:
    """Merge every rank's predictions under ``out_dir`` and compute AP per method and iou type.

    image_ids: the evaluated images (None: all stored). Images that failed to decode are left out of
    the ground truth too (AP is over the scored images) and listed in ``meta["failed_images"]``.
    Writes the report (Markdown table, JSON, per-category CSV, PNG chart) when ``write``.
    """
    from regionspot.evaluation.lvis import evaluate

    out_dir = Path(out_dir)
    merged = store_lib.merge(out_dir / PREDICTIONS_DIR, image_ids)
    if image_ids is not None:
        missing = set(int(i) for i in image_ids) - set(merged.image_ids) - {int(f["image_id"]) for f in merged.failures}
        if missing:
            raise RegionSpotError(
                f"{len(missing)} image(s) have no predictions yet (e.g. {sorted(missing)[:3]}); rerun the evaluation "
                "into the same `out` to finish them."
            )
    gt, notes = _ground_truth(annotation_file, merged.image_ids)
    iou_types = list(options.iou_types)
    if "segm" in iou_types and any("segmentation" not in a for a in gt["annotations"]):
        iou_types.remove("segm")
        notes.append("mask AP skipped: the ground truth has boxes only")
    results: dict[str, dict[str, Any]] = {}
    timings: dict[str, float] = {}
    for method in options.methods:
        row = ROW_NAMES[method]
        results[row] = {}
        for iou_type in iou_types:
            start = time.perf_counter()
            results[row][iou_type] = evaluate(
                gt, merged.results(method, with_segm=iou_type == "segm"), iou_type=iou_type,
                max_dets_per_image=options.max_dets_per_image, fixed_ap=options.fixed_ap, backend=options.evaluator,
            )
            timings[f"{method}/{iou_type}"] = round(time.perf_counter() - start, 3)
    full_meta = {
        "title": f"LVIS-style evaluation: {Path(annotation_file).name}",
        "proposals": "GT boxes" if options.boxes == "gt" else Path(options.boxes).name,
        **(meta or {}),
        "options": {k: v for k, v in asdict(options).items() if k != "text_cache_dir"},
        "num_images_scored": len(merged.records),
        "num_images_failed": len(merged.failures),
        "failed_images": [{"image_id": f["image_id"], "reason": f["error"]} for f in merged.failures],
        "evaluator_seconds": timings,
        "notes": notes,
    }
    summary = EvalSummary(results=results, meta=full_meta, out_dir=out_dir)
    if write:
        from regionspot.evaluation.report import write_report

        files = write_report(out_dir, results, full_meta)
        summary.files = list(files.values())
    return summary


# ----------------------------------------------------------------------------- whole run


def _run_manifest(annotation_file: str | os.PathLike, options: EvalOptions, segmenter: Segmenter,
                  vision_language: VisionLanguage, model: Any, templates: str | list[str],
                  protocol: Protocol) -> dict[str, Any]:
    """What the prediction store's contents depend on; a rerun into the same folder must match it."""
    return {
        **options.store_inputs(annotation_file),
        "segmenter": segmenter.model_id,
        "vision_language": [vision_language.model_id, int(vision_language.image_size)],
        "head": weights_fingerprint(model.head) if "regionspot" in options.methods and model is not None else "",
        "templates": templates,
        "protocol": asdict(protocol),
    }


def _run_meta(annotation_file: str | os.PathLike, image_root: str | os.PathLike, num_images: int, world_size: int,
              segmenter: Segmenter, vision_language: VisionLanguage, options: EvalOptions, templates: str | list[str],
              protocol: Protocol, det_counts: dict[str, int] | None, stats: PredictStats) -> dict[str, Any]:
    """The report's description of the run: data, parts, protocol, detections and this call's timings."""
    return {
        "dataset": str(annotation_file),
        "image_root": str(image_root),
        "num_images": num_images,
        "world_size": world_size,
        "segmenter": segmenter.model_id,
        "vision_language": vision_language.model_id,
        "image_size": int(vision_language.image_size),
        "templates": templates,
        "paper_protocol": options.paper_protocol,
        **protocol.report_lines(),
        "detections": det_counts,
        "this_run": {
            "scored": stats.scored, "failed": stats.failed, "skipped_done": stats.skipped_done, "boxes": stats.boxes,
            "seconds": round(stats.seconds, 3),
            "images_per_second": round(stats.scored / stats.seconds, 3) if stats.seconds > 0 else None,
            "seconds_per_image": {k: round(v, 4) for k, v in stats.per_image().items()},
        },
    }


def evaluate_dataset(
    annotation_file: str | os.PathLike,
    image_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    segmenter: Segmenter,
    vision_language: VisionLanguage,
    model: Any = None,
    options: EvalOptions | None = None,
    accelerator: Any = None,
    rank: int | None = None,
    world_size: int | None = None,
    on_image: Callable[[int], None] | None = None,
    show_progress: bool = True,
) -> EvalSummary | None:
    """Predict (resumably) and evaluate; returns the summary on the main process, None on the others.

    Process layout from ``accelerator`` (``process_index``/``num_processes``) or from ``rank``/``world_size``
    (default 0/1). With several processes, rank 0 merges after ``accelerator.wait_for_everyone()``;
    without an accelerator only a single-process run merges (other simulated ranks call
    :func:`merge_and_evaluate` themselves).
    """
    from regionspot.text.embeddings import class_text_embeddings

    options = options or EvalOptions()
    options.validate()
    if accelerator is not None:
        rank, world_size = accelerator.process_index, accelerator.num_processes
    rank, world_size = rank or 0, world_size or 1
    dataset = CocoDetectionDataset(annotation_file, image_root)
    records = select_records(dataset, options.limit)
    templates = options.templates or (model.config.templates if model is not None else "imagenet")
    protocol = options.protocol(segmenter, vision_language, model)
    manifest = _run_manifest(annotation_file, options, segmenter, vision_language, model, templates, protocol)
    store_root = Path(out_dir) / PREDICTIONS_DIR
    if rank == 0:
        store_lib.write_manifest(store_root, manifest, overwrite=options.overwrite)
    if accelerator is not None:
        accelerator.wait_for_everyone()
    if rank != 0:
        store_lib.write_manifest(store_root, manifest)  # verifies rank 0's manifest
    text = class_text_embeddings(vision_language, dataset.raw_category_names, templates=templates,
                                 cache_dir=options.text_cache_dir, show_progress=show_progress and rank == 0,
                                 name_style=protocol.class_names)
    detections, det_counts = None, None
    if options.boxes != "gt":
        sizes = {r.image_id: (r.height, r.width) for r in records}
        detections, det_counts = load_detections(options.boxes, sizes, options.max_boxes_per_image,
                                                 options.min_box_score)
    stats = predict_images(
        records, segmenter=segmenter, vision_language=vision_language, text=text,
        category_ids=dataset.category_ids, options=options, store_root=store_root, model=model,
        detections=detections, rank=rank, world_size=world_size, on_image=on_image,
        show_progress=show_progress, protocol=protocol,
    )
    if accelerator is not None:
        accelerator.wait_for_everyone()
    if rank != 0 or (accelerator is None and world_size > 1):
        return None
    meta = _run_meta(annotation_file, image_root, len(records), world_size, segmenter, vision_language, options,
                     templates, protocol, det_counts, stats)
    return merge_and_evaluate(annotation_file, out_dir, options, [r.image_id for r in records], meta)


def load_parts(
    methods: Sequence[str], head: str | None = None, segmenter: str | None = None, vision_language: str | None = None,
    device: str | torch.device | None = None, fast_path: str = "fp32",
) -> tuple[Segmenter, VisionLanguage, Any]:
    """(segmenter, vision_language, model or None) for an evaluation of ``methods``.

    A head (``head``: checkpoint or registered name; None: the embedded model) is loaded when the
    "regionspot" method needs it or when a backbone is not given (its checkpoint names them); the
    backbones then run with the head's recorded preprocessing. ``segmenter`` / ``vision_language``
    (registered name, hub id or folder) override its backbones.
    fast_path: the backbones' numerics (``regionspot.inference.fast.FAST_PATHS`` or "auto").
    """
    from regionspot.inference.fast import resolve_fast_path

    fast_path = resolve_fast_path(fast_path, device or "cpu")
    if "regionspot" in methods or segmenter is None or vision_language is None:
        from regionspot.model import RegionSpot

        model = RegionSpot.from_pretrained(head, segmenter=segmenter, vision_language=vision_language, device=device,
                                           fast_path=fast_path)
        return model.segmenter, model.vision_language, model if "regionspot" in methods else None
    from regionspot.backbones.segmenter import load_segmenter
    from regionspot.backbones.vision_language import load_vision_language
    from regionspot.registry import resolve_backbone

    segmenter = load_segmenter(resolve_backbone(segmenter, "segmenter"), device=device)
    vision_language = load_vision_language(resolve_backbone(vision_language, "vision_language"), device=device)
    for part in (segmenter, vision_language):  # the crop baselines alone
        part.set_numerics(fast_path)
    return segmenter, vision_language, None


def run_evaluation(options: EvalOptions, show_progress: bool = True,
                   log: Callable[[str], None] | None = None,
                   setup: Callable[[], AbstractContextManager] = contextlib.nullcontext) -> EvalSummary | None:
    """The whole evaluation ``options`` describe: load the parts, predict into ``options.out`` (resuming),
    merge and score; with ``merge_only``, score what ``out`` holds. Returns the summary on the main process.

    Under ``accelerate launch`` the images are sharded over processes (:func:`evaluate_dataset`). An ONNX
    ``backend`` runs in one process (``regionspot.engine.eval_onnx``; ``log`` is told when the head is exported
    or quantized on first use). ``setup()``: a context around the imports and the model load (the command line
    pauses the garbage collector there: ``utils/startup_gc.start_up``).
    """
    options.validate()
    if options.data is None or options.images is None:
        raise ValueError("run_evaluation needs options.data and options.images (evaluate_dataset takes them as arguments).")
    if options.merge_only:
        ids = [r.image_id for r in select_records(CocoDetectionDataset(options.data, options.images), options.limit)]
        return merge_and_evaluate(options.data, options.out, options, ids,
                                  {"dataset": str(options.data), "merge_only": True})
    if options.backend != "torch":
        from regionspot.engine.eval_onnx import predict_on_backend

        dataset = CocoDetectionDataset(options.data, options.images)
        records = select_records(dataset, options.limit)
        meta = predict_on_backend(options, dataset, records, Path(options.out) / PREDICTIONS_DIR,
                                  show_progress=show_progress, log=log, setup=setup)
        return merge_and_evaluate(options.data, options.out, options, [r.image_id for r in records], meta)
    with setup():
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=options.device == "cpu")
        segmenter, vision_language, model = load_parts(options.methods, options.head, options.segmenter,
                                                       options.vision_language, options.device or accelerator.device,
                                                       fast_path=options.fast_path)
    return evaluate_dataset(options.data, options.images, options.out, segmenter=segmenter,
                            vision_language=vision_language, model=model, options=options, accelerator=accelerator,
                            show_progress=show_progress)
