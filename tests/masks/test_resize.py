"""Mask resizes: torch's nearest modes, and SAM's mask-logit upsampling, whole or any window of it bit for bit."""

import numpy as np
import pytest
import torch

from regionspot.masks.resize import (
    MaskFrame,
    bilinear_reach,
    logits_on_image,
    resize_logits_window,
    resize_masks,
    upsample_mask_logits,
)


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
