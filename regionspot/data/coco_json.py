"""One reader for COCO-format detection JSON: COCO, LVIS v1, Objects365 v1/v2, V3Det, ShapesWorld.

The vocabulary is the file's categories ordered by category id; label ``i`` (contiguous, 0-based) is
the i-th of them. Every record names its dataset explicitly, so a batch is always scored against its
own dataset's vocabulary.

Image paths: ``image_root / file_name`` when an image has ``file_name`` (COCO, Objects365, V3Det,
ShapesWorld); otherwise LVIS' ``coco_url`` maps to ``image_root / "<split>2017/<basename>"``
(``http://images.cocodataset.org/val2017/000000397133.jpg`` -> ``image_root/val2017/000000397133.jpg``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import numpy as np
import pycocotools.mask as mask_utils
from PIL import Image

from regionspot.data.images import load_image
from regionspot.data.transforms import clip_boxes, xywh_to_xyxy
from regionspot.errors import RegionSpotError
from regionspot.text.prompts import clean_class_name


@dataclass
class ImageRecord:
    """One image and its kept annotations.

    boxes: (N, 4) float32, XYXY, original-image pixels (clipped to the image).
    labels: (N,) int64 contiguous label indices into the dataset's ``category_names``.
    category_ids: (N,) int64 the file's category ids (same order as boxes).
    annotation_ids: (N,) int64 the file's annotation ids.
    neg_category_ids / not_exhaustive_category_ids: LVIS per-image lists (empty for other datasets).
    """

    dataset: str
    index: int
    image_id: int
    path: Path
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    category_ids: np.ndarray
    annotation_ids: np.ndarray
    neg_category_ids: tuple[int, ...] = field(default_factory=tuple)
    not_exhaustive_category_ids: tuple[int, ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


def resolve_image_path(image: dict, image_root: Path) -> Path:
    """The local path of one JSON image entry (see the module docstring for the rules)."""
    if image.get("file_name"):
        return image_root / image["file_name"]
    url = image.get("coco_url")
    if url:
        parts = PurePosixPath(urlparse(url).path).parts
        if len(parts) >= 2:
            return image_root / parts[-2] / parts[-1]
        return image_root / parts[-1]
    raise RegionSpotError(
        f"Image {image.get('id')} has neither 'file_name' nor 'coco_url'; the annotation file is not COCO-format."
    )


class CocoDetectionDataset:
    """A COCO-format detection file as a list of :class:`ImageRecord`.

    annotation_file: the JSON file. image_root: the folder image paths are relative to.
    dataset_name: the name every record carries (default: the file stem, e.g. "lvis_v1_val").
    skip_empty: drop images without any kept box (useful for training).
    Crowd annotations and boxes narrower or shorter than ``min_box_size`` pixels (after clipping to
    the image) are not kept.
    """

    def __init__(
        self,
        annotation_file: str | Path,
        image_root: str | Path,
        dataset_name: str | None = None,
        *,
        skip_empty: bool = False,
        min_box_size: float = 1.0,
    ) -> None:
        self.annotation_file = Path(annotation_file)
        self.image_root = Path(image_root)
        if not self.annotation_file.is_file():
            raise RegionSpotError(f"Annotation file not found: {self.annotation_file}; check the path.")
        if not self.image_root.is_dir():
            raise RegionSpotError(f"Image folder not found: {self.image_root}; check the image root path.")
        self.name = dataset_name or self.annotation_file.stem
        try:
            with self.annotation_file.open("r", encoding="utf-8") as handle:
                data = json.load(handle)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise RegionSpotError(f"{self.annotation_file} is not valid JSON ({error}); is it a COCO-format file?") from error
        missing = [key for key in ("images", "annotations", "categories") if key not in data]
        if missing:
            raise RegionSpotError(f"{self.annotation_file} lacks {missing}; expected a COCO-format detection file.")
        self.info = data.get("info", {})

        categories = sorted(data["categories"], key=lambda c: c["id"])
        if not categories:
            raise RegionSpotError(f"{self.annotation_file} has no categories.")
        self.category_ids: list[int] = [int(c["id"]) for c in categories]
        self.raw_category_names: list[str] = [c["name"] for c in categories]
        self.category_names: list[str] = [clean_class_name(c["name"]) for c in categories]
        freqs = [c.get("frequency") for c in categories]
        self.frequencies: list[str] | None = freqs if all(f in ("f", "c", "r") for f in freqs) else None
        self.cat_id_to_label: dict[int, int] = {cid: i for i, cid in enumerate(self.category_ids)}
        self.label_to_cat_id: dict[int, int] = dict(enumerate(self.category_ids))

        per_image: dict[int, list[dict]] = defaultdict(list)
        for ann in data["annotations"]:
            per_image[ann["image_id"]].append(ann)

        self._records: list[ImageRecord] = []
        self._segmentations: list[list] = []
        for image in sorted(data["images"], key=lambda im: im["id"]):
            record, segs = self._build_record(image, per_image.get(image["id"], []), min_box_size)
            if skip_empty and len(record) == 0:
                continue
            record.index = len(self._records)
            self._records.append(record)
            self._segmentations.append(segs)

    def _build_record(self, image: dict, anns: list[dict], min_box_size: float) -> tuple[ImageRecord, list]:
        width, height = int(image["width"]), int(image["height"])
        kept = []
        for ann in anns:
            if ann.get("iscrowd", 0):
                continue
            if ann["category_id"] not in self.cat_id_to_label:
                raise RegionSpotError(
                    f"Annotation {ann.get('id')} in {self.annotation_file} has unknown category_id {ann['category_id']}."
                )
            kept.append(ann)
        if kept:
            boxes = xywh_to_xyxy(np.asarray([a["bbox"] for a in kept], dtype=np.float32).reshape(-1, 4))
            boxes = clip_boxes(boxes, height, width).astype(np.float32)
            keep = ((boxes[:, 2] - boxes[:, 0]) >= min_box_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_box_size)
            kept = [a for a, k in zip(kept, keep.tolist(), strict=True) if k]
            boxes = boxes[keep]
        else:
            boxes = np.zeros((0, 4), dtype=np.float32)
        cat_ids = np.asarray([a["category_id"] for a in kept], dtype=np.int64)
        record = ImageRecord(
            dataset=self.name,
            index=-1,
            image_id=int(image["id"]),
            path=resolve_image_path(image, self.image_root),
            width=width,
            height=height,
            boxes=boxes,
            labels=np.asarray([self.cat_id_to_label[c] for c in cat_ids.tolist()], dtype=np.int64),
            category_ids=cat_ids,
            annotation_ids=np.asarray([a.get("id", -1) for a in kept], dtype=np.int64),
            neg_category_ids=tuple(int(c) for c in image.get("neg_category_ids", ())),
            not_exhaustive_category_ids=tuple(int(c) for c in image.get("not_exhaustive_category_ids", ())),
        )
        return record, [a.get("segmentation") for a in kept]

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index: int) -> ImageRecord:
        return self._records[index]

    @property
    def num_classes(self) -> int:
        return len(self.category_ids)

    def load_image(self, index: int) -> Image.Image:
        """The RGB PIL image of record ``index`` (EXIF applied); ImageError if missing or corrupt."""
        return load_image(self._records[index].path)

    def load_masks(self, index: int) -> np.ndarray:
        """(N, H, W) bool masks of record ``index``, aligned with its boxes, at the original image size.

        Accepts polygons, uncompressed RLE and compressed RLE; raises RegionSpotError if an annotation
        has no segmentation.
        """
        record = self._records[index]
        masks = np.zeros((len(record), record.height, record.width), dtype=bool)
        for i, seg in enumerate(self._segmentations[index]):
            if not seg:
                raise RegionSpotError(
                    f"Annotation {int(record.annotation_ids[i])} of image {record.image_id} has no segmentation; "
                    "this dataset provides boxes only."
                )
            masks[i] = decode_segmentation(seg, record.height, record.width)
        return masks


def decode_segmentation(segmentation: list | dict, height: int, width: int) -> np.ndarray:
    """(H, W) bool mask from a COCO segmentation: polygon list, uncompressed or compressed RLE."""
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        counts = segmentation["counts"]
        rle = {"size": segmentation["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return mask_utils.decode(rle).astype(bool)
