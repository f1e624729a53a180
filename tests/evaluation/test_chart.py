"""The report's AP-by-frequency chart: bars as tall as their values, one colour per series, and no plotting library."""

import subprocess
import sys

import numpy as np
from PIL import Image

from regionspot.evaluation.chart import BUCKETS, COLOURS, draw_bar_chart


def _bar_heights(image: np.ndarray, colour: str) -> list[int]:
    """Per bucket slot, the tallest run of pixels of ``colour`` in any column (the bar's height)."""
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    mask = (image == rgb).all(axis=2)
    width = image.shape[1]
    heights = []
    for b in range(len(BUCKETS)):
        part = mask[:, 64 + (width - 80) * b // len(BUCKETS) : 64 + (width - 80) * (b + 1) // len(BUCKETS)]
        heights.append(int(part.sum(axis=0).max()))
    return heights


def test_bars_are_as_tall_as_their_values(tmp_path):
    path = tmp_path / "chart.png"
    draw_bar_chart(path, [("a (box)", [10.0, 20.0, 40.0, 80.0]), ("a (mask)", [80.0, 40.0, 0.0, 5.0])], "title")
    with Image.open(path) as im:
        assert im.format == "PNG"
        pixels = np.asarray(im.convert("RGB")).astype(int)
    first, second = _bar_heights(pixels, COLOURS[0]), _bar_heights(pixels, COLOURS[1])
    assert first[0] > 20  # 10 of an axis up to 100 on a 324-pixel plot
    for a, b in zip(first, first[1:]):
        assert abs(b / a - 2) < 0.1, first
    assert abs(second[0] - first[3]) <= 1 and abs(second[1] - first[2]) <= 1


def test_the_report_imports_no_plotting_library(tmp_path):
    code = ("import sys; from regionspot.evaluation.chart import draw_bar_chart; "
            f"draw_bar_chart({str(tmp_path / 'c.png')!r}, [('x', [1, 2, 3, 4])], 't'); "
            "assert 'matplotlib' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
