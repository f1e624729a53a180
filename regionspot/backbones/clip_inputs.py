"""CLIP's image preprocessing, apart from the adapters so that data-loader worker processes (and the
converters) use it without the models: ``preprocess_images`` (whole-image resize to S × S, no crop, then
mean/std), the mean/std/filter a model folder's ``preprocessor_config.json`` gives, and that file written
for a converted model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from regionspot.backbones.constants import CLIP_MEAN, CLIP_STD
from regionspot.backbones.hub import cached_file_or_none
from regionspot.config import CLIP_RESIZES
from regionspot.data.pixels import clip_resize_pil
from regionspot.data.transforms import normalize_pixels

__all__ = ["clip_preprocessor_stats", "preprocess_images", "save_clip_preprocessor_config"]


def preprocess_images(
    images: Sequence[Image.Image],
    size: int,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
    resample: int = Image.Resampling.BICUBIC,
    resize: str = "pil",
    antialias: bool = False,
) -> torch.Tensor:
    """Resize whole images (no crop) to ``size`` × ``size`` and normalise them.

    images: PIL images (converted to RGB here).
    resize: "pil" — PIL ``resize`` of the uint8 pixels with filter ``resample``; "torch-bilinear" —
        pixels / 255 as float32, then ``F.interpolate(size, mode="bilinear", align_corners=False,
        antialias=antialias)`` (the released RegionSpot code; ``resample`` is not used).
    Returns (B, 3, size, size) float32 on CPU: ``(resized pixel / 255 - mean) / std``.
    """
    if resize not in CLIP_RESIZES:
        raise ValueError(f"resize must be one of {list(CLIP_RESIZES)}, got {resize!r}.")
    if isinstance(images, Image.Image):
        images = [images]
    if len(images) == 0:
        raise ValueError("No images were given; pass a list of at least one PIL image.")
    resized = []
    for index, image in enumerate(images):
        if not isinstance(image, Image.Image):
            raise TypeError(
                f"Image #{index} is a {type(image).__name__}, not a PIL image; load it with regionspot.data.images.load_image."
            )
        image = image.convert("RGB")
        if resize == "pil":
            resized.append(torch.from_numpy(clip_resize_pil(image, size, resample)))  # (3, S, S)
        else:
            pixels = torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1) / 255.0  # (3, H, W)
            resized.append(
                F.interpolate(pixels[None], size=(size, size), mode="bilinear", align_corners=False, antialias=antialias)[0]
            )
    pixels = torch.stack(resized)  # (B, 3, S, S)
    return normalize_pixels(pixels, tuple(mean), tuple(std))


def clip_preprocessor_stats(
    model_id: str, defaults: tuple[Sequence[float], Sequence[float], int] | None = None
) -> tuple[tuple[float, ...], tuple[float, ...], int]:
    """(mean, std, resample) from ``preprocessor_config.json`` when present, else ``defaults`` (the adapter's;
    None: CLIP's). A config with ``do_normalize: false`` (TIPSv2) gives mean 0 and std 1: pixels / 255 only."""
    default_mean, default_std, default_resample = defaults or (CLIP_MEAN, CLIP_STD, int(Image.Resampling.BICUBIC))
    path = cached_file_or_none(model_id, "preprocessor_config.json")
    if path is None:
        return tuple(default_mean), tuple(default_std), int(default_resample)
    config = json.loads(Path(path).read_text())
    if config.get("do_normalize", True) is False:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    else:
        mean = tuple(float(v) for v in config.get("image_mean", default_mean))
        std = tuple(float(v) for v in config.get("image_std", default_std))
    resample = int(config.get("resample", default_resample))
    return mean, std, resample


def save_clip_preprocessor_config(folder: str | Path, image_size: int) -> Path:
    """Write the standard CLIP ``preprocessor_config.json`` (bicubic, CLIP mean/std) for ``image_size``."""
    folder = Path(folder)
    config = {
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": True,
        "size": {"shortest_edge": image_size},
        "resample": 3,
        "do_center_crop": True,
        "crop_size": {"height": image_size, "width": image_size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(CLIP_MEAN),
        "image_std": list(CLIP_STD),
        "do_convert_rgb": True,
    }
    path = folder / "preprocessor_config.json"
    path.write_text(json.dumps(config, indent=2))
    return path
