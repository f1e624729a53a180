"""The "none of these" scores on hand-made logits, the decision, threshold fitting and the AUROC / FPR measures."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from regionspot.modeling.rejection import (
    REJECTION_SCORES,
    auroc,
    decide,
    fit_threshold,
    fpr_at_tpr,
    is_known,
    rejection_scores,
)

LOGITS = np.array([[4.0, 0.0, 0.0], [1.0, 1.0, 1.0], [-2.0, -3.0, -9.0]])


def test_each_score_on_hand_made_logits():
    e = np.e
    np.testing.assert_allclose(rejection_scores(LOGITS, "msp"), [e**4 / (e**4 + 2), 1 / 3, 1 / (1 + e**-1 + e**-7)])
    np.testing.assert_allclose(rejection_scores(LOGITS, "max_logit"), [4, 1, -2])
    np.testing.assert_allclose(rejection_scores(LOGITS, "energy"), [np.log(e**4 + 2), 1 + np.log(3), np.log(e**-2 + e**-3 + e**-9)])
    sigmoid = 1 / (1 + np.exp(-np.array([4.0, 1.0, -2.0])))  # the focal loss's sigmoid, no bias
    np.testing.assert_allclose(rejection_scores(LOGITS, "sigmoid"), sigmoid)
    np.testing.assert_allclose(rejection_scores(LOGITS, "learned"), sigmoid)


def test_temperature_sharpens_msp_and_energy_only():
    np.testing.assert_allclose(rejection_scores(LOGITS, "msp", 0.5)[0], np.exp(8) / (np.exp(8) + 2))
    np.testing.assert_allclose(rejection_scores(LOGITS, "energy", 2.0)[1], 2 * (0.5 + np.log(3)))
    np.testing.assert_allclose(rejection_scores(LOGITS, "max_logit", 3.0), [4, 1, -2])


def test_msp_depends_on_the_vocabulary_size_max_logit_does_not():
    one = np.array([[2.0, 0.0]])
    many = np.array([[2.0] + [0.0] * 50])
    assert rejection_scores(many, "msp")[0] < rejection_scores(one, "msp")[0] - 0.5
    assert rejection_scores(many, "max_logit")[0] == rejection_scores(one, "max_logit")[0]


def test_bad_score_or_temperature_is_refused():
    with pytest.raises(ValueError, match="rejection score"):
        rejection_scores(LOGITS, "entropy")
    with pytest.raises(ValueError, match="temperature"):
        rejection_scores(LOGITS, "msp", 0.0)


def test_decision_is_score_at_least_threshold_and_off_without_one():
    assert is_known(np.array([0.1, 0.5, 0.9]), 0.5).tolist() == [False, True, True]
    scores, known = decide(LOGITS, {"score": "max_logit", "threshold": 1.0})
    assert known.tolist() == [True, True, False] and scores.dtype == np.float32
    assert decide(LOGITS, {"score": "max_logit", "threshold": None})[1] is None
    assert decide(LOGITS, {"score": "max_logit", "threshold": 1.0}, enabled=False)[1] is None


def test_fit_threshold_keeps_the_asked_share_of_known_regions():
    scores = np.random.default_rng(0).normal(size=1000)
    for rate in (0.5, 0.9, 0.95, 1.0):
        threshold = fit_threshold(scores, rate)
        assert (scores >= threshold).mean() == pytest.approx(rate, abs=1e-3)
        assert (scores >= np.nextafter(threshold, np.inf)).mean() < rate  # the largest such threshold
    assert fit_threshold([3.0, 1.0, 2.0], 1.0) == 1.0
    with pytest.raises(ValueError):
        fit_threshold([], 0.95)


def test_auroc_is_the_pairwise_win_rate_with_ties_half():
    rng = np.random.default_rng(1)
    pos, neg = rng.integers(0, 5, 40).astype(float), rng.integers(0, 5, 30).astype(float)
    brute = np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg)])
    assert auroc(pos, neg) == pytest.approx(brute)
    assert auroc([2, 3], [0, 1]) == 1.0 and auroc([0, 1], [2, 3]) == 0.0 and auroc([1, 1], [1]) == 0.5
    assert np.isnan(auroc([], [1.0]))


def test_fpr_at_tpr_counts_negatives_above_the_known_threshold():
    pos = np.arange(100, dtype=float)  # the 95 % threshold is 5
    neg = np.array([0, 4, 5, 6, 50], float)
    assert fpr_at_tpr(pos, neg, 0.95) == pytest.approx(3 / 5)


@pytest.mark.parametrize("score", REJECTION_SCORES)
def test_scores_are_finite_for_any_logits(score):
    logits = np.random.default_rng(2).normal(0, 30, (20, 7))
    assert np.isfinite(rejection_scores(logits, score)).all()
