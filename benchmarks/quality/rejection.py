""""None of these": how well each rejection score tells known regions from unknown objects and background, on
ShapesWorld val with the embedded model (or any head), and what rejection costs and buys.

For each score (``regionspot.modeling.rejection``): AUROC and FPR at 95 % TPR of known objects against objects
of classes held out of the vocabulary (six splits: 25 / 50 / 75 % of the classes held out, two draws each;
``evaluation/rejection.py``) and against background boxes (random boxes on no object; they hold texture and
the unannotated distractor blobs and lines where they fall); then, with the whole vocabulary, known-class top-1
(a rejected region counts as wrong) and box AP of the ground-truth and background boxes, rejection off and on
(rejected regions dropped), each score at the threshold that keeps 95 % of known regions on *other* images
(``--calibration-images`` of seed ``--calibration-seed``; the head's own shipped rule where it has one); and in
everything mode (``--everything`` images) recall and regions per object before and after rejection.

    python benchmarks/quality/rejection.py [--head PATH] [--num-val 100] [--everything 20]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from regionspot.data.coco_json import CocoDetectionDataset
from regionspot.data.transforms import box_iou
from regionspot.evaluation.lvis import evaluate
from regionspot.evaluation.rejection import (
    collect_regions,
    holdout_splits,
    score_splits,
    score_threshold,
)
from regionspot.inference.predictor import RegionSpotPredictor
from regionspot.model import RegionSpot
from regionspot.modeling.postprocess import image_topk_pairs, to_coco_results
from regionspot.modeling.rejection import REJECTION_SCORES, TRAINING_FREE_SCORES, rejection_scores
from regionspot.registry import assets_dir
from regionspot.shapesworld.generate import generate_shapesworld
from regionspot.shapesworld.guard import regenerate_ci_subset
from regionspot.shapesworld.world import WorldConfig


def shipped_world() -> WorldConfig:
    subset = json.loads((assets_dir() / "shapesworld" / "metrics.json").read_text())["ci_subset"]
    return WorldConfig(**subset["world"])


def box_ap(regions, dataset: CocoDetectionDataset, keep: np.ndarray, val_json: str) -> float:
    """Box AP (%) of the regions ``keep`` (R,) bool, each image's best (box, class) pairs as the evaluation makes them."""
    results = []
    for index in np.unique(regions.image):
        rows = np.flatnonzero((regions.image == index) & keep)
        if len(rows) == 0:
            continue
        probs, boxes = torch.from_numpy(regions.probs[rows]), torch.from_numpy(regions.boxes[rows])
        b, c, s = image_topk_pairs(probs, boxes, 300)
        results += to_coco_results(dataset[int(index)].image_id, boxes, b, c, s, dataset.category_ids)
    return 100 * evaluate(val_json, results, "bbox").AP if results else 0.0


def everything_rows(predictor: RegionSpotPredictor, dataset: CocoDetectionDataset, count: int) -> dict[str, dict]:
    """Recall (%), label-correct recall (%) and kept regions per object in everything mode, rejection off / on."""
    predictor.set_vocabulary(dataset.category_names)
    totals = {False: [0, 0, 0], True: [0, 0, 0]}
    objects = 0
    for index in range(min(count, len(dataset))):
        record = dataset[index]
        predictor.set_image(dataset.load_image(index))
        gt = torch.as_tensor(np.asarray(record.boxes, np.float32).reshape(-1, 4))
        objects += len(gt)
        for reject in (False, True):
            predictor.reject = reject
            result = predictor.predict_everything(top_k=1, return_masks=False)
            totals[reject][2] += len(result)
            if len(result) and len(gt):
                hit = box_iou(gt, torch.as_tensor(result.boxes)).numpy() >= 0.5
                totals[reject][0] += int(hit.any(1).sum())
                totals[reject][1] += int((hit & (record.labels[:, None] == result.class_ids[None, :])).any(1).sum())
    return {("on" if r else "off"): {"recall": 100 * t[0] / max(objects, 1), "label_recall": 100 * t[1] / max(objects, 1),
                                     "per_object": t[2] / max(objects, 1)} for r, t in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--head", default=None, help="Head checkpoint (default: the embedded ShapesWorld model).")
    parser.add_argument("--num-val", type=int, default=100, help="CI-subset val images (seed of the embedded model).")
    parser.add_argument("--calibration-images", type=int, default=200)
    parser.add_argument("--calibration-seed", type=int, default=1)
    parser.add_argument("--everything", type=int, default=20, help="Val images for everything mode (0: skip).")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="regionspot-rejection-"))
    val = regenerate_ci_subset(work / "val", args.num_val)
    cal = generate_shapesworld(work / "calibration", 0, args.calibration_images, seed=args.calibration_seed,
                               world=shipped_world(), progress=False)
    model = RegionSpot.from_pretrained(args.head, device="cpu")
    config = model.config
    predictor = RegionSpotPredictor(model, text_cache_dir=str(work / "text"), reject=False)
    dataset = CocoDetectionDataset(val["val_json"], val["image_root"])
    regions = collect_regions(predictor, dataset)
    calibration = collect_regions(predictor, CocoDetectionDataset(cal["val_json"], cal["image_root"]), seed=1)
    splits, t = holdout_splits(regions.logits.shape[1]), config.display_temperature
    known = regions.objects
    correct = regions.logits[known].argmax(1) == regions.labels[known]
    ap_off = box_ap(regions, dataset, np.ones(len(regions.labels), bool), val["val_json"])
    print(f"ShapesWorld val: {len(dataset)} images, {int(known.sum())} objects, {int((~known).sum())} background boxes, "
          f"{regions.logits.shape[1]} classes; head {args.head or 'shapesworld (embedded)'}, shipped rule "
          f"{config.rejection.score} >= {config.rejection.threshold}; thresholds at 95% TPR on {args.calibration_images} "
          f"images of seed {args.calibration_seed}")
    print(f"rejection off: known top-1 {100 * correct.mean():.1f}%, box AP {ap_off:.1f}")
    print("| score | AUROC held-out classes | FPR@95 held-out | AUROC background | FPR@95 background | threshold | "
          "known top-1 % off → on | box AP off → on |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    scores = TRAINING_FREE_SCORES + (("learned",) if config.trained_with_negatives else ())
    for score in scores:
        measured = score_splits(regions, score, t, splits)
        shipped = score == config.rejection.score and config.rejection.threshold is not None
        threshold = config.rejection.threshold if shipped else score_threshold(calibration, score, t, splits)
        kept = rejection_scores(regions.logits, score, t) >= threshold
        on_top1 = 100 * (correct & kept[known]).mean()
        ap_on = box_ap(regions, dataset, kept, val["val_json"])
        print(f"| {score}{' (shipped)' if shipped else ''} | {measured['auroc_unknown']:.3f} | "
              f"{100 * measured['fpr_unknown']:.1f}% | {measured['auroc_background']:.3f} | "
              f"{100 * measured['fpr_background']:.1f}% | {threshold:.4g} | {100 * correct.mean():.1f} → {on_top1:.1f} | "
              f"{ap_off:.1f} → {ap_on:.1f} |", flush=True)
    assert set(scores) <= set(REJECTION_SCORES)
    if args.everything and config.rejection.threshold is not None:
        rows = everything_rows(RegionSpotPredictor(model, text_cache_dir=str(work / "text")), dataset, args.everything)
        print(f"\neverything mode, {args.everything} images, shipped rule (found: a kept box with IoU >= 0.5)")
        print("| rejection | recall % | label-correct recall % | regions / object |\n|---|---:|---:|---:|")
        for name, row in rows.items():
            print(f"| {name} | {row['recall']:.1f} | {row['label_recall']:.1f} | {row['per_object']:.2f} |")


if __name__ == "__main__":
    main()
