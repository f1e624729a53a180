"""Fit the display temperature of a head on a labelled set (temperature scaling) and store it in the head.

The paper scores a region with a softmax over the whole vocabulary. That score ranks well (AP uses it
unchanged), but its value is not a probability a person can read: a small head over 64-1203 classes
gives a correct, clear-cut label a few percent. Temperature scaling picks the one T for which
softmax(logits / T) is, on held-out labelled regions, the best-calibrated probability (lowest NLL);
the predictor then shows softmax(logits / T) at the top-1 class as ``RegionResult.confidence``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from regionspot.checkpoint import load_head_checkpoint, save_head_checkpoint
from regionspot.data.coco_json import CocoDetectionDataset
from regionspot.errors import RegionSpotError
from regionspot.inference.predictor import RegionSpotPredictor
from regionspot.model import RegionSpot
from regionspot.modeling.postprocess import fit_temperature
from regionspot.utils.progress import progress_bar


def region_log_probs(model: RegionSpot, dataset: CocoDetectionDataset, limit: int | None = None,
                     show_progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Log softmax over the dataset's vocabulary of every ground-truth box: ((R, V) float32, (R,) int64 labels).

    ``result.probs`` is the paper's softmax whatever the head's display temperature. Log-probabilities differ from the logits by a per-row constant, so softmax(log_p / T) = softmax(logits / T).
    """
    predictor = RegionSpotPredictor(model)
    predictor.set_vocabulary(dataset.category_names)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    log_probs, labels = [], []
    for index in progress_bar(range(count), desc="calibrate", disable=not show_progress, leave=False):
        record = dataset[index]
        if len(record) == 0:
            continue
        predictor.set_image(dataset.load_image(index))
        result = predictor.predict(boxes=record.boxes, top_k=1, return_masks=False)
        log_probs.append(torch.from_numpy(np.log(np.clip(result.probs, 1e-30, None))))
        labels.append(torch.from_numpy(record.labels))
    if not labels:
        raise RegionSpotError(f"{dataset.annotation_file} has no boxes to calibrate on.")
    return torch.cat(log_probs), torch.cat(labels).long()


def calibrate_head(head: str | Path, annotations: str | Path, image_root: str | Path, limit: int | None = None,
                   segmenter: str | None = None, vision_language: str | None = None,
                   show_progress: bool = False) -> dict[str, float]:
    """Fit the display temperature of the head checkpoint ``head`` on a COCO-format labelled set and write it
    into the checkpoint (weights untouched). Returns {"temperature", "nll_before", "nll_after",
    "top1", "mean_confidence_before", "mean_confidence_after", "regions"}."""
    model = RegionSpot.from_pretrained(str(head), segmenter=segmenter, vision_language=vision_language, device="cpu")
    dataset = CocoDetectionDataset(annotations, image_root)
    log_probs, labels = region_log_probs(model, dataset, limit, show_progress)
    temperature = fit_temperature(log_probs, labels)
    nll = torch.nn.functional.cross_entropy
    top1 = log_probs.argmax(-1)
    before = torch.softmax(log_probs, -1).max(-1).values
    after = torch.softmax(log_probs / temperature, -1).max(-1).values
    state, config, meta = load_head_checkpoint(head)
    save_head_checkpoint(head, state, replace(config, display_temperature=temperature), meta)
    return {
        "temperature": temperature,
        "nll_before": float(nll(log_probs, labels)),
        "nll_after": float(nll(log_probs / temperature, labels)),
        "top1": float((top1 == labels).float().mean()),
        "mean_confidence_before": float(before.mean()),
        "mean_confidence_after": float(after.mean()),
        "regions": int(len(labels)),
    }

