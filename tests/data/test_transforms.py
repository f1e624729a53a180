import numpy as np
import pytest
import torch

from regionspot.data.transforms import (
    MaskFrame,
    bilinear_reach,
    box_area,
    clip_boxes,
    hflip_boxes,
    hflip_masks,
    logits_on_image,
    mask_to_box,
    resize_logits_window,
    resize_masks,
    scale_boxes,
    shortest_edge_size,
    upsample_mask_logits,
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


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_mask_flip_and_resize_agree_with_boxes(kind):
    mask = np.zeros((1, 20, 30), dtype=bool)
    mask[0, 4:10, 3:12] = True  # box XYXY (3, 4, 12, 10)
    masks = mask if kind == "numpy" else torch.from_numpy(mask)
    box = mask_to_box(masks)
    np.testing.assert_allclose(np.asarray(box), [[3, 4, 12, 10]])
    np.testing.assert_allclose(np.asarray(mask_to_box(hflip_masks(masks))), np.asarray(hflip_boxes(box, 30)))
    resized = resize_masks(masks, 40, 60)
    assert tuple(resized.shape) == (1, 40, 60)
    np.testing.assert_allclose(np.asarray(mask_to_box(resized)), np.asarray(scale_boxes(box, 2.0, 2.0)))
    assert int(np.asarray(resized).sum()) == 4 * int(mask.sum())
    # Empty masks give zero boxes.
    empty = masks[:, :0]
    np.testing.assert_allclose(np.asarray(mask_to_box(empty)), np.zeros((1, 4)))
    np.testing.assert_allclose(np.asarray(mask_to_box(masks & False)), np.zeros((1, 4)))
    assert tuple(mask_to_box(masks[None]).shape) == (1, 1, 4)


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


@pytest.mark.parametrize(("source", "target"), [((64, 64), (800, 800)), ((800, 1067), (480, 640)),
                                                  ((571, 1333), (333, 777)), ((7, 5), (3, 11))])
def test_resize_masks_alignments_match_torch_nearest_modes(source, target):
    masks = torch.from_numpy(np.random.default_rng(0).random((2, *source)) > 0.5)
    legacy = torch.nn.functional.interpolate(masks[:, None].float(), size=target, mode="nearest")[:, 0].bool()
    exact = torch.nn.functional.interpolate(masks[:, None].float(), size=target, mode="nearest-exact")[:, 0].bool()
    assert torch.equal(resize_masks(masks, *target, align="corner"), legacy)
    assert torch.equal(resize_masks(masks, *target), exact)
    assert np.array_equal(resize_masks(masks.numpy(), *target, align="corner"), legacy.numpy())
    with pytest.raises(ValueError, match="align"):
        resize_masks(masks, *target, align="edge")


@pytest.mark.parametrize(("source", "target"), [
    ((37, 29), (211, 400)), ((64, 48), (1500, 2000)), ((1000, 800), (300, 250)), ((300, 300), (300, 300)),  # large
    ((37, 29), (211, 173)), ((48, 64), (13, 11)), ((1, 5), (9, 1)),  # small: torch's other kernel
])
def test_a_logit_window_is_that_part_of_torchs_bilinear_resize(source, target):
    logits = np.random.default_rng(1).standard_normal(source).astype(np.float32) * 6
    full = torch.nn.functional.interpolate(torch.from_numpy(logits)[None, None], target, mode="bilinear",
                                           align_corners=False)[0, 0].numpy()
    height, width = target
    windows = [((0, height), (0, width)), ((height // 3, height - height // 4), (width // 5, width // 2 + 1)),
               ((height - 1, height), (0, 1)), ((2, 2), (0, width))]
    for rows, cols in windows:
        part = resize_logits_window(logits, target, rows, cols)
        assert part.dtype == np.float32 and part.shape == (rows[1] - rows[0], cols[1] - cols[0])
        assert np.array_equal(part, full[rows[0] : rows[1], cols[0] : cols[1]])  # bit for bit, not approximately


def test_reach_bounds_where_a_resized_mask_can_be_positive():
    rng = np.random.default_rng(2)
    for _ in range(20):
        logits = np.full((30, 22), -5.0, np.float32)
        top, left = rng.integers(0, 27), rng.integers(0, 19)
        logits[top : top + 3, left : left + 3] = rng.random((3, 3)) * 5  # one small blob
        big = resize_logits_window(logits, (301, 397), (0, 301), (0, 397)) > 0
        rows = bilinear_reach((logits > 0).any(axis=1), 301)
        cols = bilinear_reach((logits > 0).any(axis=0), 397)
        assert big.any() and not big[~rows].any() and not big[:, ~cols].any()
        assert rows.sum() <= 8 * 301 / 30 and cols.sum() <= 8 * 397 / 22  # a few source pixels around the blob, not the image


def test_mask_logits_go_through_the_padded_frame():
    low_res = torch.randn(3, 16, 16)
    frame = MaskFrame(pad_size=64, reshaped_size=(48, 64), size=(150, 200))
    on_image = logits_on_image(low_res, frame)
    padded = torch.nn.functional.interpolate(low_res[:, None], (64, 64), mode="bilinear", align_corners=False)[:, 0]
    assert on_image.shape == (3, 48, 64) and torch.equal(on_image, padded[:, :48, :64])  # padding cropped off
    full = upsample_mask_logits(low_res, frame)
    assert full.shape == (3, 150, 200)
    assert np.array_equal(resize_logits_window(on_image[1].numpy(), (150, 200), (10, 90), (30, 200)),
                          full[1, 10:90, 30:200].numpy())
