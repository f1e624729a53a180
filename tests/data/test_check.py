"""data check: every kind of problem is found, counted exactly, with its first examples; a clean
published-format miniature has none."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from regionspot.data.check import check_dataset
from regionspot.errors import RegionSpotError
from regionspot.testing.public_formats import make_objects365, make_v3det


def _broken(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    for name, size in (("a.jpg", (40, 30)), ("b.jpg", (40, 30)), ("c.jpg", (50, 30))):
        Image.new("RGB", size, (9, 9, 9)).save(root / name)
    (root / "garbage.jpg").write_bytes(b"not an image at all")
    noise = Image.frombytes("RGB", (40, 30), bytes(range(256)) * 14 + bytes(range(16)))
    noise.save(root / "noise.jpg", quality=95)
    whole = (root / "noise.jpg").read_bytes()
    (root / "noise.jpg").unlink()
    (root / "cut.jpg").write_bytes(whole[: len(whole) // 2])  # the header reads, the pixels do not
    images = [
        {"id": 1, "file_name": "a.jpg", "width": 40, "height": 30},
        {"id": 2, "file_name": "b.jpg", "width": 40, "height": 30},
        {"id": 3, "file_name": "c.jpg", "width": 40, "height": 30},      # the file is 50 wide
        {"id": 4, "file_name": "gone.jpg", "width": 40, "height": 30},   # missing
        {"id": 5, "file_name": "garbage.jpg", "width": 40, "height": 30},
        {"id": 6, "file_name": "cut.jpg", "width": 40, "height": 30},
        {"id": 2, "file_name": "a.jpg", "width": 40, "height": 30},      # duplicate id and file name
        {"id": 8, "file_name": "b.jpg"},                                 # no size; duplicate file name
        {"width": 3},                                                    # malformed
    ]
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10]},
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [35, 1, 10, 10]},     # 5 px past the right edge
        {"id": 3, "image_id": 1, "category_id": 1, "bbox": [30, 20, 10.5, 10.5]},  # 0.5 px past: tolerated
        {"id": 4, "image_id": 2, "category_id": 1, "bbox": [1, 1, 0, 10]},      # zero width
        {"id": 5, "image_id": 2, "category_id": 9, "bbox": [1, 1, 5, 5]},       # unknown category
        {"id": 6, "image_id": 99, "category_id": 1, "bbox": [1, 1, 5, 5]},      # unknown image
        {"id": 6, "image_id": 2, "category_id": 2, "bbox": [1, 1, 5, 5]},       # duplicate id
        {"id": 8, "image_id": 2, "category_id": 2, "bbox": [1, 1, 5]},          # malformed
        {"id": 9, "image_id": 3, "category_id": 3, "bbox": [-4, 0, 5, 5]},      # 4 px left of the image
    ]
    categories = [{"id": 1, "name": "traffic_light"}, {"id": 2, "name": "traffic light"}, {"id": 3, "name": "cat"},
                  {"id": 3, "name": "dog"}]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path, root


@pytest.mark.parametrize("workers", [1, 2])
def test_every_problem_is_counted_with_examples(tmp_path, workers):
    path, root = _broken(tmp_path)
    report = check_dataset(path, root, workers=workers, max_examples=2, show_progress=False)
    assert report.problems.counts == {
        "malformed image entry": 1, "malformed annotation": 1,
        "duplicate image id": 1, "duplicate annotation id": 1, "duplicate category id": 1,
        "duplicate class name": 1, "duplicate file name": 2,
        "unknown category": 1, "annotation of an unknown image": 1, "malformed box": 1,
        "box outside the image": 2, "image without a positive width/height": 1,
        "missing image": 1, "unreadable image": 1, "image size differs from the file": 1,
    }
    examples = report.problems.examples
    assert examples["missing image"] == [str(root / "gone.jpg")]
    assert examples["box outside the image"] == ["annotation 2: bbox [35.0, 1.0, 10.0, 10.0] in a 40x30 image 1",
                                                 "annotation 9: bbox [-4.0, 0.0, 5.0, 5.0] in a 40x30 image 3"]
    assert examples["image size differs from the file"] == [f"image 3: JSON 40x30, file 50x30 ({root / 'c.jpg'})"]
    assert examples["duplicate class name"] == ["'traffic light' x2"]
    assert examples["unknown category"] == ["annotation 5: category_id 9"]
    assert (report.images, report.annotations, report.categories) == (8, 8, 4)
    assert report.images_without_boxes == 5 and not report.ok  # 4, 5, 6, 8 and the second entry of id 2


def test_decode_finds_truncated_files_and_examples_are_capped(tmp_path):
    path, root = _broken(tmp_path)
    report = check_dataset(path, root, decode=True, workers=1, max_examples=1, show_progress=False)
    assert report.problems.counts["unreadable image"] == 2
    assert all(len(v) <= 1 for v in report.problems.examples.values())
    assert report.problems.counts["duplicate file name"] == 2 and len(report.problems.examples["duplicate file name"]) == 1


def test_published_miniatures_are_clean(tmp_path):
    for path, root in (make_objects365(tmp_path / "o365", version=2), make_v3det(tmp_path / "v3det")):
        report = check_dataset(path, root, show_progress=False)
        assert report.ok, report.problems.counts
        assert report.path_rule == ("from-patch" if "o365" in str(path) else "as-is")


def test_unreadable_inputs_raise(tmp_path):
    with pytest.raises(RegionSpotError, match="Annotation file not found"):
        check_dataset(tmp_path / "none.json", tmp_path)
    (tmp_path / "x.json").write_text("{}")
    report = check_dataset(tmp_path / "x.json", tmp_path, show_progress=False)
    assert report.problems.counts == {"missing top-level key": 3}
