"""Post-processing of region-vocabulary scores into detections (the paper's evaluation protocol).

The paper evaluates with boxes given (ground truth or a detector's): each box is scored against the
whole vocabulary with a softmax, and the image keeps its best (box, class) pairs over all N×V pairs, so
one box may carry several labels. With detector boxes the score is the detector score times the class
probability. The LVIS evaluator then keeps at most 300 detections per image.

This module depends on torch and numpy only (no evaluator); masks are encoded to COCO's compressed RLE
by ``regionspot.masks.rle``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from regionspot.errors import PromptError, VocabularyError
from regionspot.masks.rle import encode_rle

__all__ = ["softmax_probs", "top_classes", "calibrated_confidence", "fit_temperature", "image_topk_pairs", "to_coco_results"]


def softmax_probs(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities per region.

    logits: (N, V) float (any float dtype), region × vocabulary logits.
    Returns (N, V) float32, a softmax over the vocabulary (each row sums to 1), computed in float32.
    """
    if logits.ndim != 2:
        raise VocabularyError(
            f"logits must be (N, V), got shape {tuple(logits.shape)}; pass one image at a time"
        )
    return torch.softmax(logits.float(), dim=-1)


def top_classes(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each region's ``k`` most probable classes.

    logits: (N, V) float. Returns probs (N, V) float32 (softmax over V), scores (N, k') and ids (N, k')
    int64, best first, with k' = min(max(k, 1), V).
    """
    probs = softmax_probs(logits)
    scores, ids = probs.topk(max(1, min(k, probs.shape[-1])), dim=-1)
    return probs, scores, ids


def calibrated_confidence(logits: torch.Tensor, class_ids: torch.Tensor, temperature: float) -> torch.Tensor:
    """The probability shown to a person: softmax(logits / temperature) at the chosen classes.

    logits: (N, V); class_ids: (N,) or (N, k) int64 indices into V. Returns float32 of class_ids' shape.
    The paper's softmax (temperature 1) stays the score used for AP; this only changes what is displayed.
    """
    if temperature <= 0:
        raise VocabularyError(f"display temperature must be > 0, got {temperature}.")
    probs = softmax_probs(logits.float() / temperature)
    ids = class_ids if class_ids.ndim == 2 else class_ids[:, None]
    picked = probs.gather(1, ids.long())
    return picked if class_ids.ndim == 2 else picked[:, 0]


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, low: float = 0.01, high: float = 100.0,
                    steps: int = 60) -> float:
    """Temperature scaling: the T that minimises the mean negative log-likelihood of softmax(logits / T).

    logits: (R, V) float of R labelled regions; labels: (R,) int64 true class indices. A golden-section
    search over log T in [low, high] (the NLL is unimodal in log T for fixed logits). Returns T.
    """
    if logits.ndim != 2 or labels.shape != logits.shape[:1] or len(labels) == 0:
        raise VocabularyError(f"fit_temperature needs (R, V) logits and (R,) labels, R > 0; got {tuple(logits.shape)}, "
                              f"{tuple(labels.shape)}.")
    logits, labels = logits.double(), labels.long()

    def nll(log_t: float) -> float:
        return float(torch.nn.functional.cross_entropy(logits / np.exp(log_t), labels))

    ratio = (np.sqrt(5.0) - 1) / 2
    a, b = np.log(low), np.log(high)
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(c), nll(d)
    for _ in range(steps):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(d)
    return float(np.exp((a + b) / 2))


def image_topk_pairs(
    probs: torch.Tensor,
    boxes: torch.Tensor,
    max_per_image: int | None = 300,
    box_scores: torch.Tensor | None = None,
    min_score: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep the best (box, class) pairs of one image.

    probs: (N, V) float, per-box class probabilities (a softmax over the vocabulary).
    boxes: (N, 4) float, XYXY; only its length is used here (checked against ``probs``).
    max_per_image: keep at most this many pairs over all N×V pairs; None keeps all.
    box_scores: (N,) float detector scores in [0, 1] or None (ground-truth boxes); when given,
        score = box_score × class probability.
    min_score: pairs scoring below this are dropped.

    Returns (box_index (K,) int64, class_index (K,) int64, score (K,) float32), sorted by score,
    highest first; ties keep the row-major (box, class) order. Several classes of one box may be kept.
    """
    if probs.ndim != 2:
        raise VocabularyError(f"probs must be (N, V), got shape {tuple(probs.shape)}")
    n, v = probs.shape
    if boxes.ndim != 2 or boxes.shape[-1] != 4 or boxes.shape[0] != n:
        raise PromptError(f"boxes must be (N, 4) with N={n} like probs, got shape {tuple(boxes.shape)}")
    if max_per_image is not None and (isinstance(max_per_image, bool) or int(max_per_image) < 1):
        raise ValueError(f"max_per_image must be a positive int or None, got {max_per_image!r}")
    scores = probs.float()
    if box_scores is not None:
        if box_scores.shape != (n,):
            raise PromptError(f"box_scores must be (N,) with N={n}, got shape {tuple(box_scores.shape)}")
        scores = scores * box_scores.float().to(scores.device)[:, None]
    flat = scores.reshape(-1)  # (N*V,), index = box * V + class
    keep = torch.nonzero(flat >= min_score).squeeze(1)
    kept_scores = flat[keep]
    # Stable descending sort: deterministic order for equal scores.
    order = torch.sort(kept_scores, descending=True, stable=True).indices
    if max_per_image is not None:
        order = order[: int(max_per_image)]
    flat_index = keep[order]
    return flat_index // v, flat_index % v, kept_scores[order]


def _as_numpy(x: torch.Tensor | np.ndarray | Sequence) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def to_coco_results(
    image_id: int,
    boxes_xyxy: torch.Tensor | np.ndarray,
    box_index: torch.Tensor | np.ndarray,
    class_index: torch.Tensor | np.ndarray,
    scores: torch.Tensor | np.ndarray,
    category_ids: Sequence[int],
    masks: torch.Tensor | np.ndarray | None = None,
    category_names: Sequence[str] | None = None,
    mask_rle: Callable[[int], dict] | None = None,
) -> list[dict]:
    """Detections of one image in COCO results format.

    boxes_xyxy: (N, 4) float, XYXY, original-image pixels.
    box_index, class_index, scores: (K,) as returned by :func:`image_topk_pairs`.
    category_ids: length V, maps a vocabulary index to the dataset's category id.
    masks: (N, H, W) bool at the original image size, or None.
    mask_rle: instead of ``masks``, a function giving box b's compressed RLE at the original image size
        (called once per box that appears: masks made one region at a time).
    category_names: length V, adds "category_name" to each entry when given.

    Returns K dicts {"image_id", "category_id", "bbox": [x, y, w, h] floats, "score"} plus
    "segmentation" (compressed RLE, str counts) when masks are given.
    """
    boxes = _as_numpy(boxes_xyxy).astype(np.float64)
    bi = _as_numpy(box_index).astype(np.int64).reshape(-1)
    ci = _as_numpy(class_index).astype(np.int64).reshape(-1)
    sc = _as_numpy(scores).astype(np.float64).reshape(-1)
    cat_ids = [int(c) for c in category_ids]
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise PromptError(f"boxes_xyxy must be (N, 4), got shape {boxes.shape}")
    if not (len(bi) == len(ci) == len(sc)):
        raise ValueError(
            f"box_index, class_index and scores differ in length: {len(bi)}, {len(ci)}, {len(sc)}"
        )
    if len(bi) and (bi.min() < 0 or bi.max() >= len(boxes)):
        raise PromptError(f"box_index out of range for {len(boxes)} boxes")
    if len(ci) and (ci.min() < 0 or ci.max() >= len(cat_ids)):
        raise VocabularyError(
            f"class_index out of range for a vocabulary of {len(cat_ids)}; category_ids must map every vocabulary entry"
        )
    rle_of = mask_rle
    if masks is not None:
        mask_np = _as_numpy(masks)
        if mask_np.ndim != 3 or mask_np.shape[0] != len(boxes):
            raise PromptError(f"masks must be (N, H, W) with N={len(boxes)}, got shape {mask_np.shape}")

        def rle_of(index: int) -> dict:
            return encode_rle(mask_np[index])
    rle_cache: dict[int, dict] = {}
    out = []
    for b, c, s in zip(bi.tolist(), ci.tolist(), sc.tolist()):
        x1, y1, x2, y2 = boxes[b].tolist()
        det = {
            "image_id": int(image_id),
            "category_id": cat_ids[c],
            "bbox": [x1, y1, x2 - x1, y2 - y1],
            "score": float(s),
        }
        if category_names is not None:
            det["category_name"] = category_names[c]
        if rle_of is not None:
            if b not in rle_cache:  # one box may carry several labels: encode its mask once
                rle_cache[b] = rle_of(b)
            det["segmentation"] = dict(rle_cache[b])
        out.append(det)
    return out
