"""Writing a dataset: determinism, COCO / LVIS layout, masks, frequency buckets, the CLI."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from faster_coco_eval import COCO as FastCOCO
from faster_coco_eval import COCOeval_faster
from lvis import LVIS
from PIL import Image
from pycocotools.coco import COCO
from typer.testing import CliRunner

from regionspot.cli import app
from regionspot.errors import RegionSpotError
from regionspot.shapesworld.generate import generate_shapesworld

SIZE = 64


def _generate(root: Path, seed: int) -> dict:
    return generate_shapesworld(root, num_train=6, num_val=8, seed=seed, image_size=SIZE, progress=False)


def _digest(result: dict) -> dict:
    root = Path(result["root"])
    out = {}
    for split in ("train", "val"):
        out[f"{split}.json"] = hashlib.sha256(Path(result[f"{split}_json"]).read_bytes()).hexdigest()
        for png in sorted((root / split).glob("*.png")):
            pixels = np.asarray(Image.open(png))
            out[png.name] = hashlib.sha256(pixels.tobytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return _generate(tmp_path_factory.mktemp("sw_a"), seed=0)


@pytest.fixture(scope="module")
def data(world):
    return {s: json.loads(Path(world[f"{s}_json"]).read_text()) for s in ("train", "val")}


def test_same_seed_is_identical_other_seed_differs(world, tmp_path):
    again = _generate(tmp_path / "b", seed=0)
    assert _digest(world) == _digest(again)
    other = _generate(tmp_path / "c", seed=1)
    assert _digest(world)["train.json"] != _digest(other)["train.json"]
    assert _digest(world)["00000001.png"] != _digest(other)["00000001.png"]


def test_files_and_json_layout(world, data):
    root = Path(world["root"])
    for split in ("train", "val"):
        doc = data[split]
        assert len(doc["images"]) == (6 if split == "train" else 8)
        assert len(doc["categories"]) == 144
        for image in doc["images"]:
            path = root / image["file_name"]
            assert path.is_file()
            assert Image.open(path).size == (SIZE, SIZE)
            assert "neg_category_ids" in image and image["not_exhaustive_category_ids"] == []
        assert doc["info"]["frequency_split"]["r"] == [c["id"] for c in doc["categories"] if c["frequency"] == "r"]
    train_ids = {im["id"] for im in data["train"]["images"]}
    val_ids = {im["id"] for im in data["val"]["images"]}
    assert train_ids.isdisjoint(val_ids)
    # image_count / instance_count are train counts (LVIS convention).
    counts = {}
    for ann in data["train"]["annotations"]:
        counts[ann["category_id"]] = counts.get(ann["category_id"], 0) + 1
    for cat in data["val"]["categories"]:
        assert cat["instance_count"] == counts.get(cat["id"], 0)


def test_boxes_areas_and_masks_are_consistent(data):
    for split in ("train", "val"):
        doc = data[split]
        by_image = {}
        for ann in doc["annotations"]:
            assert ann["iscrowd"] == 0
            assert isinstance(ann["segmentation"]["counts"], str)
            rle = dict(ann["segmentation"], counts=ann["segmentation"]["counts"].encode())
            mask = mask_utils.decode(rle).astype(bool)
            assert mask.shape == (SIZE, SIZE)
            ys, xs = np.nonzero(mask)
            tight = [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
            np.testing.assert_allclose(ann["bbox"], tight, atol=1.0)
            assert ann["area"] == int(mask.sum()) > 0
            by_image.setdefault(ann["image_id"], []).append(mask)
        assert by_image, "no annotations generated"
        for masks in by_image.values():
            stacked = np.stack(masks).astype(np.int32)
            assert stacked.sum(0).max() <= 1  # visible parts are disjoint
        for image in doc["images"]:
            present = {a["category_id"] for a in doc["annotations"] if a["image_id"] == image["id"]}
            assert present.isdisjoint(image["neg_category_ids"])
            assert len(present) + len(image["neg_category_ids"]) == 144  # exhaustive by default


def test_rare_categories_only_in_val(data):
    rare = {c["id"] for c in data["train"]["categories"] if c["frequency"] == "r"}
    train_cats = {a["category_id"] for a in data["train"]["annotations"]}
    val_cats = {a["category_id"] for a in data["val"]["annotations"]}
    assert train_cats.isdisjoint(rare)
    assert val_cats & rare
    objects = [sum(a["image_id"] == im["id"] for a in data["train"]["annotations"]) for im in data["train"]["images"]]
    assert min(objects) >= 1 and max(objects) <= 10


def test_loads_with_pycocotools_and_lvis_evaluator(world, data):
    coco = COCO(world["val_json"])
    assert len(coco.getImgIds()) == 8
    lvis = LVIS(world["val_json"])
    assert len(lvis.get_ann_ids()) == len(data["val"]["annotations"])
    # Ground truth as detections scores AP 1 with an LVIS-style evaluator (lvis 0.5.3's own LVISEval
    # uses np.float, removed in numpy 2, so we evaluate with faster-coco-eval's lvis_style mode).
    results = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
        for a in data["val"]["annotations"]
    ]
    gt = FastCOCO(world["val_json"])
    evaluator = COCOeval_faster(gt, gt.loadRes(results), "bbox", lvis_style=True, print_function=lambda *a: None)
    evaluator.params.maxDets = [300]
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    stats = evaluator.stats_as_dict
    assert stats["AP_all"] == pytest.approx(1.0)
    assert stats["APr"] == pytest.approx(1.0)


def test_cli_generate_and_bad_arguments(tmp_path):
    out = tmp_path / "cli"
    args = ["shapesworld", "generate", "--out", str(out), "--train", "1", "--val", "1", "--seed", "2", "--image-size", "48"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "annotations" / "train.json").is_file() and (out / "annotations" / "val.json").is_file()
    assert "64 categories" in result.output  # the embedded model's world by default
    result = CliRunner().invoke(app, [*args, "--world", "v1"])
    assert result.exit_code == 0 and "144 categories" in result.output, result.output
    result = CliRunner().invoke(app, [*args, "--world", "v9"])
    assert result.exit_code == 2 and "Unknown ShapesWorld world 'v9'" in result.output
    with pytest.raises(RegionSpotError, match="rare"):
        generate_shapesworld(tmp_path / "x", 1, 1, train_bucket_weights=(1.0, 1.0, 0.5), progress=False)
    with pytest.raises(RegionSpotError, match="image_size"):
        generate_shapesworld(tmp_path / "x", 1, 1, image_size=8, progress=False)
