"""The evaluation on an ONNX backend (``EvalOptions.backend``: onnxruntime, onnxruntime-int8, openvino,
openvino-bf16): the same protocol, prediction store and scoring as the torch backend's loop
(``regionspot.engine.eval_loop``), with the exported graphs (``regionspot.inference.backends.OnnxBackend``)
running the model.

Per image: decode and resize it (the run's ``Protocol``; threads decode the next images meanwhile), run both
image graphs once (SAM's image encoder, CLIP's feature map), SAM's prompt graph for all its boxes (one call
unless ``chunk_size`` is set) and the head for all of them against the whole vocabulary, whose text
embeddings the backend's text graph made once (kept on disk like the torch path's: ``text_cache_dir``).
Class probabilities, the image's top (box, class) pairs and the mask run lengths are computed by the
functions the torch loop calls (``modeling.postprocess``, ``masks.regions.region_masks`` on the prompt
graph's low-resolution logits), so the two backends differ only by the graphs' floating-point arithmetic.

One process, the regionspot method, on the CPU: ``EvalOptions.validate_backend`` refuses the rest in one line.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import Any

import torch
from PIL import Image

from regionspot.data.coco_json import CocoDetectionDataset, ImageRecord
from regionspot.data.feeder import feed
from regionspot.data.images import load_image
from regionspot.data.transforms import scale_boxes
from regionspot.engine.config import EvalOptions
from regionspot.engine.eval_loop import (
    FinishedImage,
    PredictStats,
    StageTimer,
    StoreWriter,
    image_boxes,
    images_to_do,
)
from regionspot.errors import ImageError
from regionspot.evaluation import predictions as store_lib
from regionspot.evaluation.detections import load_detections
from regionspot.evaluation.protocol import Protocol
from regionspot.inference.backends import OnnxBackend
from regionspot.inference.box_sources import ScoredBoxes
from regionspot.masks.regions import region_masks
from regionspot.masks.resize import MaskFrame
from regionspot.modeling.postprocess import image_topk_pairs, softmax_probs
from regionspot.utils.progress import progress_bar

__all__ = ["onnx_protocol", "open_eval_backend", "predict_images_onnx", "predict_on_backend"]

IMAGE_STAGES = ("decode", "image_graphs", "prompt_and_head", "postprocess")


def open_eval_backend(options: EvalOptions, log: Callable[[str], None] | None = None) -> OnnxBackend:
    """The backend ``options.backend`` on the graphs of ``options.onnx``, else of ``options.head``'s export (made
    once, in the model home); ``log`` is told when an export or quantization starts."""
    from regionspot.inference.backends import open_backend

    return open_backend(options.backend, options.head, segmenter=options.segmenter,
                        vision_language=options.vision_language, onnx_dir=options.onnx,
                        text_cache_dir=options.text_cache_dir, log=log)


def onnx_protocol(options: EvalOptions, backend: OnnxBackend) -> Protocol:
    """The run's pipeline as ``EvalOptions.protocol`` resolves it, read from the exported head's configuration:
    ``options``' input resize first, then the head's recorded one; its class names, CLIP resize and SAM eps."""
    config = backend.runtime.graphs.config
    preprocess = config["regionspot_config"].get("preprocess", {})
    if options.eval_resize is not None:
        resize, lo, hi = options.eval_resize, options.eval_min_size, options.eval_max_size
    else:
        resize = preprocess.get("eval_resize", "none")
        lo, hi = preprocess.get("eval_min_size", 800), preprocess.get("eval_max_size", 1333)
    eps = preprocess.get("sam_decoder_eps")
    return Protocol(input_resize=resize, min_size=int(lo), max_size=int(hi), mask_return=options.mask_return,
                    class_names=config["text"]["name_style"], clip_resize=config["clip"]["resize"],
                    clip_antialias=bool(config["clip"]["antialias"]), sam_decoder_eps=None if eps is None else float(eps))


@dataclass(frozen=True)
class _Decode:
    """Decode one record and resize it to the model input: (record, original, model input, error)."""

    protocol: Protocol

    def __call__(self, record: ImageRecord) -> tuple:
        try:
            image = load_image(record.path)
            return record, image, self.protocol.model_input(image), None
        except (ImageError, OSError, ValueError) as error:
            return record, None, None, f"{type(error).__name__}: {error}"


def _score_image(backend: OnnxBackend, record: ImageRecord, image: Image.Image, model_image: Image.Image,
                 found: ScoredBoxes, options: EvalOptions, protocol: Protocol, category_ids: Sequence[int],
                 timer: StageTimer) -> FinishedImage:
    """One image on the graphs, as ``eval_loop._Run._score_image`` scores it: boxes (XYXY original pixels)
    scaled to the model input, masks back at the original size (``protocol.mask_return``)."""
    boxes_np = found.boxes.numpy()
    boxes_xywh = [[float(x1), float(y1), float(x2 - x1), float(y2 - y1)] for x1, y1, x2, y2 in boxes_np.tolist()]
    if len(found) == 0:
        return FinishedImage(record, boxes_xywh=[], runs=[] if "segm" in options.iou_types else None,
                         pairs={"regionspot": []})
    height, width = image.height, image.width
    model_boxes = found.boxes
    if (model_image.height, model_image.width) != (height, width):
        model_boxes = scale_boxes(found.boxes, model_image.width / width, model_image.height / height)
    runtime = backend.runtime
    with timer("image_graphs"):
        runtime.set_image(model_image)
    with timer("prompt_and_head"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # boxes are inside the image already; nothing to tell the user per box
        runtime.chunk_size = options.chunk_size or len(found)
        regions = runtime.predict(boxes=model_boxes.numpy(), top_k=1, return_masks="segm" in options.iou_types)
    runs = None
    with timer("postprocess"):
        if regions.low_res_masks is not None:
            pad, reshaped = regions.mask_frame
            size = (height, width) if protocol.mask_return == "sam" else regions.image_size
            _, runs = region_masks(torch.from_numpy(regions.low_res_masks), MaskFrame(pad, tuple(reshaped), size),
                                   (height, width), runs=True, crops=False)
        probs = softmax_probs(torch.from_numpy(regions.logits))  # (N, V) float32
        bi, ci, sc = image_topk_pairs(probs, found.boxes, max_per_image=options.pairs_per_image,
                                      box_scores=found.scores)
        pairs = [[b, category_ids[c], s] for b, c, s in zip(bi.tolist(), ci.tolist(), sc.tolist())]
    return FinishedImage(record, boxes_xywh=boxes_xywh, runs=runs, size=(height, width), pairs={"regionspot": pairs})


def predict_images_onnx(records: Sequence[ImageRecord], *, backend: OnnxBackend, category_ids: Sequence[int],
                        options: EvalOptions, store_root: str | os.PathLike, protocol: Protocol,
                        detections: dict[int, ScoredBoxes] | None = None, on_image: Callable[[int], None] | None = None,
                        show_progress: bool = True) -> PredictStats:
    """Score ``records`` (less those already in the store) on ``backend``, whose vocabulary is set (V names in
    ``category_ids``' order), and append each image to the store; as ``eval_loop.predict_images`` for one process."""
    todo, skipped = images_to_do(records, store_root, 0, 1)
    stats = PredictStats(skipped_done=skipped, stage_seconds=dict.fromkeys(IMAGE_STAGES, 0.0))
    timer = StageTimer(stats.stage_seconds, torch.device("cpu"), sync=False)
    images = feed(todo, _Decode(protocol), 1, workers=0)
    bar = progress_bar(total=len(todo), unit="img", desc="eval", disable=not show_progress, dynamic_ncols=True)
    start = time.perf_counter()
    with store_lib.PredictionStore(store_root, rank=0, fsync=False) as store:
        finish = StoreWriter(store, stats, bar, timer, on_image).finish
        try:
            while True:
                with timer("decode"):
                    batch = next(images, None)
                if batch is None:
                    break
                record, image, model_image, error = batch[0]
                if error is not None:
                    finish([FinishedImage(record, error=error)])
                    continue
                found = image_boxes(record, options, detections)
                finish([_score_image(backend, record, image, model_image, found, options, protocol, category_ids,
                                     timer)])
        finally:
            images.close()
            bar.close()
    stats.seconds = time.perf_counter() - start
    return stats


def _manifest(options: EvalOptions, backend: OnnxBackend, protocol: Protocol) -> dict[str, Any]:
    """What the prediction store's contents depend on (as the torch run's manifest, with the backend and the
    exported model's key in place of the loaded parts)."""
    config = backend.runtime.graphs.config
    return {
        **options.store_inputs(options.data),
        "backend": backend.backend,
        "model": backend.runtime.graphs.model,
        "templates": config["text"]["templates"],
        "protocol": asdict(protocol),
    }


def predict_on_backend(options: EvalOptions, dataset: CocoDetectionDataset, records: Sequence[ImageRecord],
                       store_root: str | os.PathLike, show_progress: bool = True,
                       on_image: Callable[[int], None] | None = None, log: Callable[[str], None] | None = None,
                       setup: Callable[[], AbstractContextManager] = contextlib.nullcontext) -> dict[str, Any]:
    """The prediction half of ``run_evaluation`` on an ONNX backend: open it (inside ``setup()``), record the run's
    manifest in ``store_root`` and predict ``records`` of ``dataset`` into it (resuming). Returns the report's meta
    (``engine.evaluate.merge_and_evaluate`` then scores the store)."""
    options.validate()
    with setup():
        backend = open_eval_backend(options, log=log)
    protocol = onnx_protocol(options, backend)
    store_lib.write_manifest(store_root, _manifest(options, backend, protocol), overwrite=options.overwrite)
    backend.set_vocabulary(dataset.raw_category_names)  # the exported templates and name style
    detections, det_counts = None, None
    if options.boxes != "gt":
        sizes = {r.image_id: (r.height, r.width) for r in records}
        detections, det_counts = load_detections(options.boxes, sizes, options.max_boxes_per_image,
                                                 options.min_box_score)
    stats = predict_images_onnx(records, backend=backend, category_ids=dataset.category_ids, options=options,
                                store_root=store_root, protocol=protocol, detections=detections, on_image=on_image,
                                show_progress=show_progress)
    config = backend.runtime.graphs.config
    return {
        "dataset": str(options.data), "image_root": str(options.images), "num_images": len(records), "world_size": 1,
        "backend": backend.backend, "onnx": str(backend.folder),
        "segmenter": config["regionspot_config"].get("segmenter"),
        "vision_language": config["regionspot_config"].get("vision_language"),
        "image_size": int(config["clip"]["image_size"]), "templates": config["regionspot_config"].get("templates"),
        "paper_protocol": options.paper_protocol, **protocol.report_lines(), "detections": det_counts,
        "this_run": {
            "scored": stats.scored, "failed": stats.failed, "skipped_done": stats.skipped_done, "boxes": stats.boxes,
            "seconds": round(stats.seconds, 3),
            "images_per_second": round(stats.scored / stats.seconds, 3) if stats.seconds > 0 else None,
            "seconds_per_image": {k: round(v, 4) for k, v in stats.per_image().items()},
        },
    }
