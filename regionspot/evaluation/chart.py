"""The report's AP-by-frequency chart, drawn with Pillow: grouped bars (one per row and iou type) over the rare /
common / frequent / all buckets, each labelled with its value, a legend, the y axis in AP × 100 (written "AP x 100": the default font has no ×).

Pillow rather than a plotting library: the chart is a handful of rectangles and labels, and a plotting library's
import (≈ 0.4–1 s) would be most of what `regionspot eval` spends outside the model on a small set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

__all__ = ["BUCKETS", "draw_bar_chart"]

BUCKETS = (("APr", "rare (APr)"), ("APc", "common (APc)"), ("APf", "frequent (APf)"), ("AP", "all (AP)"))
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 40, 36  # margins around the plot, pixels (the legend's lines below it)
PLOT_HEIGHT, LEGEND_LINE = 324, 16


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # a Pillow without FreeType: its fixed bitmap font
        return ImageFont.load_default()


def _axis_top(values: Sequence[float]) -> tuple[float, float]:
    """(top of the y axis, tick step) for bars up to max(values), with room for their labels."""
    peak = max([*values, 1.0]) * 1.12
    for step in (0.5, 1, 2, 5, 10, 20, 25):
        if peak / step <= 6:
            return math.ceil(peak / step) * step, step
    return 100.0 * math.ceil(peak / 100), 20.0


def _centred(draw: ImageDraw.ImageDraw, x: float, y: float, text: str, font, fill: str = "black") -> None:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    draw.text((x - (right - left) / 2, y), text, font=font, fill=fill)


def draw_bar_chart(path: str | Path, series: Sequence[tuple[str, Sequence[float]]], title: str) -> None:
    """Write a PNG to ``path``: for each (label, one value per ``BUCKETS`` entry, AP × 100) of ``series`` a bar per
    bucket, grouped by bucket, in ``COLOURS`` order."""
    width = max(600, int(160 * len(BUCKETS) * max(1, len(series)) / 2))
    height = TOP + PLOT_HEIGHT + BOTTOM + LEGEND_LINE * len(series) + 8
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    small, normal = _font(10), _font(12)
    x0, x1, y0, y1 = LEFT, width - RIGHT, TOP, TOP + PLOT_HEIGHT  # the plot's box; y grows downwards
    top, step = _axis_top([v for _, values in series for v in values])

    def y_of(value: float) -> float:
        return y1 - (y1 - y0) * value / top

    for k in range(int(round(top / step)) + 1):  # grid lines and y tick labels
        y = y_of(k * step)
        draw.line([(x0, y), (x1, y)], fill="#e6e6e6")
        label = f"{k * step:g}"
        box = draw.textbbox((0, 0), label, font=small)
        draw.text((x0 - 6 - (box[2] - box[0]), y - (box[3] - box[1]) / 2 - box[1]), label, font=small, fill="black")
    slot = (x1 - x0) / len(BUCKETS)
    bar = 0.8 * slot / max(1, len(series))
    for b, (_, name) in enumerate(BUCKETS):
        centre = x0 + (b + 0.5) * slot
        for i, (_, values) in enumerate(series):
            left = centre + (i - len(series) / 2) * bar
            value = values[b]
            draw.rectangle([left, y_of(value), left + bar - 1, y1], fill=COLOURS[i % len(COLOURS)])
            _centred(draw, left + bar / 2, y_of(value) - 13, f"{value:.1f}", small)
        _centred(draw, centre, y1 + 8, name, normal)
    draw.rectangle([x0, y0, x1, y1], outline="black")
    _centred(draw, (x0 + x1) / 2, 12, title, normal)
    axis = Image.new("RGB", (120, 16), "white")  # the y axis' label, turned upright
    ImageDraw.Draw(axis).text((0, 1), "AP x 100", font=normal, fill="black")
    turned = axis.rotate(90, expand=True)
    image.paste(turned, (6, int((y0 + y1) / 2 - 60)))
    for i, (label, _) in enumerate(series):  # the legend, below the bucket names
        x, y = x0, y1 + BOTTOM + LEGEND_LINE * i
        draw.rectangle([x, y + 1, x + 11, y + 11], fill=COLOURS[i % len(COLOURS)])
        draw.text((x + 16, y), label, font=small, fill="black")
    image.save(path, format="PNG")
