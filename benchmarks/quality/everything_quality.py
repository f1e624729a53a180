"""Is "recognise everything" worth looking at? Recall and regions per object on ShapesWorld val.

Runs the embedded ShapesWorld model in everything mode on ``--num-val`` val images of the world it was
trained on (its 64 classes; by default the val images its shipped metrics were measured on) and scores
what a person would see:

- recall: % of ground-truth objects with a kept region whose box has IoU >= 0.5 with the object's box;
- label-correct recall: the same, counting only kept regions whose top-1 label is the object's class;
- regions / object: kept regions over ground-truth objects (1.0 when every object is shown once).

Two steps. SAM runs once per image: the *unfiltered* labelled regions (today's output: the segmenter's
proposals, at most ``--max-regions``, each labelled) are cached to ``--cache DIR/<image id>.npz``
(a rerun reuses them). The table is then computed offline for the unfiltered output ("before"), the
library's defaults (``RegionFilter()``), each of its options varied alone (``min_stability`` of the
proposals, ``min_confidence`` on the calibrated confidence, ``nms_iou`` and the ``contained`` rule, both
across classes, regions ranked by stability), and the best settings of the full sweep, so the defaults are
chosen from it. ``--images first-half`` is the half the defaults were chosen on; ``second-half`` is held out.

    python benchmarks/quality/everything_quality.py --cache /tmp/everything_cache [--num-val 100] [--seed N] \
        [--only-table] [--images all|first-half|second-half]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from regionspot.data.transforms import box_iou, xywh_to_xyxy
from regionspot.inference.predictor import RegionSpotPredictor
from regionspot.inference.proposals import ProposalOptions, propose_regions
from regionspot.inference.region_filter import RegionFilter, keep_regions
from regionspot.model import RegionSpot
from regionspot.registry import assets_dir
from regionspot.shapesworld.generate import WorldConfig, generate_shapesworld
from regionspot.shapesworld.guard import regenerate_ci_subset


def shipped_world() -> WorldConfig:
    """The world (classes, sizes, counts) the embedded model was trained and measured on."""
    subset = json.loads((assets_dir() / "shapesworld" / "metrics.json").read_text())["ci_subset"]
    return WorldConfig(**subset["world"])


def cache_regions(cache: Path, num_val: int, seed: int | None, max_regions: int) -> None:
    """Label every val image's unfiltered proposals once; write ``cache/<id>.npz`` (skips existing files).

    Each file: boxes (K, 4) XYXY pixels (proposal order, best first), topk_ids / topk_confidence /
    topk_scores (K, k), proposal_iou / proposal_stability (K,) the segmenter's ranking of the proposal,
    box_iou (K,) its predicted IoU of the box prompt's mask, gt_boxes (G, 4) XYXY pixels, gt_ids (G,) indices into ``cache/vocabulary.json``,
    seconds (everything mode on this image)."""
    cache.mkdir(parents=True, exist_ok=True)
    predictor = RegionSpotPredictor(RegionSpot.from_pretrained(device="cpu"))
    with tempfile.TemporaryDirectory() as tmp:
        data = regenerate_ci_subset(Path(tmp), num_val) if seed is None else generate_shapesworld(
            tmp, 0, num_val, seed=seed, world=shipped_world(), progress=False)
        val = json.loads(Path(data["val_json"]).read_text())
        names = [c["name"] for c in sorted(val["categories"], key=lambda c: c["id"])]
        index = {c["id"]: names.index(c["name"]) for c in val["categories"]}
        (cache / "vocabulary.json").write_text(json.dumps(names))
        predictor.set_vocabulary(names)
        options = ProposalOptions(max_regions=max_regions)
        for n, info in enumerate(val["images"]):
            target = cache / f"{info['id']}.npz"
            if target.exists():
                continue
            anns = [a for a in val["annotations"] if a["image_id"] == info["id"]]
            gt = xywh_to_xyxy(torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4))
            start = time.perf_counter()
            predictor.set_image(Path(data["image_root"]) / info["file_name"])
            proposals = propose_regions(predictor.model.segmenter, predictor.image, options, state=predictor._state)
            boxes = proposals.boxes.numpy()
            result = predictor.predict(boxes=boxes, top_k=5, return_masks=False)
            seconds = time.perf_counter() - start
            np.savez(target, boxes=result.boxes, topk_ids=result.topk_ids, topk_confidence=result.display_topk_scores,
                     topk_scores=result.topk_scores, gt_boxes=gt.numpy(), seconds=seconds, box_iou=result.iou,
                     proposal_iou=proposals.iou.numpy(), proposal_stability=proposals.stability.numpy(),
                     gt_ids=np.array([index[a["category_id"]] for a in anns], np.int64))
            print(f"{n + 1}/{len(val['images'])}: {len(boxes)} regions, {len(anns)} objects, {seconds:.1f}s", flush=True)


def load_cache(cache: Path) -> list[dict[str, np.ndarray]]:
    files = sorted(cache.glob("*.npz"), key=lambda p: int(p.stem))
    return [dict(np.load(f)) for f in files]


def score(images: list[dict[str, np.ndarray]], region_filter: RegionFilter | None) -> dict[str, float]:
    """Recall, label-correct recall (%) and kept regions per object of ``region_filter`` (None: keep all),
    applied as ``RegionSpotPredictor.predict_everything`` does: the stability cut on the proposals, then
    :func:`keep_regions` on the labelled rest."""
    found = correct = kept = objects = 0
    for item in images:
        ids, confidence = item["topk_ids"][:, 0], item["topk_confidence"][:, 0]
        if region_filter is None:
            keep = np.arange(len(ids))
        else:
            stable = np.flatnonzero(item["proposal_stability"] >= region_filter.min_stability)
            keep = stable[keep_regions(item["boxes"][stable], confidence[stable], region_filter,
                                       rank=item["proposal_stability"][stable])]
        gt = torch.as_tensor(item["gt_boxes"])
        objects += len(gt)
        kept += len(keep)
        if len(gt) == 0 or len(keep) == 0:
            continue
        hit = box_iou(gt, torch.as_tensor(item["boxes"][keep])).numpy() >= 0.5  # (G, K)
        found += int(hit.any(1).sum())
        same = item["gt_ids"][:, None] == ids[keep][None, :]
        correct += int((hit & same).any(1).sum())
    return {"recall": 100 * found / max(objects, 1), "label_recall": 100 * correct / max(objects, 1),
            "per_object": kept / max(objects, 1), "objects": objects}


SWEEP = {"min_stability": (0.0, 0.7, 0.75, 0.78, 0.8, 0.85), "min_confidence": (0.0, 0.1, 0.15, 0.2, 0.3),
         "nms_iou": (0.3, 0.5, 0.7, 1.0), "contained": (0.8, 0.9, 2.0)}


def table(images: list[dict[str, np.ndarray]], frontier: int) -> None:
    """Print the before / default rows, each option varied alone around the default, and the ``frontier``
    best-recall settings of the full sweep with at most 1.5 regions per object."""
    seconds = np.mean([float(item["seconds"]) for item in images])
    default = RegionFilter()
    print(f"ShapesWorld val (the embedded model's world), {len(images)} images, "
          f"{sum(len(i['gt_boxes']) for i in images)} objects; everything mode {seconds:.1f} s/img on 2 shared CPU "
          "cores; found = a kept box with IoU >= 0.5 (label-correct: and its top-1 label is the object's class)")
    names = list(SWEEP)
    print("| setting | " + " | ".join(names) + " | recall % | label-correct recall % | regions / object |")
    print("|---|" + "---:|" * (len(names) + 3))

    def row(name: str, region_filter: RegionFilter | None, measured: dict | None = None) -> None:
        r = measured or score(images, region_filter)
        cells = ["-"] * len(names) if region_filter is None else [
            "off" if (n == "contained" and getattr(region_filter, n) > 1) else f"{getattr(region_filter, n):g}"
            for n in names]
        print(f"| {name} | {' | '.join(cells)} | {r['recall']:.1f} | {r['label_recall']:.1f} | {r['per_object']:.2f} |",
              flush=True)

    row("before (every proposal, today's output)", None)
    row("**default** (`RegionFilter()`)", default)
    for name in names:
        for value in SWEEP[name]:
            if value != getattr(default, name):
                row(f"default but {name}", dataclasses.replace(default, **{name: value}))
    if frontier:
        results = []
        for values in itertools.product(*SWEEP.values()):
            candidate = RegionFilter(**dict(zip(names, values)))
            results.append((score(images, candidate), candidate))
        within = [r for r in results if r[0]["per_object"] <= 1.5]
        within.sort(key=lambda r: (-r[0]["recall"], -r[0]["label_recall"], r[0]["per_object"]))
        for measured, candidate in within[:frontier]:
            row("sweep: best recall at <= 1.5 regions/object", candidate, measured)
        best = max(results, key=lambda r: (r[0]["recall"] >= 80, -r[0]["per_object"]))
        row("sweep: fewest regions/object at >= 80 % recall", best[1], best[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, required=True, help="Folder for the per-image labelled regions.")
    parser.add_argument("--num-val", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None,
                        help="Val images of this seed (default: the embedded model's own val set, its CI subset's seed).")
    parser.add_argument("--max-regions", type=int, default=100, help="Proposals labelled per image (today's cap).")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only-table", action="store_true", help="Use the cached images only; run no model.")
    parser.add_argument("--images", choices=("all", "first-half", "second-half"), default="all",
                        help="Score all cached images, or the half the defaults were chosen on, or the held-out half.")
    parser.add_argument("--frontier", type=int, default=5, help="Rows of the full sweep's best settings to print.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.only_table:
        cache_regions(args.cache, args.num_val, args.seed, args.max_regions)
    images = load_cache(args.cache)
    half = len(images) // 2
    images = {"all": images, "first-half": images[:half], "second-half": images[half:]}[args.images]
    table(images, args.frontier)


if __name__ == "__main__":
    main()
