import json
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from PIL import Image

from regionspot.data.coco_json import CocoDetectionDataset, apply_path_rule, resolve_image_path
from regionspot.errors import ImageError, RegionSpotError
from regionspot.shapesworld.generate import generate_shapesworld


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("sw")
    return generate_shapesworld(root, num_train=6, num_val=4, seed=0, image_size=64, progress=False)


def _lvis_like(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "coco"
    (root / "val2017").mkdir(parents=True)
    Image.new("RGB", (40, 30), (10, 20, 30)).save(root / "val2017" / "000000397133.jpg")
    rle = mask_utils.encode(np.asfortranarray(np.pad(np.ones((5, 6), np.uint8), ((2, 23), (3, 31)))))
    data = {
        "images": [
            {"id": 397133, "width": 40, "height": 30, "coco_url": "http://images.cocodataset.org/val2017/000000397133.jpg",
             "neg_category_ids": [3], "not_exhaustive_category_ids": [7]},
            {"id": 5, "width": 40, "height": 30, "file_name": "val2017/000000397133.jpg"},
            {"id": 6, "width": 40, "height": 30, "file_name": "missing.jpg"},
        ],
        "annotations": [
            {"id": 1, "image_id": 397133, "category_id": 7, "bbox": [1, 2, 10, 5], "area": 50, "iscrowd": 0,
             "segmentation": [[1, 2, 11, 2, 11, 7, 1, 7]]},
            {"id": 2, "image_id": 397133, "category_id": 3, "bbox": [0, 0, 40, 30], "area": 1200, "iscrowd": 1},
            {"id": 3, "image_id": 397133, "category_id": 3, "bbox": [5, 5, 0.5, 10], "area": 5, "iscrowd": 0},
            {"id": 4, "image_id": 397133, "category_id": 3, "bbox": [30, 20, 20, 20], "area": 100, "iscrowd": 0,
             "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}},
        ],
        "categories": [
            {"id": 7, "name": "wall-other-merged", "frequency": "r"},
            {"id": 3, "name": "traffic_light", "frequency": "f"},
            {"id": 9, "name": "squid_(food)", "frequency": "c"},
        ],
    }
    path = tmp_path / "lvis_v1_tiny.json"
    path.write_text(json.dumps(data))
    return path, root


def test_hand_written_lvis_file(tmp_path):
    path, root = _lvis_like(tmp_path)
    ds = CocoDetectionDataset(path, root)
    assert ds.name == "lvis_v1_tiny"
    assert ds.category_ids == [3, 7, 9]  # ordered by id
    assert ds.category_names == ["traffic light", "wall", "squid food"]
    assert ds.frequencies == ["f", "r", "c"]
    assert ds.cat_id_to_label == {3: 0, 7: 1, 9: 2}
    assert [r.image_id for r in ds] == [5, 6, 397133]
    record = ds[2]
    assert record.dataset == "lvis_v1_tiny"
    assert record.path == root / "val2017" / "000000397133.jpg"  # from coco_url
    assert ds[0].path == root / "val2017" / "000000397133.jpg"  # from file_name
    # Crowd (id 2) and degenerate (id 3) boxes are skipped; the last is clipped to the image.
    assert record.annotation_ids.tolist() == [1, 4]
    assert record.boxes.dtype == np.float32
    np.testing.assert_allclose(record.boxes, [[1, 2, 11, 7], [30, 20, 40, 30]])
    assert record.labels.tolist() == [1, 0]
    assert record.category_ids.tolist() == [7, 3]
    assert record.neg_category_ids == (3,) and record.not_exhaustive_category_ids == (7,)
    masks = ds.load_masks(2)
    assert masks.shape == (2, 30, 40) and masks.dtype == bool
    assert masks[0, 3, 5] and not masks[0, 20, 20]
    assert masks[1].sum() == 30 and masks[1, 2:7, 3:9].all()
    assert ds.load_image(2).size == (40, 30)
    with pytest.raises(ImageError, match="missing.jpg"):
        ds.load_image(1)
    named = CocoDetectionDataset(path, root, dataset_name="lvis", skip_empty=True)
    assert named[0].dataset == "lvis" and len(named) == 1


def test_resolve_url_without_file_name():
    image = {"id": 1, "coco_url": "http://images.cocodataset.org/train2017/000000000009.jpg"}
    assert resolve_image_path(image, Path("/data/coco")) == Path("/data/coco/train2017/000000000009.jpg")
    with pytest.raises(RegionSpotError, match="neither"):
        resolve_image_path({"id": 2}, Path("/data"))


def test_missing_paths_and_bad_files_raise_clearly(tmp_path):
    with pytest.raises(RegionSpotError, match="Annotation file not found: .*nope.json"):
        CocoDetectionDataset(tmp_path / "nope.json", tmp_path)
    path, _ = _lvis_like(tmp_path)
    with pytest.raises(RegionSpotError, match="Image folder not found: .*no_images"):
        CocoDetectionDataset(path, tmp_path / "no_images")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(RegionSpotError, match="not valid JSON"):
        CocoDetectionDataset(bad, tmp_path)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"images": []}))
    with pytest.raises(RegionSpotError, match="lacks"):
        CocoDetectionDataset(partial, tmp_path)


def test_reader_on_shapesworld(world):
    ds = CocoDetectionDataset(world["val_json"], world["image_root"], dataset_name="shapesworld_val")
    doc = json.loads(Path(world["val_json"]).read_text())
    assert len(ds) == 4
    assert ds.num_classes == 144 and ds.category_names[0] == "red circle"
    assert ds.frequencies is not None and set(ds.frequencies) == {"f", "c", "r"}
    total = 0
    for i in range(len(ds)):
        record = ds[i]
        assert record.dataset == "shapesworld_val"
        image = ds.load_image(i)
        assert image.size == (record.width, record.height) == (64, 64)
        anns = [a for a in doc["annotations"] if a["image_id"] == record.image_id]
        assert len(record) == len(anns) >= 1
        for box, label, ann in zip(record.boxes, record.labels, anns, strict=True):
            x, y, w, h = ann["bbox"]
            np.testing.assert_allclose(box, [x, y, x + w, y + h])
            assert ds.category_ids[label] == ann["category_id"]
        masks = ds.load_masks(i)
        assert masks.sum(axis=(1, 2)).tolist() == [a["area"] for a in anns]
        total += len(record)
    assert total == len(doc["annotations"])


@pytest.mark.parametrize("version", [1, 2])
def test_objects365_loads_as_published(tmp_path, version):
    from regionspot.testing.public_formats import make_objects365

    path, image_root = make_objects365(tmp_path, version=version)
    doc = json.loads(path.read_text())
    ds = CocoDetectionDataset(path, image_root)
    assert ds.path_rule == ("from-patch" if version == 2 else "as-is")
    assert ds.category_names == ["Person", "Sneakers", "Chair", "Other Shoes", "Hat", "Car"]
    assert len(ds) == len(doc["images"]) and ds.num_boxes == len(doc["annotations"])
    for record in ds:
        assert record.path.is_file() and record.path.parent.name == (f"patch{0 if record.index % 2 == 0 else 16}"
                                                                     if version == 2 else "train")
        assert ds.load_image(record.index).size == (record.width, record.height)
    assert apply_path_rule("images/v2/patch16/objects365_v2_00908726.jpg", "from-patch") == "patch16/objects365_v2_00908726.jpg"
    assert apply_path_rule("images/v2/patch16/x.jpg", "basename") == "x.jpg"
    assert CocoDetectionDataset(path, image_root, path_rule="as-is").path_rule == "as-is"


def test_v3det_nested_paths_and_many_categories(tmp_path):
    from regionspot.testing.public_formats import make_v3det

    path, image_root = make_v3det(tmp_path)
    doc = json.loads(path.read_text())
    doc["categories"] += [{"id": 100 + k, "name": f"synset {k}", "novel": False} for k in range(13_204 - 6)]
    path.write_text(json.dumps(doc))
    ds = CocoDetectionDataset(path, image_root, dataset_name="v3det")
    assert ds.num_classes == 13_204 and ds.path_rule == "as-is"
    record = ds[0]
    assert record.path == image_root / doc["images"][0]["file_name"] and record.path.is_file()
    assert record.path.relative_to(image_root).parts[:2] == ("Images", "a00000000")
    anns = [a for a in doc["annotations"] if a["image_id"] == record.image_id]
    np.testing.assert_allclose(record.boxes, [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)])
    assert [ds.category_ids[k] for k in record.labels] == [a["category_id"] for a in anns]


def test_unusable_files_raise_one_line_pointing_at_data_check(tmp_path):
    path, root = _lvis_like(tmp_path)
    base = json.loads(path.read_text())
    cases = {
        "duplicate image ids": lambda d: d["images"].append(dict(d["images"][0])),
        "duplicate category ids": lambda d: d["categories"].append({"id": 3, "name": "again"}),
        "unknown category_id": lambda d: d["annotations"].append(dict(d["annotations"][0], id=99, category_id=42)),
        "malformed annotation": lambda d: d["annotations"].append({"id": 5, "image_id": 5, "bbox": [1, 2, 3]}),
        "without a positive width": lambda d: d["images"][1].pop("width"),
    }
    for message, change in cases.items():
        doc = json.loads(json.dumps(base))
        change(doc)
        path.write_text(json.dumps(doc))
        with pytest.raises(RegionSpotError, match=message) as info:
            CocoDetectionDataset(path, root)
        assert "regionspot data check" in str(info.value) and "\n" not in str(info.value)
    doc = json.loads(json.dumps(base))
    doc["annotations"].append(dict(doc["annotations"][0], id=77, image_id=12345))  # an image the file does not list
    path.write_text(json.dumps(doc))
    assert 77 not in np.concatenate([r.annotation_ids for r in CocoDetectionDataset(path, root)])
