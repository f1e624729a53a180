"""The result of recognising the regions of one image, and its JSON form (``regionspot.result/1``).

:meth:`RegionResult.to_dict` is the one producer of the JSON that the CLI writes and the demo's API answers;
its schema ships as ``regionspot/schemas/result-1.json`` (:func:`result_schema`) and is documented in
docs/output.md.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from regionspot.masks.base import RegionMasks, as_region_masks
from regionspot.modeling.rejection import UNKNOWN_LABEL

SCHEMA = "regionspot.result/1"  # the "schema" field of every result JSON; bumped on an incompatible change


def result_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of :meth:`RegionResult.to_dict`'s output, ``regionspot.result/1``."""
    return json.loads((Path(__file__).resolve().parent.parent / "schemas" / "result-1.json").read_text())


def _r(value: Any, digits: int) -> float:
    return round(float(value), digits)


def prompt_records(boxes: Any, points: Any, labels: Any) -> list[dict]:
    """One JSON-ready record per region of the prompts it was given (``RegionResult.prompts``).

    boxes: (N, 4) XYXY or None; points: (N, P, 2) xy or None, with labels (N, P); original-image pixels
    (arrays or tensors: only their values are read).
    """
    n = len(boxes) if boxes is not None else len(points)
    records: list[dict] = [{"type": "box" if boxes is not None else "point"} for _ in range(n)]
    for i, record in enumerate(records):
        if boxes is not None:
            record["box_xyxy"] = [round(float(v), 2) for v in boxes[i]]
        if points is not None:
            record["points"] = [[round(float(x), 2), round(float(y), 2)] for x, y in points[i]]
            record["point_labels"] = [int(v) for v in labels[i]]
    return records


# RegionResult fields that describe the image and vocabulary, not one region each
_SHARED_FIELDS = ("vocabulary", "image_size", "messages", "rejection")


@dataclass
class RegionResult:
    """Regions of one image, each scored against the vocabulary.

    boxes: (N, 4) float32 XYXY in original-image pixels (for point prompts: the mask's bounding box).
    labels: N class names, the top-1 of each region.
    class_ids: (N,) int64 index into ``vocabulary`` of the top-1 class.
    scores: (N,) float32 softmax probability of the top-1 class (the paper's score, used for AP).
    probs: (N, V) float32 softmax over the vocabulary per region.
    topk_ids / topk_scores: (N, k) the k best classes per region, best first.
    masks: (N, H, W) bool at the original image size, or None. From the predictor a ``LowResMasks`` (see
        ``regionspot.masks.lowres``): the segmenter's low-resolution logits, each region's pixels made when asked
        (``masks[i]``, ``masks.crop(i)``, ``masks.to_rle(i)``; ``np.asarray(masks)`` builds all N × H × W).
        An (N, H, W) array works too.
    iou: (N,) float32 the segmenter's predicted mask IoU.
    vocabulary: the V class names, in order.
    image_size: (height, width) of the original image.
    confidence: (N,) float32 the top-1 probability at the head's display temperature (what pictures and
        the CLI show; see ``RegionSpotConfig.display_temperature``); None: same as ``scores``.
    topk_confidence: (N, k) float32 the same for each of ``topk_ids``; None: same as ``topk_scores``.
    prompts: N dicts, the prompt each region came from, in original-image pixels: {"type": "box",
        "box_xyxy": [...]} (as given, before clamping to the image), {"type": "point", "points": [[x, y], ...],
        "point_labels": [1, ...]} (1 foreground, 0 background), a box with points (type "box" plus "points"
        and "point_labels"), or {"type": "proposal", "box_xyxy": [...]} (everything mode); None: not recorded.
    attention: (N, L, heads, T) float32, the head's cross-attention weights over the T feature-map tokens
        (class token first) in each of its L layers, from the forward that gave ``probs``; or None.
    points: (N, P, 2) float32 xy original-image pixels, the point prompts of each region; None when the
        regions were not prompted by points.
    logits: (N, V) float32 the head's logits (CLIP's logit scale × cosine) that ``probs`` is the softmax of;
        None: not recorded. What the accuracy guard compares between backends and paths.
    rejection_score: (N,) float32 the head's "none of these" score (``modeling.rejection``: higher = more like
        some class of the vocabulary); None: not computed.
    known: (N,) bool, False for a region rejected as none of the vocabulary's classes (its ``labels`` entry
        is still the best class); None: rejection off (or the head has no calibrated threshold), every region
        is labelled.
    rejection: {"score": name, "threshold": value} the rule ``known`` was decided by; None when ``known`` is None.
    """

    boxes: np.ndarray
    labels: list[str]
    class_ids: np.ndarray
    scores: np.ndarray
    probs: np.ndarray
    topk_ids: np.ndarray
    topk_scores: np.ndarray
    iou: np.ndarray
    vocabulary: list[str]
    image_size: tuple[int, int]
    masks: RegionMasks | np.ndarray | None = None
    messages: list[str] = field(default_factory=list)
    confidence: np.ndarray | None = None
    attention: np.ndarray | None = None
    topk_confidence: np.ndarray | None = None
    points: np.ndarray | None = None
    prompts: list[dict[str, Any]] | None = None
    logits: np.ndarray | None = None
    rejection_score: np.ndarray | None = None
    known: np.ndarray | None = None
    rejection: dict[str, Any] | None = None

    def take(self, index) -> RegionResult:
        """The regions ``index`` (int array, in that order), every per-region field alike; vocabulary, image
        size and a copy of the messages kept."""
        index = np.asarray(index, np.int64)
        picked = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if item.name in _SHARED_FIELDS or value is None:
                continue
            picked[item.name] = [value[i] for i in index] if isinstance(value, list) else value[index]
        return dataclasses.replace(self, **picked, messages=list(self.messages))

    @property
    def is_known(self) -> np.ndarray:
        """(N,) bool: ``known``, or all True when rejection is off."""
        return np.ones(len(self), bool) if self.known is None else np.asarray(self.known, bool)

    @property
    def display_labels(self) -> list[str]:
        """The N labels to show a person: the top-1 class, or "unknown" for a rejected region."""
        known = self.is_known
        return [label if known[i] else UNKNOWN_LABEL for i, label in enumerate(self.labels)]

    @property
    def display_scores(self) -> np.ndarray:
        """(N,) the confidence to show a person: ``confidence`` when calibrated, else ``scores``."""
        return self.scores if self.confidence is None else self.confidence

    @property
    def display_topk_scores(self) -> np.ndarray:
        """(N, k) the confidence to show for each of the top-k classes (``display_scores`` is its first column)."""
        return self.topk_scores if self.topk_confidence is None else self.topk_confidence

    def __len__(self) -> int:
        return len(self.labels)

    def to_coco_json(
        self, image_id: int = 0, category_ids: list[int] | None = None, top_k: int | None = None
    ) -> list[dict[str, Any]]:
        """COCO results format: one entry per (region, class) among each region's top-k (default: all kept).

        bbox is [x, y, w, h] in original pixels; ``segmentation`` is a compressed RLE when masks exist
        (encoded one region at a time, from the region's bounding-box crop).
        category_ids maps vocabulary index → category id (default: index + 1).
        """
        from regionspot.modeling.postprocess import to_coco_results  # imports torch: not on the JSON path

        k = self.topk_ids.shape[1] if top_k is None else min(top_k, self.topk_ids.shape[1])
        n = len(self.boxes)
        masks = as_region_masks(self.masks)
        return to_coco_results(
            image_id, self.boxes, np.repeat(np.arange(n), k), self.topk_ids[:, :k].reshape(-1),
            self.topk_scores[:, :k].reshape(-1), category_ids or list(range(1, len(self.vocabulary) + 1)),
            category_names=self.vocabulary, mask_rle=masks.to_rle if masks is not None and len(masks) else None,
        )

    def to_dict(self, image_path: str | Path | None = None, masks: bool = False) -> dict[str, Any]:
        """The result as JSON-ready data, schema ``regionspot.result/1`` (docs/output.md, :func:`result_schema`).

        image_path: recorded as ``image.path`` (None: null). masks: add each region's mask as COCO
        compressed RLE (``{"size": [H, W], "counts": str}``); needs a result made with masks.
        Boxes are XYXY original-image pixels (2 decimals); ``score`` is the softmax over the vocabulary
        (the paper's, used for AP), ``confidence`` the same class's probability at the head's display
        temperature (what a person is shown); both to 4 decimals, for the top-1 and each ``top_k`` entry.
        With rejection, each region adds ``known`` (False: none of the vocabulary's classes; ``label`` stays the
        best class) and ``rejection_score``, and the document ``rejection`` ({"score", "threshold"}).
        """
        region_masks = as_region_masks(self.masks) if masks else None
        if masks and region_masks is None and len(self):
            raise ValueError("to_dict(masks=True) needs a result with masks (predict(..., return_masks=True)).")
        confidence, topk_confidence = self.display_scores, self.display_topk_scores
        regions = []
        for i in range(len(self)):
            region = {
                "id": i,
                "box_xyxy": [_r(v, 2) for v in self.boxes[i]],
                "prompt": None if self.prompts is None else self.prompts[i],
                "label": self.labels[i],
                "confidence": _r(confidence[i], 4),
                "score": _r(self.scores[i], 4),
                "mask_iou_pred": _r(self.iou[i], 4),
                "top_k": [
                    {"label": self.vocabulary[int(c)], "confidence": _r(q, 4), "score": _r(s, 4)}
                    for c, q, s in zip(self.topk_ids[i], topk_confidence[i], self.topk_scores[i])
                ],
            }
            if self.rejection_score is not None:
                region["rejection_score"] = _r(self.rejection_score[i], 4)
            if self.known is not None:
                region["known"] = bool(self.known[i])
            if region_masks is not None:
                region["mask"] = region_masks.to_rle(i)
            regions.append(region)
        height, width = self.image_size
        document = {
            "schema": SCHEMA,
            "image": {"path": None if image_path is None else str(image_path), "width": int(width), "height": int(height)},
            "vocabulary": list(self.vocabulary),
            "regions": regions,
            "messages": list(self.messages),
        }
        if self.known is not None and self.rejection is not None:
            document["rejection"] = {"score": str(self.rejection["score"]), "threshold": float(self.rejection["threshold"])}
        return document

    def to_supervision(self):
        """A ``supervision.Detections`` (requires the optional package ``supervision``)."""
        try:
            import supervision as sv
        except ImportError as error:
            raise ImportError("to_supervision() needs the supervision package: pip install supervision") from error
        return sv.Detections(
            xyxy=self.boxes.astype(np.float32),
            mask=None if self.masks is None else np.asarray(self.masks),  # (N, H, W): supervision needs them all
            confidence=self.scores.astype(np.float32),
            class_id=self.class_ids.astype(int),
            data={"class_name": np.array(self.labels)},
        )
