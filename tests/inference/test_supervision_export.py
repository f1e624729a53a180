"""``RegionResult.to_supervision()``, the export the README and docs/python.md name (extra ``[supervision]``,
installed by ``[dev]``)."""

import numpy as np
import pytest

from regionspot.inference.results import RegionResult


def _result(masks=None):
    boxes = np.array([[10, 20, 120, 140], [5, 5, 40, 30]], np.float32)
    scores = np.array([0.7, 0.2], np.float32)
    return RegionResult(
        boxes=boxes, labels=["red star", "blue ring"], class_ids=np.array([1, 0]), scores=scores,
        probs=np.array([[0.3, 0.7], [0.2, 0.8]], np.float32), topk_ids=np.array([[1], [0]]),
        topk_scores=scores[:, None], iou=np.ones(2, np.float32), vocabulary=["blue ring", "red star"],
        image_size=(160, 200), masks=masks,
    )


def test_to_supervision_gives_detections_with_boxes_scores_classes_and_masks():
    sv = pytest.importorskip("supervision")
    masks = np.zeros((2, 160, 200), bool)
    masks[0, 20:140, 10:120] = True
    detections = _result(masks).to_supervision()
    assert isinstance(detections, sv.Detections) and len(detections) == 2
    np.testing.assert_array_equal(detections.xyxy, [[10, 20, 120, 140], [5, 5, 40, 30]])
    np.testing.assert_allclose(detections.confidence, [0.7, 0.2])
    assert list(detections.class_id) == [1, 0] and list(detections.data["class_name"]) == ["red star", "blue ring"]
    assert detections.mask.shape == (2, 160, 200) and detections.mask[0].sum() == 120 * 110
    assert _result().to_supervision().mask is None
