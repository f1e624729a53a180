"""The inputs of LVIS AP, read and checked: the ground truth (LVIS-style, or a COCO-style file made
LVIS-style by :func:`as_lvis_style`), the detections, and the detection caps.

Boxes are COCO XYWH in original-image pixels; masks compressed RLE. Every problem is an
``EvaluationError`` of one line naming the fix. See :mod:`regionspot.evaluation.lvis` for the whole
evaluation and why the caps are applied before the backends see the detections.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections import defaultdict
from typing import Any

import numpy as np

from regionspot.errors import EvaluationError

LVIS_MAX_DETS_PER_IMAGE = 300
FIXED_AP_DETS_PER_CATEGORY = 10_000
FREQUENCIES = ("r", "c", "f")


def load_ground_truth(gt: str | os.PathLike | dict) -> dict:
    """Read an LVIS-style annotation file (or take a dict) and check the fields LVIS AP needs.

    Required: images with id, height, width, neg_category_ids, not_exhaustive_category_ids;
    categories with id, name, frequency in {"r", "c", "f"}; annotations with positive unique id,
    image_id, category_id, bbox [x, y, w, h], area. The dict is returned as is (not copied).
    """
    if isinstance(gt, (str, os.PathLike)):
        if not os.path.isfile(gt):
            raise EvaluationError(
                f"ground-truth file not found: {os.fspath(gt)}; pass the LVIS-style annotation json"
            )
        with open(gt) as f:
            gt = json.load(f)
    if not isinstance(gt, dict) or not all(k in gt for k in ("images", "annotations", "categories")):
        raise EvaluationError(
            "ground truth must be a COCO/LVIS dict with 'images', 'annotations' and 'categories'"
        )
    for cat in gt["categories"]:
        if cat.get("frequency") not in FREQUENCIES:
            raise EvaluationError(
                f"category {cat.get('id')} has no LVIS frequency ('r'/'c'/'f'); "
                "for a COCO-style file call regionspot.evaluation.lvis.as_lvis_style(gt) first"
            )
    for img in gt["images"]:
        missing = [
            k
            for k in ("id", "height", "width", "neg_category_ids", "not_exhaustive_category_ids")
            if k not in img
        ]
        if missing:
            raise EvaluationError(
                f"image {img.get('id')} lacks {', '.join(missing)}; "
                "for an exhaustively labelled COCO-style file call regionspot.evaluation.lvis.as_lvis_style(gt) first"
            )
    ids = set()
    for ann in gt["annotations"]:
        ann_id = ann.get("id")
        if not isinstance(ann_id, (int, np.integer)) or ann_id <= 0 or ann_id in ids:
            raise EvaluationError(
                f"annotation id {ann_id!r} is not a unique positive int (0 means 'unmatched' to the evaluators); "
                "renumber annotations from 1"
            )
        ids.add(ann_id)
        if "area" not in ann or "bbox" not in ann:
            raise EvaluationError(f"annotation {ann_id} lacks 'area' or 'bbox'")
    return gt


def as_lvis_style(gt: dict, frequency: dict[int, str] | None = None) -> dict:
    """An LVIS-style copy of an exhaustively labelled COCO-style dataset (e.g. ShapesWorld, COCO).

    Every category not annotated on an image becomes negative for it (so its detections count as false
    positives, as in COCO), no category is "not exhaustive", and each category gets a frequency: from
    ``frequency`` (category id -> "r"/"c"/"f") or else from its image count in this file with LVIS's
    thresholds (< 10 images rare, < 100 common, otherwise frequent). Missing ``area`` becomes w·h.
    """
    out = copy.deepcopy(gt)
    cat_ids = [c["id"] for c in out["categories"]]
    present: dict[int, set[int]] = defaultdict(set)
    for ann in out["annotations"]:
        present[ann["image_id"]].add(ann["category_id"])
        if "area" not in ann:
            ann["area"] = float(ann["bbox"][2]) * float(ann["bbox"][3])
    for img in out["images"]:
        img["neg_category_ids"] = [c for c in cat_ids if c not in present[img["id"]]]
        img["not_exhaustive_category_ids"] = []
    images_per_cat: dict[int, set[int]] = defaultdict(set)
    for ann in out["annotations"]:
        images_per_cat[ann["category_id"]].add(ann["image_id"])
    for cat in out["categories"]:
        if frequency is not None and cat["id"] in frequency:
            cat["frequency"] = frequency[cat["id"]]
        else:
            n = len(images_per_cat[cat["id"]])
            cat["frequency"] = "r" if n < 10 else "c" if n < 100 else "f"
    return out


def load_results(results: list[dict] | str | os.PathLike, gt: dict, iou_type: str) -> list[dict]:
    """Checked shallow copies of the detections with only the fields the evaluators read."""
    if isinstance(results, (str, os.PathLike)):
        if not os.path.isfile(results):
            raise EvaluationError(f"results file not found: {os.fspath(results)}")
        with open(results) as f:
            results = json.load(f)
    if not isinstance(results, list):
        raise EvaluationError("results must be a list of COCO-format detection dicts")
    image_ids = {img["id"] for img in gt["images"]}
    cat_ids = {c["id"] for c in gt["categories"]}
    geometry = "bbox" if iou_type == "bbox" else "segmentation"
    out = []
    for i, det in enumerate(results):
        try:
            image_id, cat_id, score = int(det["image_id"]), int(det["category_id"]), float(det["score"])
            geom = det[geometry]
        except (KeyError, TypeError, ValueError) as e:
            raise EvaluationError(
                f"detection {i} lacks image_id/category_id/score/{geometry} ({e!r}); "
                "produce results with regionspot.modeling.postprocess.to_coco_results"
            ) from None
        if image_id not in image_ids:
            raise EvaluationError(f"detection {i} has image_id {image_id} that is not in the ground truth")
        if cat_id not in cat_ids:
            raise EvaluationError(f"detection {i} has category_id {cat_id} that is not in the ground truth")
        if not math.isfinite(score):
            raise EvaluationError(f"detection {i} has a non-finite score {score}")
        if iou_type == "bbox":
            if len(geom) != 4:
                raise EvaluationError(f"detection {i} has a bad bbox {geom}; expected [x, y, w, h]")
            out.append({"image_id": image_id, "category_id": cat_id, "bbox": list(geom), "score": score})
        else:
            if not isinstance(geom, dict) or "counts" not in geom or "size" not in geom:
                raise EvaluationError(
                    f"detection {i}: segm evaluation needs compressed RLE segmentation dicts"
                )
            # Without a bbox both evaluators take the area from the mask (detectron2 drops bbox for segm too).
            out.append({"image_id": image_id, "category_id": cat_id, "segmentation": geom, "score": score})
    if iou_type == "bbox" and out:
        boxes = np.asarray([d["bbox"] for d in out], dtype=np.float64)  # (K, 4) XYWH; one check for all
        bad = ~np.isfinite(boxes).all(axis=1) | (boxes[:, 2] < 0) | (boxes[:, 3] < 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise EvaluationError(
                f"detection {i} has a bad bbox {out[i]['bbox']}; expected finite [x, y, w, h] with w, h >= 0"
            )
        for d, box in zip(out, boxes.tolist()):
            d["bbox"] = box
    return out


def _cap(results: list[dict], key: str, k: int) -> list[dict]:
    groups: dict[Any, list[int]] = defaultdict(list)
    for i, det in enumerate(results):
        groups[det[key]].append(i)
    keep = np.zeros(len(results), dtype=bool)
    for idx in groups.values():
        if len(idx) > k:
            # sorted() is stable: equal scores keep input order (as LVISResults.limit_dets_per_image does).
            idx = sorted(idx, key=lambda j: -results[j]["score"])[:k]
        keep[idx] = True
    return [det for det, kept in zip(results, keep) if kept]


def cap_per_image(results: list[dict], k: int = LVIS_MAX_DETS_PER_IMAGE) -> list[dict]:
    """The top-``k`` detections (by score) of every image; input order kept among the survivors."""
    return _cap(results, "image_id", k)


def cap_per_category(results: list[dict], k: int = FIXED_AP_DETS_PER_CATEGORY) -> list[dict]:
    """The top-``k`` detections (by score) of every category over all images (fixed AP)."""
    return _cap(results, "category_id", k)
