"""Does training with negatives help a head say "none of these"? The max-sigmoid score of two heads on ShapesWorld val.

For each head (e.g. the embedded one and one retrained with negatives) this runs the model on every val
ground-truth box and on background boxes of the same images (``regionspot.cache.negatives.background_boxes``,
seeded apart from any training draw), keeps the logits over the whole vocabulary, and reports:

- known top-1: top-1 of the GT boxes over the whole vocabulary, and over the kept vocabulary in the splits;
- held-out AUROC: ``--splits`` random splits that remove ``--held-out`` of the classes from the vocabulary;
  the score is the largest sigmoid over the kept classes; positives are boxes of kept classes, negatives
  boxes of removed ones (mean and min over the splits);
- background AUROC: the same score over the whole vocabulary, GT boxes against background boxes.

The maximum softmax probability is shown beside it as the training-free reference. Usage::

    python benchmarks/quality/negatives_auroc.py --val-json DATA/annotations/val.json --images DATA \\
        --head regionspot/assets/shapesworld/head.safetensors --head NEW.safetensors

(``regionspot shapesworld generate --out DATA --train 0`` makes the val set the build evaluates on.)
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from regionspot.cache.negatives import background_boxes
from regionspot.data.coco_json import CocoDetectionDataset
from regionspot.inference.predictor import RegionSpotPredictor
from regionspot.model import RegionSpot

_BACKGROUND_SEED = 7_000_003  # apart from the cache's draws (seeded by the image id alone)


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Probability that a positive scores above a negative (ties count half): the ROC area."""
    scores = np.concatenate([positive, negative])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores):  # average ranks of ties
        tied = scores == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def region_logits(head: str, dataset: CocoDetectionDataset, per_image: int, limit: int | None) -> dict[str, np.ndarray]:
    """Logits (R, V) of the GT boxes with their labels, and logits (K, V) of background boxes."""
    model = RegionSpot.from_pretrained(head, device="cpu")
    predictor = RegionSpotPredictor(model)
    predictor.set_vocabulary(dataset.category_names)
    known, labels, background = [], [], []
    count = len(dataset) if limit is None else min(limit, len(dataset))
    for index in range(count):
        record = dataset[index]
        if len(record) == 0:
            continue
        boxes = torch.as_tensor(np.asarray(record.boxes, np.float32))
        extra = background_boxes(boxes, record.width, record.height, per_image, 0.1,
                                 seed=_BACKGROUND_SEED + int(record.image_id))
        predictor.set_image(dataset.load_image(index))
        result = predictor.predict(boxes=torch.cat([boxes, extra]).numpy(), top_k=1, return_masks=False)
        known.append(result.logits[: len(boxes)])
        labels.append(np.asarray(record.labels))
        background.append(result.logits[len(boxes):])
    return {"known": np.concatenate(known), "labels": np.concatenate(labels), "background": np.concatenate(background)}


def scores(logits: np.ndarray, columns: np.ndarray, kind: str) -> np.ndarray:
    """The "known" score of each row over ``columns``: the largest sigmoid, or the largest softmax probability."""
    sub = logits[:, columns]
    if kind == "sigmoid":
        return 1 / (1 + np.exp(-sub.max(1)))
    shifted = np.exp(sub - sub.max(1, keepdims=True))
    return (shifted / shifted.sum(1, keepdims=True)).max(1)


def measure(data: dict[str, np.ndarray], num_classes: int, splits: int, held_out: float) -> dict[str, float]:
    """The figures of the module docstring for one head's logits."""
    logits, labels = data["known"], data["labels"]
    every = np.arange(num_classes)
    row: dict[str, float] = {"top1": float((logits.argmax(1) == labels).mean())}
    for kind in ("sigmoid", "softmax"):
        row[f"background_auroc_{kind}"] = auroc(scores(logits, every, kind), scores(data["background"], every, kind))
        aurocs, top1s = [], []
        for split in range(splits):
            removed = np.random.default_rng(split).permutation(num_classes)[: round(held_out * num_classes)]
            kept = np.setdiff1d(every, removed)
            inside = np.isin(labels, kept)
            score = scores(logits, kept, kind)
            aurocs.append(auroc(score[inside], score[~inside]))
            top1s.append(float((kept[logits[inside][:, kept].argmax(1)] == labels[inside]).mean()))
        row[f"heldout_auroc_{kind}"] = float(np.mean(aurocs))
        row[f"heldout_auroc_{kind}_min"] = float(np.min(aurocs))
        row["split_top1"] = float(np.mean(top1s))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--val-json", required=True)
    parser.add_argument("--images", required=True)
    parser.add_argument("--head", action="append", required=True, help="a head checkpoint (repeat for several)")
    parser.add_argument("--background-per-image", type=int, default=4)
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--held-out", type=float, default=0.25, help="fraction of the classes removed per split")
    parser.add_argument("--limit", type=int, default=None, help="only the first N val images")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    dataset = CocoDetectionDataset(args.val_json, args.images)
    table = {}
    for head in args.head:
        data = region_logits(head, dataset, args.background_per_image, args.limit)
        table[head] = {**measure(data, len(dataset.category_names), args.splits, args.held_out),
                       "regions": int(len(data["labels"])), "background_boxes": int(len(data["background"]))}
    print(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
