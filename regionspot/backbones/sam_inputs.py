"""SAM's image preprocessing, split so that the CPU part can run in data-loader worker processes.

``prepare_sam_input`` (CPU, picklable through ``functools.partial``): resize so that the longest side is
``longest_edge`` (PIL, the processor's filter) and zero-pad bottom/right to ``pad_size`` — uint8, a
quarter of the float32 pixels' size to send between processes and to the device. SAM 2, EdgeTAM and the
SAM 3 tracker (``square``) resize the whole image to ``pad_size`` × ``pad_size`` instead (the aspect ratio is
not kept, nothing is padded), as their processors and the official predictors do.
``normalize_sam_pixels`` (on the device): rescale, normalise with mean/std, and zero the padding again.
Together they give exactly the float32 pixels of transformers' SAM processor path that
``SamSegmenter.preprocess_image`` has always returned (the same float32 operations in the same order).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from regionspot.backbones.base import SegmenterBatch
from regionspot.backbones.constants import IMAGENET_MEAN, IMAGENET_STD
from regionspot.data.images import load_image
from regionspot.data.pixels import resized_shape, sam_resize_pad
from regionspot.data.transforms import normalize_pixels
from regionspot.errors import CheckpointError

__all__ = ["SamPreprocess", "normalize_sam_pixels", "prepare_sam_input", "resized_shape"]


@dataclass(frozen=True)
class SamPreprocess:
    """SAM image preprocessing, read from a ``preprocessor_config.json`` (transformers' SAM processor).

    longest_edge: the resized image's longest side in pixels (1024 for real SAM).
    pad_size: side of the square, zero-padded (bottom/right) model input; equals the encoder's image_size.
    mean, std: per-channel normalisation applied after ``rescale_factor`` (pixel values / 255).
    resample: PIL resampling filter id used for the resize (2 = bilinear, transformers' default).
    square: SAM 2's resize: the whole image to pad_size × pad_size (no padding; prompts scale by
        pad_size / W and pad_size / H). False: SAM's longest-side resize and zero padding.
    """

    longest_edge: int = 1024
    pad_size: int = 1024
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    rescale_factor: float = 1 / 255
    resample: int = int(Image.Resampling.BILINEAR)
    square: bool = False

    @classmethod
    def from_json(cls, path: str | Path | None, image_size: int, square: bool = False,
                  mean: tuple[float, float, float] = IMAGENET_MEAN, std: tuple[float, float, float] = IMAGENET_STD,
                  ) -> SamPreprocess:
        """Read a processor config; a missing file gives the defaults at ``image_size`` (``square``, ``mean``
        and ``std``: the model family's, used when the file does not say)."""
        if path is None:
            return cls(longest_edge=image_size, pad_size=image_size, square=square, mean=mean, std=std)
        data = json.loads(Path(path).read_text())
        size = data.get("size") or {}
        if square or ("longest_edge" not in size and "height" in size):
            return cls._square_from(data, path, image_size, mean, std)
        pad = data.get("pad_size") or {}
        longest = int(size.get("longest_edge", image_size))
        pad_side = int(pad.get("height", image_size))
        if pad_side != image_size or int(pad.get("width", pad_side)) != pad_side or longest > pad_side:
            raise CheckpointError(
                f"Processor config {path} pads to {pad} / resizes to {longest} but the SAM encoder expects "
                f"{image_size}x{image_size} inputs; fix pad_size/size in preprocessor_config.json."
            )
        return cls(
            longest_edge=longest,
            pad_size=pad_side,
            mean=tuple(float(v) for v in data.get("image_mean", IMAGENET_MEAN)),
            std=tuple(float(v) for v in data.get("image_std", IMAGENET_STD)),
            rescale_factor=float(data.get("rescale_factor", 1 / 255)) if data.get("do_rescale", True) else 1.0,
            resample=int(data.get("resample", int(Image.Resampling.BILINEAR))),
        )

    @classmethod
    def _square_from(cls, data: dict, path: str | Path, image_size: int, mean: tuple, std: tuple) -> SamPreprocess:
        """SAM 2's processor config: ``size`` {"height", "width"} = the encoder's square input."""
        size = data.get("size") or {}
        height, width = int(size.get("height", image_size)), int(size.get("width", image_size))
        if height != image_size or width != image_size:
            raise CheckpointError(
                f"Processor config {path} resizes to {height}x{width} but the encoder expects {image_size}x{image_size} "
                "inputs; fix size in preprocessor_config.json."
            )
        return cls(
            longest_edge=image_size, pad_size=image_size, square=True,
            mean=tuple(float(v) for v in data.get("image_mean", mean)),
            std=tuple(float(v) for v in data.get("image_std", std)),
            rescale_factor=float(data.get("rescale_factor", 1 / 255)) if data.get("do_rescale", True) else 1.0,
            resample=int(data.get("resample", int(Image.Resampling.BILINEAR))),
        )


def prepare_sam_input(image: Image.Image, preprocess: SamPreprocess) -> SegmenterBatch:
    """One image -> a ``SegmenterBatch`` of one: uint8 pixels (1, 3, S, S), resized and zero-padded.

    image: an RGB PIL image (also a path or HWC array, via ``load_image``); S = ``preprocess.pad_size``.
    With ``preprocess.square`` the whole image is resized to S × S (resized size (S, S)).
    """
    image = load_image(image)
    width, height = image.size
    if preprocess.square:
        side = preprocess.pad_size
        resized = image.resize((side, side), resample=Image.Resampling(preprocess.resample))
        pixels = np.asarray(resized, dtype=np.uint8).transpose(2, 0, 1).copy()
        return SegmenterBatch(pixels=torch.from_numpy(pixels)[None], original_sizes=[(height, width)],
                              reshaped_sizes=[(side, side)])
    pixels, (new_h, new_w) = sam_resize_pad(image, preprocess.longest_edge, preprocess.pad_size, preprocess.resample)
    return SegmenterBatch(pixels=torch.from_numpy(pixels)[None], original_sizes=[(height, width)],
                          reshaped_sizes=[(new_h, new_w)])


def normalize_sam_pixels(
    pixels: torch.Tensor, reshaped_sizes: Sequence[tuple[int, int]], preprocess: SamPreprocess
) -> torch.Tensor:
    """(B, 3, S, S) uint8 from :func:`prepare_sam_input` -> (B, 3, S, S) float32 encoder input, on the
    pixels' device: ``(pixels * rescale_factor - mean) / std`` inside each resized image, 0 in the padding."""
    out = normalize_pixels(pixels.float() * preprocess.rescale_factor, preprocess.mean, preprocess.std)
    for index, (new_h, new_w) in enumerate(reshaped_sizes):
        out[index, :, new_h:, :] = 0.0
        out[index, :, :new_h, new_w:] = 0.0
    return out
