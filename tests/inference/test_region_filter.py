import numpy as np
import pytest

from regionspot.errors import PromptError
from regionspot.inference.region_filter import RegionFilter, filter_result, keep_regions
from regionspot.inference.results import RegionResult
from regionspot.masks.base import DenseMasks

CAT, DOG = 0, 1


def test_duplicates_go_whatever_their_labels():
    boxes = [[10, 10, 50, 50], [12, 11, 51, 52], [11, 10, 50, 49], [60, 60, 90, 90]]
    ids = [CAT, CAT, DOG, CAT]  # the second is a near-copy of the first; the third is the same object as a dog
    confidence = [0.6, 0.9, 0.5, 0.4]
    kept = keep_regions(boxes, confidence, RegionFilter(min_confidence=0.1, nms_iou=0.5))
    assert kept.tolist() == [1, 3]  # most confident first; both copies of the object are gone, the dog one too
    everything = keep_regions(boxes, confidence, RegionFilter(min_confidence=0.1, nms_iou=1.0, contained=2.0))
    assert everything.tolist() == [1, 0, 2, 3]
    per_class = keep_regions(boxes, confidence, RegionFilter(min_confidence=0.1, nms_iou=0.5, per_class=True),
                             class_ids=ids)
    assert per_class.tolist() == [1, 2, 3]  # class-aware: the cat copy goes, the dog reading of the object stays
    with pytest.raises(PromptError, match="class_ids"):
        keep_regions(boxes, confidence, RegionFilter(per_class=True))


def test_the_rank_decides_which_copy_stays():
    boxes = [[10, 10, 50, 50], [12, 11, 51, 52]]
    stability = [0.95, 0.8]  # the less confident copy is the more stable one
    kept = keep_regions(boxes, [0.3, 0.9], RegionFilter(min_confidence=0.1, nms_iou=0.5), rank=stability)
    assert kept.tolist() == [0]
    assert keep_regions(boxes, [0.3, 0.9], RegionFilter(min_confidence=0.1, nms_iou=0.5)).tolist() == [1]


def test_background_below_the_confidence_goes():
    boxes = [[0, 0, 100, 100], [10, 10, 30, 30], [50, 50, 70, 70]]
    kept = keep_regions(boxes, [0.05, 0.5, 0.2], RegionFilter(min_confidence=0.2))
    assert kept.tolist() == [1, 2]
    assert keep_regions(boxes, [0.05, 0.1, 0.15], RegionFilter(min_confidence=0.2)).tolist() == []


def test_a_part_inside_a_larger_better_ranked_box_goes():
    whole, part = [10, 10, 110, 110], [20, 20, 50, 50]  # IoU 0.09: NMS alone keeps both
    assert keep_regions([part, whole], [0.5, 0.9], RegionFilter(contained=0.8)).tolist() == [1]
    # the part ranked first stays (the whole is not inside it), and the whole stays too
    assert keep_regions([part, whole], [0.9, 0.5], RegionFilter(contained=0.8)).tolist() == [0, 1]
    assert keep_regions([part, whole], [0.5, 0.9], RegionFilter(contained=2.0)).tolist() == [1, 0]
    half_out = [90, 20, 130, 50]  # half of it lies outside the larger box
    assert keep_regions([half_out, whole], [0.5, 0.9], RegionFilter(contained=0.8)).tolist() == [1, 0]


def test_filter_result_keeps_every_field_of_the_kept_regions():
    boxes = np.array([[10, 10, 50, 50], [11, 11, 50, 50], [60, 60, 90, 90]], np.float32)
    masks = np.zeros((3, 100, 100), bool)
    for i, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
        masks[i, y1:y2, x1:x2] = True
    confidence = np.array([0.3, 0.8, 0.6], np.float32)
    result = RegionResult(
        boxes=boxes, labels=["cat", "cat", "dog"], class_ids=np.array([0, 0, 1]), scores=confidence / 2,
        probs=np.eye(3, 2, dtype=np.float32), topk_ids=np.array([[0], [0], [1]]), topk_scores=confidence[:, None] / 2,
        iou=np.ones(3, np.float32), vocabulary=["cat", "dog"], image_size=(100, 100), masks=DenseMasks(masks),
        confidence=confidence, topk_confidence=confidence[:, None], points=np.arange(6, dtype=np.float32).reshape(3, 1, 2),
    )
    kept = filter_result(result, RegionFilter(min_confidence=0.2, nms_iou=0.5))
    assert filter_result(result, RegionFilter(min_confidence=0.2, nms_iou=0.5), rank=np.array([3.0, 2.0, 1.0])).labels == ["cat", "dog"]
    assert kept.labels == ["cat", "dog"] and kept.display_scores.tolist() == pytest.approx([0.8, 0.6])
    np.testing.assert_array_equal(kept.boxes, boxes[[1, 2]])
    np.testing.assert_array_equal(np.asarray(kept.masks), masks[[1, 2]])
    np.testing.assert_array_equal(kept.points, result.points[[1, 2]])
    assert kept.scores.tolist() == pytest.approx([0.4, 0.3]) and kept.topk_confidence.shape == (2, 1)


def test_defaults_do_something_and_bad_values_say_which():
    default = RegionFilter()
    assert default.min_confidence > 0 and default.nms_iou < 1 and default.contained <= 1
    with pytest.raises(PromptError, match="min_confidence"):
        RegionFilter(min_confidence=1.5)
    with pytest.raises(PromptError, match="nms_iou"):
        RegionFilter(nms_iou=0.0)
