"""Detector boxes as prompts: reading a detections file for ``regionspot eval --boxes``.

Two formats are read:

- COCO / LVIS results (what ``regionspot propose`` writes): ``[{"image_id", "bbox": [x, y, w, h], "score",
  "category_id"?}, ...]``, or a dict holding such a list under ``"annotations"``;
- the released RegionSpot code's GLIP box file (``nms_results_glip_tiny_model_o365_goldg_cc_sbu_lvis_val.json``):
  ``{"<image_id>": {"boxes": [[x0, y0, x1, y1], ...], "scores": [...], "labels": [...]}, ...}``, XYXY in
  pixels of the original image (the released code scales them from the original size to its resized input).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from regionspot.errors import RegionSpotError
from regionspot.inference.box_sources import ScoredBoxes


def load_detections(
    path: str | os.PathLike,
    sizes: dict[int, tuple[int, int]],
    max_boxes_per_image: int = 300,
    min_score: float = 0.0,
) -> tuple[dict[int, ScoredBoxes], dict[str, int]]:
    """Box prompts from a detector's COCO results file, grouped by image.

    path: [{"image_id", "bbox": [x, y, w, h], "score", ...}, ...] (category_id, if any, is ignored:
        boxes are class-agnostic prompts; a box listed under several categories is kept once with its
        highest score), or the GLIP box file (see the module doc).
    sizes: image_id -> (height, width) of the evaluated images; detections of other images are ignored.
    Returns ({image_id: ``ScoredBoxes`` (boxes (N, 4) float32 XYXY clipped to the image, scores (N,) float32,
    class-agnostic)}, counts), boxes sorted by score (highest first), at most ``max_boxes_per_image`` per
    image, each ≥ 1 px wide and high after clipping.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise RegionSpotError(f"Cannot read detections {path} ({error}); pass a COCO results json.") from None
    if isinstance(data, dict) and "annotations" in data:
        data = data["annotations"]
    elif isinstance(data, dict):
        data = glip_to_results(data, path)
    if not isinstance(data, list):
        raise RegionSpotError(f"{path} must be a list of {{'image_id', 'bbox', 'score'}} detections (COCO results).")
    best: dict[int, dict[tuple[float, ...], float]] = {}
    counts = {"read": len(data), "other_images": 0, "degenerate": 0}
    for i, det in enumerate(data):
        try:
            image_id, (x, y, w, h), score = int(det["image_id"]), det["bbox"], float(det.get("score", 1.0))
        except (KeyError, TypeError, ValueError):
            raise RegionSpotError(
                f"{path}: detection {i} lacks image_id or a 4-number bbox; expected COCO results format."
            ) from None
        if image_id not in sizes:
            counts["other_images"] += 1
            continue
        height, width = sizes[image_id]
        box = (max(float(x), 0.0), max(float(y), 0.0), min(float(x) + float(w), width), min(float(y) + float(h), height))
        if not all(math.isfinite(v) for v in box) or box[2] - box[0] < 1 or box[3] - box[1] < 1 or score < min_score:
            counts["degenerate"] += 1
            continue
        per_image = best.setdefault(image_id, {})
        per_image[box] = max(score, per_image.get(box, -math.inf))
    out = {}
    for image_id, per_image in best.items():
        ranked = sorted(per_image.items(), key=lambda kv: -kv[1])[:max_boxes_per_image]
        boxes = np.asarray([b for b, _ in ranked], dtype=np.float32).reshape(-1, 4)
        scores = np.asarray([s for _, s in ranked], dtype=np.float32)
        out[image_id] = ScoredBoxes.class_agnostic(boxes, scores)
    counts["kept"] = sum(len(found) for found in out.values())
    return out, counts


def glip_to_results(data: dict, path: Path) -> list[dict]:
    """The GLIP box file (``{"<image_id>": {"boxes": XYXY, "scores", "labels"}}``) as COCO results entries."""
    out = []
    for key, entry in data.items():
        try:
            image_id = int(key)
            boxes, scores = entry["boxes"], entry["scores"]
            if len(boxes) != len(scores):
                raise ValueError
            labels = entry.get("labels") or [None] * len(boxes)
            for (x0, y0, x1, y1), score, label in zip(boxes, scores, labels, strict=True):
                x0, y0, x1, y1 = float(x0), float(y0), float(x1), float(y1)
                out.append({"image_id": image_id, "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(score),
                            "category_id": label})
        except (KeyError, TypeError, ValueError):
            raise RegionSpotError(
                f"{path}: entry {key!r} is neither a COCO results list nor the GLIP box file's "
                "{'boxes': [[x0, y0, x1, y1], ...], 'scores': [...]} per image id."
            ) from None
    return out
