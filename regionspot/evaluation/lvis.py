"""LVIS-style AP (federated, r/c/f buckets) through a maintained evaluator.

Two backends compute the same numbers on the same input:

- ``"faster_coco_eval"`` (default): ``faster_coco_eval.COCOeval_faster(..., lvis_style=True)``, a C++
  implementation that honours LVIS's federated annotation (see below) and reports APr/APc/APf.
- ``"lvis"``: the reference ``lvis.LVISEval`` of lvis-api 0.5.3 (pure Python, slow).

Federated semantics (LVIS): each image lists ``neg_category_ids`` (verified absent) and
``not_exhaustive_category_ids`` (present but not all instances annotated). A detection of a category
that is neither annotated on the image nor negative for it is dropped; an unmatched detection of a
not-exhaustive category is ignored (neither TP nor FP).

Detection caps. LVIS keeps the top 300 detections per IMAGE (``LVISResults(max_dets=300)``), whereas a
COCO-style evaluator truncates per (image, category). We apply the per-image cap ourselves, before
either backend sees the detections, and give the backend a per-(image, category) limit no smaller than
any (image, category) count, so its own truncation is a no-op and both backends score the identical
list. ``fixed_ap=True`` is the "fixed AP" of Dave et al. (2021): no per-image cap, at most 10,000
detections per category over the whole dataset (top by score), then the same AP.

All AP values are fractions in [0, 1]; NaN where undefined (no ground truth in that bucket).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import warnings
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from regionspot.errors import EvaluationError

__all__ = [
    "EvaluationError",
    "CategoryAP",
    "EvalResult",
    "METRIC_NAMES",
    "LVIS_MAX_DETS_PER_IMAGE",
    "FIXED_AP_DETS_PER_CATEGORY",
    "evaluate",
    "load_ground_truth",
    "as_lvis_style",
    "cap_per_image",
    "cap_per_category",
]

LVIS_MAX_DETS_PER_IMAGE = 300
FIXED_AP_DETS_PER_CATEGORY = 10_000
METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")
FREQUENCIES = ("r", "c", "f")

IouType = Literal["bbox", "segm"]
Backend = Literal["faster_coco_eval", "lvis"]


@dataclass(frozen=True)
class CategoryAP:
    """AP of one category: fraction in [0, 1], NaN when the category has no ground truth."""

    category_id: int
    name: str
    frequency: str  # "r", "c" or "f"
    ap: float


@dataclass
class EvalResult:
    """Summary of one evaluation (one iou type, one backend). AP values are fractions, NaN if undefined."""

    iou_type: str
    backend: str
    AP: float
    AP50: float
    AP75: float
    APs: float
    APm: float
    APl: float
    APr: float
    APc: float
    APf: float
    per_category: list[CategoryAP] = field(default_factory=list)
    num_images: int = 0
    num_detections: int = 0  # detections handed to the evaluator, after capping
    max_dets_per_image: int | None = LVIS_MAX_DETS_PER_IMAGE
    fixed_ap: bool = False

    def metrics(self) -> dict[str, float]:
        """The nine summary numbers, by name (AP, AP50, AP75, APs, APm, APl, APr, APc, APf)."""
        return {name: getattr(self, name) for name in METRIC_NAMES}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; NaN becomes None."""

        def clean(x: Any) -> Any:
            if isinstance(x, float) and math.isnan(x):
                return None
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            if isinstance(x, list):
                return [clean(v) for v in x]
            return x

        return clean(asdict(self))


# ----------------------------------------------------------------------------- inputs


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


def _load_results(results: list[dict] | str | os.PathLike, gt: dict, iou_type: str) -> list[dict]:
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


def _copy_dataset(gt: dict) -> dict:
    """A copy of the GT that the evaluators may annotate freely: they add or replace top-level keys of
    image/annotation/category dicts ("ignore", "rle", a decoded "segmentation") but never edit nested
    values in place, so copying those dicts one level deep suffices (a deepcopy of LVIS val takes long)."""
    out = dict(gt)
    for key in ("images", "annotations", "categories"):
        out[key] = [dict(x) for x in gt[key]]
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


# ----------------------------------------------------------------------------- backends


def _nan(x: float) -> float:
    x = float(x)
    return math.nan if x < 0 else x


def _per_category_ap(precision: np.ndarray) -> np.ndarray:
    """precision: (T, R, K) interpolated precision at IoU thresholds × recall thresholds × categories,
    -1 where undefined. Returns (K,) mean over defined entries, NaN where none."""
    valid = precision > -1
    counts = valid.sum(axis=(0, 1))
    sums = np.where(valid, precision, 0.0).sum(axis=(0, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _max_per_image_category(results: list[dict]) -> int:
    counts: dict[tuple[int, int], int] = defaultdict(int)
    for det in results:
        counts[det["image_id"], det["category_id"]] += 1
    return max(counts.values(), default=1)


def _run_faster(gt: dict, dets: list[dict], iou_type: str) -> tuple[dict[str, float], np.ndarray]:
    from faster_coco_eval import COCO, COCOeval_faster

    quiet = lambda *args, **kwargs: None  # noqa: E731
    coco_gt = COCO(_copy_dataset(gt), print_function=quiet)
    coco_dt = coco_gt.loadRes(dets)  # dets are fresh dicts from _load_results: no copy needed
    ev = COCOeval_faster(coco_gt, coco_dt, iouType=iou_type, lvis_style=True, print_function=quiet)
    # Per-(image, category) truncation made a no-op: capping was done by the caller.
    ev.params.maxDets = [_max_per_image_category(dets)]
    ev.run()
    s = ev.stats_as_dict
    metrics = {
        "AP": s["AP_all"],
        "AP50": s["AP_50"],
        "AP75": s["AP_75"],
        "APs": s["AP_small"],
        "APm": s["AP_medium"],
        "APl": s["AP_large"],
        "APr": s["APr"],
        "APc": s["APc"],
        "APf": s["APf"],
    }
    precision = np.asarray(ev.eval["precision"])[:, :, :, 0, -1]  # (T, R, K) at area "all", last maxDets
    return metrics, _per_category_ap(precision)


@contextmanager
def _numpy_float_alias() -> Iterator[None]:
    """lvis-api 0.5.3 calls ``np.float`` (removed in numpy 1.24). Provide the alias only while
    LVISEval runs, and only if numpy lacks it, instead of patching site-packages."""
    added = "float" not in np.__dict__
    if added:
        np.float = float  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if added:
            del np.float  # type: ignore[attr-defined]


def _lvis_from_dict(dataset: dict, cls: type) -> Any:
    """An lvis-api ``LVIS``/``LVISResults`` object over an in-memory dict (its constructors only read
    files, or deep-copy a GT and refuse empty results)."""
    obj = cls.__new__(cls)
    obj.logger = logging.getLogger("lvis")
    obj.dataset = dataset
    obj._create_index()
    return obj


def _run_lvis(gt: dict, dets: list[dict], iou_type: str) -> tuple[dict[str, float], np.ndarray]:
    from lvis import LVIS, LVISEval, LVISResults

    lvis_gt = _lvis_from_dict(_copy_dataset(gt), LVIS)
    if dets:
        results_logger = logging.getLogger("lvis.results")
        level = results_logger.level
        results_logger.setLevel(logging.ERROR)  # it warns "Assuming user provided the results..." for lists
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # lvis-api's logger.warn
                # max_dets=-1: detections are already capped by the caller.
                lvis_dt = LVISResults(lvis_gt, dets, max_dets=-1)
        finally:
            results_logger.setLevel(level)
    else:
        lvis_dt = _lvis_from_dict({**lvis_gt.dataset, "annotations": []}, LVISResults)
    ev = LVISEval(lvis_gt, lvis_dt, iou_type=iou_type)
    with _numpy_float_alias(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ev.run()
    metrics = {name: ev.results[name] for name in METRIC_NAMES}
    precision = np.asarray(ev.eval["precision"])[:, :, :, 0]  # (T, R, K) at area "all"
    return metrics, _per_category_ap(precision)


_BACKENDS = {"faster_coco_eval": _run_faster, "lvis": _run_lvis}


# ----------------------------------------------------------------------------- entry point


def evaluate(
    gt_json_path_or_dict: str | os.PathLike | dict,
    results: list[dict] | str | os.PathLike,
    iou_type: IouType = "bbox",
    max_dets_per_image: int | None = LVIS_MAX_DETS_PER_IMAGE,
    fixed_ap: bool = False,
    backend: Backend = "faster_coco_eval",
) -> EvalResult:
    """LVIS AP of COCO-format detections against an LVIS-style ground truth.

    gt_json_path_or_dict: LVIS-style annotations (see :func:`load_ground_truth`; use
        :func:`as_lvis_style` for an exhaustively labelled COCO-style file). Not modified.
    results: list of {"image_id", "category_id", "score", "bbox": [x, y, w, h] (original-image pixels)}
        and, for segm, "segmentation" as compressed RLE; or a path to such a json. Not modified.
    max_dets_per_image: per-image cap (LVIS: 300); None = no cap. Ignored when ``fixed_ap``.
    fixed_ap: Dave et al.'s fixed AP: no per-image cap, top 10,000 detections per category.
    backend: "faster_coco_eval" (fast, default) or "lvis" (reference lvis-api).
    """
    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {sorted(_BACKENDS)}, got {backend!r}")
    if max_dets_per_image is not None and int(max_dets_per_image) < 1:
        raise ValueError(f"max_dets_per_image must be >= 1 or None, got {max_dets_per_image}")
    gt = load_ground_truth(gt_json_path_or_dict)
    dets = _load_results(results, gt, iou_type)
    if fixed_ap:
        dets = cap_per_category(dets, FIXED_AP_DETS_PER_CATEGORY)
        cap = None
    else:
        cap = None if max_dets_per_image is None else int(max_dets_per_image)
        if cap is not None:
            dets = cap_per_image(dets, cap)
    metrics, per_cat = _BACKENDS[backend](gt, dets, iou_type)
    cats = sorted(gt["categories"], key=lambda c: c["id"])  # both backends order categories by id
    per_category = [
        CategoryAP(int(c["id"]), str(c.get("name", c["id"])), str(c["frequency"]), float(ap))
        for c, ap in zip(cats, per_cat.tolist())
    ]
    return EvalResult(
        iou_type=iou_type,
        backend=backend,
        **{name: _nan(metrics[name]) for name in METRIC_NAMES},
        per_category=per_category,
        num_images=len(gt["images"]),
        num_detections=len(dets),
        max_dets_per_image=cap,
        fixed_ap=fixed_ap,
    )
