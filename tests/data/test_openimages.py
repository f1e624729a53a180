"""OpenImages CSVs -> COCO JSON: pixel boxes from header sizes, EXIF orientation, IsGroupOf policies, skipped
rows counted, and the output read back by CocoDetectionDataset."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image, ImageOps

import regionspot.data.openimages as openimages
from regionspot.data.coco_json import CocoDetectionDataset
from regionspot.data.images import read_image_header, shown_size
from regionspot.data.openimages import convert_openimages, read_class_descriptions, read_image_list
from regionspot.data.transforms import orient_normalized_boxes
from regionspot.errors import RegionSpotError
from regionspot.testing.public_formats import OPENIMAGES_CLASSES, make_openimages


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_openimages(tmp_path_factory.mktemp("oi"))


def _rows(files):
    with open(files.boxes_csv, newline="") as handle:
        return list(csv.DictReader(handle))


def _expected_box(files, row):
    """The row's box in pixels of the image as load_image shows it, via PIL on a drawn mask."""
    path = files.images_dir / f"{row['ImageID']}.jpg"
    width, height, orientation = read_image_header(path)
    mask = Image.new("L", (width, height), 0)
    x0, x1 = float(row["XMin"]) * width, float(row["XMax"]) * width
    y0, y1 = float(row["YMin"]) * height, float(row["YMax"]) * height
    mask.paste(255, (round(x0), round(y0), round(x1), round(y1)))
    exif = Image.Exif()
    exif[0x0112] = orientation
    mask.info["exif"] = exif.tobytes()
    shown = ImageOps.exif_transpose(mask)
    left, top, right, bottom = shown.getbbox()
    return [left, top, right - left, bottom - top]


@pytest.mark.parametrize("policy", ["crowd", "drop", "keep"])
def test_converts_boxes_sizes_and_group_of(files, tmp_path, policy):
    out = tmp_path / "oi.json"
    report = convert_openimages(files.boxes_csv, files.classes_csv, files.images_dir, out,
                                image_list=files.image_list, group_of=policy, show_progress=False)
    data = json.loads(out.read_text())
    rows = _rows(files)
    usable = [r for r in rows if r["ImageID"] not in (files.missing, files.unlisted)]
    groups = [r for r in usable if r["IsGroupOf"] == "1"]
    assert len(groups) == 1 and report.group_of == 1
    assert report.rows == len(rows)
    assert report.boxes == len(data["annotations"]) == len(usable) - (policy == "drop")
    assert report.problems.counts == {"missing image": 1, "box of a missing or unreadable image": 2,
                                      "box of an image not in the image list": 2}
    assert report.problems.examples["missing image"] == [str(files.images_dir / f"{files.missing}.jpg")]
    by_oi = {im["openimages_id"]: im for im in data["images"]}
    assert set(by_oi) == {r["ImageID"] for r in usable}
    for image in data["images"]:  # sizes from the headers, as load_image shows the image
        assert (image["width"], image["height"]) == shown_size(*read_image_header(files.images_dir / image["file_name"]))
        assert Image.open(files.images_dir / image["file_name"]).size == (
            (image["height"], image["width"]) if image["openimages_id"] == files.rotated else (image["width"], image["height"]))
    names = {c["id"]: c["name"] for c in data["categories"]}
    mids = [m for m, _ in OPENIMAGES_CLASSES]
    assert all(names[c["id"]] == dict(OPENIMAGES_CLASSES)[c["freebase_id"]] and c["id"] == mids.index(c["freebase_id"]) + 1
               for c in data["categories"])
    kept = [r for r in usable if not (policy == "drop" and r["IsGroupOf"] == "1")]
    for ann, row in zip(data["annotations"], kept, strict=True):
        assert ann["image_id"] == by_oi[row["ImageID"]]["id"]
        assert names[ann["category_id"]] == dict(OPENIMAGES_CLASSES)[row["LabelName"]]
        assert ann["iscrowd"] == int(policy == "crowd" and row["IsGroupOf"] == "1")
        np.testing.assert_allclose(ann["bbox"], _expected_box(files, row), atol=1.01)
        assert ann["area"] == pytest.approx(ann["bbox"][2] * ann["bbox"][3], abs=0.05)
    dataset = CocoDetectionDataset(out, files.images_dir)
    assert sum(len(r) for r in dataset) == len(kept) - (policy == "crowd")
    for record in dataset:
        assert dataset.load_image(record.index).size == (record.width, record.height)


def test_exif_box_transform_matches_pil_for_every_orientation():
    rng = np.random.default_rng(0)
    width, height = 40, 24
    for orientation in range(1, 9):
        x0, y0 = rng.integers(0, 20), rng.integers(0, 12)
        box = np.array([[x0, y0, x0 + rng.integers(3, 20), y0 + rng.integers(3, 12)]], dtype=np.float64)
        mask = Image.new("L", (width, height), 0)
        mask.paste(255, tuple(int(v) for v in box[0]))
        exif = Image.Exif()
        exif[0x0112] = orientation
        mask.info["exif"] = exif.tobytes()
        shown = ImageOps.exif_transpose(mask)
        normalised = box / [width, height, width, height]
        moved = orient_normalized_boxes(normalised, np.array([orientation]))[0]
        sw, sh = shown.size
        np.testing.assert_allclose(moved * [sw, sh, sw, sh], shown.getbbox(), atol=1e-9, err_msg=str(orientation))


def test_streams_in_chunks_and_counts_bad_rows(files, tmp_path, monkeypatch):
    monkeypatch.setattr(openimages, "CHUNK_ROWS", 2)
    rows = _rows(files)
    good = [r for r in rows if r["ImageID"] not in (files.missing, files.unlisted)]
    bad = dict(good[0], XMin="nan?"), dict(good[0], LabelName="/m/nope"), dict(good[0], XMin="0.5", XMax="0.5")
    outside = dict(good[1], XMin="-0.2", XMax="1.3")
    path = tmp_path / "boxes.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([*good, *bad, outside])
        handle.write("short,row\n")
    report = convert_openimages(path, files.classes_csv, files.images_dir, tmp_path / "oi.json",
                                group_of="keep", show_progress=False)
    assert report.rows == len(good) + 5 and report.boxes == len(good) + 1
    assert report.problems.counts == {"malformed row": 2, "box of a class not in the descriptions": 1,
                                      "degenerate box (zero width or height)": 1,
                                      "box outside [0, 1], clipped to the image": 1}
    assert report.problems.examples["box of a class not in the descriptions"] == ["/m/nope"]
    last = json.loads((tmp_path / "oi.json").read_text())["annotations"][-1]
    image = next(im for im in json.loads((tmp_path / "oi.json").read_text())["images"] if im["id"] == last["image_id"])
    assert last["bbox"][0] == 0 and last["bbox"][2] == pytest.approx(image["width"])


def test_descriptions_with_or_without_header_and_bad_inputs(tmp_path, files):
    plain = make_openimages(tmp_path / "plain", header=False)
    assert read_class_descriptions(plain.classes_csv) == read_class_descriptions(files.classes_csv) == list(OPENIMAGES_CLASSES)
    assert read_image_list(files.image_list) == {r["ImageID"] for r in _rows(files)} - {files.unlisted}
    (tmp_path / "ids.txt").write_text("a\nb\n")
    assert read_image_list(tmp_path / "ids.txt") == {"a", "b"}
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(RegionSpotError, match="class-descriptions"):
        read_class_descriptions(tmp_path / "empty.csv")
    with pytest.raises(RegionSpotError, match="no XMin, XMax"):
        (tmp_path / "wrong.csv").write_text("ImageID,LabelName,YMin,YMax\n")
        convert_openimages(tmp_path / "wrong.csv", files.classes_csv, files.images_dir, tmp_path / "o.json",
                           show_progress=False)
    with pytest.raises(RegionSpotError, match="group_of"):
        convert_openimages(files.boxes_csv, files.classes_csv, files.images_dir, tmp_path / "o.json", group_of="x")
    with pytest.raises(RegionSpotError, match="Cannot read"):
        convert_openimages(tmp_path / "none.csv", files.classes_csv, files.images_dir, tmp_path / "o.json",
                           show_progress=False)
    assert not (tmp_path / "o.json").exists()
