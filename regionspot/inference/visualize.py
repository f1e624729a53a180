"""Draw a RegionResult on its image: a light mask tint with an outline, thin boxes, the prompt points, and
"label confidence" tags placed beside the regions, never over one another when there is room anywhere.

All coordinates are original-image pixels, x to the right, y down. The shown number is
``RegionResult.display_scores`` (the calibrated confidence when the head has a display temperature).
A class has one colour everywhere (a hash of its name), and the text, lines and points scale with the
image's shorter side. Masks are drawn one region at a time on the region's bounding-box crop
(``RegionMasks.crop``): the cost grows with the objects' areas, not with the image's pixels times the
number of regions. A region rejected as none of the vocabulary's classes (``RegionResult.known`` False) is
drawn grey with a dashed box and tagged "unknown (best: <label> 0.41)".
"""

from __future__ import annotations

import colorsys
import hashlib

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from regionspot.inference.results import RegionResult
from regionspot.masks.base import as_region_masks

Rect = tuple[float, float, float, float]  # x1, y1, x2, y2

FONT_FRACTION = 1 / 30  # label text height as a share of the image's shorter side ...
FONT_RANGE = (11, 120)
UNKNOWN_COLOUR = (150, 150, 150)  # a region that is none of the vocabulary's classes  # ... within these pixel sizes (readable on a thumbnail, not a banner on a poster)


def class_colour(name: str) -> tuple[int, int, int]:
    """The RGB colour of a class: hue, saturation and brightness from a hash of its name, so the same name
    has the same colour in every picture and every run (Python's ``hash`` is salted per process; md5 is
    not), and two classes of similar hue usually still differ in shade."""
    digest = hashlib.md5(name.encode("utf-8")).digest()
    hue = int.from_bytes(digest[:2], "big") / 0x10000
    saturation = 0.55 + 0.4 * digest[2] / 255
    value = 0.75 + 0.25 * digest[3] / 255
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
    return int(r * 255), int(g * 255), int(b * 255)


def text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``background`` (relative luminance, ITU-R BT.709)."""
    luminance = 0.2126 * background[0] + 0.7152 * background[1] + 0.0722 * background[2]
    return (0, 0, 0) if luminance >= 110 else (255, 255, 255)


def font_size(width: int, height: int) -> int:
    """Label text size in pixels for a width × height image: ``FONT_FRACTION`` of the shorter side,
    clamped to ``FONT_RANGE``."""
    return int(min(max(round(min(width, height) * FONT_FRACTION), FONT_RANGE[0]), FONT_RANGE[1]))


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # a scalable font (Pillow >= 10.1 with FreeType)
    except (TypeError, ImportError, OSError):  # older Pillow, or Pillow built without FreeType
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


def _overlaps(rects: np.ndarray, others: np.ndarray) -> np.ndarray:
    """(M,) summed intersection area of each of ``rects`` (M, 4) with ``others`` (K, 4), XYXY."""
    if len(others) == 0:
        return np.zeros(len(rects))
    w = np.minimum(rects[:, None, 2], others[None, :, 2]) - np.maximum(rects[:, None, 0], others[None, :, 0])
    h = np.minimum(rects[:, None, 3], others[None, :, 3]) - np.maximum(rects[:, None, 1], others[None, :, 1])
    return (np.clip(w, 0, None) * np.clip(h, 0, None)).sum(1)


def place_label(box: Rect, size: tuple[float, float], canvas: tuple[int, int], avoid: list[Rect],
                labels: list[Rect] = ()) -> Rect:
    """Where a (w, h) tag for ``box`` goes, inside the canvas (W, H).

    Tried first: above, below, beside the box, or inside its top edge. A spot must not cover a tag in
    ``labels`` (the tags already placed) when any spot anywhere avoids them; among those, the cost is the
    area it covers of the boxes in ``avoid`` plus its distance from ``box`` times the tag's height, and the
    first cheapest spot wins. When every spot near the box is taken the tag moves away along a grid of
    the canvas (``draw_result`` then draws a leader line back to its box).
    """
    x1, y1, x2, y2 = box
    w, h = size
    near = [
        (x1, y1 - h), (x1, y2), (x2 - w, y1 - h), (x2 - w, y2),  # above / below, left- or right-aligned
        (x2, y1), (x1 - w, y1), (x2, y2 - h), (x1 - w, y2 - h),  # beside
        (x1, y1),                                                # inside the top-left corner
    ]
    span_x, span_y = max(0.0, canvas[0] - w), max(0.0, canvas[1] - h)
    step_x, step_y = max(w / 4, span_x / 60, 1.0), max(h / 2, span_y / 60, 1.0)
    grid = [(gx, gy) for gy in np.arange(0.0, span_y + 1e-6, step_y) for gx in np.arange(0.0, span_x + 1e-6, step_x)]
    spots = np.asarray(near + grid, np.float64)
    spots[:, 0] = spots[:, 0].clip(0.0, span_x)
    spots[:, 1] = spots[:, 1].clip(0.0, span_y)
    rects = np.concatenate([spots, spots + np.asarray([w, h])], 1)  # (M, 4)
    covered = _overlaps(rects, np.asarray(list(labels), np.float64).reshape(-1, 4))
    gap_x = np.maximum(0.0, np.maximum(x1 - rects[:, 2], rects[:, 0] - x2))
    gap_y = np.maximum(0.0, np.maximum(y1 - rects[:, 3], rects[:, 1] - y2))
    cost = _overlaps(rects, np.asarray(list(avoid), np.float64).reshape(-1, 4)) + np.hypot(gap_x, gap_y) * h
    free = covered <= 1e-6
    cost = np.where(free, cost, np.inf) if free.any() else covered  # tags never cover tags when avoidable
    return tuple(float(v) for v in rects[int(np.argmin(cost))])


def draw_result(image: Image.Image, result: RegionResult, mask_alpha: float = 0.25, show_scores: bool = True) -> Image.Image:
    """Return a new RGB image with the regions of ``result`` drawn on ``image``.

    Masks (when present at the image's size) get a ``mask_alpha`` tint and a solid outline; each region
    gets a thin box in its class's colour (:func:`class_colour`), its prompt points (``result.points``;
    NaN rows are skipped) as dots, and a tag "label 0.93" (the confidence, ``display_scores``). Tags are placed most confident
    first (:func:`place_label`), clear of each other and, where there is room, of the regions.
    """
    canvas = np.array(image.convert("RGB"), dtype=np.uint8)  # (H, W, 3), a copy we draw on
    height, width = canvas.shape[:2]
    known = result.is_known
    colours = [class_colour(label) if known[i] else UNKNOWN_COLOUR for i, label in enumerate(result.labels)]
    size = font_size(width, height)
    line = max(1, round(size / 8))
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
    font = _font(size)
    boxes: list[Rect] = [tuple(float(v) for v in b) for b in result.boxes]
    scores = result.display_scores
    for i, colour in enumerate(colours):
        if known[i]:
            draw.rectangle(boxes[i], outline=colour, width=max(1, line // 2))
        else:
            _dashed_rectangle(draw, boxes[i], colour, max(1, line // 2), dash=max(3, size // 2))
    if result.points is not None:
        radius = max(3.0, size / 3)
        for i, colour in enumerate(colours):
            for x, y in np.asarray(result.points[i], np.float64).reshape(-1, 2):
                if not np.isfinite([x, y]).all():  # a region without point prompts among ones with them
                    continue
                for grow, fill in ((1.0, (0, 0, 0)), (0.8, (255, 255, 255)), (0.5, colour)):  # a target: any background
                    r = radius * grow
                    draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
    placed: list[Rect] = []
    pad = max(2, round(size / 6))
    for i in sorted(range(len(colours)), key=lambda j: -float(scores[j])):
        colour = colours[i]
        text = f"{result.labels[i]} {scores[i]:.2f}" if show_scores else result.labels[i]
        if not known[i]:
            text = f"{result.display_labels[i]} (best: {text})"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        rect = place_label(boxes[i], (right - left + 2 * pad, bottom - top + 2 * pad), out.size, boxes, placed)
        placed.append(rect)
        _leader(draw, rect, boxes[i], colour, max(1, line // 2))
        draw.rectangle(rect, fill=colour)
        draw.text((rect[0] + pad - left, rect[1] + pad - top), text, fill=text_colour(colour), font=font)
    return out


def _dashed_rectangle(draw: ImageDraw.ImageDraw, box: Rect, colour: tuple[int, int, int], width: int, dash: int) -> None:
    """A box outline of ``dash``-pixel dashes and gaps."""
    x1, y1, x2, y2 = box
    for (ax, ay), (bx, by) in (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)), ((x2, y2), (x1, y2)), ((x1, y2), (x1, y1))):
        length = float(np.hypot(bx - ax, by - ay))
        for start in np.arange(0.0, length, 2 * dash):
            end = min(start + dash, length)
            t0, t1 = start / max(length, 1e-9), end / max(length, 1e-9)
            draw.line((ax + t0 * (bx - ax), ay + t0 * (by - ay), ax + t1 * (bx - ax), ay + t1 * (by - ay)),
                      fill=colour, width=width)


def _leader(draw: ImageDraw.ImageDraw, tag: Rect, box: Rect, colour: tuple[int, int, int], width: int) -> None:
    """A line from a tag that had to move away from its box to the nearest point of the box."""
    cx, cy = (tag[0] + tag[2]) / 2, (tag[1] + tag[3]) / 2
    bx, by = min(max(cx, box[0]), box[2]), min(max(cy, box[1]), box[3])  # the box's point nearest the tag
    tx, ty = min(max(bx, tag[0]), tag[2]), min(max(by, tag[1]), tag[3])  # the tag's point nearest that
    if np.hypot(tx - bx, ty - by) > 2:
        draw.line((tx, ty, bx, by), fill=colour, width=width)
