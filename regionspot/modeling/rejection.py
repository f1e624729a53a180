"""Open-set rejection ("none of these"): a score per region that says how much it looks like *some* class of
the vocabulary, the decision ``known = score >= threshold``, fitting that threshold, and the measures that
compare scores (AUROC, FPR at a TPR).

numpy only: the torch predictor and the torch-free ONNX runtime (``runtime/model.py``) call the same code.

Every score is computed from a region's logits (N, V): the head's ``logit_scale · cos(region, class text)``,
the numbers the softmax over the vocabulary is taken of. Higher is "more known".

- ``"msp"``: the maximum softmax probability at ``temperature`` (the head's display temperature). It depends
  on the vocabulary's size: the same region scores lower among more names.
- ``"max_logit"``: the largest logit (the best class's scaled cosine); independent of the other names.
- ``"energy"``: ``temperature · logsumexp(logits / temperature)`` (the negative free energy).
- ``"sigmoid"``: the largest per-class sigmoid ``σ(logit)``, the probability the training loss (sigmoid
  focal loss, no bias term) gives "this region is that class"; a monotone function of ``max_logit``, so it
  ranks regions identically but its threshold reads as a probability.
- ``"learned"``: the same sigmoid, on a head trained with negatives (background boxes and objects outside the
  batch's vocabulary, all-zero targets: ``RegionSpotConfig.trained_with_negatives``); there the sigmoid itself
  has learnt to be low on what is none of the names.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "REJECTION_SCORES", "TRAINING_FREE_SCORES", "UNKNOWN_LABEL", "auroc", "decide", "fit_threshold", "fpr_at_tpr",
    "is_known", "rejection_scores",
]

REJECTION_SCORES = ("msp", "max_logit", "energy", "sigmoid", "learned")
TRAINING_FREE_SCORES = ("msp", "max_logit", "energy", "sigmoid")
UNKNOWN_LABEL = "unknown"  # what pictures and summaries show for a rejected region


def _logsumexp(x: np.ndarray) -> np.ndarray:
    top = x.max(axis=-1, keepdims=True)
    return (top + np.log(np.exp(x - top).sum(axis=-1, keepdims=True)))[:, 0]


def rejection_scores(logits: np.ndarray, score: str, temperature: float = 1.0) -> np.ndarray:
    """(N, V) logits -> (N,) float64 rejection scores (higher: more like some class of the vocabulary).

    score: one of ``REJECTION_SCORES``; temperature: used by "msp" and "energy" (> 0). An empty vocabulary
    (V = 0) or no regions gives what numpy gives for N regions: an (N,) array, -inf for V = 0.
    """
    if score not in REJECTION_SCORES:
        raise ValueError(f"rejection score must be one of {list(REJECTION_SCORES)}, got {score!r}.")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}.")
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2:
        raise ValueError(f"logits must be (N, V), got shape {logits.shape}.")
    if logits.shape[1] == 0:
        return np.full(len(logits), -np.inf)
    if len(logits) == 0:
        return np.zeros(0)
    if score == "msp":
        scaled = logits / temperature
        return np.exp(scaled.max(axis=-1) - _logsumexp(scaled))
    if score == "energy":
        return temperature * _logsumexp(logits / temperature)
    best = logits.max(axis=-1)
    if score == "max_logit":
        return best
    return 1.0 / (1.0 + np.exp(-best))  # "sigmoid" and "learned"


def is_known(scores: np.ndarray, threshold: float) -> np.ndarray:
    """(N,) scores -> (N,) bool: True where the region is one of the vocabulary's classes (score >= threshold)."""
    return np.asarray(scores) >= threshold


def decide(logits: np.ndarray, rejection: dict, temperature: float = 1.0,
           enabled: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """A head's rejection applied to (N, V) logits: ((N,) float32 scores, (N,) bool known or None).

    rejection: the head's ``RejectionConfig`` as a dict ({"score", "threshold", ...}); temperature: the head's
    display temperature. ``known`` is None when ``enabled`` is False or the head has no threshold (not
    calibrated): every region is then labelled.
    """
    scores = rejection_scores(logits, rejection.get("score", "max_logit"), temperature)
    threshold = rejection.get("threshold")
    return scores.astype(np.float32), (is_known(scores, threshold) if enabled and threshold is not None else None)


def fit_threshold(known_scores: np.ndarray, known_rate: float = 0.95) -> float:
    """The largest threshold that keeps at least ``known_rate`` of ``known_scores`` (R,) known (the scores of
    labelled regions whose class is in the vocabulary): the (1 - known_rate) quantile, taken as one of the
    scores so that the kept fraction is exact on these regions."""
    scores = np.sort(np.asarray(known_scores, dtype=np.float64).reshape(-1))
    if len(scores) == 0:
        raise ValueError("fit_threshold needs at least one known region's score.")
    if not 0 < known_rate <= 1:
        raise ValueError(f"known_rate must be in (0, 1], got {known_rate}.")
    keep = int(np.ceil(known_rate * len(scores) - 1e-9))  # regions at or above the threshold
    return float(scores[len(scores) - max(keep, 1)])


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve of telling ``positive`` (known) from ``negative`` (unknown) scores by "higher is
    positive": the probability that a random positive outscores a random negative, ties counting one half
    (the Mann-Whitney U statistic over both sizes). NaN when either side is empty."""
    pos, neg = np.asarray(positive, np.float64).ravel(), np.asarray(negative, np.float64).ravel()
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    _, inverse, counts = np.unique(np.concatenate([pos, neg]), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + ends + 1) / 2.0)[inverse]  # 1-based ranks, ties averaged
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2.0
    return float(u / (len(pos) * len(neg)))


def fpr_at_tpr(positive: np.ndarray, negative: np.ndarray, tpr: float = 0.95) -> float:
    """The fraction of ``negative`` scores accepted (>= threshold) at the threshold that keeps ``tpr`` of the
    ``positive`` ones (:func:`fit_threshold`). NaN when either side is empty."""
    pos, neg = np.asarray(positive, np.float64).ravel(), np.asarray(negative, np.float64).ravel()
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    return float((neg >= fit_threshold(pos, tpr)).mean())
