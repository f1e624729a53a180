"""LVIS AP: a hand-computed case, backend parity, the per-image cap, fixed AP, federated semantics."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from regionspot.evaluation.lvis import (
    FIXED_AP_DETS_PER_CATEGORY,
    METRIC_NAMES,
    EvaluationError,
    as_lvis_style,
    cap_per_image,
    evaluate,
)
from regionspot.masks.rle import encode_rle

BACKENDS = ("faster_coco_eval", "lvis")


def _close(a: float, b: float, tol: float = 1e-4) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


def _assert_parity(a, b, names=METRIC_NAMES, tol=1e-4):
    for name in names:
        assert _close(getattr(a, name), getattr(b, name), tol), (name, getattr(a, name), getattr(b, name))
    assert [c.category_id for c in a.per_category] == [c.category_id for c in b.per_category]
    for ca, cb in zip(a.per_category, b.per_category):
        assert _close(ca.ap, cb.ap, tol), (ca, cb)
    assert a.num_detections == b.num_detections


# ----------------------------------------------------------------------------- hand-computed case


def _rect_ann(ann_id, image_id, cat_id, box):
    x, y, w, h = box
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": cat_id,
        "bbox": box,
        "area": w * h,
        "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
    }


def _det(image_id, cat_id, box, score):
    return {"image_id": image_id, "category_id": cat_id, "bbox": box, "score": score}


@pytest.fixture()
def hand_case():
    """Three 100×100 images, categories a (f), b (c), c (r).

    image 1: GT a A1=[0,0,10,10], GT b B1=[50,50,20,20]; negative: c.
    image 2: GT a A2=[20,20,10,10], GT c C1=[60,60,30,30]; negative: b; c is NOT exhaustive.
    image 3: no GT; negative: a (so b and c are unlabelled there).
    All GT areas are < 32² (all "small").
    """
    gt = {
        "images": [
            {
                "id": 1,
                "height": 100,
                "width": 100,
                "neg_category_ids": [3],
                "not_exhaustive_category_ids": [],
            },
            {
                "id": 2,
                "height": 100,
                "width": 100,
                "neg_category_ids": [2],
                "not_exhaustive_category_ids": [3],
            },
            {
                "id": 3,
                "height": 100,
                "width": 100,
                "neg_category_ids": [1],
                "not_exhaustive_category_ids": [],
            },
        ],
        "categories": [
            {"id": 1, "name": "a", "frequency": "f"},
            {"id": 2, "name": "b", "frequency": "c"},
            {"id": 3, "name": "c", "frequency": "r"},
        ],
        "annotations": [
            _rect_ann(1, 1, 1, [0, 0, 10, 10]),
            _rect_ann(2, 1, 2, [50, 50, 20, 20]),
            _rect_ann(3, 2, 1, [20, 20, 10, 10]),
            _rect_ann(4, 2, 3, [60, 60, 30, 30]),
        ],
    }
    dets = [
        # category a
        _det(1, 1, [0, 0, 10, 10], 0.90),  # on A1, IoU 1: TP
        _det(3, 1, [0, 0, 10, 10], 0.85),  # a is negative on image 3: FP
        _det(1, 1, [80, 0, 10, 10], 0.80),  # IoU 0 with A1: FP
        _det(2, 1, [20, 20, 10, 6.8], 0.70),  # on A2 with IoU 68/100 = 0.68: TP at IoU thr 0.50..0.65 only
        # category b
        _det(2, 2, [0, 0, 5, 5], 0.95),  # b is negative on image 2: FP
        _det(1, 2, [50, 50, 20, 20], 0.60),  # on B1: TP
        _det(3, 2, [0, 0, 5, 5], 0.99),  # b unlabelled on image 3: dropped
        # category c
        _det(2, 3, [0, 0, 30, 30], 0.99),  # unmatched, but c not exhaustive on image 2: ignored
        _det(2, 3, [60, 60, 30, 30], 0.50),  # on C1: TP
        _det(1, 3, [10, 10, 30, 30], 0.40),  # c is negative on image 1: FP
    ]
    return gt, dets


# Hand derivation, COCO/LVIS 101-point interpolation: AP = mean over recall r in {0, .01, ..., 1} of
# max precision at recall >= r (0 when r is never reached), averaged over 10 IoU thresholds .50:.05:.95.
#
# a (2 GT), ranked: TP(.90) FP(.85) FP(.80) then d(.70) which is TP for thr in {.50,.55,.60,.65}
#   (IoU .68) and FP for the 6 thresholds .70..95.
#   4 thresholds: recall/precision (.5,1) (.5,.5) (.5,1/3) (1,.5): r<=.5 -> 1 (51 points), r>.5 -> .5
#       (50 points): AP = (51 + 25) / 101 = 76/101.
#   6 thresholds: recall stops at .5 with precision 1: AP = 51/101.
#   AP_a = (4*76 + 6*51) / (10*101) = 610/1010; AP50_a = 76/101; AP75_a = 51/101.
# b (1 GT): FP(.95, negative image) TP(.60); the .99 on image 3 is dropped (unlabelled).
#   recall 1 reached at precision 1/2: AP_b = .5 at every threshold.
# c (1 GT): .99 ignored (not exhaustive), TP(.50), FP(.40): precision 1 at recall 1: AP_c = 1.
AP_A = 610 / 1010
AP_B = 0.5
AP_C = 1.0
EXPECTED = {
    "AP": (AP_A + AP_B + AP_C) / 3,
    "AP50": (76 / 101 + AP_B + AP_C) / 3,
    "AP75": (51 / 101 + AP_B + AP_C) / 3,
    "APs": (AP_A + AP_B + AP_C) / 3,  # every GT is small
    "APm": math.nan,  # no medium GT
    "APl": math.nan,
    "APr": AP_C,
    "APc": AP_B,
    "APf": AP_A,
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_computed_lvis_ap(hand_case, backend):
    gt, dets = hand_case
    gt_before, dets_before = copy.deepcopy(gt), copy.deepcopy(dets)
    result = evaluate(gt, dets, backend=backend)
    for name, value in EXPECTED.items():
        assert _close(getattr(result, name), value), (name, getattr(result, name), value)
    assert [(c.category_id, c.name, c.frequency) for c in result.per_category] == [
        (1, "a", "f"),
        (2, "b", "c"),
        (3, "c", "r"),
    ]
    assert [c.ap for c in result.per_category] == pytest.approx([AP_A, AP_B, AP_C], abs=1e-4)
    assert result.num_detections == len(dets) and result.num_images == 3
    assert gt == gt_before and dets == dets_before  # inputs untouched


def test_hand_case_from_files_and_federation_matters(hand_case, tmp_path):
    gt, dets = hand_case
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    result = evaluate(tmp_path / "gt.json", str(tmp_path / "dets.json"))
    assert _close(result.AP, EXPECTED["AP"])
    # Made exhaustive (every absent category negative, nothing "not exhaustive"): the unlabelled b on
    # image 3 becomes an FP ranked first (AP_b = 1/3) and c's .99 an FP ranked first (AP_c = .5).
    exhaustive = as_lvis_style({k: v for k, v in gt.items()}, frequency={1: "f", 2: "c", 3: "r"})
    strict = evaluate(exhaustive, dets)
    assert strict.APc == pytest.approx(1 / 3, abs=1e-4)
    assert strict.APr == pytest.approx(0.5, abs=1e-4)


def test_no_detections_gives_zero_ap(hand_case):
    gt, _ = hand_case
    for backend in BACKENDS:
        r = evaluate(gt, [], backend=backend)
        assert r.AP == 0.0 and r.APr == 0.0 and math.isnan(r.APl) and r.num_detections == 0


def test_bad_inputs_raise_clear_errors(hand_case):
    gt, dets = hand_case
    with pytest.raises(EvaluationError, match="image_id 99"):
        evaluate(gt, [_det(99, 1, [0, 0, 1, 1], 0.5)])
    with pytest.raises(EvaluationError, match="category_id 7"):
        evaluate(gt, [_det(1, 7, [0, 0, 1, 1], 0.5)])
    with pytest.raises(EvaluationError, match="as_lvis_style"):
        coco_like = copy.deepcopy(gt)
        del coco_like["images"][0]["neg_category_ids"]
        evaluate(coco_like, dets)
    with pytest.raises(EvaluationError, match="segmentation"):
        evaluate(gt, dets, iou_type="segm")
    with pytest.raises(EvaluationError, match="bad bbox"):
        evaluate(gt, [_det(1, 1, [0, 0, 1, 1], 0.5), _det(1, 1, [0, float("nan"), 1, 1], 0.5)])
    with pytest.raises(EvaluationError, match="non-finite score"):
        evaluate(gt, [_det(1, 1, [0, 0, 1, 1], float("inf"))])
    with pytest.raises(EvaluationError, match="backend"):
        evaluate(gt, dets, backend="detectron2")


# ----------------------------------------------------------------------------- generated LVIS-style data


def _polygon_in_box(rng, x, y, w, h):
    """A convex octagon-ish polygon inside the box (so masks are not just rectangles)."""
    t = np.sort(rng.uniform(0, 2 * np.pi, 8))
    px = x + w / 2 + (w / 2) * np.cos(t) * rng.uniform(0.7, 1.0, 8)
    py = y + h / 2 + (h / 2) * np.sin(t) * rng.uniform(0.7, 1.0, 8)
    return [float(v) for pair in zip(px, py) for v in pair]


def _box_mask(h, w, box):
    x, y, bw, bh = (int(round(v)) for v in box)
    m = np.zeros((h, w), dtype=bool)
    m[max(y, 0) : max(y + bh, 0), max(x, 0) : max(x + bw, 0)] = True
    return m


def _polygon_mask(size, polygon):
    from PIL import Image, ImageDraw

    img = Image.new("L", (size, size), 0)
    ImageDraw.Draw(img).polygon([(polygon[k], polygon[k + 1]) for k in range(0, len(polygon), 2)], fill=1)
    return np.asarray(img, dtype=bool)


def generate_lvis_case(
    seed=0, num_images=40, num_categories=30, size=200, crowded_images=3, with_masks=False
):
    """A random LVIS-style GT and noisy detections.

    Categories cycle f/c/r. Each image has 1-4 positive categories with 1-3 boxes each, 2-6 negative
    categories, and each positive category is "not exhaustive" with probability 0.3; a few categories
    never get GT. Detections: jittered copies of GT boxes (some duplicates), false positives on positive,
    negative and unlabelled categories, and ``crowded_images`` images with 350-500 detections.
    Scores are distinct (no ties). With ``with_masks``, GT has polygons and detections RLE masks.
    """
    rng = np.random.default_rng(seed)
    cats = [{"id": i + 1, "name": f"cat{i + 1}", "frequency": "fcr"[i % 3]} for i in range(num_categories)]
    cat_ids = np.array([c["id"] for c in cats])
    gt_cats = cat_ids[: num_categories - 3]  # the last 3 categories never have GT
    images, anns, dets = [], [], []

    def rand_box():
        w, h = rng.uniform(4, size / 2, 2)
        x, y = rng.uniform(0, size - w), rng.uniform(0, size - h)
        return [float(x), float(y), float(w), float(h)]

    def add_det(image_id, cat_id, box, polygon=None):
        det = {
            "image_id": image_id,
            "category_id": int(cat_id),
            "bbox": box,
            "score": float(rng.uniform(0.001, 1)),
        }
        if with_masks:
            det["segmentation"] = encode_rle(
                _polygon_mask(size, polygon) if polygon else _box_mask(size, size, box)
            )
        dets.append(det)

    for image_id in range(1, num_images + 1):
        pos = rng.choice(gt_cats, size=rng.integers(1, 5), replace=False)
        others = np.setdiff1d(cat_ids, pos)
        neg = rng.choice(others, size=rng.integers(2, 7), replace=False)
        unlabelled = np.setdiff1d(others, neg)
        not_exh = [int(c) for c in pos if rng.random() < 0.3]
        images.append(
            {
                "id": image_id,
                "height": size,
                "width": size,
                "neg_category_ids": sorted(int(c) for c in neg),
                "not_exhaustive_category_ids": sorted(not_exh),
            }
        )
        for c in pos:
            for _ in range(rng.integers(1, 4)):
                box = rand_box()
                ann = {"id": len(anns) + 1, "image_id": image_id, "category_id": int(c), "bbox": box}
                ann["area"] = box[2] * box[3]
                if with_masks:
                    ann["segmentation"] = [_polygon_in_box(rng, *box)]
                anns.append(ann)
                for _ in range(rng.integers(0, 3)):  # noisy copies: TPs at various IoUs, duplicates
                    jitter = rng.normal(0, 0.12, 4) * [box[2], box[3], box[2], box[3]]
                    x, y = box[0] + jitter[0], box[1] + jitter[1]
                    w, h = max(box[2] + jitter[2], 1.0), max(box[3] + jitter[3], 1.0)
                    shifted = None
                    if with_masks:  # the GT polygon, moved by the box jitter
                        dx, dy = x - box[0], y - box[1]
                        shifted = [
                            v + (dx if k % 2 == 0 else dy) for k, v in enumerate(ann["segmentation"][0])
                        ]
                    add_det(image_id, c, [float(x), float(y), float(w), float(h)], shifted)
            add_det(image_id, c, rand_box())  # FP on a positive category
        for c in rng.choice(neg, size=min(2, len(neg)), replace=False):
            add_det(image_id, c, rand_box())  # FP on a negative category
        for c in rng.choice(unlabelled, size=min(3, len(unlabelled)), replace=False):
            add_det(image_id, c, rand_box())  # unlabelled category: must be dropped
        if image_id <= crowded_images:
            for _ in range(rng.integers(350, 500)):
                add_det(image_id, rng.choice(np.concatenate([pos, neg, unlabelled[:3]])), rand_box())
    gt = {"images": images, "annotations": anns, "categories": cats}
    return gt, dets


def test_generator_covers_what_parity_needs():
    gt, dets = generate_lvis_case()
    per_image = np.bincount([d["image_id"] for d in dets])
    assert per_image.max() > 300
    assert sum(len(i["not_exhaustive_category_ids"]) for i in gt["images"]) > 0
    assert {c["frequency"] for c in gt["categories"]} == {"r", "c", "f"}


@pytest.mark.parametrize("kwargs", [{}, {"max_dets_per_image": None}, {"fixed_ap": True}])
def test_backends_agree_on_generated_lvis(kwargs):
    gt, dets = generate_lvis_case(seed=1)
    fast = evaluate(gt, dets, backend="faster_coco_eval", **kwargs)
    ref = evaluate(gt, dets, backend="lvis", **kwargs)
    _assert_parity(fast, ref)
    assert 0.05 < fast.AP < 0.95  # a non-trivial case
    assert not math.isnan(fast.APr) and not math.isnan(fast.APc) and not math.isnan(fast.APf)
    assert math.isnan(fast.per_category[-1].ap)  # categories without GT have no AP


def test_backends_agree_on_generated_lvis_segm():
    gt, dets = generate_lvis_case(seed=2, num_images=12, size=64, crowded_images=1, with_masks=True)
    for d in dets:
        d.pop("bbox")
    fast = evaluate(gt, dets, iou_type="segm", backend="faster_coco_eval")
    ref = evaluate(gt, dets, iou_type="segm", backend="lvis")
    _assert_parity(fast, ref)
    assert 0.02 < fast.AP < 0.95


@pytest.fixture(scope="module")
def shapesworld_case(tmp_path_factory):
    """A small ShapesWorld val split (64 px, sampled negatives so some categories are unlabelled) and
    detections: mask-tight GT boxes jittered, with their GT masks shifted, plus false positives."""
    from regionspot.shapesworld.generate import generate_shapesworld

    out = tmp_path_factory.mktemp("shapesworld")
    info = generate_shapesworld(out, 0, 12, seed=0, image_size=64, neg_category_sample=6, progress=False)
    gt = json.loads(open(info["val_json"]).read())
    from faster_coco_eval.core import mask as mask_utils

    rng = np.random.default_rng(0)
    cat_ids = [c["id"] for c in gt["categories"]]
    dets = []
    for ann in gt["annotations"]:
        m = mask_utils.decode(ann["segmentation"]).astype(bool)
        for _ in range(2):
            dy, dx = rng.integers(-3, 4, 2)
            shifted = np.roll(m, (int(dy), int(dx)), axis=(0, 1))
            x, y, w, h = ann["bbox"]
            box = [x + dx, y + dy, w * rng.uniform(0.8, 1.2), h * rng.uniform(0.8, 1.2)]
            cat = ann["category_id"] if rng.random() < 0.8 else int(rng.choice(cat_ids))
            dets.append(
                {
                    "image_id": ann["image_id"],
                    "category_id": cat,
                    "bbox": [float(v) for v in box],
                    "segmentation": encode_rle(shifted),
                    "score": float(rng.uniform(0.01, 1)),
                }
            )
    return gt, dets


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_backends_agree_on_shapesworld(shapesworld_case, iou_type):
    gt, dets = shapesworld_case
    gt_before, dets_before = copy.deepcopy(gt), copy.deepcopy(dets)
    fast = evaluate(gt, dets, iou_type=iou_type, backend="faster_coco_eval")
    ref = evaluate(gt, dets, iou_type=iou_type, backend="lvis")
    _assert_parity(fast, ref)
    assert gt == gt_before and dets == dets_before  # neither evaluator edits our inputs
    assert 0.05 < fast.AP < 0.99


# ----------------------------------------------------------------------------- caps


def test_per_image_cap_is_applied_identically_and_differs_from_per_category():
    """One image, two categories with 200 detections each (400 > 300). Category 1's only TP has the
    lowest score of the image, so the per-image top-300 drops it (AP_1 = 0) while a per-category cap of
    300 keeps it (AP_1 > 0). Both backends must follow LVIS (per image)."""
    gt = {
        "images": [
            {
                "id": 1,
                "height": 1000,
                "width": 1000,
                "neg_category_ids": [],
                "not_exhaustive_category_ids": [],
            }
        ],
        "categories": [
            {"id": 1, "name": "one", "frequency": "f"},
            {"id": 2, "name": "two", "frequency": "c"},
        ],
        "annotations": [_rect_ann(1, 1, 1, [0, 0, 100, 100]), _rect_ann(2, 1, 2, [500, 500, 100, 100])],
    }
    scores = np.linspace(0.02, 0.99, 398)
    dets = [_det(1, 1, [0, 0, 100, 100], 0.01), _det(1, 2, [500, 500, 100, 100], 0.995)]
    for i, s in enumerate(scores):  # interleave so each category has 199 FPs spread over the score range
        dets.append(_det(1, 1 + i % 2, [800, 800, 50, 50], float(s)))
    capped = cap_per_image(dets, 300)
    assert len(capped) == 300 and all(d["score"] > 0.01 for d in capped)

    # lvis-api's own per-image cap keeps exactly the same detections.
    from lvis.results import LVISResults

    official = LVISResults.limit_dets_per_image(None, copy.deepcopy(dets), 300)
    key = lambda d: (d["category_id"], d["score"])  # noqa: E731
    assert sorted(map(key, official)) == sorted(map(key, capped))

    for backend in BACKENDS:
        per_image = evaluate(gt, dets, backend=backend)  # default: 300 per image
        pre_capped = evaluate(gt, capped, max_dets_per_image=None, backend=backend)
        uncapped = evaluate(gt, dets, max_dets_per_image=None, backend=backend)  # = per-category 300 here
        assert per_image.num_detections == 300
        assert per_image.per_category[0].ap == 0.0
        assert uncapped.per_category[0].ap > 0.0
        _assert_parity(per_image, pre_capped)
        assert per_image.AP < uncapped.AP - 1e-3


def test_fixed_ap_keeps_top_10000_per_category_and_no_per_image_cap():
    """Category 1 has 10,050 detections over 50 images (one GT each); the 50 lowest-scored are TPs, so
    fixed AP drops exactly those. Image 1 holds 400 detections (> 300): fixed AP keeps them all."""
    n_img = 50
    gt = {
        "images": [
            {"id": i, "height": 500, "width": 500, "neg_category_ids": [2], "not_exhaustive_category_ids": []}
            for i in range(1, n_img + 1)
        ],
        "categories": [
            {"id": 1, "name": "one", "frequency": "f"},
            {"id": 2, "name": "two", "frequency": "r"},
        ],
        "annotations": [_rect_ann(i, i, 1, [0, 0, 100, 100]) for i in range(1, n_img + 1)],
    }
    rng = np.random.default_rng(0)
    n_fp = FIXED_AP_DETS_PER_CATEGORY
    fp_images = np.concatenate([np.ones(400, int), rng.integers(2, n_img + 1, n_fp - 400)])
    fp_scores = rng.uniform(0.1, 1.0, n_fp)
    dets = [_det(int(i), 1, [300, 300, 50, 50], float(s)) for i, s in zip(fp_images, fp_scores)]
    dets += [_det(i, 1, [0, 0, 100, 100], 0.05 - i * 1e-4) for i in range(1, n_img + 1)]  # TPs, lowest
    dets += [_det(1, 2, [0, 0, 10, 10], 0.5)]  # category 2 (negative everywhere): 1 FP
    results = {b: evaluate(gt, dets, fixed_ap=True, backend=b) for b in BACKENDS}
    _assert_parity(results["faster_coco_eval"], results["lvis"])
    fixed = results["faster_coco_eval"]
    assert fixed.num_detections == n_fp + 1 and fixed.fixed_ap and fixed.max_dets_per_image is None
    assert fixed.per_category[0].ap == 0.0  # every TP was below the 10,000th score
    assert math.isnan(fixed.per_category[1].ap)
    no_cap = evaluate(gt, dets, max_dets_per_image=None)
    assert no_cap.per_category[0].ap > 0.0  # the TPs exist; only the per-class cap removed them
