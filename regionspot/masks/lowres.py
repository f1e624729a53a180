"""Masks kept as a promptable segmenter's low-resolution logits, made at full size one region at a time.

A segmenter's mask of a region is a low-resolution grid of logits (SAM: 256×256 over its padded 1024²
input), upsampled bilinearly to the image and thresholded at 0. :class:`LowResMasks` keeps those logits —
memory N × h × w floats whatever the image's size — and makes full-size pixels only when asked, one region,
or one window of a region, at a time (the :class:`~regionspot.masks.base.RegionMasks` interface): the cost
grows with the objects' areas, not with the image's pixels times the regions.

The pixels are the segmenter's own full-size masks (``decode_prompts(..., masks="full")``) as the
CPU computes them, bit for bit: the window is computed with the same taps, weights and rounding
(``masks.resize.resize_logits_window``). The upsampling runs on the CPU; a GPU's bilinear kernel rounds
differently, so against a GPU's full-size masks a pixel can differ where its logit is within rounding of 0
(``masks.regions.full_size_chunks`` makes them on the device instead). Not thread-safe (the last region's
work is kept).

``kernel="numpy"`` makes the pixels with numpy's float32 arithmetic instead (``masks.resize.bilinear_window``,
plain): the full-size masks of the torch-free ONNX runtime (``data.pixels.bilinear_resize``, the runtime's
``OnnxRegions.masks``) bit for bit, and torch's wherever a pixel's logit is not within float32 rounding of 0.
That kernel never imports torch (the ONNX backends' results use it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from regionspot.masks.base import Box, DenseMasks, RegionMasks, tight_box
from regionspot.masks.resize import (
    MaskFrame,
    bilinear_reach,
    bilinear_window,
    logits_on_image,
    nearest_indices,
    resize_logits_window,
)
from regionspot.utils.tensors import as_numpy

if TYPE_CHECKING:
    import torch

KERNELS = ("torch", "numpy")


class LowResMasks(RegionMasks):
    """Masks kept as the segmenter's low-resolution logits; full-size pixels made one region at a time.

    logits: (N, h, w) float32 mask logits in the padded model-input frame that ``frame`` describes
        (``SegmenterOutput.low_res_masks`` / ``mask_frame``); frame.size is where they are upsampled to.
        Kept as a host numpy array (``self.logits``).
    nearest_size: then a nearest-neighbour resize to this (H, W) by torch's legacy rule
        (``resize_masks(align="corner")``: the released evaluation's mask return); None: masks at frame.size.
    kernel: "torch" (default): the bilinear upsampling of torch's CPU kernel, bit for bit; "numpy": numpy's
        float32 arithmetic, the torch-free runtime's masks (see the module's docstring).
    """

    def __init__(self, logits: torch.Tensor | np.ndarray, frame: MaskFrame, nearest_size: tuple[int, int] | None = None,
                 kernel: str = "torch") -> None:
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        self.logits = np.ascontiguousarray(as_numpy(logits, np.float32))
        if self.logits.ndim != 3:
            raise ValueError(f"low-res logits must be (N, h, w), got shape {tuple(self.logits.shape)}")
        self.kernel = kernel
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
        return LowResMasks(self.logits[positions], self.frame, self.nearest_size, self.kernel)

    def _image_logits(self, i: int) -> np.ndarray:
        """(h', w') float32: region i's logits on the resized image (the segmenter's first upsampling)."""
        if self._on_image is None or self._on_image[0] != i:
            if self.kernel == "numpy":  # only the resized image's part of the padded square is computed
                side, (new_h, new_w) = self.frame.pad_size, self.frame.reshaped_size
                on_image = bilinear_window(self.logits[i], (side, side), (0, new_h), (0, new_w))
            else:
                import torch

                on_image = logits_on_image(torch.from_numpy(self.logits[i : i + 1]), self.frame)[0].numpy()
            self._on_image = (i, np.ascontiguousarray(on_image))
        return self._on_image[1]

    def _resize(self, i: int, rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
        """Rows and columns of region i's logits at frame.size (the segmenter's second upsampling), float32."""
        if self.kernel == "numpy":
            return bilinear_window(self._image_logits(i), self.frame.size, rows, cols)
        return resize_logits_window(self._image_logits(i), self.frame.size, rows, cols)

    def _nearest(self) -> tuple[np.ndarray, np.ndarray]:
        """Row and column indices of frame.size that the nearest-neighbour resize takes."""
        assert self.nearest_size is not None
        (height, width), (to_h, to_w) = self.frame.size, self.nearest_size
        return nearest_indices(height, to_h, "corner"), nearest_indices(width, to_w, "corner")

    def window(self, i: int, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        i = self.position(i)
        if self.nearest_size is None:
            return self._resize(i, (top, bottom), (left, right)) > 0
        rows, cols = (index[a:b] for index, (a, b) in zip(self._nearest(), ((top, bottom), (left, right))))
        if len(rows) == 0 or len(cols) == 0:
            return np.zeros((len(rows), len(cols)), bool)
        # nearest indices never decrease: the source window spans rows[0]..rows[-1], cols[0]..cols[-1]
        source = self._resize(i, (int(rows[0]), int(rows[-1]) + 1), (int(cols[0]), int(cols[-1]) + 1)) > 0
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
                box = tight_box(reach, top, left)
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


def concat_masks(first: RegionMasks | np.ndarray | None, second: RegionMasks | np.ndarray | None) -> RegionMasks | None:
    """The masks of two results of one image, first's then second's (None when either has none); still
    low-resolution when both are, in the same frame with the same kernel."""
    if first is None or second is None:
        return None
    if (isinstance(first, LowResMasks) and isinstance(second, LowResMasks) and first.frame == second.frame
            and first.nearest_size == second.nearest_size and first.logits.shape[1:] == second.logits.shape[1:]
            and first.kernel == second.kernel):
        return LowResMasks(np.concatenate([first.logits, second.logits]), first.frame, first.nearest_size, first.kernel)
    return DenseMasks(np.concatenate([np.asarray(first), np.asarray(second)]))
