"""Does an image look like a ShapesWorld render? A cheap two-cue test, so that the embedded ShapesWorld model
can say when it is shown something it has never seen (a photo).

A render (:mod:`regionspot.shapesworld.world`) is a smooth background (gradient, blotches, stripes or a
checker), a few flat-coloured shapes and thin lines, plus faint pixel noise. Seen at 128 pixels it has

- a small palette: few colours cover most pixels (the background mixes two muted colours; each shape is one
  shaded colour), and
- no fine texture: inside every region a 3x3 median filter changes almost nothing (noise averages out in
  the downscale; edges and stripes survive a median filter).

A photo has many colours (light, shading, materials), fine texture (fur, foliage, skin, print), or both.
The image counts as ShapesWorld-like when both cues stay within what renders show; the limits are the
largest values over 2,000 renders (both worlds, train and val streams) with a margin, and
``benchmarks/quality/shapesworld_likeness.py`` prints how they split renders from photos and textures. A plain
photo (a crop of clear sky) can pass as like: the test is meant to catch the common case cheaply, not to
be a classifier of everything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

ANALYSIS_SIDE = 128  # the longer side the image is box-downscaled to before measuring (never upscaled)
COLOUR_LEVELS = 16  # palette: levels per RGB channel (16^3 colour bins)
PALETTE_SHARE = 0.95  # palette: the fewest colour bins holding this share of the pixels
TEXTURE_CELL = 32  # texture: the median-filter residual is averaged over cells of this many pixels (analysis scale)

# Limits: 1.1 x the largest value over 2,000 renders (500 of each world x split: palette 128, texture 8.92).
MAX_PALETTE = 140  # colour bins
MAX_TEXTURE = 9.8  # grey levels


@dataclass(frozen=True)
class Likeness:
    """The two cues of an image. palette: colour bins (of 16^3) holding 95% of its pixels; texture: the
    largest cell mean of |image - 3x3 median| (grey levels, at 128 px)."""

    palette: int
    texture: float

    @property
    def like(self) -> bool:
        """Whether both cues stay within what ShapesWorld renders show."""
        return self.palette <= MAX_PALETTE and self.texture <= MAX_TEXTURE

    def describe(self) -> str:
        """What sets the image apart, in words (empty when it is like a render)."""
        parts = []
        if self.palette > MAX_PALETTE:
            parts.append(f"many colours ({self.palette} colour bins hold 95% of it; renders need at most {MAX_PALETTE})")
        if self.texture > MAX_TEXTURE:
            parts.append(f"fine texture ({self.texture:.1f} grey levels; renders at most {MAX_TEXTURE})")
        return " and ".join(parts)


def _analysis_image(image: Image.Image) -> Image.Image:
    image = image.convert("RGB")
    scale = ANALYSIS_SIDE / max(image.size)
    if scale < 1:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.BOX)
    return image


def measure_likeness(image: Image.Image) -> Likeness:
    """The palette and texture cues of ``image`` (any PIL mode or size; a few milliseconds)."""
    small = _analysis_image(image)
    pixels = np.asarray(small, dtype=np.int16)  # (H, W, 3)
    step = 256 // COLOUR_LEVELS
    bins = pixels // step
    keys = (bins[..., 0] * COLOUR_LEVELS + bins[..., 1]) * COLOUR_LEVELS + bins[..., 2]
    counts = np.sort(np.bincount(keys.ravel(), minlength=COLOUR_LEVELS**3))[::-1]
    palette = int(np.searchsorted(np.cumsum(counts), PALETTE_SHARE * counts.sum()) + 1)

    median = np.asarray(small.filter(ImageFilter.MedianFilter(3)), dtype=np.int16)
    residual = np.abs(pixels - median).max(axis=-1).astype(np.float32)  # (H, W)
    height, width = residual.shape
    cell = max(1, min(TEXTURE_CELL, height, width))
    rows, cols = height // cell, width // cell
    cells = residual[: rows * cell, : cols * cell].reshape(rows, cell, cols, cell).mean(axis=(1, 3))
    return Likeness(palette=palette, texture=float(cells.max()))


def looks_like_shapesworld(image: Image.Image) -> bool:
    """Whether ``image`` looks like a ShapesWorld render (see :func:`measure_likeness`)."""
    return measure_likeness(image).like


# --- calibration sets (benchmarks/quality/shapesworld_likeness.py and the tests) ----------------------------------
def calibration_renders(per_stream: int, image_size: int = 256, seed: int = 0) -> list[tuple[str, Image.Image]]:
    """ShapesWorld renders named 'world/split/index': the first ``per_stream`` images of the train and val
    streams of each world preset (v1, v2), as the datasets draw them."""
    from regionspot.shapesworld.streams import SPLIT_STREAMS, stream_rng
    from regionspot.shapesworld.world import WORLD_PRESETS, category_probabilities, render_image

    renders = []
    for world_name, world in WORLD_PRESETS.items():
        categories = world.categories(seed)
        probabilities = category_probabilities(categories, (1.0, 0.3, 0.1))
        for split, stream in SPLIT_STREAMS.items():
            for index in range(per_stream):
                pixels, _ = render_image(stream_rng(seed, stream, index), categories, probabilities, image_size, world)
                renders.append((f"{world_name}/{split}/{index}", Image.fromarray(pixels)))
    return renders


def pink_noise_image(rng: np.random.Generator, size: int = 256) -> Image.Image:
    """A colour texture with a natural image's 1/f^a spectrum (a in [0.8, 1.6]): size x size RGB."""
    freq = np.fft.fftfreq(size)
    radius = np.hypot(*np.meshgrid(freq, freq))
    radius[0, 0] = 1.0
    exponent = rng.uniform(0.8, 1.6)
    channels = []
    for _ in range(3):
        spectrum = (rng.standard_normal((size, size)) + 1j * rng.standard_normal((size, size))) / radius**exponent
        spectrum[0, 0] = 0
        channels.append(np.real(np.fft.ifft2(spectrum)))
    field = np.stack(channels, axis=-1)  # (size, size, 3)
    colour = rng.uniform(0.2, 1.0)  # 0: grey texture, 1: independent channels
    field = field.mean(axis=-1, keepdims=True) * (1 - colour) + field * colour
    field = (field - field.mean()) / field.std() * rng.uniform(25, 60) + rng.uniform(80, 170)
    return Image.fromarray(np.clip(field, 0, 255).astype(np.uint8))
