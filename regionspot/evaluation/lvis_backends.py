"""The two LVIS AP backends: ``faster_coco_eval`` (C++, ``lvis_style=True``) and the reference lvis-api.

Each takes the checked ground truth and the already capped detections (``regionspot.evaluation.lvis_inputs``)
and returns the nine summary numbers (``METRIC_NAMES``) and the per-category AP, (K,) in category-id
order. Neither backend truncates: the caller has applied the LVIS caps.
"""

from __future__ import annotations

import logging
import warnings
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")


def _copy_dataset(gt: dict) -> dict:
    """A copy of the GT that the evaluators may annotate freely: they add or replace top-level keys of
    image/annotation/category dicts ("ignore", "rle", a decoded "segmentation") but never edit nested
    values in place, so copying those dicts one level deep suffices (a deepcopy of LVIS val takes long)."""
    out = dict(gt)
    for key in ("images", "annotations", "categories"):
        out[key] = [dict(x) for x in gt[key]]
    return out


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


def run_faster(gt: dict, dets: list[dict], iou_type: str) -> tuple[dict[str, float], np.ndarray]:
    from faster_coco_eval import COCO, COCOeval_faster

    quiet = lambda *args, **kwargs: None  # noqa: E731
    coco_gt = COCO(_copy_dataset(gt), print_function=quiet)
    coco_dt = coco_gt.loadRes(dets)  # dets are fresh dicts from load_results: no copy needed
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


def run_lvis(gt: dict, dets: list[dict], iou_type: str) -> tuple[dict[str, float], np.ndarray]:
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


BACKENDS = {"faster_coco_eval": run_faster, "lvis": run_lvis}
