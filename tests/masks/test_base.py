"""Whole-array mask geometry (tight boxes, flips) agrees with the box transforms."""

import numpy as np
import pytest
import torch

from regionspot.data.transforms import hflip_boxes, scale_boxes
from regionspot.masks.base import hflip_masks, mask_to_box
from regionspot.masks.resize import resize_masks


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
