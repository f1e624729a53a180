"""Fit the display temperature of a head on a labelled set (temperature scaling) and store it in the head.

The paper scores a region with a softmax over the whole vocabulary. That score ranks well (AP uses it
unchanged), but its value is not a probability a person can read: a small head over 64-1203 classes
gives a correct, clear-cut label a few percent. Temperature scaling picks the one T for which
softmax(logits / T) is, on held-out labelled regions, the best-calibrated probability (lowest NLL);
the predictor then shows softmax(logits / T) at the top-1 class as ``RegionResult.confidence``.

The same labelled regions, with background boxes, fit the head's "none of these" rule beside it
(``evaluation/rejection.fit_rejection``: the best rejection score and the threshold that keeps 95 % of the
known regions), stored in the head as ``RegionSpotConfig.rejection``.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from regionspot.checkpoint import load_head_checkpoint, save_head_checkpoint
from regionspot.data.coco_json import CocoDetectionDataset
from regionspot.errors import RegionSpotError
from regionspot.evaluation.rejection import KNOWN_RATE, collect_regions, fit_rejection
from regionspot.inference.predictor import RegionSpotPredictor
from regionspot.model import RegionSpot
from regionspot.modeling.postprocess import fit_temperature


def calibrate_head(head: str | Path, annotations: str | Path, image_root: str | Path, limit: int | None = None,
                   segmenter: str | None = None, vision_language: str | None = None,
                   show_progress: bool = False, rejection_only: bool = False,
                   known_rate: float = KNOWN_RATE) -> dict[str, Any]:
    """Fit the display temperature (unless ``rejection_only``) and the rejection rule of the head checkpoint
    ``head`` on a COCO-format labelled set and write them into the checkpoint (weights untouched). Returns
    {"temperature", "nll_before", "nll_after", "top1", "mean_confidence_before", "mean_confidence_after",
    "regions", "rejection": {"score", "threshold", "known_rate"}, "rejection_scores": {score: measures}}."""
    model = RegionSpot.from_pretrained(str(head), segmenter=segmenter, vision_language=vision_language, device="cpu")
    dataset = CocoDetectionDataset(annotations, image_root)
    regions = collect_regions(RegionSpotPredictor(model, reject=False), dataset, limit, show_progress=show_progress)
    if not regions.objects.any():
        raise RegionSpotError(f"{dataset.annotation_file} has no boxes to calibrate on.")
    # log softmax of the ground-truth boxes: differs from the logits by a per-row constant
    log_probs = torch.from_numpy(np.log(np.clip(regions.probs[regions.objects], 1e-30, None)))
    labels = torch.from_numpy(regions.labels[regions.objects]).long()
    state, config, meta = load_head_checkpoint(head)
    temperature = config.display_temperature if rejection_only else fit_temperature(log_probs, labels)
    rejection, measured = fit_rejection(regions, temperature, config.trained_with_negatives, known_rate)
    save_head_checkpoint(head, state, replace(config, display_temperature=temperature, rejection=rejection), meta)
    nll = torch.nn.functional.cross_entropy
    before = torch.softmax(log_probs, -1).max(-1).values
    after = torch.softmax(log_probs / temperature, -1).max(-1).values
    return {
        "temperature": temperature,
        "nll_before": float(nll(log_probs, labels)),
        "nll_after": float(nll(log_probs / temperature, labels)),
        "top1": float((log_probs.argmax(-1) == labels).float().mean()),
        "mean_confidence_before": float(before.mean()),
        "mean_confidence_after": float(after.mean()),
        "regions": int(len(labels)),
        "rejection": asdict(rejection),
        "rejection_scores": measured,
    }
