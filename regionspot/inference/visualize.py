"""Draw a RegionResult on its image: a light mask tint with an outline, thin boxes, and "label confidence"
tags placed beside the regions (never on top of one when there is room elsewhere).

All coordinates are original-image pixels, x to the right, y down. The shown number is
``RegionResult.display_scores`` (the calibrated confidence when the head has a display temperature).
Masks are drawn one region at a time on the region's bounding-box crop (``RegionMasks.crop``): the cost
grows with the objects' areas, not with the image's pixels times the number of regions.
"""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from regionspot.inference.masks import as_region_masks
from regionspot.inference.results import RegionResult

Rect = tuple[float, float, float, float]  # x1, y1, x2, y2


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


def _erode(mask: np.ndarray, width: int, axis: int) -> np.ndarray:
    """True where every pixel within ``width`` along ``axis`` is True (pixels outside the array count as
    False): a running count of holes, so the cost does not grow with ``width``."""
    n = mask.shape[axis]
    holes = np.cumsum(~mask, axis=axis, dtype=np.int32)
    holes = np.concatenate([np.zeros_like(holes.take([0], axis=axis)), holes], axis=axis)  # holes before index k
    index = np.arange(n)
    low, high = np.clip(index - width, 0, n), np.clip(index + width + 1, 0, n)
    inside = (high - low) == 2 * width + 1  # the window lies within the array
    shape = [1, 1]
    shape[axis] = n
    return (holes.take(high, axis=axis) == holes.take(low, axis=axis)) & inside.reshape(shape)


def mask_outline(mask: np.ndarray, width: int) -> np.ndarray:
    """(H, W) bool: the pixels of ``mask`` within ``width`` pixels (chessboard distance) of its border.

    Works on the mask's bounding box only, eroding it with a (2·width + 1)² square (one pass per axis),
    so the cost grows with the object's area, not with the image's pixels or with ``width``.
    """
    outline = np.zeros_like(mask, dtype=bool)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return outline
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    crop = mask[y0:y1, x0:x1].astype(bool)
    # Outside the crop counts as background, so pixels on its edge (the image's edge included) are border.
    eroded = _erode(_erode(crop, width, 0), width, 1)
    outline[y0:y1, x0:x1] = crop & ~eroded
    return outline


def _overlap(a: Rect, b: Rect) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(0.0, w) * max(0.0, h)


def place_label(box: Rect, size: tuple[float, float], canvas: tuple[int, int], avoid: list[Rect]) -> Rect:
    """Where a (w, h) tag for ``box`` goes: above, below, right of or left of the box, or inside its top
    edge as a last resort — the first spot inside the canvas (W, H) that overlaps nothing in ``avoid``
    (the regions' boxes and the tags already placed); otherwise the spot that overlaps them least."""
    x1, y1, x2, y2 = box
    w, h = size
    candidates = [
        (x1, y1 - h), (x1, y2), (x2 - w, y1 - h), (x2 - w, y2),  # above / below, left- or right-aligned
        (x2, y1), (x1 - w, y1), (x2, y2 - h), (x1 - w, y2 - h),  # beside
        (x1, y1),                                                # inside the top-left corner
    ]
    best, best_cost = None, None
    for cx, cy in candidates:
        cx = min(max(0.0, cx), max(0.0, canvas[0] - w))
        cy = min(max(0.0, cy), max(0.0, canvas[1] - h))
        rect = (cx, cy, cx + w, cy + h)
        cost = sum(_overlap(rect, other) for other in avoid)
        if best_cost is None or cost < best_cost:
            best, best_cost = rect, cost
        if cost == 0:
            break
    assert best is not None
    return best


def draw_result(image: Image.Image, result: RegionResult, mask_alpha: float = 0.25, show_scores: bool = True) -> Image.Image:
    """Return a new RGB image with the regions of ``result`` drawn on ``image``.

    Masks (when present at the image's size) get a ``mask_alpha`` tint and a solid outline; each region
    gets a thin box and a tag "label 0.93" placed so that it covers no region where possible.
    """
    canvas = np.array(image.convert("RGB"), dtype=np.uint8)  # (H, W, 3), a copy we draw on
    colours = _palette(len(result))
    scale = max(canvas.shape[:2]) / 512
    line = max(1, round(2 * scale))
    masks = as_region_masks(result.masks)
    if masks is not None and tuple(masks.size) == canvas.shape[:2]:
        for i, colour in enumerate(colours):
            crop, (top, left) = masks.crop(i)  # (h, w) bool: the region's bounding box only
            patch = canvas[top : top + crop.shape[0], left : left + crop.shape[1]]  # a view into the canvas
            tint = np.asarray(colour, np.float32)
            blend = (1 - mask_alpha) * patch[crop].astype(np.float32) + mask_alpha * tint  # float32, (k, 3)
            patch[crop] = blend.clip(0, 255).astype(np.uint8)
            patch[mask_outline(crop, line)] = colour
    out = Image.fromarray(canvas)
    draw = ImageDraw.Draw(out)
    font = _font(max(10, round(13 * scale)))
    boxes: list[Rect] = [tuple(float(v) for v in b) for b in result.boxes]
    scores = result.display_scores
    placed: list[Rect] = []
    for i, colour in enumerate(colours):
        draw.rectangle(boxes[i], outline=colour, width=max(1, line // 2))
    for i, colour in enumerate(colours):
        text = f"{result.labels[i]} {scores[i]:.2f}" if show_scores else result.labels[i]
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        size = (right - left + 4, bottom - top + 4)
        rect = place_label(boxes[i], size, out.size, boxes + placed)
        placed.append(rect)
        draw.rectangle(rect, fill=colour)
        draw.text((rect[0] + 2 - left, rect[1] + 2 - top), text, fill=(0, 0, 0), font=font)
    return out
