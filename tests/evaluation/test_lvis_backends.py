"""The two LVIS AP backends called directly: the same numbers on the same capped input, the GT untouched."""

from __future__ import annotations

import copy
import math

import pytest

from regionspot.evaluation.lvis_backends import BACKENDS, METRIC_NAMES
from regionspot.evaluation.lvis_inputs import as_lvis_style, load_results


def _case():
    gt = as_lvis_style({
        "images": [{"id": 1, "height": 100, "width": 100}, {"id": 2, "height": 100, "width": 100}],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20]},
            {"id": 2, "image_id": 2, "category_id": 2, "bbox": [40, 40, 30, 30]},
        ],
    }, frequency={1: "f", 2: "c"})
    dets = [
        {"image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20], "score": 0.9},  # TP
        {"image_id": 2, "category_id": 1, "bbox": [0, 0, 20, 20], "score": 0.95},  # a negative on 2: FP first
        {"image_id": 2, "category_id": 2, "bbox": [40, 40, 30, 30], "score": 0.8},  # TP
    ]
    return gt, load_results(dets, gt, "bbox")


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_backend_numbers_by_hand(backend):
    gt, dets = _case()
    before = copy.deepcopy(gt)
    metrics, per_category = BACKENDS[backend](gt, dets, "bbox")
    assert set(metrics) == set(METRIC_NAMES)
    assert gt == before  # the backends annotate a copy
    # a: FP then TP (recall 1 at precision .5): AP .5 at every IoU threshold; b: TP alone: AP 1
    assert per_category.shape == (2,) and per_category.tolist() == pytest.approx([0.5, 1.0], abs=1e-6)
    assert metrics["AP"] == pytest.approx(0.75, abs=1e-6)
    assert metrics["APf"] == pytest.approx(0.5, abs=1e-6) and metrics["APc"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["APr"] < 0 or math.isnan(metrics["APr"])  # no rare category: undefined
