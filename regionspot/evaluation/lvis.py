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

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from regionspot.errors import EvaluationError
from regionspot.evaluation.lvis_backends import BACKENDS, METRIC_NAMES
from regionspot.evaluation.lvis_inputs import (
    FIXED_AP_DETS_PER_CATEGORY,
    LVIS_MAX_DETS_PER_IMAGE,
    as_lvis_style,
    cap_per_category,
    cap_per_image,
    load_ground_truth,
    load_results,
)

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


# ----------------------------------------------------------------------------- entry point


def _nan(x: float) -> float:
    x = float(x)
    return math.nan if x < 0 else x


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
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got {backend!r}")
    if max_dets_per_image is not None and int(max_dets_per_image) < 1:
        raise ValueError(f"max_dets_per_image must be >= 1 or None, got {max_dets_per_image}")
    gt = load_ground_truth(gt_json_path_or_dict)
    dets = load_results(results, gt, iou_type)
    if fixed_ap:
        dets = cap_per_category(dets, FIXED_AP_DETS_PER_CATEGORY)
        cap = None
    else:
        cap = None if max_dets_per_image is None else int(max_dets_per_image)
        if cap is not None:
            dets = cap_per_image(dets, cap)
    metrics, per_cat = BACKENDS[backend](gt, dets, iou_type)
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
