"""One image's region masks behind one interface, handed out one region at a time.

:class:`RegionMasks` is what drawing, COCO export, the evaluation's RLEs and the clip-mask crops read:

- ``masks.crop(i)``: region i's pixels inside its bounding box and the box's offset (cost ∝ the box);
- ``masks.to_rle(i)``: its COCO compressed RLE, from the crop; ``masks.boxes()``: every tight box;
- ``masks[i]``: its (H, W) mask; ``masks.window(i, top, bottom, left, right)``: any window of it;
- ``np.asarray(masks)`` / ``masks.numpy()``: the whole (N, H, W) array — N × H × W bytes, on request only.

:class:`DenseMasks` gives an (N, H, W) array the same interface (:func:`as_region_masks`), so callers take
either; ``masks.lowres.LowResMasks`` (the segmenter's low-resolution logits) and ``masks.regions.CropMasks``
(each region's tight crop) keep less. :func:`mask_to_box` and :func:`hflip_masks` work on whole arrays.

Frames: masks are (H, W) in original-image pixels, rows then columns; a box is (top, bottom, left, right)
with rows top..bottom-1 and columns left..right-1.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from regionspot.masks.rle import crop_runs, encode_rle_crop
from regionspot.utils.tensors import as_numpy, is_torch_tensor

if TYPE_CHECKING:  # torch is imported only by callers that hand in tensors (the ONNX backends run without it)
    import torch

Array = TypeVar("Array", np.ndarray, "torch.Tensor")
Box = tuple[int, int, int, int]  # top, bottom, left, right in mask pixels


def tight_box(window: np.ndarray, top: int, left: int) -> Box | None:
    """The bounding box (in the mask's pixels) of the True pixels of ``window`` placed at (top, left)."""
    return span_box(window.any(axis=1), window.any(axis=0), top, left)


def span_box(rows: np.ndarray, cols: np.ndarray, top: int = 0, left: int = 0) -> Box | None:
    """The box spanned by the True entries of ``rows`` (which rows hold a pixel) and ``cols``, offset by
    (top, left); None when there are none."""
    r, c = np.flatnonzero(rows), np.flatnonzero(cols)
    if len(r) == 0:
        return None
    return top + int(r[0]), top + int(r[-1]) + 1, left + int(c[0]), left + int(c[-1]) + 1


class RegionMasks:
    """N binary masks (N, H, W) bool of one image's regions, handed out one region at a time.

    Subclasses give ``size`` (H, W), ``__len__``, ``window`` and ``_take``; ``bbox`` may be faster there.
    It reads like an array where callers need one: ``shape``, ``dtype``, ``len``, ``masks[i]`` (one (H, W)
    mask), ``masks[1:3]`` / ``masks[[0, 2]]`` (a subset, still lazy), iteration, ``np.asarray``.
    """

    size: tuple[int, int]
    dtype = np.dtype(bool)
    ndim = 3

    def __len__(self) -> int:
        raise NotImplementedError

    def window(self, i: int, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        """(bottom - top, right - left) bool: region i's pixels in rows top..bottom-1, columns left..right-1."""
        raise NotImplementedError

    def _take(self, positions: np.ndarray) -> RegionMasks:
        raise NotImplementedError

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self), *self.size)

    def position(self, index: int) -> int:
        """``index`` as a position in 0..N-1 (negative counts from the end); IndexError outside."""
        n = len(self)
        if not -n <= int(index) < n:
            raise IndexError(f"region {index} of {n}")
        return int(index) % n

    def bbox(self, i: int) -> Box | None:
        """Region i's tight bounding box (top, bottom, left, right) in mask pixels; None when it is empty."""
        height, width = self.size
        return tight_box(self.window(i, 0, height, 0, width), 0, 0)

    def crop(self, i: int) -> tuple[np.ndarray, tuple[int, int]]:
        """Region i's pixels inside its bounding box, (h, w) bool, and the box's (top, left); an empty
        region gives a (0, 0) crop at (0, 0)."""
        box = self.bbox(i)
        if box is None:
            return np.zeros((0, 0), bool), (0, 0)
        top, bottom, left, right = box
        return self.window(i, top, bottom, left, right), (top, left)

    def mask(self, i: int) -> np.ndarray:
        """(H, W) bool: region i's whole mask."""
        full = np.zeros(self.size, bool)
        crop, (top, left) = self.crop(i)
        full[top : top + crop.shape[0], left : left + crop.shape[1]] = crop
        return full

    def to_rle(self, i: int) -> dict:
        """Region i's COCO compressed RLE at (H, W) (the same as ``encode_rle(masks[i])``), from its crop."""
        crop, offset = self.crop(i)
        return encode_rle_crop(crop, offset, self.size)

    def runs(self, i: int) -> np.ndarray:
        """Region i's run lengths at (H, W) (``masks.rle.mask_runs`` of its mask), from its crop."""
        crop, offset = self.crop(i)
        return crop_runs(crop, offset, self.size)

    def boxes(self) -> np.ndarray:
        """(N, 4) float32 tight XYXY boxes in mask pixels (:func:`mask_to_box`'s convention:
        columns j0..j1 give x0 = j0, x1 = j1 + 1); empty masks give zeros."""
        out = np.zeros((len(self), 4), np.float32)
        for i in range(len(self)):
            box = self.bbox(i)
            if box is not None:
                top, bottom, left, right = box
                out[i] = (left, top, right, bottom)
        return out

    def numpy(self) -> np.ndarray:
        """(N, H, W) bool: every mask at once (N × H × W bytes)."""
        out = np.zeros(self.shape, bool)
        for i in range(len(self)):
            crop, (top, left) = self.crop(i)
            out[i, top : top + crop.shape[0], left : left + crop.shape[1]] = crop
        return out

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        array = self.numpy()
        return array if dtype is None else array.astype(dtype, copy=False)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, (int, np.integer)):
            return self.mask(self.position(index))
        return self._take(np.arange(len(self))[index])

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self.mask(i)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(regions={len(self)}, size={self.size})"


class DenseMasks(RegionMasks):
    """An (N, H, W) bool array (numpy or torch) behind the :class:`RegionMasks` interface."""

    def __init__(self, masks: np.ndarray | torch.Tensor) -> None:
        array = as_numpy(masks)
        if array.ndim != 3:
            raise ValueError(f"masks must be (N, H, W), got shape {array.shape}")
        self.array = array.astype(bool, copy=False)
        self.size = (int(array.shape[1]), int(array.shape[2]))

    def __len__(self) -> int:
        return len(self.array)

    def window(self, i: int, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        return self.array[self.position(i), top:bottom, left:right]

    def _take(self, positions: np.ndarray) -> DenseMasks:
        return DenseMasks(self.array[positions])

    def numpy(self) -> np.ndarray:
        return self.array


def as_region_masks(masks: RegionMasks | np.ndarray | torch.Tensor | None) -> RegionMasks | None:
    """``masks`` behind the :class:`RegionMasks` interface: as they are, or an (N, H, W) array wrapped."""
    if masks is None or isinstance(masks, RegionMasks):
        return masks
    return DenseMasks(masks)


def hflip_masks(masks: Array) -> Array:
    """Mirror (..., H, W) masks left-right (matches ``data.transforms.hflip_boxes``)."""
    if is_torch_tensor(masks):
        return masks.flip(-1)
    return np.ascontiguousarray(masks[..., ::-1])



def mask_to_box(masks: Array) -> Array:
    """Tight XYXY boxes (..., 4) of (..., H, W) masks in continuous pixels; empty masks give zeros.

    A mask covering columns j0..j1 gives x0 = j0, x1 = j1 + 1 (same as pycocotools' ``toBbox``).
    """
    if is_torch_tensor(masks):
        import torch

        return torch.from_numpy(mask_to_box(as_numpy(masks))).to(device=masks.device)
    masks = masks.astype(bool)
    lead = masks.shape[:-2]
    flat = masks.reshape(int(np.prod(lead, dtype=np.int64)), *masks.shape[-2:])
    out = np.zeros((flat.shape[0], 4), dtype=np.float32)
    rows_any = flat.any(axis=2)
    cols_any = flat.any(axis=1)
    for i in range(flat.shape[0]):
        rows = np.flatnonzero(rows_any[i])
        cols = np.flatnonzero(cols_any[i])
        if rows.size:
            out[i] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    return out.reshape(*lead, 4)
