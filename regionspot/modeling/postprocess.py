"""Post-processing of region-vocabulary scores into detections (the paper's evaluation protocol).

The paper evaluates with boxes given (ground truth or a detector's): each box is scored against the
whole vocabulary with a softmax, and the image keeps its best (box, class) pairs over all N×V pairs, so
one box may carry several labels. With detector boxes the score is the detector score times the class
probability. The LVIS evaluator then keeps at most 300 detections per image.

This module depends on torch and numpy only (no evaluator); masks are encoded to COCO's compressed RLE
by a small encoder of our own so the library does not import pycocotools, in two steps: run lengths,
from whole masks (:func:`mask_runs`, N at once, on the masks' device) or from one mask's crop
(:func:`crop_runs`, the whole mask never built), then the counts strings (:func:`runs_to_rle`, the one
string writer). :func:`encode_rle`, :func:`masks_to_rle` and :func:`encode_rle_crop` join the two.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from regionspot.errors import PromptError, VocabularyError

__all__ = ["softmax_probs", "top_classes", "calibrated_confidence", "fit_temperature", "image_topk_pairs", "to_coco_results", "encode_rle",
           "encode_rle_crop", "crop_runs", "masks_to_rle", "mask_runs", "runs_to_rle"]


def softmax_probs(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities per region.

    logits: (N, V) float (any float dtype), region × vocabulary logits.
    Returns (N, V) float32, a softmax over the vocabulary (each row sums to 1), computed in float32.
    """
    if logits.ndim != 2:
        raise ValueError(
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
        raise ValueError(f"fit_temperature needs (R, V) logits and (R,) labels, R > 0; got {tuple(logits.shape)}, "
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
        raise ValueError(f"probs must be (N, V), got shape {tuple(probs.shape)}")
    n, v = probs.shape
    if boxes.ndim != 2 or boxes.shape[-1] != 4 or boxes.shape[0] != n:
        raise ValueError(f"boxes must be (N, 4) with N={n} like probs, got shape {tuple(boxes.shape)}")
    if max_per_image is not None and (isinstance(max_per_image, bool) or int(max_per_image) < 1):
        raise ValueError(f"max_per_image must be a positive int or None, got {max_per_image!r}")
    scores = probs.float()
    if box_scores is not None:
        if box_scores.shape != (n,):
            raise ValueError(f"box_scores must be (N,) with N={n}, got shape {tuple(box_scores.shape)}")
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


def encode_rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE of one binary mask.

    mask: (H, W) bool (or 0/1) array. Returns {"size": [H, W], "counts": str}; identical to
    ``pycocotools.mask.encode(np.asfortranarray(mask))`` with counts decoded to str.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise PromptError(f"a mask must be (H, W), got shape {mask.shape}")
    return masks_to_rle(torch.from_numpy(mask.astype(bool))[None])[0]


def encode_rle_crop(crop: np.ndarray, offset: tuple[int, int], size: tuple[int, int]) -> dict:
    """COCO compressed RLE of an (H, W) = ``size`` mask that is False outside ``crop``.

    crop: (h, w) bool, the mask's pixels in rows top..top+h-1 and columns left..left+w-1, where
    (top, left) = ``offset`` in the mask's pixels. The same result as :func:`encode_rle` of the whole mask,
    with memory and time ∝ the crop (the whole mask is never built).
    """
    return runs_to_rle([crop_runs(crop, offset, size)], size)[0]


def crop_runs(crop: np.ndarray, offset: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Run lengths (as :func:`mask_runs` gives them) of an (H, W) = ``size`` mask that is False outside
    ``crop`` placed at ``offset`` (see :func:`encode_rle_crop`), from the crop alone."""
    crop = np.asarray(crop, dtype=bool)
    height, width = int(size[0]), int(size[1])
    top, left = int(offset[0]), int(offset[1])
    if crop.ndim != 2 or top < 0 or left < 0 or top + crop.shape[0] > height or left + crop.shape[1] > width:
        raise PromptError(f"a crop {crop.shape} at {offset} does not fit in a ({height}, {width}) mask")
    if not crop.any():
        return np.array([height * width], np.int64)
    h, w = crop.shape
    # Down each crop column (COCO runs go down columns): the rows above the crop as one weighted pixel,
    # the crop's rows, the rows below as one; a zero weight (the crop touches the edge) is left out.
    parts, weights = [crop], [np.ones(h, np.int64)]
    if top:
        parts.insert(0, np.zeros((1, w), bool))
        weights.insert(0, np.array([top]))
    if height - top - h:
        parts.append(np.zeros((1, w), bool))
        weights.append(np.array([height - top - h]))
    column = np.concatenate(weights)  # pixels each element of a column stands for
    values = np.concatenate(parts).ravel(order="F")
    starts = np.concatenate([[0], np.flatnonzero(values[1:] != values[:-1]) + 1])  # first element of each run
    offset_in_column = np.concatenate([[0], np.cumsum(column)[:-1]])
    pixel_starts = (starts // len(column)) * height + offset_in_column[starts % len(column)]
    runs = np.diff(np.append(pixel_starts, w * height)).tolist()
    first_on, last_on = bool(values[0]), bool(values[-1])
    before, after = left * height, (width - left - w) * height  # whole columns left / right of the crop
    if first_on:
        runs.insert(0, before)  # COCO's runs start with zeros, possibly none
    else:
        runs[0] += before
    if not last_on:
        runs[-1] += after
    elif after:
        runs.append(after)
    return np.array(runs, np.int64)


def masks_to_rle(masks: torch.Tensor) -> list[dict]:
    """COCO compressed RLEs of N binary masks (each as :func:`encode_rle` gives it).

    masks: (N, H, W) bool tensor on any device. Returns N dicts {"size": [H, W], "counts": str}.
    The same as ``runs_to_rle(mask_runs(masks), (H, W))``; a loop may run the two halves apart.
    """
    return runs_to_rle(mask_runs(masks), tuple(masks.shape[-2:]))


def mask_runs(masks: torch.Tensor) -> list[np.ndarray]:
    """Run lengths of N binary masks in COCO's order (down the columns), each starting with a run of zeros.

    masks: (N, H, W) bool tensor on any device; the run boundaries are found where the masks are (on a GPU
    only they cross to the host, not the N × H × W pixels). Returns N int64 arrays summing to H × W.
    """
    if masks.ndim != 3:
        raise PromptError(f"masks must be (N, H, W), got shape {tuple(masks.shape)}")
    n, h, w = masks.shape
    if n == 0 or h * w == 0:
        return [np.zeros(1, np.int64) for _ in range(n)]
    # A run starts at each pixel that differs from the one before it in COCO's order (down the columns):
    # inside a column, the pixel above it; at a column's top, the bottom of the column to the left. Both
    # comparisons read the row-major masks as they are (no transposed copy); only the start positions
    # (mask index × H·W + column-major position), sorted, are kept.
    m = masks.numpy() if masks.device.type == "cpu" else masks  # numpy compares and finds faster on a CPU
    inside = _flat_nonzero(m[:, 1:, :] != m[:, :-1, :])  # into (N, H-1, W)
    top = _flat_nonzero(m[:, 0, 1:] != m[:, -1, :-1])  # into (N, W-1)
    first = m[:, 0, 0] if isinstance(m, np.ndarray) else m[:, 0, 0].cpu().numpy()
    mask_of, rest = np.divmod(inside.astype(np.int64), max((h - 1) * w, 1))
    y, x = np.divmod(rest, w)
    starts = [mask_of * (h * w) + x * h + y + 1]
    mask_of, x = np.divmod(top.astype(np.int64), max(w - 1, 1))
    starts.append(mask_of * (h * w) + (x + 1) * h)
    keys = np.sort(np.concatenate(starts))
    mask_of, position = np.divmod(keys, h * w)
    per_mask = np.bincount(mask_of, minlength=n)
    runs = []
    for starts_with_one, ends in zip(first, np.split(position, np.cumsum(per_mask)[:-1])):
        lengths = np.diff(np.concatenate([[0], ends, [h * w]]))
        runs.append(np.concatenate([[0], lengths]) if starts_with_one else lengths)
    return runs


def _flat_nonzero(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """Flat indices of the true elements of ``x``, ascending, as an int64 host array."""
    if isinstance(x, np.ndarray):
        return np.flatnonzero(x)
    return x.flatten().nonzero()[:, 0].cpu().numpy()


def runs_to_rle(runs: Sequence[np.ndarray], size: tuple[int, int]) -> list[dict]:
    """COCO compressed RLEs {"size": [H, W], "counts": str} from the run lengths of (H, W) masks
    (:func:`mask_runs` / :func:`crop_runs`).

    The counts string is pycocotools' ``rleToString``, vectorised with numpy over all masks: runs after
    the second are stored as deltas to the run two before; each value is written in 5-bit groups, low
    first, as chr(48 + group), with 0x20 set while more groups follow (a sign-aware stop).
    """
    if not runs:
        return []
    lengths = np.array([len(r) for r in runs])
    values = np.concatenate(runs).astype(np.int64)
    position = np.arange(len(values)) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # index within its mask
    delta = values.copy()
    later = position > 2
    delta[later] -= values[np.flatnonzero(later) - 2]
    groups = []  # per 5-bit group: (M,) uint8 characters, 0 where the value has no such group
    alive = np.ones(len(values), bool)
    x = delta
    while alive.any():
        c = x & 0x1F
        x = x >> 5  # arithmetic shift, as in the C encoder (x may be negative)
        more = np.where(c & 0x10, x != -1, x != 0)
        groups.append(np.where(alive, c + 48 + 0x20 * more, 0).astype(np.uint8))
        alive &= more
    chars = np.stack(groups, axis=1)  # (M, G): a value's characters in order, then zeros
    text = chars[chars != 0].tobytes().decode("ascii")
    ends = np.cumsum(np.add.reduceat((chars != 0).sum(1), np.cumsum(lengths) - lengths))
    h, w = int(size[0]), int(size[1])
    return [{"size": [h, w], "counts": text[a:b]} for a, b in zip(np.concatenate([[0], ends[:-1]]).tolist(), ends.tolist())]


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
        raise ValueError(f"boxes_xyxy must be (N, 4), got shape {boxes.shape}")
    if not (len(bi) == len(ci) == len(sc)):
        raise ValueError(
            f"box_index, class_index and scores differ in length: {len(bi)}, {len(ci)}, {len(sc)}"
        )
    if len(bi) and (bi.min() < 0 or bi.max() >= len(boxes)):
        raise ValueError(f"box_index out of range for {len(boxes)} boxes")
    if len(ci) and (ci.min() < 0 or ci.max() >= len(cat_ids)):
        raise ValueError(
            f"class_index out of range for a vocabulary of {len(cat_ids)}; category_ids must map every vocabulary entry"
        )
    rle_of = mask_rle
    if masks is not None:
        mask_np = _as_numpy(masks)
        if mask_np.ndim != 3 or mask_np.shape[0] != len(boxes):
            raise ValueError(f"masks must be (N, H, W) with N={len(boxes)}, got shape {mask_np.shape}")

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
