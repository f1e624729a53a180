"""The runtime's numpy prompt checks give what backbones/prompts gives the PyTorch path: the same clipped boxes
and points, and a PromptError for the same bad prompts."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from regionspot.backbones import prompts as torch_prompts
from regionspot.errors import PromptError
from regionspot.runtime import prompts

GOOD_BOXES = [[[10, 20, 50, 60]], [[-5, 3, 30, 400], [1.5, 2.5, 3.5, 4.5]], np.zeros((0, 4))]
BAD_BOXES = [[[1, 2, 3]], [[np.nan, 0, 5, 5]], [[10, 10, 5, 20]], [[200, 10, 300, 20]], "boxes"]


@pytest.mark.parametrize("boxes", GOOD_BOXES)
def test_good_boxes_are_clipped_alike(boxes):
    with warnings.catch_warnings(record=True) as ours_warnings:
        warnings.simplefilter("always")
        ours = prompts.validate_boxes(boxes, 100, 120)
    with warnings.catch_warnings(record=True) as torch_warnings:
        warnings.simplefilter("always")
        expected = torch_prompts.validate_boxes(boxes, 100, 120).numpy()
    np.testing.assert_array_equal(ours.reshape(-1, 4), expected.reshape(-1, 4))
    assert [str(w.message) for w in ours_warnings] == [str(w.message) for w in torch_warnings]


@pytest.mark.parametrize("boxes", BAD_BOXES)
def test_bad_boxes_are_refused_alike(boxes):
    with pytest.raises(PromptError) as expected:
        torch_prompts.validate_boxes(boxes, 100, 120)
    with pytest.raises(PromptError) as ours:
        prompts.validate_boxes(boxes, 100, 120)
    assert str(ours.value).split(";")[0].split(" ")[:2] == str(expected.value).split(";")[0].split(" ")[:2]


def test_points_and_labels_match_the_torch_checks():
    points, labels = [[[5, 6], [0, 0]], [[7, 8], [9, 9]]], [[1, -1], [0, 1]]
    ours = prompts.validate_points(points, labels, 100, 120)
    expected = torch_prompts.validate_points(points, labels, 100, 120)
    np.testing.assert_array_equal(ours[0], expected[0].numpy())
    np.testing.assert_array_equal(ours[1], expected[1].numpy())
    for bad in ([[[500, 5]]], [[[np.inf, 5]]]):
        with pytest.raises(PromptError):
            torch_prompts.validate_points(bad, None, 100, 120)
        with pytest.raises(PromptError):
            prompts.validate_points(bad, None, 100, 120)


def test_sam_prompts_encode_boxes_as_labelled_corners_and_pad_point_sets():
    boxes = prompts.validate_boxes([[10, 20, 50, 60]], 100, 200)
    coords, labels = prompts.sam_prompts(boxes, None, None, (100, 200), (50, 100))
    np.testing.assert_array_equal(coords, [[[5, 10], [25, 30]]])
    np.testing.assert_array_equal(labels, [[2, 3]])
    coords, labels = prompts.sam_prompts(None, [[40, 50]], None, (100, 200), (50, 100))
    np.testing.assert_array_equal(labels, [[1, -1]])
    coords, labels = prompts.sam_prompts(boxes, [[[40, 50]]], [[0]], (100, 200), (50, 100))
    np.testing.assert_array_equal(labels, [[0, 2, 3]])
