"""Which labelled regions of "recognise everything" are worth showing.

The segmenter proposes regions without knowing the vocabulary: the background, parts of objects and
near-copies of one object from the whole image and from the zoomed crops all come back, each labelled.
``RegionSpotPredictor.predict_everything`` first drops proposals whose stability score (how little the
segmenter's mask changes when its threshold moves; ``Proposals.stability``) is below ``min_stability`` —
loose background and fragments are unstable, objects are not — then :func:`keep_regions` ranks the rest
by stability (by confidence when no stability is given) and drops, in order:

1. regions whose confidence (``RegionResult.display_scores``, the calibrated top-1 probability) is below
   ``min_confidence``;
2. overlap: a region whose box has IoU above ``nms_iou`` with a better-ranked kept region, whatever the
   labels (two labels on one object are still two regions for one object);
3. parts: a region whose box lies at least ``contained`` inside (intersection over its own area) a larger,
   better-ranked kept box, whatever the labels.

With ``per_class`` both overlap rules are class-aware: they compare regions of the same top-1 class only.

At least ``FILTERED_PROPOSALS`` proposals are labelled before the filter, so that asking for a few
regions shows the few best that survive it, not the survivors of the segmenter's first few.
The defaults come from ``benchmarks/quality/everything_quality.py`` (ShapesWorld val with the embedded model,
chosen on half of the images; 93 % of the objects among all proposals at 21 regions per object, 68 % at
1.4 kept): there the head's confidence tells objects from background and parts only
weakly (it has no background class), so the segmenter's stability ranks the regions and the confidence
cut only drops the clearly unrecognised.
Boxes are XYXY in original-image pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from regionspot.errors import PromptError

if TYPE_CHECKING:  # RegionFilter's defaults are PredictOptions': the command line imports them before numpy and torch
    import numpy as np

    from regionspot.inference.results import RegionResult

FILTERED_PROPOSALS = 100  # proposals labelled before the filter (at least)


@dataclass(frozen=True)
class RegionFilter:
    """What "recognise everything" keeps of its labelled regions (see the module docstring).

    min_stability: drop proposals whose segmenter stability score is below this, before they are
        labelled (0 keeps all).
    min_confidence: drop regions whose top-1 confidence is below this (0 keeps all).
    nms_iou: drop a region whose box overlaps a better-ranked kept box, of any class, by more than this IoU
        (1 keeps all).
    contained: drop a region whose box lies at least this fraction inside a larger, better-ranked kept box
        of any class (1 drops only boxes entirely inside another; above 1 turns the rule off).
    per_class: the two overlap rules compare a region only with regions of its own top-1 class (class-aware
        suppression: two labels on one object both stay). Off by default: on ShapesWorld val it kept 2.0
        regions per object for 70 % recall, against 1.4 for 68 % across classes.
    """

    min_stability: float = 0.75
    min_confidence: float = 0.1
    nms_iou: float = 0.3
    contained: float = 0.8
    per_class: bool = False

    @staticmethod
    def keep_all() -> RegionFilter:
        """The filter that keeps every region (everything mode's raw output)."""
        return RegionFilter(min_stability=0.0, min_confidence=0.0, nms_iou=1.0, contained=2.0)

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_stability <= 1.0:
            raise PromptError(f"min_stability must be in [0, 1], got {self.min_stability}.")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise PromptError(f"min_confidence must be in [0, 1], got {self.min_confidence}.")
        if not 0.0 < self.nms_iou <= 1.0:
            raise PromptError(f"nms_iou must be in (0, 1], got {self.nms_iou}.")
        if not self.contained > 0.0:
            raise PromptError(f"contained must be above 0, got {self.contained}.")


def _area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]).clip(0, None) * (boxes[:, 3] - boxes[:, 1]).clip(0, None)


def keep_regions(boxes: np.ndarray, confidence: np.ndarray, region_filter: RegionFilter | None = None,
                 rank: np.ndarray | None = None, class_ids: np.ndarray | None = None) -> np.ndarray:
    """Indices of the regions to show, best-ranked first.

    boxes (N, 4) XYXY pixels; confidence (N,) the top-1 confidence; rank (N,) higher is better (the
    proposals' stability in everything mode; None: the confidence); class_ids (N,) the top-1 classes
    (needed by ``region_filter.per_class``). Ties keep the input order.
    """
    import numpy as np

    region_filter = region_filter or RegionFilter()
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    confidence = np.asarray(confidence, np.float32).reshape(-1)
    rank = confidence if rank is None else np.asarray(rank, np.float32).reshape(-1)
    candidates = np.flatnonzero(confidence >= region_filter.min_confidence)
    candidates = candidates[np.argsort(-rank[candidates], kind="stable")]
    if len(candidates) < 2:
        return candidates.astype(np.int64)
    cb = boxes[candidates]
    area = _area(cb)
    width = np.clip(np.minimum(cb[:, None, 2], cb[None, :, 2]) - np.maximum(cb[:, None, 0], cb[None, :, 0]), 0, None)
    height = np.clip(np.minimum(cb[:, None, 3], cb[None, :, 3]) - np.maximum(cb[:, None, 1], cb[None, :, 1]), 0, None)
    inter = width * height  # (K, K)
    iou = inter / np.maximum(area[:, None] + area[None, :] - inter, 1e-9)
    # (K, K): row i goes if column j is kept and better ranked (j < i)
    drops = iou > region_filter.nms_iou
    if region_filter.contained <= 1.0:
        drops |= (inter >= region_filter.contained * area[:, None]) & (area[None, :] > area[:, None])
    if region_filter.per_class:
        if class_ids is None:
            raise ValueError("RegionFilter(per_class=True) needs the regions' class_ids.")
        labels = np.asarray(class_ids).reshape(-1)[candidates]
        drops &= labels[:, None] == labels[None, :]
    keep = np.zeros(len(candidates), bool)
    for i in range(len(candidates)):
        keep[i] = not (drops[i, :i] & keep[:i]).any()
    return candidates[keep].astype(np.int64)


def filter_result(result: RegionResult, region_filter: RegionFilter | None = None,
                  max_regions: int | None = None, rank: np.ndarray | None = None) -> RegionResult:
    """``result`` with only the regions :func:`keep_regions` keeps, best-ranked first (the first
    ``max_regions`` of them when given). rank (N,): higher is better (None: the confidence)."""
    kept = keep_regions(result.boxes, result.display_scores, region_filter, rank, class_ids=result.class_ids)
    return result.take(kept[:max_regions])
