"""Draw a RegionResult on its image: translucent masks, boxes and "label score" tags."""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from regionspot.inference.results import RegionResult


def _palette(n: int) -> list[tuple[int, int, int]]:
    # Golden-ratio hue steps give distinct, stable colours for any number of regions.
    colours = []
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.75, 0.95)
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return colours


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def draw_result(image: Image.Image, result: RegionResult, mask_alpha: float = 0.45, show_scores: bool = True) -> Image.Image:
    """Return a new RGB image with the regions of ``result`` drawn on ``image``."""
    canvas = np.asarray(image.convert("RGB"), dtype=np.float32).copy()
    colours = _palette(len(result))
    if result.masks is not None:
        for mask, colour in zip(result.masks, colours):
            if mask.shape != canvas.shape[:2]:
                continue
            canvas[mask] = (1 - mask_alpha) * canvas[mask] + mask_alpha * np.asarray(colour, np.float32)
    out = Image.fromarray(canvas.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    scale = max(out.size) / 512
    width = max(1, round(2 * scale))
    font = _font(max(10, round(13 * scale)))
    for i, colour in enumerate(colours):
        x1, y1, x2, y2 = (float(v) for v in result.boxes[i])
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=width)
        text = f"{result.labels[i]} {result.scores[i]:.2f}" if show_scores else result.labels[i]
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left, bottom - top
        ty = y1 - th - 4 if y1 - th - 4 >= 0 else y1
        tx = min(max(0.0, x1), max(0.0, out.width - tw - 4))
        draw.rectangle([tx, ty, tx + tw + 4, ty + th + 4], fill=colour)
        draw.text((tx + 2 - left, ty + 2 - top), text, fill=(0, 0, 0), font=font)
    return out
