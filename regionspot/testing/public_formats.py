"""Miniature copies of the public training sets, in the layouts they are published in, for tests.

Each maker writes a few small JPEGs (coloured rectangles, one per box) and the annotation files exactly
as the real downloads name and shape them:

- Objects365 v1: ``objects365_train.json`` with flat ``obj365_train_<id>.jpg`` names in ``train/``;
- Objects365 v2: ``zhiyuan_objv2_train.json`` naming ``images/v{1,2}/patchN/objects365_v{1,2}_<id>.jpg``
  while the archives unpack to ``train/patchN/<name>.jpg``;
- V3Det: ``v3det_2023_v1_train.json`` with nested ``Images/<synset>/<name>.jpg`` paths and categories
  carrying descriptions;
- OpenImages v6/v7: the box CSV with its full header, the class descriptions (with or without header),
  the image list with rotation, and ``<ImageID>.jpg`` files — one of them with an EXIF orientation.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from regionspot.data.images import EXIF_ORIENTATION_TAG

O365_NAMES = ("Person", "Sneakers", "Chair", "Other Shoes", "Hat", "Car")
V3DET_NAMES = ("Kobe Bryant", "swallowtail butterfly", "rotary phone", "espresso maker", "bok choy", "tuk-tuk")
OPENIMAGES_CLASSES = (("/m/01g317", "Person"), ("/m/0k4j", "Car"), ("/m/07j7r", "Tree"), ("/m/0bt9lr", "Dog"),
                      ("/m/03k3r", "Horse"))
OPENIMAGES_BOX_HEADER = ("ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,"
                         "IsGroupOf,IsDepiction,IsInside").split(",")
OPENIMAGES_LIST_HEADER = ("ImageID,Subset,OriginalURL,OriginalLandingURL,License,AuthorProfileURL,Author,Title,"
                          "OriginalSize,OriginalMD5,Thumbnail300KURL,Rotation").split(",")


def _scene(rng: np.random.Generator, width: int, height: int, count: int) -> tuple[Image.Image, list[list[float]]]:
    """An image with ``count`` filled rectangles; returns it and their XYWH pixel boxes."""
    image = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(0, 80, 3)))
    draw = ImageDraw.Draw(image)
    boxes = []
    for _ in range(count):
        w, h = int(rng.integers(width // 5, width // 2)), int(rng.integers(height // 5, height // 2))
        x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        draw.rectangle([x, y, x + w - 1, y + h - 1], fill=tuple(int(v) for v in rng.integers(100, 256, 3)))
        boxes.append([float(x), float(y), float(w), float(h)])
    return image, boxes


def _coco(images: list[dict], boxes: list[list[list[float]]], rng: np.random.Generator, categories: list[dict],
          extra: dict | None = None) -> dict:
    annotations = []
    for image, image_boxes in zip(images, boxes, strict=True):
        for box in image_boxes:
            annotations.append({"id": len(annotations) + 1, "image_id": image["id"], "bbox": box,
                                "category_id": int(rng.choice([c["id"] for c in categories])),
                                "area": box[2] * box[3], "iscrowd": 0, **(extra or {})})
    return {"images": images, "annotations": annotations, "categories": categories}


def make_objects365(root: str | Path, version: int = 2, num_images: int = 4, seed: int = 0) -> tuple[Path, Path]:
    """An Objects365 v1 or v2 miniature under ``root``; returns (annotation JSON, image root ``root/train``)."""
    root, rng = Path(root), np.random.default_rng(seed)
    images, boxes = [], []
    for i in range(num_images):
        if version == 2:
            patch = 0 if i % 2 == 0 else 16  # v2 files keep v1 images in patch0-15 and new ones from patch16
            name = f"objects365_v{1 if patch < 16 else 2}_{i:08d}.jpg"
            file_name, disk = f"images/v{1 if patch < 16 else 2}/patch{patch}/{name}", f"patch{patch}/{name}"
        else:
            file_name = disk = f"obj365_train_{i:012d}.jpg"
        width, height = (64, 48) if i % 2 == 0 else (48, 64)
        image, image_boxes = _scene(rng, width, height, 2 + i % 2)
        (root / "train" / disk).parent.mkdir(parents=True, exist_ok=True)
        image.save(root / "train" / disk, quality=95)
        images.append({"height": height, "id": 100 + i, "license": 5, "width": width, "file_name": file_name, "url": ""})
        boxes.append(image_boxes)
    categories = [{"id": k + 1, "name": n} for k, n in enumerate(O365_NAMES)]
    data = _coco(images, boxes, rng, categories, {"isfake": 0, "isreflected": 0})
    path = root / ("zhiyuan_objv2_train.json" if version == 2 else "objects365_train.json")
    path.write_text(json.dumps(data))
    return path, root / "train"


def make_v3det(root: str | Path, num_images: int = 4, seed: int = 1) -> tuple[Path, Path]:
    """A V3Det miniature: returns (``root/v3det_2023_v1_train.json``, image root ``root``)."""
    root, rng = Path(root), np.random.default_rng(seed)
    categories = [{"id": k + 1, "name": n, "novel": False, "cat_info": f"a kind of thing: {n}"}
                  for k, n in enumerate(V3DET_NAMES)]
    images, boxes = [], []
    for i in range(num_images):
        file_name = f"Images/a{i:08d}/{i}_{1000 + i}_{20000 + i}.jpg"
        image, image_boxes = _scene(rng, 56, 40, 2)
        (root / file_name).parent.mkdir(parents=True, exist_ok=True)
        image.save(root / file_name, quality=95)
        images.append({"file_name": file_name, "height": 40, "width": 56, "id": 7 + i})
        boxes.append(image_boxes)
    path = root / "v3det_2023_v1_train.json"
    path.write_text(json.dumps(_coco(images, boxes, rng, categories)))
    return path, root


@dataclass
class OpenImagesFiles:
    """Paths of an OpenImages miniature, and which of its images are special.

    rotated: an image stored with EXIF orientation 6 (its shown size is the stored one transposed).
    missing: listed and annotated, but its file is absent. unlisted: annotated but not in the image list.
    """

    boxes_csv: Path
    classes_csv: Path
    image_list: Path
    images_dir: Path
    rotated: str
    missing: str
    unlisted: str


def make_openimages(root: str | Path, num_images: int = 4, seed: int = 2, header: bool = True) -> OpenImagesFiles:
    """An OpenImages miniature (one group-of box; see :class:`OpenImagesFiles` for the odd images)."""
    root, rng = Path(root), np.random.default_rng(seed)
    images_dir = root / "train"
    images_dir.mkdir(parents=True, exist_ok=True)
    ids = [f"{int(v):016x}" for v in rng.integers(0, 2**62, num_images + 2)]
    rows, listed = [], ids[: num_images + 1]  # the last id is annotated but not listed
    for k, image_id in enumerate(ids):
        width, height = (60, 44) if k % 2 == 0 else (44, 60)
        image, boxes = _scene(rng, width, height, 2)
        if k < num_images:
            exif = Image.Exif()
            if k == 1:
                exif[EXIF_ORIENTATION_TAG] = 6
            image.save(images_dir / f"{image_id}.jpg", quality=95, exif=exif.tobytes())
        for j, (x, y, w, h) in enumerate(boxes):
            mid = OPENIMAGES_CLASSES[int(rng.integers(0, len(OPENIMAGES_CLASSES) - 1))][0]
            group = int(k == 0 and j == 0)
            rows.append([image_id, "xclick", mid, "1", f"{x / width:.6f}", f"{(x + w) / width:.6f}",
                         f"{y / height:.6f}", f"{(y + h) / height:.6f}", "0", "0", str(group), "0", "0"])
    _write_csv(root / "oidv6-train-annotations-bbox.csv", [OPENIMAGES_BOX_HEADER] + rows)
    classes = [list(c) for c in OPENIMAGES_CLASSES]
    classes_csv = root / ("oidv7-class-descriptions-boxable.csv" if header else "class-descriptions-boxable.csv")
    _write_csv(classes_csv, ([["LabelName", "DisplayName"]] if header else []) + classes)
    listing = [[i, "train", "", "", "", "", "", "", "1000", "", "", "0.0"] for i in listed]
    _write_csv(root / "train-images-boxable-with-rotation.csv", [OPENIMAGES_LIST_HEADER] + listing)
    return OpenImagesFiles(root / "oidv6-train-annotations-bbox.csv", classes_csv,
                           root / "train-images-boxable-with-rotation.csv", images_dir,
                           rotated=ids[1], missing=ids[num_images], unlisted=ids[num_images + 1])


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
