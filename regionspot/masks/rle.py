"""COCO's compressed RLE of binary masks, by a small encoder of our own (the library does not import
pycocotools; the tests compare with it), in two steps:

1. run lengths, from whole masks (:func:`mask_runs`, N at once, on the masks' device: on a GPU only the run
   boundaries cross to the host) or from one mask's crop (:func:`crop_runs`, the whole mask never built);
2. the counts strings (:func:`runs_to_rle`, the one string writer, vectorised over all masks).

:func:`encode_rle`, :func:`masks_to_rle` and :func:`encode_rle_crop` join the two. Masks are (H, W) or
(N, H, W), rows then columns; COCO's runs go down the columns, starting with a run of zeros.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from regionspot.errors import PromptError
from regionspot.utils.tensors import is_torch_tensor

if TYPE_CHECKING:  # tensors are taken, never made: the module imports without torch
    import torch

__all__ = ["encode_rle", "encode_rle_crop", "crop_runs", "masks_to_rle", "mask_runs", "runs_to_rle"]


def encode_rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE of one binary mask.

    mask: (H, W) bool (or 0/1) array. Returns {"size": [H, W], "counts": str}; identical to
    ``pycocotools.mask.encode(np.asfortranarray(mask))`` with counts decoded to str.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise PromptError(f"a mask must be (H, W), got shape {mask.shape}")
    return masks_to_rle(mask.astype(bool)[None])[0]


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


def masks_to_rle(masks: np.ndarray | torch.Tensor) -> list[dict]:
    """COCO compressed RLEs of N binary masks (each as :func:`encode_rle` gives it).

    masks: (N, H, W) bool array, or tensor on any device. Returns N dicts {"size": [H, W], "counts": str}.
    The same as ``runs_to_rle(mask_runs(masks), (H, W))``; a loop may run the two halves apart.
    """
    return runs_to_rle(mask_runs(masks), tuple(masks.shape[-2:]))


def mask_runs(masks: np.ndarray | torch.Tensor) -> list[np.ndarray]:
    """Run lengths of N binary masks in COCO's order (down the columns), each starting with a run of zeros.

    masks: (N, H, W) bool array, or tensor on any device; the run boundaries are found where the masks are (on a GPU
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
    on_host = not is_torch_tensor(masks) or masks.device.type == "cpu"
    m = np.asarray(masks, dtype=bool) if on_host else masks  # numpy compares and finds faster on a CPU
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
