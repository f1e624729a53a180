"""Image preprocessing and mask-logit resizing in numpy (no torch): the one implementation of the CPU steps
that both the PyTorch path and the torch-free ONNX runtime (``regionspot.runtime``) take.

- SAM: :func:`resized_shape` (longest side, SAM's rounding), :func:`sam_resize_pad` (PIL resize of the
  uint8 pixels, zero padding bottom/right to the square input) — ``backbones/sam_inputs.prepare_sam_input``
  calls it, so both paths see the same uint8 pixels; :func:`normalize_sam_array` is the numpy twin of
  ``normalize_sam_pixels`` (torch, on the model's device), the same float32 operations in the same order
  (tests check them equal bit for bit).
- CLIP: :func:`clip_resize_pil` (whole image to S × S with PIL, float32 in [0, 1]) —
  ``backbones/clip_inputs.preprocess_images`` calls it for ``resize="pil"``; :func:`normalize_array`
  (``(pixels - mean) / std``; torch's twin is ``data/transforms.normalize_pixels``).
- :func:`bilinear_resize`: ``F.interpolate(mode="bilinear", align_corners=False)`` without antialias in
  float32 numpy (the released code's CLIP resize, and SAM's mask-logit upsampling): within 1e-5 of torch's on
  values in [0, 1] (torch rounds its coordinates and mixes with fused multiply-adds), which tests check. It is
  ``masks.resize.bilinear_window`` (the ONNX backends' masks take windows of the same resize).

Arrays are channels-first: images (3, H, W), batches (B, 3, H, W).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from regionspot.masks.resize import bilinear_window

__all__ = [
    "bilinear_resize",
    "clip_resize_pil",
    "normalize_array",
    "normalize_sam_array",
    "resized_shape",
    "sam_resize_pad",
]


def resized_shape(height: int, width: int, longest_edge: int) -> tuple[int, int]:
    """(height, width) after resizing so that the longest side is ``longest_edge`` (SAM's rounding)."""
    scale = longest_edge / max(height, width)
    # at least one pixel: a very elongated image (20000 x 10) must not resize to an empty one
    return max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5))


def sam_resize_pad(image: Image.Image, longest_edge: int, pad_size: int, resample: int) -> tuple[np.ndarray, tuple[int, int]]:
    """An RGB PIL image -> ((3, S, S) uint8 pixels, (h, w)): resized with PIL filter ``resample`` so that the
    longest side is ``longest_edge`` (size (h, w)) and zero-padded bottom/right to S = ``pad_size``."""
    width, height = image.size
    new_h, new_w = resized_shape(height, width, longest_edge)
    resized = image.resize((new_w, new_h), resample=Image.Resampling(resample))
    pixels = np.zeros((3, pad_size, pad_size), dtype=np.uint8)
    pixels[:, :new_h, :new_w] = np.asarray(resized, dtype=np.uint8).transpose(2, 0, 1)
    return pixels, (new_h, new_w)


def normalize_array(pixels: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """(..., 3, H, W) float32 pixels in [0, 1] -> ``(pixels - mean) / std`` per channel, float32."""
    mean_a = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
    std_a = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
    return (pixels.astype(np.float32, copy=False) - mean_a) / std_a


def normalize_sam_array(
    pixels: np.ndarray, reshaped_sizes: Sequence[tuple[int, int]], rescale_factor: float,
    mean: Sequence[float], std: Sequence[float],
) -> np.ndarray:
    """(B, 3, S, S) uint8 from :func:`sam_resize_pad` -> (B, 3, S, S) float32 SAM encoder input:
    ``(pixels * rescale_factor - mean) / std`` inside each resized image (h, w), 0 in the padding."""
    out = normalize_array(pixels.astype(np.float32) * np.float32(rescale_factor), mean, std)
    for index, (new_h, new_w) in enumerate(reshaped_sizes):
        out[index, :, new_h:, :] = 0.0
        out[index, :, :new_h, new_w:] = 0.0
    return out


def clip_resize_pil(image: Image.Image, size: int, resample: int) -> np.ndarray:
    """An RGB PIL image resized whole (no crop) to ``size`` × ``size`` with PIL filter ``resample`` ->
    (3, size, size) float32 in [0, 1] (uint8 pixels / 255)."""
    array = np.asarray(image.resize((size, size), resample=resample), dtype=np.float32)
    return array.transpose(2, 0, 1) / np.float32(255.0)


def bilinear_resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(..., h, w) float -> (..., H, W) float32: bilinear, align_corners False, no antialias (torch's
    ``F.interpolate(mode="bilinear", align_corners=False)``), across columns first, then between rows, every
    product and sum rounded to float32 (``masks.resize.bilinear_window``, the one home of its taps and weights;
    the ONNX backends' masks take windows of the same resize)."""
    return bilinear_window(array, size, fused=False)
