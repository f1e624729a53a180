"""The per-image prediction loop of an evaluation: decode, SAM once, all boxes, the CLIP map, every method,
append to the prediction store, next image. Resumable (finished images are skipped) and sharded over
ranks (round-robin); see ``regionspot.engine.evaluate`` for the run around it.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from regionspot.backbones.base import Segmenter, VisionLanguage
from regionspot.data.coco_json import ImageRecord
from regionspot.data.images import load_image
from regionspot.data.transforms import scale_boxes
from regionspot.engine.config import EvalOptions
from regionspot.errors import ImageError, RegionSpotError
from regionspot.evaluation import predictions as store_lib
from regionspot.evaluation.baselines import baseline_logits
from regionspot.evaluation.protocol import Protocol
from regionspot.inference.masks import LowResMasks
from regionspot.modeling.postprocess import image_topk_pairs, softmax_probs

STAGES = ("decode", "sam_encoder", "sam_decoder", "clip_map", "head", "crops", "postprocess")


@dataclass
class PredictStats:
    """What one rank did: images scored / failed / skipped as already done, and seconds per stage."""

    scored: int = 0
    failed: int = 0
    skipped_done: int = 0
    boxes: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def per_image(self) -> dict[str, float]:
        """Mean seconds per scored image of each stage."""
        n = max(self.scored, 1)
        return {k: v / n for k, v in self.stage_seconds.items()}


def _iter_images(
    records: Sequence[ImageRecord], batch_size: int
) -> Iterator[list[tuple[ImageRecord, Image.Image | None, str | None]]]:
    """Batches of (record, image or None, error or None); the next batch decodes in a thread meanwhile."""

    def load(record: ImageRecord) -> tuple[ImageRecord, Image.Image | None, str | None]:
        try:
            return record, load_image(record.path), None
        except (ImageError, OSError, ValueError) as error:
            return record, None, f"{type(error).__name__}: {error}"

    batches = [list(records[i : i + batch_size]) for i in range(0, len(records), batch_size)]
    if not batches:
        return
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending = [pool.submit(load, r) for r in batches[0]]
        for index in range(len(batches)):
            current = [f.result() for f in pending]
            pending = [pool.submit(load, r) for r in batches[index + 1]] if index + 1 < len(batches) else []
            yield current


class _Timer:
    """Adds the wall time of a block to ``stats[name]`` (synchronising CUDA so the split is honest)."""

    def __init__(self, stats: dict[str, float], device: torch.device) -> None:
        self.stats, self.cuda = stats, device.type == "cuda"
        self.name, self.start = "", 0.0

    def __call__(self, name: str) -> _Timer:
        self.name = name
        return self

    def __enter__(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            torch.cuda.synchronize()
        self.stats[self.name] = self.stats.get(self.name, 0.0) + time.perf_counter() - self.start


# ----------------------------------------------------------------------------- prediction


@torch.inference_mode()
def predict_images(
    records: Sequence[ImageRecord],
    *,
    segmenter: Segmenter,
    vision_language: VisionLanguage,
    text: torch.Tensor,
    category_ids: Sequence[int],
    options: EvalOptions,
    store_root: str | os.PathLike,
    model: Any = None,
    detections: dict[int, tuple[np.ndarray, np.ndarray]] | None = None,
    rank: int = 0,
    world_size: int = 1,
    on_image: Callable[[int], None] | None = None,
    show_progress: bool = True,
    protocol: Protocol | None = None,
) -> PredictStats:
    """Score this rank's share of ``records`` and append each finished image to the store.

    records: all images to evaluate (every rank passes the same list); rank ``rank`` takes
        ``records[rank::world_size]`` and skips images any rank already finished.
    text: (V, D) L2-normalised text embeddings of the vocabulary; category_ids: the V dataset ids.
    model: a ``RegionSpot`` (needed for the "regionspot" method). detections: from :func:`load_detections`
        when ``options.boxes`` is a file (images without detections get none).
    on_image: called with each finished image id (after it is stored); for progress hooks and tests.
    protocol: input size and mask return (None: ``options.protocol`` of these parts).
    """
    if protocol is None:
        protocol = options.protocol(segmenter, vision_language, model)
    if "regionspot" in options.methods and model is None:
        raise RegionSpotError("The regionspot method needs a model: pass --head (or drop --method regionspot).")
    mine = store_lib.shard_ids([r.image_id for r in records], rank, world_size)
    done = store_lib.done_image_ids(store_root)
    by_id = {r.image_id: r for r in records}
    todo = [by_id[i] for i in mine if i not in done]
    stats = PredictStats(skipped_done=len(mine) - len(todo))
    device = vision_language.device
    timer = _Timer(stats.stage_seconds, torch.device(device))
    text = text.float()
    start = time.perf_counter()
    bar = tqdm(total=len(todo), unit="img", desc=f"eval[{rank}]" if world_size > 1 else "eval",
               disable=not show_progress, dynamic_ncols=True)
    with store_lib.PredictionStore(store_root, rank=rank) as store:
        for batch in _timed_batches(_iter_images(todo, options.batch_size), timer):
            good = [(rec, img) for rec, img, err in batch if img is not None]
            with timer("decode"):
                inputs = {rec.image_id: protocol.model_input(img) for rec, img in good}
            feature_maps = None
            if "regionspot" in options.methods and good:
                with timer("clip_map"):
                    feature_maps = vision_language.feature_map([inputs[rec.image_id] for rec, _ in good])  # (B, T, C)
            good_index = {rec.image_id: i for i, (rec, _) in enumerate(good)}
            for record, image, error in batch:
                if image is None:
                    store.add_failure(record.image_id, error or "unknown error")
                    stats.failed += 1
                    bar.set_postfix(failed=stats.failed)
                else:
                    fmap = None if feature_maps is None else feature_maps[good_index[record.image_id]][None]
                    n = _score_image(record, image, inputs[record.image_id], fmap, segmenter, vision_language, model,
                                     text, category_ids, options, protocol.mask_return, detections, store, timer)
                    stats.scored += 1
                    stats.boxes += n
                bar.update(1)
                if on_image is not None:
                    on_image(record.image_id)
    bar.close()
    stats.seconds = time.perf_counter() - start
    return stats


def _timed_batches(batches: Iterator, timer: _Timer) -> Iterator:
    """Count the time spent waiting for image decoding (not hidden by the prefetch thread) as "decode"."""
    while True:
        with timer("decode"):
            batch = next(batches, None)
        if batch is None:
            return
        yield batch


def _image_boxes(
    record: ImageRecord, options: EvalOptions, detections: dict | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(boxes (N, 4) float32 XYXY original pixels, detector scores (N,) or None for GT boxes)."""
    if options.boxes == "gt":
        return record.boxes.astype(np.float32).reshape(-1, 4), None
    empty = (np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))
    return (detections or {}).get(record.image_id, empty)


def _score_image(
    record: ImageRecord,
    image: Image.Image,
    model_image: Image.Image,
    feature_map: torch.Tensor | None,
    segmenter: Segmenter,
    vision_language: VisionLanguage,
    model: Any,
    text: torch.Tensor,
    category_ids: Sequence[int],
    options: EvalOptions,
    mask_return: str,
    detections: dict | None,
    store: store_lib.PredictionStore,
    timer: _Timer,
) -> int:
    """Score one decoded image with every method and append it to the store; returns its box count.

    image: the original image; model_image: what the backbones see (the same, or its resize); boxes
    are scaled to it for SAM and masks come back at the original size (``mask_return``). Masks stay the
    segmenter's low-resolution logits (``LowResMasks``) and are made one region at a time for the RLEs and
    the clip-mask crops: memory N × low-res mask plus one region, whatever N.
    """
    boxes_np, box_scores_np = _image_boxes(record, options, detections)
    n = len(boxes_np)
    boxes_xywh = [[float(x1), float(y1), float(x2 - x1), float(y2 - y1)] for x1, y1, x2, y2 in boxes_np.tolist()]
    if n == 0:
        store.add(record.image_id, [], [] if "segm" in options.iou_types else None, {m: [] for m in options.methods})
        return 0
    boxes = torch.from_numpy(boxes_np)
    box_scores = None if box_scores_np is None else torch.from_numpy(box_scores_np)
    masks = None
    height, width = image.height, image.width
    model_boxes = boxes
    if model_image.size != image.size:
        model_boxes = scale_boxes(boxes, model_image.width / width, model_image.height / height)
    with timer("sam_encoder"):
        state = segmenter.encode_image(model_image)
    with timer("sam_decoder"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # boxes are inside the image already; nothing to tell the user per box
        seg = segmenter.decode_prompts(state, boxes=model_boxes, return_masks=options.needs_masks,
                                       chunk_size=options.chunk_size or max(n, 1), low_res_masks=True,
                                       mask_size=(height, width) if mask_return == "sam" else None)
        if seg.low_res_masks is not None:
            # "nearest": masks at the model input's size, then torch's legacy nearest to the original size
            masks = LowResMasks(seg.low_res_masks, seg.mask_frame, nearest_size=(height, width))
    del state
    pairs: dict[str, list[list[float]]] = {}
    for method in options.methods:
        if method == "regionspot":
            with timer("head"):
                logits = model(seg.tokens[None], feature_map, text).logits[0]  # (N, V)
        else:
            with timer("crops"):
                logits = baseline_logits(method, vision_language, image, boxes_np, text, masks=masks,
                                         batch_size=options.crop_batch_size)
        with timer("postprocess"):
            probs = softmax_probs(logits.cpu())  # (N, V) float32
            bi, ci, sc = image_topk_pairs(probs, boxes, max_per_image=options.pairs_per_image, box_scores=box_scores)
            pairs[method] = [[b, category_ids[c], s] for b, c, s in zip(bi.tolist(), ci.tolist(), sc.tolist())]
    segm = None
    if "segm" in options.iou_types:
        with timer("postprocess"):
            segm = [masks.to_rle(i) for i in range(n)]
    store.add(record.image_id, boxes_xywh, segm, pairs)
    return n
