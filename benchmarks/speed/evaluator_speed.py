"""Evaluator speed: faster-coco-eval (LVIS mode) vs lvis-api LVISEval on the same LVIS-style input.

Builds a synthetic LVIS-like validation set (federated labels: per-image negative and not-exhaustive
categories; r/c/f frequencies) with about ``--dets`` detections per image (some images above the
300 cap), runs both backends of ``regionspot.evaluation.lvis.evaluate`` and prints a table
(evaluator, seconds, AP, APr, APc, APf). Exits non-zero if the backends disagree by more than 1e-4.

    python benchmarks/speed/evaluator_speed.py --images 1000 --categories 1203 --dets 300
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from regionspot.evaluation.lvis import METRIC_NAMES, evaluate


def build_case(num_images: int, num_categories: int, dets_per_image: int, seed: int = 0, size: int = 640):
    """Synthetic LVIS-style GT dict and COCO-format detections (list of dicts)."""
    rng = np.random.default_rng(seed)
    # LVIS v1 has 337 r / 461 c / 405 f categories: keep roughly those shares.
    freq = rng.choice(["r", "c", "f"], size=num_categories, p=[0.28, 0.38, 0.34])
    categories = [{"id": i + 1, "name": f"category_{i + 1}", "frequency": str(f)} for i, f in enumerate(freq)]
    # Frequent categories appear more often.
    weight = np.where(freq == "f", 10.0, np.where(freq == "c", 2.0, 0.3))
    weight /= weight.sum()
    cat_ids = np.arange(1, num_categories + 1)
    images, anns, dets = [], [], []

    def boxes(n):
        wh = rng.uniform(8, size / 3, (n, 2))
        xy = rng.uniform(0, 1, (n, 2)) * (size - wh)
        return np.concatenate([xy, wh], axis=1)

    for image_id in range(1, num_images + 1):
        pos = rng.choice(cat_ids, size=rng.integers(1, 8), replace=False, p=weight)
        others = np.setdiff1d(cat_ids, pos)
        neg = rng.choice(others, size=min(len(others), int(rng.integers(3, 15))), replace=False)
        not_exh = pos[rng.random(len(pos)) < 0.2]
        images.append(
            {
                "id": image_id,
                "height": size,
                "width": size,
                "neg_category_ids": sorted(int(c) for c in neg),
                "not_exhaustive_category_ids": sorted(int(c) for c in not_exh),
            }
        )
        det_boxes, det_cats = [], []
        for c in pos:
            n = int(rng.integers(1, 6))
            gt_boxes = boxes(n)
            for b in gt_boxes:
                anns.append(
                    {
                        "id": len(anns) + 1,
                        "image_id": image_id,
                        "category_id": int(c),
                        "bbox": b.tolist(),
                        "area": float(b[2] * b[3]),
                    }
                )
            noisy = np.repeat(gt_boxes, 2, axis=0)
            noisy += rng.normal(0, 0.1, noisy.shape) * noisy[:, [2, 3, 2, 3]]
            noisy[:, 2:] = np.maximum(noisy[:, 2:], 1.0)
            det_boxes.append(noisy)
            det_cats.append(np.full(len(noisy), c))
        # Fill up with detections over positive, negative and unlabelled categories (a model scoring a
        # whole vocabulary); some images exceed the 300 cap.
        n_fill = max(
            0, int(rng.normal(dets_per_image, dets_per_image * 0.1)) - sum(len(b) for b in det_boxes)
        )
        pool = np.concatenate([pos, neg, rng.choice(others, size=20, replace=False)])
        det_boxes.append(boxes(n_fill))
        det_cats.append(rng.choice(pool, size=n_fill))
        all_boxes = np.concatenate(det_boxes)
        all_cats = np.concatenate(det_cats)
        scores = rng.uniform(0.001, 1.0, len(all_boxes))
        for b, c, s in zip(all_boxes.tolist(), all_cats.tolist(), scores.tolist()):
            dets.append({"image_id": image_id, "category_id": int(c), "bbox": b, "score": s})
    gt = {"images": images, "annotations": anns, "categories": categories}
    return gt, dets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--categories", type=int, default=1203)
    parser.add_argument("--dets", type=int, default=300, help="mean detections per image before the cap")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-lvis", action="store_true", help="only time faster-coco-eval")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    gt, dets = build_case(args.images, args.categories, args.dets, args.seed)
    per_image = np.bincount([d["image_id"] for d in dets])[1:]
    print(
        f"case: {len(gt['images'])} images, {len(gt['categories'])} categories, {len(gt['annotations'])} GT boxes, "
        f"{len(dets)} detections ({per_image.mean():.0f}/image, {(per_image > 300).sum()} images > 300); "
        f"built in {time.perf_counter() - t0:.1f} s"
    )
    backends = ["faster_coco_eval"] + ([] if args.skip_lvis else ["lvis"])
    results = {}
    for backend in backends:
        t, cpu = time.perf_counter(), time.process_time()
        results[backend] = evaluate(gt, dets, iou_type="bbox", backend=backend)
        # Wall and CPU time: on a shared machine wall time alone is inflated by other processes.
        results[backend].seconds = time.perf_counter() - t  # type: ignore[attr-defined]
        results[backend].cpu_seconds = time.process_time() - cpu  # type: ignore[attr-defined]

    print()
    print("| evaluator | seconds (wall) | seconds (CPU) | AP | APr | APc | APf | detections evaluated |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for backend, r in results.items():
        print(
            f"| {backend} | {r.seconds:.1f} | {r.cpu_seconds:.1f} | {100 * r.AP:.3f} | {100 * r.APr:.3f} | {100 * r.APc:.3f} | "
            f"{100 * r.APf:.3f} | {r.num_detections} |"
        )
    if len(results) == 2:
        a, b = results["faster_coco_eval"], results["lvis"]
        diff = max(
            abs(getattr(a, m) - getattr(b, m))
            for m in METRIC_NAMES
            if not np.isnan(getattr(a, m)) or not np.isnan(getattr(b, m))
        )
        print(
            f"\nmax |difference| over {', '.join(METRIC_NAMES)}: {diff:.2e}; speed-up (CPU time) {b.cpu_seconds / a.cpu_seconds:.1f}×"
        )
        if not diff <= 1e-4:
            print("backends DISAGREE", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
