"""Full-size region masks from a segmenter's low-resolution logits, a bounded number of pixels at a time.

:func:`region_masks` gives one image's masks for the evaluation — the RLE run lengths and the clip-mask
crops — never N full-size masks at once: logits on the CPU go to ``masks.lowres.LowResMasks`` (one region's
crop at a time, the CPU's full-size pixels bit for bit); logits on a GPU to :func:`full_size_chunks`, which
makes the full-size masks there, a few regions at a time (device memory bounded by ``MASK_CHUNK_PIXELS``),
with the device's own arithmetic — the same pixels as the segmenter's full-size masks on that device. The
run boundaries are found on the device (``masks.rle.mask_runs``) and :class:`CropMasks` keeps what crosses
to the host: each region's pixels inside its tight box.

Frames: masks are (H, W) in original-image pixels, rows then columns; a crop's offset is (top, left).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from regionspot.masks.base import Box, RegionMasks, span_box
from regionspot.masks.lowres import LowResMasks
from regionspot.masks.resize import MaskFrame, resize_masks, upsample_mask_logits
from regionspot.masks.rle import mask_runs


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
            box = span_box(mask_rows, mask_cols)
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


def region_masks(
    logits: torch.Tensor, frame: MaskFrame, size: tuple[int, int], runs: bool, crops: bool,
    on_device: bool | None = None,
) -> tuple[RegionMasks | None, list[np.ndarray] | None]:
    """One image's masks from the segmenter's low-res ``logits`` (N, h, w) and ``frame``, at ``size`` (H, W):
    for the clip-mask crops (``crops``) and the RLE run lengths (``runs``), never N full-size masks at once.

    Logits on the CPU: ``LowResMasks``, made one region's crop at a time (memory: N low-res masks plus one
    region; the pixels are the CPU's full-size masks, bit for bit). Elsewhere (a GPU): ``full_size_chunks``
    on the device with its own arithmetic, as the segmenter's full-size masks there; the runs are found on
    the device (``mask_runs``: only their boundaries cross to the host) and each region's tight crop is
    copied (``CropMasks``). ``on_device`` chooses the path (None: by the logits' device; both give the
    same pixels on a CPU). Returns (masks or None, N run-length arrays or None).
    """
    if not (logits.device.type != "cpu" if on_device is None else on_device):
        lazy = LowResMasks(logits, frame, nearest_size=size)
        return lazy, [lazy.runs(i) for i in range(len(lazy))] if runs else None
    all_runs: list[np.ndarray] = []
    all_crops: list[tuple[np.ndarray, tuple[int, int]]] = []
    for chunk in full_size_chunks(logits, frame, nearest_size=size):
        if runs:
            all_runs.extend(mask_runs(chunk))
        if crops:
            all_crops.extend(CropMasks.cut(chunk))
    return CropMasks(all_crops, size) if crops else None, all_runs if runs else None
