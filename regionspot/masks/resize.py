"""Resizing masks and mask logits: torch's nearest resize of binary masks, and a promptable segmenter's
low-resolution mask logits brought to image pixels (SAM's upsampling), whole or one window at a time.

The window (:func:`resize_logits_window`) is computed with the taps, weights and rounding of torch's CPU
bilinear kernel, so that its pixels equal the whole resize bit for bit while its cost and memory grow with
the window, not with the image. :func:`bilinear_window` is that computation in numpy, in torch's rounding or
numpy's plain float32 one (the torch-free runtime's resize). torch is imported only inside the functions that
run it.

Frames: masks and logits are (..., H, W), rows then columns; a window is rows ``rows[0]..rows[1]-1`` and
columns ``cols[0]..cols[1]-1`` of the resized grid.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from regionspot.utils.tensors import is_torch_tensor

if TYPE_CHECKING:  # torch is imported inside the functions that run it: the numpy paths import without it
    import torch

Array = TypeVar("Array", np.ndarray, "torch.Tensor")


# --- binary masks: nearest-neighbour resize ----------------------------------------------------------
def nearest_indices(source: int, target: int, align: str = "center") -> np.ndarray:
    """(target,) int64: the source pixel each target pixel takes in a nearest-neighbour resize (see
    :func:`resize_masks` for ``align``)."""
    if align == "center":
        # Target pixel centre (i + 0.5) maps to source coordinate (i + 0.5) * source / target.
        index = np.floor((np.arange(target) + 0.5) * (source / target)).astype(np.int64)
    elif align == "corner":
        # torch's legacy ``mode="nearest"``: target pixel i takes source floor(i * source / target), with
        # the scale and the product in float32 as torch computes them (float64 differs at some pixels).
        scale = np.float32(source) / np.float32(target)
        index = np.floor(np.arange(target, dtype=np.float32) * scale).astype(np.int64)
    else:
        raise ValueError(f"align must be 'center' or 'corner', got {align!r}.")
    return np.clip(index, 0, source - 1)


def resize_masks(masks: Array, height: int, width: int, align: str = "center") -> Array:
    """Nearest-neighbour resize of (..., H, W) masks to (..., height, width).

    align: "center" (default) maps pixel centres, consistent with ``data.transforms.scale_boxes`` using factors
        width / W and height / H; "corner" reproduces ``torch.nn.functional.interpolate(mode="nearest")``
        (source index floor(i * H / height)), the mask return of the released RegionSpot evaluation.
    """
    if masks.ndim < 2:
        raise ValueError(f"Masks must have shape (..., H, W), got {tuple(masks.shape)}.")
    if height < 1 or width < 1:
        raise ValueError(f"Target mask size must be positive, got {height}x{width}.")
    rows = nearest_indices(masks.shape[-2], height, align)
    cols = nearest_indices(masks.shape[-1], width, align)
    if is_torch_tensor(masks):
        import torch

        rows_t = torch.from_numpy(rows).to(masks.device)
        cols_t = torch.from_numpy(cols).to(masks.device)
        return masks.index_select(-2, rows_t).index_select(-1, cols_t)
    return masks[..., rows, :][..., cols]


# --- mask logits: a promptable segmenter's low-resolution output brought to image pixels ---------------
@dataclass(frozen=True)
class MaskFrame:
    """Where a segmenter's low-resolution mask logits sit and where they go.

    The (h, w) logits cover the zero-padded square model input of side ``pad_size`` (SAM: 256×256 logits for
    the 1024² input); the image fills its top-left ``reshaped_size`` (h', w'). Masks come out at ``size``
    (H, W): usually the original image's.
    """

    pad_size: int
    reshaped_size: tuple[int, int]
    size: tuple[int, int]


def logits_on_image(low_res: torch.Tensor, frame: MaskFrame) -> torch.Tensor:
    """(n, h, w) low-res logits → (n, h', w') float logits on the resized image: bilinear (align_corners
    False) to the padded square, then the padding cropped off (SAM's postprocessing, first half)."""
    import torch.nn.functional as F

    side = frame.pad_size
    new_h, new_w = frame.reshaped_size
    padded = F.interpolate(low_res.unsqueeze(1), (side, side), mode="bilinear", align_corners=False)
    return padded[:, 0, :new_h, :new_w]


def upsample_mask_logits(low_res: torch.Tensor, frame: MaskFrame) -> torch.Tensor:
    """(n, h, w) low-res logits → (n, H, W) logits at ``frame.size``: :func:`logits_on_image`, then bilinear
    (align_corners False) to (H, W). Masks are ``logits > 0``. Memory n × H × W floats: for many regions of a
    large image take them one at a time, or a window of one with :func:`resize_logits_window`."""
    import torch.nn.functional as F

    on_image = logits_on_image(low_res, frame)
    return F.interpolate(on_image.unsqueeze(1), frame.size, mode="bilinear", align_corners=False)[:, 0]


def bilinear_taps(source: int, target: int, start: int, stop: int, fused: bool = True) -> tuple[np.ndarray, ...]:
    """The two source pixels and their weights for target pixels ``start..stop-1`` of a bilinear resize
    (align_corners False) of ``source`` pixels to ``target``, computed as torch's CPU kernel computes them
    (float32; fused: its source coordinate ``scale · (i + 0.5) - 0.5`` rounded once, as with FMA).

    Returns (i0, i1, w0, w1): int64 and float32 arrays of length stop - start.
    """
    index = np.arange(start, stop)
    if source == target:  # torch's identity shortcut
        return index, index, np.ones(len(index), np.float32), np.zeros(len(index), np.float32)
    scale = np.float32(source) / np.float32(target)
    centre = index.astype(np.float32) + np.float32(0.5)
    if fused:
        real = (np.float64(scale) * centre - 0.5).astype(np.float32)
    else:
        real = scale * centre - np.float32(0.5)
    real = np.maximum(real, np.float32(0))
    i0 = np.minimum(np.floor(real).astype(np.int64), source - 1)
    w1 = np.clip(real - i0.astype(np.float32), 0, 1).astype(np.float32)
    return i0, i0 + (i0 < source - 1), np.float32(1) - w1, w1


def _mix(a: np.ndarray, wa: np.ndarray, b: np.ndarray, wb: np.ndarray, fused: bool) -> np.ndarray:
    """a·wa + b·wb in float32, rounded as the kernel rounds it: fused = fma(a, wa, b·wb)."""
    if fused:
        return (a.astype(np.float64) * wa + b * wb).astype(np.float32)
    return a * wa + b * wb


_BAND_PIXELS = 1 << 21  # output pixels per step of bilinear_window: bounds its temporaries
# Outputs up to this many pixels are resized whole by torch and cut (exact by construction; torch itself
# switches to another kernel, with another rounding, for outputs with H + W <= 128).
_SMALL_OUTPUT = 1 << 16


def bilinear_window(src: np.ndarray, size: tuple[int, int], rows: tuple[int, int] | None = None,
                    cols: tuple[int, int] | None = None, fused: bool = False) -> np.ndarray:
    """Rows ``rows[0]..rows[1]-1`` and columns ``cols[0]..cols[1]-1`` (None: all) of the bilinear resize
    (align_corners False, no antialias) of ``src`` (..., h, w) float32 to ``size`` (H, W), the rest never
    computed: per output pixel across its two source columns, then between its two source rows, in float32.

    fused: rounded as torch's generic CPU kernel rounds with fused multiply-adds (:func:`window_arithmetic`);
    plain (False): every product and sum rounded to float32, numpy's own arithmetic — the numpy resize of
    ``data.pixels.bilinear_resize`` and the ONNX backends' masks. Returns (..., rows, cols) float32.
    """
    src = np.asarray(src, dtype=np.float32)
    rows = (0, int(size[0])) if rows is None else rows
    cols = (0, int(size[1])) if cols is None else cols
    r0, r1, wr0, wr1 = bilinear_taps(src.shape[-2], size[0], *rows, fused=fused)
    c0, c1, wc0, wc1 = bilinear_taps(src.shape[-1], size[1], *cols, fused=fused)
    out = np.empty((*src.shape[:-2], len(r0), len(c0)), np.float32)
    if out.size == 0:
        return out
    low, high = int(r0.min()), int(r1.max()) + 1
    band = src[..., low:high, :]
    across = _mix(band[..., c0], wc0, band[..., c1], wc1, fused)  # (..., high - low, columns): the needed rows, resized across
    step = max(1, _BAND_PIXELS // (out.shape[-1] * int(np.prod(out.shape[:-2], dtype=np.int64))))
    for s in range(0, out.shape[-2], step):
        part = slice(s, s + step)
        out[..., part, :] = _mix(across[..., r0[part] - low, :], wr0[part, None], across[..., r1[part] - low, :],
                                 wr1[part, None], fused)
    return out


def _torch_resize(src: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    return F.interpolate(torch.from_numpy(src)[None, None], size, mode="bilinear", align_corners=False)[0, 0].numpy()


@functools.cache
def window_arithmetic() -> str | None:
    """How this torch's CPU bilinear kernel rounds a large resize: "fused" (fused multiply-adds, as x86
    builds with FMA do) or "plain"; None when neither reproduces it bit for bit (then every window is cut
    from the full resize of its region: still exact, with time and memory ∝ the image).

    Found once per process by resizing a small random grid both ways and comparing with ``F.interpolate``.
    """
    src = np.random.default_rng(0).standard_normal((37, 29)).astype(np.float32) * 8
    for arithmetic in ("fused", "plain"):
        if all(np.array_equal(bilinear_window(src, size, fused=arithmetic == "fused"), _torch_resize(src, size))
               for size in ((211, 173), (20, 300), (400, 9))):
            return arithmetic
    return None


def resize_logits_window(
    logits: np.ndarray, size: tuple[int, int], rows: tuple[int, int], cols: tuple[int, int]
) -> np.ndarray:
    """Rows ``rows[0]..rows[1]-1`` and columns ``cols[0]..cols[1]-1`` of the bilinear resize (align_corners
    False) of ``logits`` (h, w) float32 to ``size`` (H, W), without computing the rest of the image.

    Returns (rows, cols) float32 equal, bit for bit, to that part of ``F.interpolate`` on this machine's
    CPU: small outputs are cut from torch's own resize; large ones are computed with the kernel's taps,
    weights and rounding (:func:`window_arithmetic`), with cost and memory ∝ the window.
    """
    logits = np.ascontiguousarray(logits, dtype=np.float32)
    arithmetic = window_arithmetic()
    if size[0] * size[1] <= _SMALL_OUTPUT or arithmetic is None:
        return _torch_resize(logits, size)[rows[0] : rows[1], cols[0] : cols[1]].copy()
    return bilinear_window(logits, size, rows, cols, fused=arithmetic == "fused")


def bilinear_reach(positive: np.ndarray, target: int) -> np.ndarray:
    """(source,) bool → (target,) bool: the target pixels of a bilinear resize to ``target`` whose taps
    may include a True source pixel (a superset: taps one pixel off count too, whatever the rounding).

    A resized mask logit is a convex mix of four source logits, so it can be > 0 only where both its row
    and its column are reached from rows / columns that hold a logit > 0.
    """
    grown = positive.copy()
    grown[1:] |= positive[:-1]
    grown[:-1] |= positive[1:]
    i0, i1, _, _ = bilinear_taps(len(positive), target, 0, target)
    return grown[i0] | grown[i1]
