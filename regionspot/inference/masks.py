"""The masks of one image's regions, kept small until a region's mask is asked for.

A promptable segmenter's mask of a region is a low-resolution grid of logits (SAM: 256×256 over its padded
1024² input), upsampled bilinearly to the image and thresholded at 0. :class:`LowResMasks` keeps those
logits — memory N × h × w floats whatever the image's size — and makes full-size pixels only when asked,
one region, or one window of a region, at a time:

- ``masks.crop(i)``: region i's pixels inside its bounding box and the box's offset (cost ∝ the box);
- ``masks.to_rle(i)``: its COCO compressed RLE, from the crop; ``masks.boxes()``: every tight box;
- ``masks[i]``: its (H, W) mask; ``masks.window(i, top, bottom, left, right)``: any window of it;
- ``np.asarray(masks)`` / ``masks.numpy()``: the whole (N, H, W) array — N × H × W bytes, on request only.

Where the logits are on a GPU, :func:`full_size_chunks` makes the full-size masks there instead, a few
regions at a time (device memory bounded by ``MASK_CHUNK_PIXELS``), with the device's own arithmetic —
the same pixels as the segmenter's full-size masks on that device; :class:`CropMasks` keeps what crosses
to the host: each region's pixels inside its tight box.

The pixels are the segmenter's own full-size masks (``decode_prompts(..., masks="full")``) as the
CPU computes them, bit for bit: the window is computed with the same taps, weights and rounding
(``data.transforms.resize_logits_window``). The upsampling runs on the CPU; a GPU's bilinear kernel rounds
differently, so against a GPU's full-size masks a pixel can differ where its logit is within rounding of 0.
:class:`DenseMasks` gives an (N, H, W) array the same interface, so drawing, COCO export and the crop
baselines take either (:func:`as_region_masks`).

Frames: masks are (H, W) in original-image pixels, rows then columns; a box is (top, bottom, left, right)
with rows top..bottom-1 and columns left..right-1. Not thread-safe (the last region's work is kept).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from regionspot.data.transforms import (
    MaskFrame,
    bilinear_reach,
    logits_on_image,
    nearest_indices,
    resize_logits_window,
    resize_masks,
    upsample_mask_logits,
)
from regionspot.modeling.postprocess import crop_runs, encode_rle_crop

Box = tuple[int, int, int, int]  # top, bottom, left, right in mask pixels


def _tight(window: np.ndarray, top: int, left: int) -> Box | None:
    """The bounding box (in the mask's pixels) of the True pixels of ``window`` placed at (top, left)."""
    return _span(window.any(axis=1), window.any(axis=0), top, left)


def _span(rows: np.ndarray, cols: np.ndarray, top: int = 0, left: int = 0) -> Box | None:
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
        return _tight(self.window(i, 0, height, 0, width), 0, 0)

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
        """Region i's run lengths at (H, W) (``modeling.postprocess.mask_runs`` of its mask), from its crop."""
        crop, offset = self.crop(i)
        return crop_runs(crop, offset, self.size)

    def boxes(self) -> np.ndarray:
        """(N, 4) float32 tight XYXY boxes in mask pixels (``data.transforms.mask_to_box``'s convention:
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
        array = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
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


class LowResMasks(RegionMasks):
    """Masks kept as the segmenter's low-resolution logits; full-size pixels made one region at a time.

    logits: (N, h, w) float32 mask logits in the padded model-input frame that ``frame`` describes
        (``SegmenterOutput.low_res_masks`` / ``mask_frame``); frame.size is where they are upsampled to.
    nearest_size: then a nearest-neighbour resize to this (H, W) by torch's legacy rule
        (``resize_masks(align="corner")``: the released evaluation's mask return); None: masks at frame.size.
    """

    def __init__(self, logits: torch.Tensor | np.ndarray, frame: MaskFrame, nearest_size: tuple[int, int] | None = None) -> None:
        self.logits = torch.as_tensor(logits).detach().float().cpu()
        if self.logits.ndim != 3:
            raise ValueError(f"low-res logits must be (N, h, w), got shape {tuple(self.logits.shape)}")
        self.frame = frame
        sized = None if nearest_size is None else (int(nearest_size[0]), int(nearest_size[1]))
        self.nearest_size = None if sized == tuple(frame.size) else sized
        self.size = self.nearest_size or (int(frame.size[0]), int(frame.size[1]))
        self._on_image: tuple[int, np.ndarray] | None = None  # the last region's logits on the resized image
        self._boxes: dict[int, Box | None] = {}
        self._last_crop: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return int(self.logits.shape[0])

    def _take(self, positions: np.ndarray) -> LowResMasks:
        return LowResMasks(self.logits[torch.from_numpy(positions)], self.frame, self.nearest_size)

    def _image_logits(self, i: int) -> np.ndarray:
        """(h', w') float32: region i's logits on the resized image (the segmenter's first upsampling)."""
        if self._on_image is None or self._on_image[0] != i:
            on_image = logits_on_image(self.logits[i : i + 1], self.frame)[0]
            self._on_image = (i, np.ascontiguousarray(on_image.numpy()))
        return self._on_image[1]

    def _nearest(self) -> tuple[np.ndarray, np.ndarray]:
        """Row and column indices of frame.size that the nearest-neighbour resize takes."""
        assert self.nearest_size is not None
        (height, width), (to_h, to_w) = self.frame.size, self.nearest_size
        return nearest_indices(height, to_h, "corner"), nearest_indices(width, to_w, "corner")

    def window(self, i: int, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        i = self.position(i)
        if self.nearest_size is None:
            return resize_logits_window(self._image_logits(i), self.frame.size, (top, bottom), (left, right)) > 0
        rows, cols = (index[a:b] for index, (a, b) in zip(self._nearest(), ((top, bottom), (left, right))))
        if len(rows) == 0 or len(cols) == 0:
            return np.zeros((len(rows), len(cols)), bool)
        # nearest indices never decrease: the source window spans rows[0]..rows[-1], cols[0]..cols[-1]
        source = resize_logits_window(self._image_logits(i), self.frame.size, (int(rows[0]), int(rows[-1]) + 1),
                                      (int(cols[0]), int(cols[-1]) + 1)) > 0
        return source[np.ix_(rows - rows[0], cols - cols[0])]

    def bbox(self, i: int) -> Box | None:
        """Region i's tight box. Only the window its positive low-res logits can reach is upsampled."""
        i = self.position(i)
        if i not in self._boxes:
            positive = self._image_logits(i) > 0
            rows = bilinear_reach(positive.any(axis=1), self.frame.size[0])
            cols = bilinear_reach(positive.any(axis=0), self.frame.size[1])
            if self.nearest_size is not None:
                take_rows, take_cols = self._nearest()
                rows, cols = rows[take_rows], cols[take_cols]
            r, c = np.flatnonzero(rows), np.flatnonzero(cols)
            box = None
            if len(r) and len(c):
                top, left = int(r[0]), int(c[0])
                reach = self.window(i, top, int(r[-1]) + 1, left, int(c[-1]) + 1)
                box = _tight(reach, top, left)
                if box is not None:
                    self._last_crop = (i, reach[box[0] - top : box[1] - top, box[2] - left : box[3] - left])
            self._boxes[i] = box
        return self._boxes[i]

    def crop(self, i: int) -> tuple[np.ndarray, tuple[int, int]]:
        i = self.position(i)
        box = self.bbox(i)
        if box is None:
            return np.zeros((0, 0), bool), (0, 0)
        if self._last_crop is None or self._last_crop[0] != i:
            self._last_crop = (i, self.window(i, *box))
        return self._last_crop[1], (box[0], box[2])


class CropMasks(RegionMasks):
    """Masks kept as each region's pixels inside its tight bounding box (what :meth:`RegionMasks.crop` gives):
    host memory ∝ the regions' box areas. :meth:`cut` takes the crops from full-size masks on any device
    (e.g. a GPU's :func:`full_size_chunks`), so that only the boxes' pixels cross to the host.

    crops: N pairs (crop (h, w) bool, (top, left)); an empty region is a (0, 0) crop. size: (H, W).
    """

    def __init__(self, crops: Sequence[tuple[np.ndarray, tuple[int, int]]], size: tuple[int, int]) -> None:
        self.crops = list(crops)
        self.size = (int(size[0]), int(size[1]))

    @staticmethod
    def cut(masks: torch.Tensor) -> list[tuple[np.ndarray, tuple[int, int]]]:
        """(k, H, W) bool masks on any device -> k (crop, (top, left)) pairs on the host."""
        rows, cols = masks.any(dim=2).cpu().numpy(), masks.any(dim=1).cpu().numpy()
        out = []
        for mask, mask_rows, mask_cols in zip(masks, rows, cols):
            box = _span(mask_rows, mask_cols)
            if box is None:
                out.append((np.zeros((0, 0), bool), (0, 0)))
            else:
                top, bottom, left, right = box
                out.append((mask[top:bottom, left:right].cpu().numpy(), (top, left)))
        return out

    def __len__(self) -> int:
        return len(self.crops)

    def _take(self, positions: np.ndarray) -> CropMasks:
        return CropMasks([self.crops[p] for p in positions], self.size)

    def crop(self, i: int) -> tuple[np.ndarray, tuple[int, int]]:
        return self.crops[self.position(i)]

    def bbox(self, i: int) -> Box | None:
        crop, (top, left) = self.crop(i)
        return None if crop.size == 0 else (top, top + crop.shape[0], left, left + crop.shape[1])

    def window(self, i: int, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        crop, (y, x) = self.crop(i)
        out = np.zeros((max(bottom - top, 0), max(right - left, 0)), bool)
        y0, y1 = max(top, y), min(bottom, y + crop.shape[0])  # the window's overlap with the crop
        x0, x1 = max(left, x), min(right, x + crop.shape[1])
        if y0 < y1 and x0 < x1:
            out[y0 - top : y1 - top, x0 - left : x1 - left] = crop[y0 - y : y1 - y, x0 - x : x1 - x]
        return out


# Full-size mask pixels per chunk of :func:`full_size_chunks` (each region counts as the larger of its
# padded square and its full size): 2^25 keeps a chunk's float logits near 128 MB.
MASK_CHUNK_PIXELS = 1 << 25


def full_size_chunks(
    logits: torch.Tensor, frame: MaskFrame, nearest_size: tuple[int, int] | None = None
) -> Iterator[torch.Tensor]:
    """The full-size masks of low-res ``logits`` (N, h, w), on the logits' device, a few regions at a time:
    (k, H, W) bool chunks in order, k × max(pad_size², H × W) ≤ ``MASK_CHUNK_PIXELS`` (at least one region).

    The pixels are the segmenter's full-size masks on that device (:func:`upsample_mask_logits` > 0, as
    ``decode_prompts(masks="full")`` makes them), then torch's legacy nearest resize to
    ``nearest_size`` (``resize_masks(align="corner")``) when it is given and differs from ``frame.size``.
    """
    height, width = (int(v) for v in (nearest_size or frame.size))
    per_region = max(frame.pad_size**2, frame.size[0] * frame.size[1], height * width)
    step = max(1, MASK_CHUNK_PIXELS // per_region)
    for start in range(0, len(logits), step):
        masks = upsample_mask_logits(logits[start : start + step], frame) > 0
        if (height, width) != tuple(frame.size):
            masks = resize_masks(masks, height, width, align="corner")
        yield masks


def as_region_masks(masks: RegionMasks | np.ndarray | torch.Tensor | None) -> RegionMasks | None:
    """``masks`` behind the :class:`RegionMasks` interface: as they are, or an (N, H, W) array wrapped."""
    if masks is None or isinstance(masks, RegionMasks):
        return masks
    return DenseMasks(masks)


def concat_masks(first: RegionMasks | np.ndarray | None, second: RegionMasks | np.ndarray | None) -> RegionMasks | None:
    """The masks of two results of one image, first's then second's (None when either has none); still
    low-resolution when both are, in the same frame."""
    if first is None or second is None:
        return None
    if (isinstance(first, LowResMasks) and isinstance(second, LowResMasks) and first.frame == second.frame
            and first.nearest_size == second.nearest_size and first.logits.shape[1:] == second.logits.shape[1:]):
        return LowResMasks(torch.cat([first.logits, second.logits]), first.frame, first.nearest_size)
    return DenseMasks(np.concatenate([np.asarray(first), np.asarray(second)]))
