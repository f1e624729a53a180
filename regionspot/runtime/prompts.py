"""Box and point prompts for the exported prompt graph, in numpy: checked as ``backbones/prompts`` checks them
(the same errors and clipping; ``tests/runtime/test_prompts.py`` compares the two), moved to SAM's input frame as
``SamSegmenter.decode_prompts`` moves them, and written as SAM's sparse prompts (points with labels; a box is
two corner points labelled 2 and 3; a point set without a box ends with a padding point labelled -1)."""

from __future__ import annotations

import warnings

import numpy as np

from regionspot.errors import PromptError

__all__ = ["sam_prompts", "validate_boxes", "validate_points"]


def _floats(value, name: str, hint: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise PromptError(f"{name} must be numeric {hint}; got {type(value).__name__} ({error}).") from None


def validate_boxes(boxes, height: int, width: int) -> np.ndarray:
    """(N, 4) XYXY original pixels -> float32, clipped to the image (one warning per clipped box). Raises
    PromptError for a wrong shape, NaN/inf, zero or negative area, or a box wholly outside the image."""
    array = _floats(boxes, "boxes", "(N, 4) XYXY")
    if array.ndim == 1 and array.size in (0, 4):
        array = array.reshape(-1, 4)
    if array.ndim != 2 or array.shape[1] != 4:
        raise PromptError(f"boxes must have shape (N, 4) XYXY in image pixels; got {tuple(array.shape)}.")
    problems = (
        (~np.isfinite(array).all(axis=1), "has a NaN or infinite coordinate {box}; pass finite XYXY pixels."),
        ((array[:, 2] <= array[:, 0]) | (array[:, 3] <= array[:, 1]),
         "{box} has zero or negative area; pass XYXY with x2 > x1 and y2 > y1."),
        ((array[:, 0] >= width) | (array[:, 1] >= height) | (array[:, 2] <= 0) | (array[:, 3] <= 0),
         f"{{box}} lies entirely outside the {width}x{height} image; pass boxes in original-image pixels."),
    )
    for bad, message in problems:
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            raise PromptError(f"box {index} " + message.format(box=array[index].tolist()))
    clipped = np.stack([np.clip(array[:, 0], 0, width), np.clip(array[:, 1], 0, height),
                        np.clip(array[:, 2], 0, width), np.clip(array[:, 3], 0, height)], axis=1).astype(np.float32)
    for index in np.flatnonzero((clipped != array).any(axis=1)):
        warnings.warn(f"box {index} clipped to the image ({width}x{height}): {[round(float(v), 2) for v in array[index]]} -> "
                      f"{[round(float(v), 2) for v in clipped[index]]}", stacklevel=3)
    return clipped


def validate_points(points, labels, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, P, 2) xy original pixels (a (N, 2) array: one point each) and labels (N, P) in {-1, 0, 1} (default 1)
    -> float32 points (padding points set to 0) and int64 labels. Raises PromptError for bad shapes, labels,
    NaN/inf or a real point outside the image."""
    array = _floats(points, "points", "(N, P, 2) xy")
    if array.ndim == 2 and array.shape[-1] == 2:
        array = array[:, None, :]
    if array.ndim != 3 or array.shape[2] != 2:
        raise PromptError(f"points must have shape (N, P, 2) xy in image pixels; got {tuple(array.shape)}.")
    label_array = np.ones(array.shape[:2], np.int64) if labels is None else _floats(labels, "point_labels", "(N, P)")
    if label_array.shape != array.shape[:2]:
        raise PromptError(f"point_labels must have shape (N, P) = {array.shape[:2]}; got {label_array.shape}.")
    if not np.isin(label_array, (-1, 0, 1)).all():
        raise PromptError("point_labels must be 1 (foreground), 0 (background) or -1 (padding).")
    label_array = label_array.astype(np.int64)
    real = label_array != -1
    if not np.isfinite(array[real]).all():
        raise PromptError("points contain NaN or infinite coordinates; pass finite xy pixels.")
    outside = real & ((array[..., 0] < 0) | (array[..., 0] > width) | (array[..., 1] < 0) | (array[..., 1] > height))
    if outside.any():
        i, j = (int(v) for v in np.argwhere(outside)[0])
        raise PromptError(f"point {j} of prompt {i} {array[i, j].tolist()} lies outside the {width}x{height} image; "
                          "pass xy in original-image pixels.")
    return np.where(real[..., None], array, np.float32(0)), label_array


def sam_prompts(boxes: np.ndarray | None, points, point_labels, size: tuple[int, int],
                reshaped: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Checked prompts -> the prompt graph's ``points`` (N, K, 2) float32 in the resized image's pixels and
    ``point_labels`` (N, K) int64. boxes: (N, 4) from :func:`validate_boxes` or None; size: the image's (H, W);
    reshaped: its resized (h', w') in SAM's input."""
    height, width = size
    scale = np.array([reshaped[1] / width, reshaped[0] / height], dtype=np.float32)  # (x, y) original -> resized
    parts, labels = [], []
    if points is not None:
        point_array, label_array = validate_points(points, point_labels, height, width)
        if boxes is not None and len(boxes) != len(point_array):
            raise PromptError(f"Got {len(boxes)} boxes but {len(point_array)} point sets; pass one point set per box.")
        parts.append(point_array * scale)
        labels.append(label_array)
    if boxes is not None:
        parts.append(boxes.reshape(-1, 2, 2) * scale)
        labels.append(np.tile(np.array([[2, 3]], np.int64), (len(boxes), 1)))
    elif points is not None:  # SAM pads a point set that comes without a box with one not-a-point
        parts.append(np.zeros((len(parts[0]), 1, 2), np.float32))
        labels.append(np.full((len(parts[0]), 1), -1, np.int64))
    if not parts:
        raise PromptError("Give the regions to recognise: boxes=[[x1, y1, x2, y2], ...] or points=[[x, y], ...].")
    return np.concatenate(parts, axis=1).astype(np.float32), np.concatenate(labels, axis=1)
