"""Is "recognise everything" worth looking at? Recall and regions per object on ShapesWorld val.

Runs the embedded ShapesWorld model in everything mode on ``--num-val`` generated val images and scores
what a person would see:

- recall: % of ground-truth objects with a kept region whose box has IoU >= 0.5 with the object's box;
- label-correct recall: the same, counting only kept regions whose top-1 label is the object's class;
- regions / object: kept regions over ground-truth objects (1.0 when every object is shown once).

Two steps. SAM runs once per image: the *unfiltered* labelled regions (today's output: the segmenter's
proposals, at most ``--max-regions``, each labelled) are cached to ``--cache DIR/<image id>.npz``
(a rerun reuses them). The table is then computed offline for the unfiltered output ("before"), the
library's defaults (``RegionFilter()``), and a sweep of its two options (``min_confidence`` on the
calibrated confidence, class-aware ``nms_iou``) and the containment rule, so the defaults are chosen from it.

    python benchmarks/everything_quality.py --cache /tmp/everything_cache [--num-val 100] [--seed 0]
"""

from __future__ import annotations

import argparse
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
from regionspot.shapesworld.generate import generate_shapesworld


def cache_regions(cache: Path, num_val: int, seed: int, max_regions: int) -> None:
    """Label every val image's unfiltered proposals once; write ``cache/<id>.npz`` (skips existing files).

    Each file: boxes (K, 4) XYXY pixels (proposal order, best first), topk_ids / topk_confidence /
    topk_scores (K, k), proposal_iou / proposal_stability (K,) the segmenter's ranking of the proposal,
    box_iou (K,) its predicted IoU of the box prompt's mask, gt_boxes (G, 4) XYXY pixels, gt_ids (G,) indices into ``cache/vocabulary.json``,
    seconds (everything mode on this image)."""
    cache.mkdir(parents=True, exist_ok=True)
    predictor = RegionSpotPredictor(RegionSpot.from_pretrained(device="cpu"))
    with tempfile.TemporaryDirectory() as tmp:
        data = generate_shapesworld(tmp, 0, num_val, seed=seed, progress=False)
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
    """Recall, label-correct recall (%) and kept regions per object of ``region_filter`` (None: keep all)."""
    found = correct = kept = objects = 0
    for item in images:
        ids, confidence = item["topk_ids"][:, 0], item["topk_confidence"][:, 0]
        keep = (np.arange(len(ids)) if region_filter is None
                else keep_regions(item["boxes"], ids, confidence, region_filter))
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


def table(images: list[dict[str, np.ndarray]]) -> None:
    seconds = np.mean([float(item["seconds"]) for item in images])
    default = RegionFilter()
    print(f"ShapesWorld val, {len(images)} images, {sum(len(i['gt_boxes']) for i in images)} objects; embedded "
          f"model; everything mode {seconds:.1f} s/img (2 shared CPU cores); found = a kept box with IoU >= 0.5")
    print("| setting | min_confidence | nms_iou | contained | recall % | label-correct recall % | regions / object |")
    print("|---|---:|---:|---:|---:|---:|---:|")

    def row(name: str, region_filter: RegionFilter | None) -> None:
        r = score(images, region_filter)
        cells = ("-", "-", "-") if region_filter is None else (
            f"{region_filter.min_confidence:g}", f"{region_filter.nms_iou:g}", f"{region_filter.contained:g}")
        print(f"| {name} | {' | '.join(cells)} | {r['recall']:.1f} | {r['label_recall']:.1f} | {r['per_object']:.2f} |")

    row("before (all proposals)", None)
    row("**default**", default)
    for conf, iou, contained in itertools.product((0.0, 0.1, 0.2, 0.3, 0.4, 0.5), (0.3, 0.5, 0.7, 1.0), (0.8, 1.0)):
        candidate = RegionFilter(min_confidence=conf, nms_iou=iou, contained=contained)
        if candidate != default:
            row("", candidate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, required=True, help="Folder for the per-image labelled regions.")
    parser.add_argument("--num-val", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-regions", type=int, default=100, help="Proposals labelled per image (today's cap).")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only-table", action="store_true", help="Use the cached images only; run no model.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.only_table:
        cache_regions(args.cache, args.num_val, args.seed, args.max_regions)
    table(load_cache(args.cache))


if __name__ == "__main__":
    main()
