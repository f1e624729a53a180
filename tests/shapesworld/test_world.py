"""The world: categories and their frequency buckets, shape rasterisation, object sizes."""

import numpy as np
import pytest

from regionspot.errors import RegionSpotError
from regionspot.shapesworld.shapes import SHAPES, rasterize_shape
from regionspot.shapesworld.world import COLOURS, WorldConfig, render_image, shapesworld_categories


def test_categories_and_buckets():
    cats = shapesworld_categories(0)
    assert len(cats) == len(COLOURS) * len(SHAPES) == 144
    assert {c.name for c in cats} >= {"red circle", "black heart", "white ring"}
    counts = {b: sum(c.frequency == b for c in cats) for b in "fcr"}
    assert counts == {"f": 72, "c": 43, "r": 29}
    # Every colour and shape is seen in some non-rare category.
    assert {c.colour for c in cats if c.frequency != "r"} == set(COLOURS)
    assert {c.shape for c in cats if c.frequency != "r"} == set(SHAPES)
    assert [c.frequency for c in shapesworld_categories(0)] == [c.frequency for c in cats]
    assert [c.frequency for c in shapesworld_categories(1)] != [c.frequency for c in cats]
    with pytest.raises(RegionSpotError, match="Unknown ShapesWorld"):
        shapesworld_categories(0, colours=["mauve"])


def test_every_shape_rasterises_whole_and_distinct():
    silhouettes = {}
    for shape in SHAPES:
        alpha, x0, y0 = rasterize_shape(shape, 40.0, 40.0, 16.0, 1.0, 0.7)
        mask = alpha >= 0.5
        assert mask.sum() > 40, shape
        # The patch covers every filled polygon of the shape: its border stays empty.
        assert not mask[0].any() and not mask[-1].any() and not mask[:, 0].any() and not mask[:, -1].any(), shape
        canvas = np.zeros((80, 80), dtype=bool)
        canvas[y0 : y0 + mask.shape[0], x0 : x0 + mask.shape[1]] = mask
        silhouettes[shape] = canvas
    for i, a in enumerate(SHAPES):
        for b in SHAPES[i + 1 :]:
            iou = (silhouettes[a] & silhouettes[b]).sum() / (silhouettes[a] | silhouettes[b]).sum()
            assert iou < 0.85, (a, b, iou)


def test_radius_range_bounds_the_object_size():
    categories = shapesworld_categories(0)
    probs = np.full(len(categories), 1.0 / len(categories))
    for index in range(10):
        for low, high in ((0.06, 0.1), (0.3, 0.4)):
            _, objects = render_image(np.random.default_rng([3, index]), categories, probs, image_size=128,
                                      world=WorldConfig(max_objects=1, max_distractors=0, radius_range=(low, high)))
            x0, y0, x1, y1 = objects[0].box
            # A loose bound: the farthest polygon point is the square's corner (1.13 radii); stretch adds <= e^0.15.
            assert max(x1 - x0, y1 - y0) <= 2 * high * 128 * 1.31 * 1.17 + 2
            if low == 0.3:
                assert max(x1 - x0, y1 - y0) >= 0.3 * 128  # every shape spans at least one radius
