"""Diagnostic: how far regionspot's default pipeline moves a head's outputs from the released RegionSpot
pipeline, one point at a time (see docs/protocol.md).

Rows (same head weights, same images, boxes and class names):

- ``released``: the released code's pipeline — ``preprocess_preset("released")`` (bilinear float CLIP
  resize, detectron2 800/1333 input resize, raw class names, SAM decoder eps 1e-5) and its
  nearest-neighbour mask return;
- one row per point, ``released`` with only that point switched to regionspot's default:
  ``clip resize`` (PIL, the model's filter: bicubic), ``input size`` (the original image), ``mask return``
  (800/1333 input kept, masks by SAM's own upsampling of its logits to the original size; logits do not
  change), ``class names`` (cleaned), ``SAM eps`` (the segmenter's own: the config's value for a local
  folder, 1e-5 for the original hub releases);
- ``default``: every point at regionspot's default.

Per row, against ``released``: the logits of every ground-truth box (max |Δ| over the vocabulary as a
share of the released logit range, averaged over boxes), top-1 agreement, top-5 overlap, and the LVIS
box / mask AP of the whole run with their change.

    python benchmarks/diagnostics/fidelity.py [--num-val 100] [--image-size 256] [--out runs/fidelity]
    python benchmarks/diagnostics/fidelity.py --head RegionSpot-BL.safetensors --data lvis_v1_val.json --images COCO_ROOT --limit 200

Default: the embedded ShapesWorld model (its head was trained with the default pipeline) on ``--num-val``
regenerated ShapesWorld val images (seed 0, the CI subset's generator).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from regionspot.checkpoint import load_head_state
from regionspot.config import PreprocessConfig, preprocess_preset
from regionspot.data.coco_json import CocoDetectionDataset
from regionspot.data.transforms import scale_boxes
from regionspot.engine.config import EvalOptions
from regionspot.engine.evaluate import evaluate_dataset, select_records
from regionspot.evaluation.protocol import Protocol, resolve_protocol
from regionspot.model import RegionSpot


def pipelines() -> dict[str, tuple[PreprocessConfig, str]]:
    """Row name -> (preprocessing, mask return)."""
    released, default = preprocess_preset("released"), preprocess_preset("default")

    def switch(*fields: str) -> PreprocessConfig:
        return dataclasses.replace(released, **{f: getattr(default, f) for f in fields})

    return {
        "released": (released, "nearest"),
        "released, clip resize = default": (switch("clip_resize", "clip_antialias"), "nearest"),
        # On the original image the masks are already at the original size: the mask return is moot.
        "released, input size = default": (switch("eval_resize", "eval_min_size", "eval_max_size"), "nearest"),
        "released, mask return = default": (released, "sam"),
        "released, class names = default": (switch("class_names"), "nearest"),
        "released, SAM eps = default": (switch("sam_decoder_eps"), "nearest"),
        "default": (default, "sam"),
    }


@torch.inference_mode()
def region_logits(model: RegionSpot, protocol: Protocol, dataset: CocoDetectionDataset, records, text) -> list:
    """(N, V) logits of every ground-truth box of each record, through the run's input size."""
    out = []
    for record in records:
        image = dataset.load_image(record.index)
        shown = protocol.model_input(image)
        boxes = torch.as_tensor(record.boxes, dtype=torch.float32).reshape(-1, 4)
        boxes = scale_boxes(boxes, shown.width / image.width, shown.height / image.height)
        if len(boxes) == 0:
            out.append(torch.zeros(0, text.shape[0]))
            continue
        tokens = model.segmenter.decode_prompts(model.segmenter.encode_image(shown), boxes=boxes, masks="none").tokens
        out.append(model(tokens[None], model.vision_language.feature_map([shown]), text).logits[0].cpu())
    return out


def compare(logits: list, reference: list) -> dict[str, float]:
    """Mean over boxes of max|Δ| / released range, top-1 agreement, top-5 overlap."""
    a, b = torch.cat(logits), torch.cat(reference)
    k = min(5, a.shape[1])
    spread = (b.max(1).values - b.min(1).values).clamp_min(1e-12)
    top5 = [len(set(x) & set(y)) / k for x, y in zip(a.topk(k, 1).indices.tolist(), b.topk(k, 1).indices.tolist())]
    return {
        "max_abs_diff_pct_of_range": float(((a - b).abs().max(1).values / spread).mean() * 100),
        "top1_agreement": float((a.argmax(1) == b.argmax(1)).float().mean()),
        "top5_overlap": sum(top5) / len(top5),
        "boxes": int(a.shape[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--head", default=None, help="head checkpoint (default: the embedded ShapesWorld model)")
    parser.add_argument("--sam", default=None, help="segmenter override")
    parser.add_argument("--clip", default=None, help="vision-language override")
    parser.add_argument("--data", default=None, help="COCO/LVIS json (default: regenerated ShapesWorld val)")
    parser.add_argument("--images", default=None, help="image root of --data")
    parser.add_argument("--num-val", type=int, default=100, help="ShapesWorld val images when --data is not given")
    parser.add_argument("--image-size", type=int, default=256,
                        help="ShapesWorld image side (256: the world's; 640: photo-like downsampling to CLIP)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images of --data")
    parser.add_argument("--out", default="runs/fidelity")
    args = parser.parse_args()
    out = Path(args.out)
    if args.data is None:
        from regionspot.shapesworld.generate import generate_shapesworld

        info = generate_shapesworld(out / "data", 0, args.num_val, seed=0, image_size=args.image_size, progress=False)
        args.data, args.images = info["val_json"], info["image_root"]
    base = RegionSpot.from_pretrained(args.head, segmenter=args.sam, vision_language=args.clip)
    dataset = CocoDetectionDataset(args.data, args.images)
    records = select_records(dataset, args.limit)

    rows, reference = {}, None
    for name, (preprocess, mask_return) in pipelines().items():
        start = time.perf_counter()
        config = dataclasses.replace(base.config, preprocess=preprocess)
        model = RegionSpot.from_config(config)
        load_head_state(model.head, base.head.state_dict())
        model.eval()
        options = EvalOptions(methods=("regionspot",), eval_resize=preprocess.eval_resize,
                              eval_min_size=preprocess.eval_min_size, eval_max_size=preprocess.eval_max_size,
                              mask_return=mask_return, limit=args.limit, text_cache_dir=str(out / "text"),
                              overwrite=True)
        summary = evaluate_dataset(args.data, args.images, out / "eval" / name.replace(", ", "_").replace(" ", "-"),
                                   segmenter=model.segmenter, vision_language=model.vision_language, model=model,
                                   options=options, show_progress=False)
        protocol = resolve_protocol(model.segmenter, model.vision_language, model, input_resize=preprocess.eval_resize,
                                    min_size=preprocess.eval_min_size, max_size=preprocess.eval_max_size)
        text = model.text_embeddings(dataset.raw_category_names, cache_dir=str(out / "text"), show_progress=False)
        logits = region_logits(model, protocol, dataset, records, text)
        reference = reference or logits
        result = summary.results["RegionSpot"]
        rows[name] = {
            **compare(logits, reference),
            "box_AP": 100 * result["bbox"].AP,
            "mask_AP": 100 * result["segm"].AP if "segm" in result else float("nan"),
            "seconds": round(time.perf_counter() - start, 1),
        }
        print(f"{name}: {rows[name]}", flush=True)

    ref = rows["released"]
    lines = [
        f"Head {args.head or 'shapesworld (embedded)'}; {len(records)} images of {Path(args.data).name}, "
        f"{ref['boxes']} boxes, {len(dataset.category_names)} classes. AP × 100 (LVIS protocol, GT boxes).",
        "",
        "| pipeline | max abs logit diff, % of range | top-1 agree | top-5 overlap | box AP | Δ box AP | mask AP | Δ mask AP |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['max_abs_diff_pct_of_range']:.3g} | {100 * row['top1_agreement']:.1f} | "
            f"{100 * row['top5_overlap']:.1f} | {row['box_AP']:.2f} | {row['box_AP'] - ref['box_AP']:+.2f} | "
            f"{row['mask_AP']:.2f} | {row['mask_AP'] - ref['mask_AP']:+.2f} |"
        )
    table = "\n".join(lines)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fidelity.md").write_text(table + "\n")
    (out / "fidelity.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
