"""Fitting and measuring "none of these" (open-set rejection, ``modeling/rejection.py``) on a labelled set.

Regions: every ground-truth box of an image (one ``predict`` call, as the evaluation does) and background boxes
(random boxes whose intersection with every ground-truth box is at most ``BACKGROUND_OVERLAP`` of their own
area, a second call, so they do not change the objects' logits; they hold background texture and whatever
unannotated things lie there). Each region's logits against the whole vocabulary are kept: a vocabulary
without some classes is a subset of the columns, because a class name enters the head only through its
cosine with the region.

Splits: classes held out of the vocabulary at test time (a ``fraction`` of them, drawn ``repeats`` times
per fraction). In a split, *known* regions are the objects of the remaining classes, *unknown* the objects of
the held-out ones, *background* the background boxes; each score is measured by AUROC and the FPR at 95 % TPR
of known against unknown and against background.

The shipped rule (``fit_rejection``): each candidate score (the training-free ones; "learned" alone for a head
trained with negatives) gets the threshold that keeps ``known_rate`` (95 %) of the known regions pooled over the
full vocabulary and every split; the score shipped is the one whose single threshold has the best balanced
accuracy (known kept vs unknown and background rejected) averaged over the splits. One threshold must serve
vocabularies of any size, and a score whose values shift with the vocabulary's size (msp, and energy to a lesser
degree) loses there even where its AUROC at each size is good. A threshold fitted on the known regions states
its cost on known classes exactly and does not depend on how many unknowns a user's images hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from regionspot.config import RejectionConfig
from regionspot.data.coco_json import CocoDetectionDataset
from regionspot.errors import RegionSpotError
from regionspot.modeling.rejection import (
    TRAINING_FREE_SCORES,
    auroc,
    fit_threshold,
    fpr_at_tpr,
    rejection_scores,
)
from regionspot.utils.progress import progress_bar

__all__ = ["BACKGROUND_OVERLAP", "LabelledRegions", "background_boxes", "collect_regions", "fit_rejection",
           "balanced_accuracy", "holdout_splits", "score_splits", "score_threshold", "split_scores"]

BACKGROUND_OVERLAP = 0.05  # a background box covers at most this share of its area with any object's box
KNOWN_RATE = 0.95


@dataclass
class LabelledRegions:
    """Regions of a labelled set: logits (R, V) float32 against the whole vocabulary, probs (R, V) float32 their
    softmax (the paper's), labels (R,) int64 class index or -1 for a background box, image (R,) int64 the image's
    index in the dataset, boxes (R, 4) float32 XYXY original pixels."""

    logits: np.ndarray
    probs: np.ndarray
    labels: np.ndarray
    image: np.ndarray
    boxes: np.ndarray

    @property
    def objects(self) -> np.ndarray:
        return self.labels >= 0


def background_boxes(objects: np.ndarray, size: tuple[int, int], count: int, rng: np.random.Generator,
                     tries: int = 200) -> np.ndarray:
    """Up to ``count`` random boxes (K, 4) float32 XYXY in an image of ``size`` (height, width) that cover at most
    ``BACKGROUND_OVERLAP`` of their own area with any of ``objects`` (G, 4) XYXY; sides 10-40 % of the image's."""
    height, width = size
    found = []
    for _ in range(tries):
        if len(found) == count:
            break
        w, h = rng.uniform(0.1, 0.4) * width, rng.uniform(0.1, 0.4) * height
        x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
        box = np.array([x, y, x + w, y + h], np.float32)
        if len(objects):
            iw = np.clip(np.minimum(box[2], objects[:, 2]) - np.maximum(box[0], objects[:, 0]), 0, None)
            ih = np.clip(np.minimum(box[3], objects[:, 3]) - np.maximum(box[1], objects[:, 1]), 0, None)
            if (iw * ih).max() > BACKGROUND_OVERLAP * w * h:
                continue
        found.append(box)
    return np.array(found, np.float32).reshape(-1, 4)


def collect_regions(predictor, dataset: CocoDetectionDataset, limit: int | None = None, background_per_image: int = 3,
                    seed: int = 0, show_progress: bool = False) -> LabelledRegions:
    """Every ground-truth box of the first ``limit`` images and ``background_per_image`` background boxes each,
    scored by ``predictor`` (a ``RegionSpotPredictor`` or backend) against ``dataset``'s whole vocabulary."""
    predictor.set_vocabulary(dataset.category_names)
    rng = np.random.default_rng(seed)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    parts: list[tuple] = []
    for index in progress_bar(range(count), desc="regions", disable=not show_progress, leave=False):
        record = dataset[index]
        image = dataset.load_image(index)
        predictor.set_image(image)
        gt = np.asarray(record.boxes, np.float32).reshape(-1, 4)
        groups = [(gt, np.asarray(record.labels, np.int64))]
        background = background_boxes(gt, (image.height, image.width), background_per_image, rng)
        groups.append((background, np.full(len(background), -1, np.int64)))
        for boxes, labels in groups:
            if len(boxes) == 0:
                continue
            result = predictor.predict(boxes=boxes, top_k=1, return_masks=False)
            parts.append((result.logits, result.probs, labels, np.full(len(labels), index, np.int64), result.boxes))
    if not parts:
        raise RegionSpotError(f"{dataset.annotation_file} has no images to calibrate on.")
    logits, probs, labels, image, boxes = (np.concatenate(column) for column in zip(*parts))
    return LabelledRegions(logits.astype(np.float32), probs.astype(np.float32), labels, image, boxes.astype(np.float32))


def holdout_splits(num_classes: int, fractions: tuple[float, ...] = (0.25, 0.5, 0.75), repeats: int = 2,
                   seed: int = 0) -> list[np.ndarray]:
    """Held-out class indices, one array per split: ``repeats`` random draws of each ``fraction`` of the classes
    (at least one class held out and one kept)."""
    rng = np.random.default_rng(seed)
    splits = []
    for fraction in fractions:
        size = min(max(1, round(fraction * num_classes)), num_classes - 1)
        splits.extend(np.sort(rng.choice(num_classes, size, replace=False)) for _ in range(repeats))
    return splits


def split_scores(regions: LabelledRegions, held_out: np.ndarray, score: str,
                 temperature: float) -> dict[str, np.ndarray]:
    """The scores of one split: {"known", "unknown", "background"} (each (n,) float64) with the vocabulary
    without ``held_out``, and "known_correct" (n_known,) bool: the known region's top-1 is its class."""
    vocabulary = np.setdiff1d(np.arange(regions.logits.shape[1]), held_out)
    logits = regions.logits[:, vocabulary]
    scores = rejection_scores(logits, score, temperature)
    known = np.isin(regions.labels, vocabulary)
    unknown = np.isin(regions.labels, held_out)
    correct = vocabulary[logits[known].argmax(1)] == regions.labels[known]
    return {"known": scores[known], "unknown": scores[unknown], "background": scores[regions.labels < 0],
            "known_correct": correct}


def score_splits(regions: LabelledRegions, score: str, temperature: float, splits: list[np.ndarray],
                 tpr: float = KNOWN_RATE) -> dict[str, float]:
    """Mean over ``splits`` of AUROC and FPR at ``tpr`` (known vs unknown, known vs background) of ``score``."""
    rows = []
    for held_out in splits:
        s = split_scores(regions, held_out, score, temperature)
        rows.append((auroc(s["known"], s["unknown"]), fpr_at_tpr(s["known"], s["unknown"], tpr),
                     auroc(s["known"], s["background"]), fpr_at_tpr(s["known"], s["background"], tpr)))
    mean = np.nanmean(np.array(rows, np.float64), axis=0)
    return dict(zip(("auroc_unknown", "fpr_unknown", "auroc_background", "fpr_background"), map(float, mean)))


def fit_rejection(regions: LabelledRegions, temperature: float, trained_with_negatives: bool = False,
                  known_rate: float = KNOWN_RATE, splits: list[np.ndarray] | None = None,
                  ) -> tuple[RejectionConfig, dict[str, dict[str, float]]]:
    """The head's rejection rule fitted on ``regions`` (see the module docstring) and each candidate's measures
    ({score: score_splits(...)}). temperature: the head's display temperature (used by "msp" and "energy")."""
    splits = holdout_splits(regions.logits.shape[1]) if splits is None else splits
    candidates = ("learned",) if trained_with_negatives else TRAINING_FREE_SCORES
    measured, thresholds = {}, {}
    for name in candidates:
        thresholds[name] = score_threshold(regions, name, temperature, splits, known_rate)
        measured[name] = {**score_splits(regions, name, temperature, splits, known_rate),
                          "balanced_accuracy": balanced_accuracy(regions, name, temperature, splits, thresholds[name]),
                          "threshold": thresholds[name]}
    best = max(candidates, key=lambda n: measured[n]["balanced_accuracy"])
    return RejectionConfig(score=best, threshold=thresholds[best], known_rate=known_rate), measured


def balanced_accuracy(regions: LabelledRegions, score: str, temperature: float, splits: list[np.ndarray],
                      threshold: float) -> float:
    """Mean over ``splits`` (vocabularies of several sizes) of the balanced accuracy of one threshold: the mean of
    the known regions kept and the unknown objects and background boxes rejected (each half of the latter)."""
    values = []
    for held_out in splits:
        s = split_scores(regions, held_out, score, temperature)
        rejected = [float((s[k] < threshold).mean()) for k in ("unknown", "background") if len(s[k])]
        values.append((float((s["known"] >= threshold).mean()) + float(np.mean(rejected))) / 2)
    return float(np.mean(values))


def score_threshold(regions: LabelledRegions, score: str, temperature: float, splits: list[np.ndarray],
                    known_rate: float = KNOWN_RATE) -> float:
    """The threshold of ``score`` that keeps ``known_rate`` of the known regions, pooled over the whole
    vocabulary and each split's."""
    known = [rejection_scores(regions.logits[regions.objects], score, temperature)]
    known += [split_scores(regions, held_out, score, temperature)["known"] for held_out in splits]
    return fit_threshold(np.concatenate(known), known_rate)
