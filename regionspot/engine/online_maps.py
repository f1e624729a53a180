"""Training's online vision-language feature maps: the images a step's cached tokens were computed on,
decoded, mirrored when the variant is, colour-jittered and prepared by the image feeder
(``regionspot.data.feeder``, threads of this process), then one feature-map call for the step's batch.

The jitter factors are drawn here, in the items' order, from the step's generator, before any image is
decoded, so a step draws exactly what it always drew whatever order the threads finish in. Colour jitter
moves no pixel, so the cached tokens stay valid; no crop and no rescale (see ``engine.train``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageEnhance, ImageOps

from regionspot.cache.store import CachedRegions, CacheError, TokenCache
from regionspot.data.feeder import feed
from regionspot.data.images import load_image

__all__ = ["OnlineImage", "OnlinePixels", "jitter_factors", "online_feature_maps"]


def jitter_factors(strength: float, generator: torch.Generator) -> tuple[float, float, float]:
    """Brightness, contrast and saturation factors, each uniform in [1 - strength, 1 + strength]."""
    factors = 1.0 + strength * (2 * torch.rand(3, generator=generator) - 1)
    return tuple(float(f) for f in factors)


def jitter(image: Image.Image, factors: Sequence[float]) -> Image.Image:
    """Brightness, contrast, saturation by ``factors``, in that order; geometry untouched."""
    for enhancer, f in zip((ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color), factors, strict=True):
        image = enhancer(image).enhance(f)
    return image


@dataclass(frozen=True)
class OnlineImage:
    """One cached item's image: its path, the (width, height) it was cached at, whether the variant is the
    mirrored one, and its jitter factors (None: no jitter)."""

    path: Path
    size: tuple[int, int]
    flip: bool
    jitter: tuple[float, float, float] | None


@dataclass(frozen=True)
class OnlinePixels:
    """The feeder's ``prepare``: an :class:`OnlineImage` -> (1, 3, S, S) float32 pixels of ``pixels``
    (``VisionLanguage.input_preprocessor()``)."""

    pixels: Callable[[Sequence[Image.Image]], torch.Tensor]

    def __call__(self, item: OnlineImage) -> torch.Tensor:
        image = load_image(item.path)
        if image.size != item.size:
            raise CacheError(f"Image {item.path} is {image.size} but was cached at {item.size}; rebuild the cache.")
        if item.flip:
            image = ImageOps.mirror(image)
        if item.jitter is not None:
            image = jitter(image, item.jitter)
        return self.pixels([image])


def online_feature_maps(
    vision_language: Any, cache: TokenCache, items: list[CachedRegions], color_jitter: float, generator: torch.Generator
) -> torch.Tensor:
    """(B, T, C) float32 feature maps of the images the items' tokens were computed on (mirrored when
    flipped; jittered by ``color_jitter`` with factors drawn from ``generator`` when > 0), one call."""
    root = Path(cache.image_root or "")
    images = [OnlineImage(root / item.file_name, (item.width, item.height), bool(item.flip),
                          jitter_factors(color_jitter, generator) if color_jitter > 0 else None) for item in items]
    (pixels,) = feed(images, OnlinePixels(vision_language.input_preprocessor()), len(images), collate=torch.cat)
    with torch.no_grad():
        return vision_language.feature_map(pixels).float()
