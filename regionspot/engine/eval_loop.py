"""The prediction loop of an evaluation, a batch of images at a time: decode and resize (worker
processes or threads: the image feeder ``regionspot.data.feeder`` with ``regionspot.engine.eval_inputs``'
preparer), one SAM image-encoder call and one CLIP feature-map call for the batch, then per image all
its boxes through SAM's prompt decoder, every method, the mask RLEs, and the image appended to the
prediction store. Resumable (finished images are skipped) and sharded over ranks (round-robin); see
``regionspot.engine.evaluate`` for the run around it.

Masks (``masks.regions.region_masks``): the decoder's low-resolution logits, never N full-size masks at
once — on a CPU made one region's crop at a time (``LowResMasks``), on a GPU a bounded chunk of regions at a
time on the device, where the RLE run boundaries are found; the same pixels as the segmenter's full-size masks.

Overlap: the next batches are prepared on the CPU while the model runs; on a GPU, the host work of
finishing a batch (RLE strings, the store's JSON lines and fsync) runs while the device encodes the
next batch (its kernels are queued first). Batched and one-by-one runs give the same predictions up to
floating-point noise of the batched encoders.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from regionspot.backbones.base import Segmenter, SegmenterImageState, VisionLanguage
from regionspot.data.coco_json import ImageRecord
from regionspot.data.feeder import default_workers
from regionspot.data.transforms import scale_boxes
from regionspot.engine.config import EvalOptions
from regionspot.engine.eval_inputs import EvalBatch, EvalItem, InputPreparer, eval_batches
from regionspot.errors import RegionSpotError
from regionspot.evaluation import predictions as store_lib
from regionspot.evaluation.baselines import baseline_logits
from regionspot.evaluation.protocol import Protocol
from regionspot.inference.box_sources import ScoredBoxes
from regionspot.masks.regions import region_masks
from regionspot.masks.rle import runs_to_rle
from regionspot.modeling.postprocess import image_topk_pairs, softmax_probs
from regionspot.utils.progress import progress_bar

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


class StageTimer:
    """Adds the wall time of a block to ``stats[name]``. With ``sync`` (CUDA only) the device is synchronised
    around each block so that the split is exact; without, device work is counted where the host waits for it."""

    def __init__(self, stats: dict[str, float], device: torch.device, sync: bool) -> None:
        self.stats, self.cuda = stats, device.type == "cuda" and sync
        self.name, self.start = "", 0.0

    def __call__(self, name: str) -> StageTimer:
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


@dataclass
class FinishedImage:
    """One image, computed and waiting for the store: an error, or its boxes (XYWH original pixels), the
    run lengths of its masks (``masks.regions.region_masks``; None without mask AP) at ``size`` (H, W), and its pairs."""

    record: ImageRecord
    error: str | None = None
    boxes_xywh: list[list[float]] = field(default_factory=list)
    runs: list[np.ndarray] | None = None
    size: tuple[int, int] = (0, 0)
    pairs: dict[str, list[list[float]]] = field(default_factory=dict)


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
    detections: dict[int, ScoredBoxes] | None = None,
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
    ``options.batch_size`` images share one encoder call; ``options.workers`` processes prepare them
    (None: :func:`default_workers` of the device). If the loop stops with an exception, the images already
    computed are stored first; a killed run loses at most the batch in flight.
    """
    if protocol is None:
        protocol = options.protocol(segmenter, vision_language, model)
    if "regionspot" in options.methods and model is None:
        raise RegionSpotError("The regionspot method needs a model: pass --head (or drop --method regionspot).")
    todo, skipped = images_to_do(records, store_root, rank, world_size)
    stats = PredictStats(skipped_done=skipped)
    device = torch.device(vision_language.device)
    timer = StageTimer(stats.stage_seconds, device, sync=options.sync_timing)
    text = text.float().to(device)
    workers = default_workers(device) if options.workers is None else options.workers
    prepare = InputPreparer.for_run(protocol, segmenter, vision_language, options.methods)
    batches = eval_batches(todo, prepare, options.batch_size, workers=workers, pin=device.type == "cuda")
    run = _Run(segmenter, vision_language, model, text, category_ids, options, protocol.mask_return, detections, timer)
    start = time.perf_counter()
    bar = progress_bar(total=len(todo), unit="img", desc=f"eval[{rank}]" if world_size > 1 else "eval",
               disable=not show_progress, dynamic_ncols=True)
    pending: list[FinishedImage] | None = None
    with store_lib.PredictionStore(store_root, rank=rank, fsync=False) as store:
        finish = StoreWriter(store, stats, bar, timer, on_image).finish
        try:
            for batch in _timed_batches(batches, timer):
                states, feature_maps = run.encode(batch)  # queued on a GPU: the device works meanwhile
                finished, pending = pending, None
                if finished:
                    finish(finished)
                pending = run.score(batch, states, feature_maps)
            finished, pending = pending, None
            if finished:
                finish(finished)
        except BaseException:
            if pending:  # computed but not stored yet: keep it
                finish(pending)
            raise
        finally:
            batches.close()
            bar.close()
    stats.seconds = time.perf_counter() - start
    return stats


def images_to_do(records: Sequence[ImageRecord], store_root: str | os.PathLike, rank: int,
                  world_size: int) -> tuple[list[ImageRecord], int]:
    """This rank's share of ``records`` (round-robin) less the images any rank already stored, and how
    many of its share were already done."""
    mine = store_lib.shard_ids([r.image_id for r in records], rank, world_size)
    done = store_lib.done_image_ids(store_root)
    by_id = {r.image_id: r for r in records}
    todo = [by_id[i] for i in mine if i not in done]
    return todo, len(mine) - len(todo)


class StoreWriter:
    """Appends finished images to the prediction store in order, counting them in ``stats`` and on ``bar``."""

    def __init__(self, store: store_lib.PredictionStore, stats: PredictStats, bar: Any, timer: StageTimer,
                 on_image: Callable[[int], None] | None) -> None:
        self.store, self.stats, self.bar, self.timer, self.on_image = store, stats, bar, timer, on_image

    def finish(self, finished: list[FinishedImage]) -> None:
        """Append the images to the store in order (each line flushed), then fsync once."""
        with self.timer("postprocess"):
            try:
                self._store_all(finished)
            finally:
                self.store.sync()

    def _store_all(self, finished: list[FinishedImage]) -> None:
        store, stats, bar = self.store, self.stats, self.bar
        for item in finished:
            if item.error is not None:
                store.add_failure(item.record.image_id, item.error)
                stats.failed += 1
                bar.set_postfix(failed=stats.failed)
            else:
                segm = None if item.runs is None else runs_to_rle(item.runs, item.size)
                store.add(item.record.image_id, item.boxes_xywh, segm, item.pairs)
                stats.scored += 1
                stats.boxes += len(item.boxes_xywh)
            bar.update(1)
            if self.on_image is not None:
                self.on_image(item.record.image_id)


def _timed_batches(batches: Iterator[EvalBatch], timer: StageTimer) -> Iterator[EvalBatch]:
    """Count the time spent waiting for prepared batches (not hidden by the workers) as "decode"."""
    while True:
        with timer("decode"):
            batch = next(batches, None)
        if batch is None:
            return
        yield batch


def image_boxes(
    record: ImageRecord, options: EvalOptions, detections: dict[int, ScoredBoxes] | None
) -> ScoredBoxes:
    """The image's box prompts (XYXY original pixels): its ground truth (unscored) or its detections."""
    if options.boxes == "gt":
        return ScoredBoxes.unscored(record.boxes)
    empty = ScoredBoxes.class_agnostic(np.zeros((0, 4)), np.zeros(0))
    return (detections or {}).get(record.image_id, empty)


@dataclass
class _Run:
    """The parts and settings of one prediction loop; ``encode`` a batch, then ``score`` its images."""

    segmenter: Segmenter
    vision_language: VisionLanguage
    model: Any
    text: torch.Tensor  # (V, D) on the device
    category_ids: Sequence[int]
    options: EvalOptions
    mask_return: str
    detections: dict | None
    timer: StageTimer

    def encode(self, batch: EvalBatch) -> tuple[list[SegmenterImageState], torch.Tensor | None]:
        """SAM states of the batch's decoded images (one encoder call) and their CLIP maps (G, T, C) or None."""
        if not batch.good:
            return [], None
        with self.timer("sam_encoder"):
            states = self.segmenter.encode_batch(batch.sam)
        feature_maps = None
        if batch.clip is not None:
            with self.timer("clip_map"):
                feature_maps = self.vision_language.feature_map(batch.clip)  # (G, T, C)
        return states, feature_maps

    def score(self, batch: EvalBatch, states: list[SegmenterImageState],
              feature_maps: torch.Tensor | None) -> list[FinishedImage]:
        """Every image of the batch, in order, ready for the store (failed ones with their reason)."""
        slot = {index: k for k, index in enumerate(batch.good)}
        out = []
        for index, item in enumerate(batch.items):
            if item.error is not None:
                out.append(FinishedImage(item.record, error=item.error))
                continue
            k = slot[index]
            fmap = None if feature_maps is None else feature_maps[k : k + 1]  # (1, T, C)
            out.append(self._score_image(item, states[k], fmap))
        return out

    def _score_image(self, item: EvalItem, state: SegmenterImageState, feature_map: torch.Tensor | None) -> FinishedImage:
        """Every method on one image. Boxes are scaled to the image the backbones saw (``item.model_size``);
        masks come back at the original size (``mask_return``), region by region (``masks.regions.region_masks``)."""
        options, timer = self.options, self.timer
        record = item.record
        found = image_boxes(record, options, self.detections)
        boxes_np, n = found.boxes.numpy(), len(found)
        boxes_xywh = [[float(x1), float(y1), float(x2 - x1), float(y2 - y1)] for x1, y1, x2, y2 in boxes_np.tolist()]
        if n == 0:
            return FinishedImage(record, boxes_xywh=[], runs=[] if "segm" in options.iou_types else None,
                             pairs={m: [] for m in options.methods})
        boxes, box_scores = found.boxes, found.scores
        height, width = item.size
        model_boxes = boxes
        if item.model_size != item.size:
            model_boxes = scale_boxes(boxes, item.model_size[1] / width, item.model_size[0] / height)
        masks = runs = None
        with timer("sam_decoder"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # boxes are inside the image already; nothing to tell the user per box
            # "nearest": masks at the model input's size, then torch's legacy nearest to the original size
            seg = self.segmenter.decode_prompts(
                state, boxes=model_boxes, masks="low_res" if options.needs_masks else "none",
                chunk_size=options.chunk_size or max(n, 1),
                mask_size=(height, width) if self.mask_return == "sam" and options.needs_masks else None)
        if seg.low_res_masks is not None:
            with timer("postprocess"):
                masks, runs = region_masks(seg.low_res_masks, seg.mask_frame, (height, width),
                                           runs="segm" in options.iou_types, crops="clip-mask" in options.methods)
        pairs: dict[str, list[list[float]]] = {}
        for method in options.methods:
            if method == "regionspot":
                with timer("head"):
                    logits = self.model(seg.tokens[None], feature_map, self.text).logits[0]  # (N, V)
            else:
                with timer("crops"):
                    logits = baseline_logits(method, self.vision_language, item.image, boxes_np, self.text,
                                             masks=masks, batch_size=options.crop_batch_size)
            with timer("postprocess"):
                probs = softmax_probs(logits.cpu())  # (N, V) float32
                bi, ci, sc = image_topk_pairs(probs, boxes, max_per_image=options.pairs_per_image,
                                              box_scores=box_scores)
                pairs[method] = [[b, self.category_ids[c], s] for b, c, s in zip(bi.tolist(), ci.tolist(), sc.tolist())]
        return FinishedImage(record, boxes_xywh=boxes_xywh, runs=runs, size=(height, width), pairs=pairs)
