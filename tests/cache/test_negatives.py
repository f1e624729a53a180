"""Background boxes for the cache's negatives: clear of every labelled box, inside the image, repeatable."""

from __future__ import annotations

import torch

from regionspot.cache.negatives import background_boxes
from regionspot.data.transforms import box_iou


def test_background_boxes_overlap_no_labelled_box_and_stay_inside_the_image():
    objects = torch.tensor([[10.0, 10.0, 60.0, 60.0], [100.0, 40.0, 180.0, 120.0], [30.0, 150.0, 90.0, 230.0]])
    boxes = background_boxes(objects, 256, 240, count=8, max_iou=0.1, seed=3)
    assert boxes.shape == (8, 4)
    assert (box_iou(boxes, objects) < 0.1).all()
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 256).all() and (boxes[:, 3] <= 240).all()
    assert (boxes[:, 2:] > boxes[:, :2]).all()
    # Object-like sizes: every side within 0.5x..2x of some labelled box's (here 50..80 px).
    sides = boxes[:, 2:] - boxes[:, :2]
    assert (sides >= 24).all() and (sides <= 161).all()


def test_the_same_seed_gives_the_same_boxes_and_another_seed_others():
    objects = torch.tensor([[50.0, 50.0, 90.0, 90.0]])
    a = background_boxes(objects, 128, 128, 4, 0.1, seed=11)
    assert torch.equal(a, background_boxes(objects, 128, 128, 4, 0.1, seed=11))
    assert not torch.equal(a, background_boxes(objects, 128, 128, 4, 0.1, seed=12))


def test_a_full_image_gives_fewer_boxes_and_no_objects_gives_image_fractions():
    full = torch.tensor([[0.0, 0.0, 64.0, 64.0]])
    assert len(background_boxes(full, 64, 64, 5, 0.1, seed=0)) == 0  # every candidate overlaps it
    free = background_boxes(torch.zeros(0, 4), 200, 100, 3, 0.1, seed=0)
    assert free.shape == (3, 4)
    assert background_boxes(full, 64, 64, 0, 0.1, seed=0).shape == (0, 4)
