"""Evaluation time per image of the full-size RegionSpot-BL architecture, split by stage, and the
evaluator timing comparison (faster_coco_eval vs lvis-api).

Random weights at real sizes: SAM ViT-B (``SamConfig()`` defaults, 1024² input), CLIP ViT-L/14 at 224,
the BL head (C=1024, D=768), an LVIS-sized vocabulary (1203 classes, random text embeddings: text
encoding is done once per dataset and cached, so it is not part of the per-image cost). Each image is
640×480 with ``--boxes`` ground-truth boxes, run through the real evaluation loop
(``regionspot.engine.evaluate.predict_images``): decode → SAM encoder → SAM decoder (all boxes in one
call, masks on) → CLIP map → head → softmax / top pairs / RLE → append to the store. The first image is
a warm-up and is not counted.

    python benchmarks/eval_speed.py --images 3 --boxes 12 --eval-images 200

Prints two Markdown tables (seconds per image by stage; evaluator seconds by backend and iou type).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

NUM_CLASSES = 1203
LVIS_BUCKETS = (("r", 337), ("c", 461), ("f", 405))


def build_bl(device: str) -> tuple:
    """Random full-size BL parts: (segmenter, vision_language, RegionSpot)."""
    from transformers import CLIPConfig, CLIPModel, SamConfig, SamModel

    from regionspot.backbones.segmenter import SamPreprocess, SamSegmenter
    from regionspot.backbones.vision_language import ClipAdapter
    from regionspot.config import variant_config
    from regionspot.model import RegionSpot
    from regionspot.modeling.head import RegionSpotHead

    torch.manual_seed(0)
    sam = SamModel(SamConfig()).eval().requires_grad_(False).to(device)
    segmenter = SamSegmenter(sam, "random sam-vit-base", SamPreprocess())
    clip_config = CLIPConfig(
        text_config={"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12},
        vision_config={"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                       "num_attention_heads": 16, "patch_size": 14, "image_size": 224},
        projection_dim=768,
    )
    clip = CLIPModel(clip_config).eval().requires_grad_(False).to(device)
    vision_language = ClipAdapter(clip, None, model_id="random clip-vit-large-patch14", image_size=224)
    config = variant_config("BL")
    head = RegionSpotHead(config.head).eval().to(device)
    model = RegionSpot(segmenter=segmenter, vision_language=vision_language, head=head, config=config)
    return segmenter, vision_language, model


def lvis_like_categories() -> list[dict]:
    cats, next_id = [], 1
    for freq, count in LVIS_BUCKETS:
        for _ in range(count):
            cats.append({"id": next_id, "name": f"class_{next_id}", "frequency": freq})
            next_id += 1
    return cats


def write_dataset(root: Path, num_images: int, boxes_per_image: int, seed: int = 0) -> Path:
    """640×480 noise images with random GT boxes (rectangle masks) in an LVIS-style json."""
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    (root / "images").mkdir(parents=True, exist_ok=True)
    for i in range(1, num_images + 1):
        name = f"images/{i:06d}.jpg"
        Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(root / name, quality=90)
        cats = rng.choice(np.arange(1, NUM_CLASSES + 1), boxes_per_image)
        for c in cats:
            w, h = rng.uniform(20, 300), rng.uniform(20, 250)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            poly = [x, y, x + w, y, x + w, y + h, x, y + h]
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": int(c),
                                "bbox": [x, y, w, h], "area": w * h, "segmentation": [poly], "iscrowd": 0})
        present = {int(c) for c in cats}
        negatives = [int(c) for c in rng.choice(np.arange(1, NUM_CLASSES + 1), 50) if int(c) not in present]
        images.append({"id": i, "file_name": name, "width": 640, "height": 480,
                       "neg_category_ids": sorted(set(negatives)), "not_exhaustive_category_ids": []})
    path = root / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": lvis_like_categories()}))
    return path


def time_model(args: argparse.Namespace, root: Path) -> dict[str, float]:
    from regionspot.data.coco_json import CocoDetectionDataset
    from regionspot.engine.config import EvalOptions
    from regionspot.engine.eval_loop import predict_images

    ann = write_dataset(root, args.images, args.boxes)
    dataset = CocoDetectionDataset(ann, root)
    records = [dataset[i] for i in range(len(dataset))]
    segmenter, vision_language, model = build_bl(args.device)
    text = torch.nn.functional.normalize(torch.randn(NUM_CLASSES, 768), dim=-1).to(args.device)
    options = EvalOptions(methods=tuple(args.methods), iou_types=("bbox", "segm"), batch_size=args.batch_size,
                          workers=args.workers, chunk_size=args.chunk_size)
    common = dict(segmenter=segmenter, vision_language=vision_language, model=model, text=text,
                  category_ids=dataset.category_ids, options=options, show_progress=False)
    predict_images(records[:1], store_root=root / "warmup", **common)
    stats = predict_images(records[1:], store_root=root / "predictions", **common)
    per_image = stats.per_image()
    per_image["total (loop wall time)"] = stats.seconds / max(stats.scored, 1)
    return per_image


def time_evaluators(args: argparse.Namespace, root: Path) -> list[tuple[str, str, int, float]]:
    """Seconds of each backend and iou type on synthetic predictions: N images × 300 detections."""
    from regionspot.evaluation.lvis import evaluate
    from regionspot.masks.rle import encode_rle

    rng = np.random.default_rng(1)
    ann = write_dataset(root / "evaluator", args.eval_images, args.boxes, seed=1)
    gt = json.loads(ann.read_text())
    dets: list[dict] = []
    by_image: dict[int, list[dict]] = {}
    for a in gt["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    for image_id, anns in by_image.items():
        rles = []
        for a in anns:
            x, y, w, h = a["bbox"]
            mask = np.zeros((480, 640), bool)
            mask[int(y): int(y + h), int(x): int(x + w)] = True
            rles.append(encode_rle(mask))
        for k in range(300):  # several labels per GT box, as the protocol produces: the right one first
            i = k % len(anns)
            category = anns[i]["category_id"] if k < len(anns) else int(rng.integers(1, NUM_CLASSES + 1))
            dets.append({"image_id": image_id, "bbox": anns[i]["bbox"], "score": float(rng.random()),
                         "category_id": int(category), "segmentation": rles[i]})
    rows = []
    for iou_type in ("bbox", "segm"):
        for backend in ("faster_coco_eval", "lvis"):
            start = time.perf_counter()
            result = evaluate(gt, dets, iou_type=iou_type, backend=backend)
            rows.append((backend, iou_type, len(dets), time.perf_counter() - start, result.AP))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=3, help="images to time (the first is a warm-up)")
    parser.add_argument("--boxes", type=int, default=12, help="GT boxes per image")
    parser.add_argument("--methods", nargs="+", default=["regionspot"], help="regionspot clip-box clip-mask")
    parser.add_argument("--chunk-size", type=int, default=None, help="boxes per SAM decoder call (default: all)")
    parser.add_argument("--batch-size", type=int, default=1, help="images per SAM encoder / CLIP call")
    parser.add_argument("--workers", type=int, default=0, help="input processes (0: threads)")
    parser.add_argument("--eval-images", type=int, default=200, help="images for the evaluator comparison (0: skip)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.images > 1:
            per_image = time_model(args, root)
            print(f"\n## Eval time per image: BL (SAM ViT-B 1024² + CLIP ViT-L/14 224), {args.boxes} GT boxes, "
                  f"640×480, {NUM_CLASSES} classes, {', '.join(args.methods)}, device {args.device}, "
                  f"{torch.get_num_threads()} threads, batch {args.batch_size}, workers {args.workers}, "
                  f"mean of {args.images - 1} image(s)\n")
            print("| stage | seconds / image |\n|---|---:|")
            for stage, seconds in per_image.items():
                print(f"| {stage} | {seconds:.3f} |")
        if args.eval_images > 0:
            rows = time_evaluators(args, root)
            print(f"\n## Evaluator time: {args.eval_images} images × 300 detections, {NUM_CLASSES} classes\n")
            print("| backend | iou type | detections | seconds | AP |\n|---|---|---:|---:|---:|")
            for backend, iou_type, n, seconds, ap in rows:
                print(f"| {backend} | {iou_type} | {n} | {seconds:.2f} | {ap:.4f} |")


if __name__ == "__main__":
    main()
