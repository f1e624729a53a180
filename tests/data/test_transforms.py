import numpy as np
import pytest
import torch

from regionspot.data.transforms import (
    box_area,
    clip_boxes,
    hflip_boxes,
    scale_boxes,
    shortest_edge_size,
    xywh_to_xyxy,
    xyxy_to_xywh,
)

XYWH = np.array([[10.0, 20.0, 30.0, 40.0], [0.0, 0.0, 5.5, 1.0]], dtype=np.float32)
XYXY = np.array([[10.0, 20.0, 40.0, 60.0], [0.0, 0.0, 5.5, 1.0]], dtype=np.float32)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_conversions_round_trip_and_keep_type(kind):
    boxes = XYWH if kind == "numpy" else torch.from_numpy(XYWH)
    xyxy = xywh_to_xyxy(boxes)
    assert type(xyxy) is type(boxes)
    assert xyxy.dtype == boxes.dtype
    np.testing.assert_allclose(np.asarray(xyxy), XYXY)
    np.testing.assert_allclose(np.asarray(xyxy_to_xywh(xyxy)), XYWH)
    # Inputs are not modified.
    np.testing.assert_allclose(np.asarray(boxes), XYWH)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_clip_flip_scale_area(kind):
    raw = np.array([[-5.0, -3.0, 120.0, 50.0]], dtype=np.float32)
    boxes = raw if kind == "numpy" else torch.from_numpy(raw)
    clipped = clip_boxes(boxes, height=40, width=100)
    np.testing.assert_allclose(np.asarray(clipped), [[0, 0, 100, 40]])
    flipped = hflip_boxes(torch.tensor([[10.0, 1.0, 30.0, 2.0]]) if kind == "torch" else np.array([[10.0, 1.0, 30.0, 2.0]]), 100)
    np.testing.assert_allclose(np.asarray(flipped), [[70, 1, 90, 2]])
    np.testing.assert_allclose(np.asarray(hflip_boxes(flipped, 100)), [[10, 1, 30, 2]])
    scaled = scale_boxes(clipped, 0.5, 2.0)
    np.testing.assert_allclose(np.asarray(scaled), [[0, 0, 50, 80]])
    np.testing.assert_allclose(np.asarray(scale_boxes(clipped, 2.0)), [[0, 0, 200, 80]])
    area = box_area(np.asarray(XYXY) if kind == "numpy" else torch.from_numpy(XYXY))
    np.testing.assert_allclose(np.asarray(area), [1200.0, 5.5])
    inverted = np.array([[5.0, 5.0, 1.0, 9.0]], dtype=np.float32)
    assert float(box_area(inverted)[0]) == 0.0


def test_bad_box_shape_raises():
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        xywh_to_xyxy(np.zeros((3, 5)))


def _detectron2_shortest_edge(h, w, short, max_size):
    """detectron2's ResizeShortestEdge.get_output_shape, transcribed step by step as a reference."""
    size = short * 1.0
    scale = size / min(h, w)
    if h < w:
        newh, neww = size, scale * w
    else:
        newh, neww = scale * h, size
    if max(newh, neww) > max_size:
        scale = max_size * 1.0 / max(newh, neww)
        newh = newh * scale
        neww = neww * scale
    return int(newh + 0.5), int(neww + 0.5)


@pytest.mark.parametrize("size", [(480, 640), (640, 480), (427, 640), (333, 777), (1, 1), (64, 64), (799, 801),
                                  (375, 1001), (500, 3000), (3000, 500), (1333, 1), (801, 1201), (612, 612)])
def test_shortest_edge_matches_detectron2_incl_the_cap(size):
    h, w = size
    assert shortest_edge_size(h, w, 800, 1333) == _detectron2_shortest_edge(h, w, 800, 1333)


def test_shortest_edge_known_values():
    assert shortest_edge_size(480, 640) == (800, 1067)
    assert shortest_edge_size(333, 777) == (571, 1333)  # the long side hits the 1333 cap
    assert shortest_edge_size(500, 3000) == (222, 1333)
    assert shortest_edge_size(1000, 1000) == (800, 800)
    with pytest.raises(ValueError, match="positive"):
        shortest_edge_size(0, 10)
