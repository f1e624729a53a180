"""Checking prompts before a segmenter sees them: one clear error per bad box or point (original-image
pixels; boxes XYXY, points xy), and the options of a decode (``check_decode_options``). Prompts as a user
types them (strings of numbers) are read in ``backbones/typed_prompts.py``."""

from __future__ import annotations

import warnings

import torch

from regionspot.backbones.base import MASK_MODES
from regionspot.errors import PromptError


def _as_float_tensor(value, name: str, shape_hint: str) -> torch.Tensor:
    try:
        tensor = torch.as_tensor(value, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError) as error:
        raise PromptError(f"{name} must be numeric {shape_hint}; got {type(value).__name__} ({error}).") from None
    return tensor.detach().cpu()


def validate_boxes(boxes, height: int, width: int) -> torch.Tensor:
    """Box prompts → (N, 4) float32 XYXY original pixels, clipped to the image (one warning per clipped box).

    Raises PromptError for a wrong shape, NaN/inf, zero or negative area, or a box wholly outside.
    """
    boxes_t = _as_float_tensor(boxes, "boxes", "(N, 4) XYXY")
    if boxes_t.ndim == 1 and boxes_t.numel() == 0:
        boxes_t = boxes_t.reshape(0, 4)
    if boxes_t.ndim != 2 or boxes_t.shape[1] != 4:
        raise PromptError(f"boxes must have shape (N, 4) XYXY in image pixels; got {tuple(boxes_t.shape)}.")
    finite = torch.isfinite(boxes_t).all(dim=1)
    if not finite.all():
        index = int((~finite).nonzero()[0])
        raise PromptError(f"box {index} has a NaN or infinite coordinate {boxes_t[index].tolist()}; pass finite XYXY pixels.")
    x1, y1, x2, y2 = boxes_t.unbind(1)
    bad = (x2 <= x1) | (y2 <= y1)
    if bad.any():
        index = int(bad.nonzero()[0])
        raise PromptError(
            f"box {index} {boxes_t[index].tolist()} has zero or negative area; pass XYXY with x2 > x1 and y2 > y1."
        )
    outside = (x1 >= width) | (y1 >= height) | (x2 <= 0) | (y2 <= 0)
    if outside.any():
        index = int(outside.nonzero()[0])
        raise PromptError(
            f"box {index} {boxes_t[index].tolist()} lies entirely outside the {width}x{height} image; "
            "pass boxes in original-image pixels."
        )
    clipped = torch.stack([x1.clamp(0, width), y1.clamp(0, height), x2.clamp(0, width), y2.clamp(0, height)], dim=1)
    changed = (clipped != boxes_t).any(dim=1)
    for index in changed.nonzero().flatten().tolist():
        warnings.warn(
            f"box {index} clipped to the image ({width}x{height}): "
            f"{[round(v, 2) for v in boxes_t[index].tolist()]} -> {[round(v, 2) for v in clipped[index].tolist()]}",
            stacklevel=4,  # the caller of decode_prompts (via validate_prompts)
        )
    return clipped


def validate_points(points, labels, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Point prompts → (N, P, 2) float32 xy original pixels and (N, P) int64 labels in {-1, 0, 1}.

    Labels default to 1 (foreground); -1 marks padding, whose coordinates are ignored (set to 0).
    Raises PromptError for a wrong shape, bad labels, NaN/inf or a real point outside the image.
    """
    points_t = _as_float_tensor(points, "points", "(N, P, 2) xy")
    if points_t.ndim != 3 or points_t.shape[2] != 2:
        raise PromptError(f"points must have shape (N, P, 2) xy in image pixels; got {tuple(points_t.shape)}.")
    if labels is None:
        labels_t = torch.ones(points_t.shape[:2], dtype=torch.int64)
    else:
        labels_t = _as_float_tensor(labels, "point_labels", "(N, P)")
        if tuple(labels_t.shape) != tuple(points_t.shape[:2]):
            raise PromptError(
                f"point_labels must have shape (N, P) = {tuple(points_t.shape[:2])}; got {tuple(labels_t.shape)}."
            )
        if not bool(torch.isin(labels_t, torch.tensor([-1.0, 0.0, 1.0])).all()):
            raise PromptError("point_labels must be 1 (foreground), 0 (background) or -1 (padding).")
        labels_t = labels_t.long()
    real = labels_t != -1
    if not bool(torch.isfinite(points_t[real]).all()):
        raise PromptError("points contain NaN or infinite coordinates; pass finite xy pixels.")
    x, y = points_t[..., 0], points_t[..., 1]
    outside = real & ((x < 0) | (x > width) | (y < 0) | (y > height))
    if outside.any():
        i, j = (int(v) for v in outside.nonzero()[0])
        raise PromptError(
            f"point {j} of prompt {i} {points_t[i, j].tolist()} lies outside the {width}x{height} image; "
            "pass xy in original-image pixels."
        )
    # padding points may hold anything: SAM ignores their coordinates, keep them finite
    points_t = torch.where(real.unsqueeze(-1), points_t, torch.zeros_like(points_t))
    return points_t, labels_t


def check_decode_options(masks: str, chunk_size: int, mask_size: tuple[int, int] | None,
                         stability_offset: float | None) -> None:
    """The options of ``Segmenter.decode_prompts``: ValueError for a combination no caller should ask for
    (``masks`` not one of ``MASK_MODES``; ``mask_size`` without masks; stability without full-size masks),
    PromptError for a chunk size or mask size that is not positive."""
    if masks not in MASK_MODES:
        raise ValueError(f"masks must be one of {MASK_MODES}, got {masks!r}.")
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise PromptError(f"chunk_size must be a positive integer, got {chunk_size!r}.")
    if mask_size is not None:
        if masks == "none":
            raise ValueError("mask_size is the size masks come out at; masks='none' makes none: drop mask_size.")
        if min(int(mask_size[0]), int(mask_size[1])) < 1:
            raise PromptError(f"mask_size must be a positive (height, width), got {tuple(mask_size)}.")
    if stability_offset is not None and masks != "full":
        raise ValueError(f"stability_offset scores full-size masks: pass masks='full', not {masks!r}.")


def validate_prompts(
    boxes, points, point_labels, height: int, width: int
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """The prompts of one decode, checked (:func:`validate_boxes`, :func:`validate_points`): boxes (N, 4)
    clipped to the image, points (N, P, 2) and labels (N, P), each None when not given. Raises ValueError
    for labels without points, no prompt at all, or a box count that differs from the point sets'."""
    boxes_t = validate_boxes(boxes, height, width) if boxes is not None else None
    points_t, labels_t = (None, None)
    if points is not None:
        points_t, labels_t = validate_points(points, point_labels, height, width)
    elif point_labels is not None:
        raise ValueError("point_labels were given without points; pass points (N, P, 2) too.")
    if boxes_t is None and points_t is None:
        raise ValueError("decode_prompts needs boxes (N, 4) and/or points (N, P, 2).")
    if boxes_t is not None and points_t is not None and len(boxes_t) != len(points_t):
        raise ValueError(f"Got {len(boxes_t)} boxes but {len(points_t)} point sets; pass one point set per box.")
    return boxes_t, points_t, labels_t
