"""The runtime's numbers after the graphs, in numpy: class probabilities, top-k, the displayed confidence, text
embedding ensembles, and SAM's mask-logit upsampling. Each is the numpy twin of a torch function of the
library (named in its docstring); ``tests/runtime/test_postprocess.py`` checks each pair on the same inputs.
"""

from __future__ import annotations

import numpy as np

from regionspot.data.pixels import bilinear_resize

__all__ = ["calibrated_confidence", "l2_normalize", "softmax", "top_classes", "upsample_mask_logits"]


def softmax(logits: np.ndarray) -> np.ndarray:
    """(N, V) float -> (N, V) float32 softmax over V (``modeling.postprocess.softmax_probs``)."""
    logits = np.asarray(logits, dtype=np.float32)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def top_classes(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """probs (N, V) float32, scores (N, k') float32 and ids (N, k') int64 best first, k' = min(max(k, 1), V)
    (``modeling.postprocess.top_classes``; equal probabilities keep the lower class id first, an order
    ``torch.topk`` leaves open)."""
    probs = softmax(logits)
    k = max(1, min(int(k), probs.shape[-1]))
    ids = np.argsort(-probs, axis=-1, kind="stable")[:, :k].astype(np.int64)
    return probs, np.take_along_axis(probs, ids, axis=-1), ids


def calibrated_confidence(logits: np.ndarray, class_ids: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(logits / temperature) at class_ids (N, k) -> (N, k) float32
    (``modeling.postprocess.calibrated_confidence``)."""
    probs = softmax(np.asarray(logits, dtype=np.float32) / np.float32(temperature))
    return np.take_along_axis(probs, class_ids, axis=-1)


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows divided by their L2 norm (at least ``eps``), float32 (``torch.nn.functional.normalize``)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), np.float32(eps))


def upsample_mask_logits(low_res: np.ndarray, pad_size: int, reshaped_size: tuple[int, int],
                         size: tuple[int, int]) -> np.ndarray:
    """(n, h, w) low-resolution mask logits -> (n, H, W) float32 logits at ``size`` (masks are ``> 0``):
    bilinear to the padded square input (``pad_size``), the resized image ``reshaped_size`` cut out, then
    bilinear to ``size`` (``masks/resize.upsample_mask_logits``, in numpy)."""
    square = bilinear_resize(low_res, (pad_size, pad_size))
    return bilinear_resize(square[:, : reshaped_size[0], : reshaped_size[1]], size)
