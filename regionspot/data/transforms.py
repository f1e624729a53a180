"""Box geometry, image sizes and pixel normalisation: the one implementation of each transform.

Every box function accepts either a numpy array or a torch tensor and returns the same kind, with the same
dtype and device, never modifying its input. Boxes are (..., 4) float, in pixels of the image they refer
to. XYXY is ``(x0, y0, x1, y1)``; XYWH is COCO's ``(x0, y0, width, height)``. Coordinates are continuous:
an image of width W spans x in [0, W], so pixel column j covers [j, j + 1).

Masks (flip, resize, tight boxes, the segmenter's mask logits) live in ``regionspot.masks``.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def _stack_last(parts: list, like: Array) -> Array:
    if isinstance(like, torch.Tensor):
        return torch.stack(parts, dim=-1)
    return np.stack(parts, axis=-1)


def _check_boxes(boxes: Array) -> None:
    if boxes.shape[-1:] != (4,):
        raise ValueError(f"Boxes must have shape (..., 4), got {tuple(boxes.shape)}.")


def xywh_to_xyxy(boxes: Array) -> Array:
    """(..., 4) XYWH -> (..., 4) XYXY, same frame."""
    _check_boxes(boxes)
    x, y, w, h = boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]
    return _stack_last([x, y, x + w, y + h], boxes)


def xyxy_to_xywh(boxes: Array) -> Array:
    """(..., 4) XYXY -> (..., 4) XYWH, same frame."""
    _check_boxes(boxes)
    x0, y0, x1, y1 = boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]
    return _stack_last([x0, y0, x1 - x0, y1 - y0], boxes)


def clip_boxes(boxes: Array, height: int, width: int) -> Array:
    """Clip (..., 4) XYXY boxes to an image of ``height`` x ``width`` pixels (x in [0, W], y in [0, H])."""
    _check_boxes(boxes)
    if isinstance(boxes, torch.Tensor):
        x = boxes[..., 0::2].clamp(0, width)
        y = boxes[..., 1::2].clamp(0, height)
    else:
        x = np.clip(boxes[..., 0::2], 0, width)
        y = np.clip(boxes[..., 1::2], 0, height)
    return _stack_last([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], boxes)


def hflip_boxes(boxes: Array, width: int) -> Array:
    """Mirror (..., 4) XYXY boxes left-right in an image of ``width`` pixels: x -> width - x."""
    _check_boxes(boxes)
    x0, y0, x1, y1 = boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]
    return _stack_last([width - x1, y0, width - x0, y1], boxes)


def scale_boxes(boxes: Array, scale_x: float, scale_y: float | None = None) -> Array:
    """Scale (..., 4) XYXY (or XYWH) boxes to a resized image: x * scale_x, y * scale_y.

    ``scale_y`` defaults to ``scale_x``. For a resize from (H, W) to (H', W') pass W'/W and H'/H.
    """
    _check_boxes(boxes)
    sy = scale_x if scale_y is None else scale_y
    factors = [scale_x, sy, scale_x, sy]
    return _stack_last([boxes[..., i] * factors[i] for i in range(4)], boxes)


def box_area(boxes: Array) -> Array:
    """(..., 4) XYXY -> (...) area; boxes with x1 < x0 or y1 < y0 count as zero."""
    _check_boxes(boxes)
    w = boxes[..., 2] - boxes[..., 0]
    h = boxes[..., 3] - boxes[..., 1]
    if isinstance(boxes, torch.Tensor):
        return w.clamp(min=0) * h.clamp(min=0)
    return np.clip(w, 0, None) * np.clip(h, 0, None)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, 4), (M, 4) XYXY boxes in one frame -> (N, M) intersection over union (torch)."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return inter / union.clamp(min=1e-6)


def shortest_edge_size(height: int, width: int, min_size: int = 800, max_size: int = 1333) -> tuple[int, int]:
    """(height, width) after detectron2's ``ResizeShortestEdge(min_size, max_size)`` (test-time rule).

    The short side becomes ``min_size`` unless the long side would then exceed ``max_size``, in which
    case the long side becomes ``max_size``; both sides are rounded half up at the end.
    """
    if height < 1 or width < 1:
        raise ValueError(f"Image size must be positive, got {height}x{width}.")
    scale = min_size / min(height, width)
    new_h, new_w = (min_size, scale * width) if height < width else (scale * height, min_size)
    if max(new_h, new_w) > max_size:
        shrink = max_size / max(new_h, new_w)
        new_h, new_w = new_h * shrink, new_w * shrink
    return int(new_h + 0.5), int(new_w + 0.5)


def normalize_pixels(pixels: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(..., 3, H, W) float pixels in [0, 1] -> ``(pixels - mean) / std`` per channel (the one normalisation)."""
    mean_t = torch.tensor(mean, dtype=pixels.dtype, device=pixels.device).view(3, 1, 1)
    std_t = torch.tensor(std, dtype=pixels.dtype, device=pixels.device).view(3, 1, 1)
    return (pixels - mean_t) / std_t


def orient_normalized_boxes(boxes: np.ndarray, orientation: np.ndarray) -> np.ndarray:
    """Boxes given on a stored image, moved onto the image shown after its EXIF orientation.

    boxes: (N, 4) float XYXY normalised to [0, 1] of the stored image. orientation: (N,) int EXIF
    orientation (1..8; 1 = unchanged) of each box's image, as PIL's ``ImageOps.exif_transpose`` applies it.
    Returns (N, 4) XYXY normalised to [0, 1] of the shown image (whose sides are swapped for 5..8).
    """
    x0, y0, x1, y1 = (boxes[:, i].copy() for i in range(4))
    o = np.asarray(orientation).reshape(-1)
    # Each orientation as (mirror x, mirror y, transpose) applied in that order to stored coordinates.
    mirror_x = np.isin(o, (2, 3, 7, 8))
    mirror_y = np.isin(o, (3, 4, 6, 7))
    transpose = np.isin(o, (5, 6, 7, 8))
    x0[mirror_x], x1[mirror_x] = 1 - x1[mirror_x], 1 - x0[mirror_x]
    y0[mirror_y], y1[mirror_y] = 1 - y1[mirror_y], 1 - y0[mirror_y]
    out = np.stack([x0, y0, x1, y1], axis=-1)
    out[transpose] = out[transpose][:, [1, 0, 3, 2]]
    return out
