"""Fitting "none of these" on labelled regions: background boxes, held-out splits, the chosen score and threshold;
and the shipped rule of the embedded model on the CI subset (a region of a class outside the vocabulary)."""

from __future__ import annotations

import numpy as np
import pytest

from regionspot.evaluation.rejection import (
    BACKGROUND_OVERLAP,
    LabelledRegions,
    background_boxes,
    fit_rejection,
    holdout_splits,
    split_scores,
)


def test_background_boxes_cover_no_object():
    objects = np.array([[10, 10, 60, 60], [100, 20, 180, 90]], np.float32)
    boxes = background_boxes(objects, (200, 200), 20, np.random.default_rng(0))
    assert len(boxes) == 20
    for box in boxes:
        iw = np.clip(np.minimum(box[2], objects[:, 2]) - np.maximum(box[0], objects[:, 0]), 0, None)
        ih = np.clip(np.minimum(box[3], objects[:, 3]) - np.maximum(box[1], objects[:, 1]), 0, None)
        assert (iw * ih).max() <= BACKGROUND_OVERLAP * (box[2] - box[0]) * (box[3] - box[1])
        assert box[0] >= 0 and box[1] >= 0 and box[2] <= 200 and box[3] <= 200


def test_holdout_splits_hold_out_each_fraction_and_keep_a_class():
    splits = holdout_splits(8, fractions=(0.25, 0.5, 0.75), repeats=2)
    assert [len(s) for s in splits] == [2, 2, 4, 4, 6, 6]
    assert all(len(np.unique(s)) == len(s) and s.max() < 8 for s in splits)
    assert [len(s) for s in holdout_splits(2, fractions=(0.9,), repeats=1)] == [1]


def _regions(rng, separated: bool) -> LabelledRegions:
    """20 classes; an object's own class logit is high; unknown/background rows are flat when ``separated``."""
    labels = np.r_[rng.integers(0, 20, 400), np.full(100, -1)]
    logits = rng.normal(0, 1, (500, 20))
    objects = labels >= 0
    logits[np.flatnonzero(objects), labels[objects]] += 6.0 if separated else 0.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return LabelledRegions(logits.astype(np.float32), probs.astype(np.float32), labels, np.zeros(500, np.int64),
                           np.zeros((500, 4), np.float32))


def test_fit_rejection_picks_a_separating_score_and_keeps_95_percent_of_known():
    regions = _regions(np.random.default_rng(0), separated=True)
    rule, measured = fit_rejection(regions, temperature=1.0)
    assert set(measured) == {"msp", "max_logit", "energy", "sigmoid"}
    best = measured[rule.score]
    assert best["auroc_unknown"] > 0.95 and best["auroc_background"] > 0.95
    assert best["balanced_accuracy"] == max(m["balanced_accuracy"] for m in measured.values())
    assert best["balanced_accuracy"] > 0.9 and best["threshold"] == rule.threshold
    from regionspot.modeling.rejection import rejection_scores

    pooled = [rejection_scores(regions.logits[regions.objects], rule.score)]
    pooled += [split_scores(regions, s, rule.score, 1.0)["known"] for s in holdout_splits(20)]
    assert (np.concatenate(pooled) >= rule.threshold).mean() >= 0.95 and rule.known_rate == 0.95
    # a head trained with negatives is judged by its learned score only
    learned, measured = fit_rejection(regions, temperature=1.0, trained_with_negatives=True)
    assert learned.score == "learned" and set(measured) == {"learned"}


def test_scores_that_cannot_separate_measure_near_chance():
    rule, measured = fit_rejection(_regions(np.random.default_rng(1), separated=False), temperature=1.0)
    assert all(abs(m["auroc_unknown"] - 0.5) < 0.1 for m in measured.values())


def test_a_split_scores_known_regions_against_the_vocabulary_without_the_held_out_classes():
    regions = _regions(np.random.default_rng(2), separated=True)
    held_out = np.arange(10)
    split = split_scores(regions, held_out, "max_logit", 1.0)
    assert len(split["known"]) == int((regions.labels >= 10).sum())
    assert len(split["unknown"]) == int(((regions.labels >= 0) & (regions.labels < 10)).sum())
    assert len(split["background"]) == 100 and split["known_correct"].mean() > 0.9


@pytest.fixture(scope="module")
def ci_subset_decisions(tmp_path_factory):
    """The embedded model's shipped rule (fitted on other images) on the first 30 CI-subset images, with half the
    classes held out of the vocabulary: (known (R,) bool, outside (R,) bool, inside (R,) bool)."""
    from regionspot.data.coco_json import CocoDetectionDataset
    from regionspot.evaluation.rejection import collect_regions
    from regionspot.inference.predictor import RegionSpotPredictor
    from regionspot.model import RegionSpot
    from regionspot.modeling.rejection import is_known, rejection_scores
    from regionspot.shapesworld.guard import regenerate_ci_subset

    tmp_path = tmp_path_factory.mktemp("ci")
    model = RegionSpot.from_pretrained(device="cpu")
    rule = model.config.rejection
    assert rule.threshold is not None, "the embedded head carries no rejection threshold: run regionspot calibrate"
    info = regenerate_ci_subset(tmp_path / "data", 30)
    dataset = CocoDetectionDataset(info["val_json"], info["image_root"])
    regions = collect_regions(RegionSpotPredictor(model, text_cache_dir=str(tmp_path / "text")), dataset,
                              background_per_image=0)
    held_out = np.arange(0, 64, 2)
    vocabulary = np.setdiff1d(np.arange(64), held_out)
    known = is_known(rejection_scores(regions.logits[:, vocabulary], rule.score, model.config.display_temperature),
                     rule.threshold)
    return known, np.isin(regions.labels, held_out), np.isin(regions.labels, vocabulary)


def test_the_shipped_threshold_rejects_objects_outside_the_vocabulary_on_the_ci_subset(ci_subset_decisions):
    """Regions of classes outside the vocabulary are answered "unknown" at the shipped threshold, while it keeps
    about 95 % of the objects of the vocabulary on these unseen images (it was fitted on other ones)."""
    known, outside, inside = ci_subset_decisions
    assert (~known[outside]).sum() >= 3
    assert 0.88 <= known[inside].mean() <= 0.99
