"""inference.coco_output: the COCO results of a batch, with the ids of a ground truth when there is one."""

import json

import numpy as np
import pytest

from regionspot.inference.batch import BatchItem, ImagePrompts
from regionspot.inference.coco_output import coco_entries, write_coco


def test_coco_entries_are_the_results_to_coco_json(tiny_model_dir):
    from regionspot.inference.predictor import RegionSpotPredictor
    from regionspot.model import RegionSpot

    predictor = RegionSpotPredictor(RegionSpot.from_pretrained(tiny_model_dir / "head.safetensors"))
    predictor.set_image((np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8))
    predictor.set_vocabulary(["a", "b", "c"])
    result = predictor.predict(boxes=[[4, 6, 40, 30], [1, 1, 9, 9]], top_k=2)
    ours = coco_entries(result.to_dict(masks=True), 5, {"a": 1, "b": 2, "c": 3})
    theirs = result.to_coco_json(image_id=5)
    assert len(ours) == len(theirs) == 4
    for mine, reference in zip(ours, theirs):
        assert (mine["image_id"], mine["category_id"], mine["segmentation"]) == (
            reference["image_id"], reference["category_id"], reference["segmentation"])
        assert mine["bbox"] == pytest.approx(reference["bbox"], abs=0.01)
        assert mine["score"] == pytest.approx(reference["score"], abs=1e-4)


def test_ids_come_from_the_ground_truth_where_it_has_them(tmp_path):
    truth = tmp_path / "val.json"
    truth.write_text(json.dumps({"images": [{"id": 40, "file_name": "val/a.png"}, {"id": 7, "file_name": "val/b.png"}],
                                 "annotations": [], "categories": [{"id": 12, "name": "cat"}, {"id": 3, "name": "dog"}]}))
    items = [BatchItem(tmp_path / "val" / name, name[:-4], ImagePrompts(), "x") for name in ("b.png", "new.png", "a.png")]
    _, ids_path = write_coco(items, tmp_path, ["dog", "bird", "cat"], truth)
    ids = json.loads(ids_path.read_text())
    assert list(ids["images"].values()) == [7, 41, 40]  # unknown files after the largest known id
    assert ids["categories"] == {"dog": 3, "bird": 13, "cat": 12}
    _, ids_path = write_coco(items, tmp_path, ["dog", "bird"])
    ids = json.loads(ids_path.read_text())
    assert list(ids["images"].values()) == [1, 2, 3] and ids["categories"] == {"dog": 1, "bird": 2}
