"""Which labelled regions of "recognise everything" are worth showing.

The segmenter proposes regions without knowing the vocabulary: the background, parts of objects and
near-copies of one object from the whole image and from the zoomed crops all come back, each labelled.
``RegionSpotPredictor.predict_everything`` first drops proposals whose stability score (how little the
segmenter's mask changes when its threshold moves; ``Proposals.stability``) is below ``min_stability`` —
loose background and fragments are unstable, objects are not — then :func:`keep_regions` drops, in order:

1. regions whose confidence (``RegionResult.display_scores``, the calibrated top-1 probability) is below
   ``min_confidence`` — mostly background and fragments, which the head labels with low confidence;
2. class-aware overlap: a region whose box has IoU above ``nms_iou`` with a more confident region *of the
   same predicted class* (NMS per class; different classes may overlap, as objects do);
3. parts: a region whose box lies at least ``contained`` inside (intersection over its own area) a larger
   kept box of the same class.

At least ``FILTERED_PROPOSALS`` proposals are labelled before the filter, so that asking for a few
regions shows the few best that survive it, not the survivors of the segmenter's first few.
The defaults are the sweep's best recall at <= 1.5 regions per object on ShapesWorld val with the embedded
model (``benchmarks/everything_quality.py``: 93 % of the objects among all proposals at 21 regions per
object; 61 % at 1.5 kept). The head's confidence tells objects from background and parts only weakly there
(it has no background class); the segmenter's stability is the stronger cut.
Boxes are XYXY in original-image pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from regionspot.errors import PromptError
from regionspot.inference.proposals import nms
from regionspot.inference.results import RegionResult

FILTERED_PROPOSALS = 100  # proposals labelled before the filter (at least)


@dataclass(frozen=True)
class RegionFilter:
    """What "recognise everything" keeps of its labelled regions (see the module docstring).

    min_stability: drop proposals whose segmenter stability score is below this, before they are
        labelled (0 keeps all).
    min_confidence: drop regions whose top-1 confidence is below this (0 keeps all).
    nms_iou: drop a region whose box overlaps a more confident same-class box by more than this IoU
        (1 keeps all).
    contained: drop a region whose box lies at least this fraction inside a larger kept same-class box
        (1 drops only boxes entirely inside another; above 1 turns the rule off).
    """

    min_stability: float = 0.8
    min_confidence: float = 0.1
    nms_iou: float = 0.7
    contained: float = 0.8

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
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def keep_regions(boxes: np.ndarray, class_ids: np.ndarray, confidence: np.ndarray,
                 region_filter: RegionFilter | None = None) -> np.ndarray:
    """Indices of the regions to show, most confident first.

    boxes (N, 4) XYXY pixels; class_ids (N,) the top-1 class; confidence (N,) its confidence.
    """
    region_filter = region_filter or RegionFilter()
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    class_ids = np.asarray(class_ids).reshape(-1)
    confidence = np.asarray(confidence, np.float32).reshape(-1)
    candidates = np.flatnonzero(confidence >= region_filter.min_confidence)
    if len(candidates) == 0:
        return candidates.astype(np.int64)
    # NMS per class in one call: each class's boxes are moved to their own far-apart copy of the plane
    shift = (float(np.abs(boxes).max()) + 1.0) * 2.0 * class_ids[candidates].astype(np.float64)
    moved = torch.as_tensor(boxes[candidates] + shift[:, None].astype(np.float32))
    if region_filter.nms_iou < 1.0:
        order = nms(moved, torch.as_tensor(confidence[candidates]), region_filter.nms_iou).numpy()
    else:
        order = np.argsort(-confidence[candidates], kind="stable")
    kept = candidates[order]
    if region_filter.contained <= 1.0 and len(kept) > 1:
        kb = boxes[kept]
        area = _area(kb)
        width = np.clip(np.minimum(kb[:, None, 2], kb[None, :, 2]) - np.maximum(kb[:, None, 0], kb[None, :, 0]), 0, None)
        height = np.clip(np.minimum(kb[:, None, 3], kb[None, :, 3]) - np.maximum(kb[:, None, 1], kb[None, :, 1]), 0, None)
        inside = width * height >= region_filter.contained * area[:, None]  # (K, K): row i lies inside column j
        same = class_ids[kept][:, None] == class_ids[kept][None, :]
        larger = area[None, :] > area[:, None]
        kept = kept[~(inside & same & larger).any(1)]
    return kept.astype(np.int64)


def filter_result(result: RegionResult, region_filter: RegionFilter | None = None,
                  max_regions: int | None = None) -> RegionResult:
    """``result`` with only the regions :func:`keep_regions` keeps, most confident first (the first
    ``max_regions`` of them when given)."""
    kept = keep_regions(result.boxes, result.class_ids, result.display_scores, region_filter)
    return result.take(kept[:max_regions])
