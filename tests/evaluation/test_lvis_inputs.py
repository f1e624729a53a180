"""The inputs of LVIS AP: the ground-truth checks, as_lvis_style, the detections' checks and the caps."""

from __future__ import annotations

import copy
import json

import pytest

from regionspot.errors import EvaluationError
from regionspot.evaluation.lvis_inputs import (
    as_lvis_style,
    cap_per_category,
    cap_per_image,
    load_ground_truth,
    load_results,
)


def _coco():
    """Two exhaustively labelled images: category 1 on both, category 2 on image 2, category 3 nowhere."""
    return {
        "images": [{"id": 1, "height": 50, "width": 50}, {"id": 2, "height": 50, "width": 50}],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 4, 5]},
            {"id": 2, "image_id": 2, "category_id": 1, "bbox": [1, 1, 2, 2], "area": 3.0},
            {"id": 3, "image_id": 2, "category_id": 2, "bbox": [5, 5, 2, 2]},
        ],
    }


def test_as_lvis_style_makes_absent_categories_negative_and_buckets_by_image_count():
    coco = _coco()
    before = copy.deepcopy(coco)
    lvis = as_lvis_style(coco, frequency={3: "r"})
    assert coco == before  # a copy
    assert [im["neg_category_ids"] for im in lvis["images"]] == [[2, 3], [3]]
    assert all(im["not_exhaustive_category_ids"] == [] for im in lvis["images"])
    assert [c["frequency"] for c in lvis["categories"]] == ["r", "r", "r"]  # < 10 images each; 3 given
    assert [a["area"] for a in lvis["annotations"]] == [20.0, 3.0, 4.0]  # w*h where missing
    assert load_ground_truth(lvis) is lvis


def test_load_ground_truth_names_the_fix(tmp_path):
    with pytest.raises(EvaluationError, match="not found"):
        load_ground_truth(tmp_path / "missing.json")
    with pytest.raises(EvaluationError, match="as_lvis_style"):
        load_ground_truth(_coco())
    lvis = as_lvis_style(_coco())
    lvis["annotations"][1]["id"] = 1
    (tmp_path / "gt.json").write_text(json.dumps(lvis))
    with pytest.raises(EvaluationError, match="renumber annotations"):
        load_ground_truth(tmp_path / "gt.json")


def test_load_results_keeps_only_the_read_fields_and_checks_them():
    gt = as_lvis_style(_coco())
    dets = [{"image_id": 1, "category_id": 2, "bbox": (1, 2, 3, 4), "score": 0.5, "extra": "x"}]
    assert load_results(dets, gt, "bbox") == [{"image_id": 1, "category_id": 2, "bbox": [1.0, 2.0, 3.0, 4.0],
                                               "score": 0.5}]
    assert dets[0]["bbox"] == (1, 2, 3, 4)  # the caller's dicts are not modified
    with pytest.raises(EvaluationError, match="image_id 9"):
        load_results([{**dets[0], "image_id": 9}], gt, "bbox")
    with pytest.raises(EvaluationError, match="bad bbox"):
        load_results([{**dets[0], "bbox": [0, 0, -1, 2]}], gt, "bbox")
    with pytest.raises(EvaluationError, match="RLE"):
        load_results([{**dets[0], "segmentation": [[0, 0, 1, 1]]}], gt, "segm")


def test_caps_keep_the_top_scores_in_input_order_and_ties_first_come():
    dets = [{"image_id": i % 2, "category_id": i % 3, "score": s} for i, s in enumerate([0.1, 0.9, 0.5, 0.9, 0.3, 0.9])]
    # image 0 keeps .5 and .3; image 1 has three tied .9s and keeps the first two
    assert cap_per_image(dets, 2) == [dets[1], dets[2], dets[3], dets[4]]
    assert cap_per_category(dets, 1) == [dets[1], dets[3], dets[5]]
    assert cap_per_image(dets, 3) == dets
