"""How many objects the automatic proposals ("recognise everything") find: recall on ShapesWorld val.

Generates ``--num-val`` ShapesWorld val images into a temporary folder, proposes regions with the
segmenter alone (``regionspot.inference.proposals.propose_regions``) and counts a ground-truth object as
found when a proposal's box overlaps its box with IoU ≥ 0.5. Prints recall among the best 10 / 20 / 50 /
all (at most ``--max-regions``) proposals, proposals per image and seconds per image, for the default
options and, with ``--ablation``, without crops, without refinement and with a coarser grid.

    python benchmarks/quality/proposal_recall.py [--num-val 100] [--seed 0] [--ablation] [--sam DIR]

The segmenter is the embedded ShapesWorld model's tiny SAM unless ``--sam`` names another.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import torch

from regionspot.backbones.segmenter import load_segmenter
from regionspot.data.images import load_image
from regionspot.data.transforms import box_iou, xywh_to_xyxy
from regionspot.inference.proposals import ProposalOptions, propose_regions
from regionspot.registry import list_pretrained
from regionspot.shapesworld.generate import generate_shapesworld

TOP = (10, 20, 50)


def ground_truth(val_json: Path) -> tuple[list[dict], dict[int, torch.Tensor]]:
    """The val images and their GT boxes (K, 4) XYXY pixels, by image id."""
    data = json.loads(val_json.read_text())
    boxes: dict[int, list] = {}
    for ann in data["annotations"]:
        boxes.setdefault(ann["image_id"], []).append(ann["bbox"])
    as_xyxy = {k: xywh_to_xyxy(torch.tensor(v, dtype=torch.float32)) for k, v in boxes.items()}
    return data["images"], as_xyxy


def measure(segmenter, images: list[dict], truth: dict[int, torch.Tensor], root: Path, options: ProposalOptions) -> dict:
    """Recall@k, proposals per image and seconds per image of ``options`` over ``images``."""
    found = {k: 0 for k in (*TOP, "all")}
    total, count, seconds = 0, 0, 0.0
    for info in images:
        image = load_image(root / info["file_name"])
        start = time.perf_counter()
        proposals = propose_regions(segmenter, image, options)
        seconds += time.perf_counter() - start
        gt = truth.get(info["id"], torch.zeros(0, 4))
        total += len(gt)
        count += len(proposals)
        if len(gt) == 0 or len(proposals) == 0:
            continue
        ious = box_iou(gt, proposals.boxes)  # (G, K), proposals best first
        for k in found:
            cut = ious if k == "all" else ious[:, :k]
            found[k] += int((cut.max(1).values >= 0.5).sum())
    row = {f"recall@{k}": 100.0 * v / max(total, 1) for k, v in found.items()}
    row.update({"objects": total, "proposals/img": count / len(images), "s/img": seconds / len(images)})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-val", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sam", default=None, help="Segmenter folder or hub id (default: the embedded tiny SAM).")
    parser.add_argument("--ablation", action="store_true", help="Also run without crops, without refinement, grid 8.")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    segmenter = load_segmenter(args.sam or list_pretrained()["shapesworld"].segmenter)
    default = ProposalOptions()
    configs = {"default": default}
    if args.ablation:
        configs.update({
            "no crops": dataclasses.replace(default, crop_layers=0),
            "no refinement": dataclasses.replace(default, refine=False),
            "no crops, no refinement": dataclasses.replace(default, crop_layers=0, refine=False),
            "grid 8": dataclasses.replace(default, points_per_side=8),
        })
    columns = [f"recall@{k}" for k in (*TOP, "all")]
    with tempfile.TemporaryDirectory() as tmp:
        data = generate_shapesworld(tmp, 0, args.num_val, seed=args.seed, progress=False)
        images, truth = ground_truth(Path(data["val_json"]))
        print(f"ShapesWorld val, {args.num_val} images (seed {args.seed}), {sum(len(v) for v in truth.values())} "
              f"objects; segmenter {segmenter.model_id}; recall = % of objects with a proposal of box IoU >= 0.5; "
              f"at most {default.max_regions} proposals per image")
        print("| options | " + " | ".join(columns) + " | proposals/img | s/img |")
        print("|---|" + "---:|" * (len(columns) + 2), flush=True)
        for name, options in configs.items():  # each row as soon as it is measured
            row = measure(segmenter, images, truth, Path(tmp), options)
            cells = [f"{row[c]:.1f}" for c in columns] + [f"{row['proposals/img']:.1f}", f"{row['s/img']:.2f}"]
            print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
