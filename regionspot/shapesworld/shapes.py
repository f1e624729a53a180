"""ShapesWorld's shapes: each a polygon set in unit coordinates (radius ~1, y pointing down), and their
antialiased rasterisation at a pose (centre, radius, aspect, angle) in image pixels."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

SHAPES: tuple[str, ...] = (
    "circle", "square", "triangle", "star", "hexagon", "ring",
    "cross", "heart", "pentagon", "diamond", "crescent", "arrow",
)

SUPERSAMPLE = 4


def _regular(n: int, radius: float = 1.0, phase: float = -math.pi / 2) -> np.ndarray:
    t = phase + 2 * math.pi * np.arange(n) / n
    return np.stack([radius * np.cos(t), radius * np.sin(t)], axis=1)


def _star() -> np.ndarray:
    outer = _regular(5, 1.0)
    inner = _regular(5, 0.42, phase=-math.pi / 2 + math.pi / 5)
    return np.stack([outer, inner], axis=1).reshape(-1, 2)


def _heart() -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    pts = np.stack([x, y], axis=1)
    pts -= (pts.max(0) + pts.min(0)) / 2
    return pts / np.abs(pts).max()


def _cross(arm: float = 0.34) -> np.ndarray:
    a = arm
    return np.array(
        [(-a, -1), (a, -1), (a, -a), (1, -a), (1, a), (a, a), (a, 1), (-a, 1), (-a, a), (-1, a), (-1, -a), (-a, -a)],
        dtype=np.float64,
    )


def _arrow() -> np.ndarray:
    return np.array(
        [(-1, -0.28), (0.15, -0.28), (0.15, -0.75), (1, 0), (0.15, 0.75), (0.15, 0.28), (-1, 0.28)],
        dtype=np.float64,
    )


# Each shape: a list of (polygon, fill) drawn in order; fill 0 cuts a hole.
_SHAPE_POLYGONS: dict[str, list[tuple[np.ndarray, int]]] = {
    "circle": [(_regular(64), 255)],
    "square": [(_regular(4, math.sqrt(2) * 0.8, phase=math.pi / 4), 255)],
    "triangle": [(_regular(3, 1.0) + np.array([0.0, 0.2]), 255)],
    "star": [(_star(), 255)],
    "hexagon": [(_regular(6), 255)],
    "ring": [(_regular(64), 255), (_regular(64, 0.55), 0)],
    "cross": [(_cross(), 255)],
    "heart": [(_heart(), 255)],
    "pentagon": [(_regular(5) + np.array([0.0, 0.1]), 255)],
    "diamond": [(_regular(4, 1.0) * np.array([0.55, 1.0]), 255)],
    "crescent": [(_regular(64), 255), (_regular(64, 0.85) + np.array([0.48, -0.12]), 0)],
    "arrow": [(_arrow(), 255)],
}


def rasterize_shape(
    shape: str, cx: float, cy: float, radius: float, aspect: float, angle: float
) -> tuple[np.ndarray, int, int]:
    """Antialiased coverage of one posed shape.

    Returns (alpha, x0, y0): alpha is an (h, w) float32 patch in [0, 1] whose top-left pixel is at
    image column x0, row y0 (possibly negative or beyond the image; the caller crops).
    """
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    stretch = np.array([math.sqrt(aspect), 1.0 / math.sqrt(aspect)])
    posed = [((poly * stretch) @ rot.T * radius + (cx, cy), fill) for poly, fill in _SHAPE_POLYGONS[shape]]
    outline = np.concatenate([poly for poly, fill in posed if fill])
    x0 = int(math.floor(outline[:, 0].min())) - 1
    y0 = int(math.floor(outline[:, 1].min())) - 1
    x1 = int(math.ceil(outline[:, 0].max())) + 1
    y1 = int(math.ceil(outline[:, 1].max())) + 1
    w, h = x1 - x0, y1 - y0
    canvas = Image.new("L", (w * SUPERSAMPLE, h * SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(canvas)
    for poly, fill in posed:
        pts = (poly - (x0, y0)) * SUPERSAMPLE
        draw.polygon([tuple(p) for p in pts.tolist()], fill=fill)
    alpha = np.asarray(canvas.reduce(SUPERSAMPLE), dtype=np.float32) / 255.0
    return alpha, x0, y0
