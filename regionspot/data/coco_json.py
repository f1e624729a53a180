"""One reader for COCO-format detection JSON: COCO, LVIS v1, Objects365 v1/v2, V3Det, converted
OpenImages, ShapesWorld — as they are published.

The vocabulary is the file's categories ordered by category id; label ``i`` (contiguous, 0-based) is
the i-th of them. Every record names its dataset explicitly, so a batch is always scored against its
own dataset's vocabulary.

The file is streamed into compact columns (:mod:`regionspot.data.coco_index`): a V3Det-sized file
(184k images, 1.75 M boxes, 13k categories) is held in about 100 MB, and records are made on access.

Image paths: ``image_root / file_name`` when an image has ``file_name`` (COCO, Objects365, V3Det's nested
``Images/<category>/<name>.jpg``, ShapesWorld); otherwise LVIS' ``coco_url`` maps to
``image_root / "<split>2017/<basename>"`` (``http://images.cocodataset.org/val2017/000000397133.jpg`` ->
``image_root/val2017/000000397133.jpg``). Objects365 v2 names its files ``images/v1/patch0/<name>.jpg``
while its archives unpack to ``patch0/<name>.jpg``: when no probed file exists as written, the reader
tries the path from the ``patchN/`` folder on, then the bare file name, and keeps the first rule under
which the files exist (``path_rule``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
from PIL import Image

from regionspot.data.coco_index import (
    CocoColumns,
    duplicated,
    positions_of,
    read_coco_columns,
    relative_image_path,
)
from regionspot.data.images import load_image
from regionspot.data.transforms import clip_boxes, xywh_to_xyxy
from regionspot.errors import RegionSpotError, preview
from regionspot.text.templates import clean_class_name

PATH_RULES = ("as-is", "from-patch", "basename")
_PATCH = re.compile(r"(?:^|/)(patch\d+/.*)$")


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
    relative = relative_image_path(image)
    if relative is None:
        raise RegionSpotError(
            f"Image {image.get('id')} has neither 'file_name' nor 'coco_url'; the annotation file is not COCO-format."
        )
    return image_root / relative


def apply_path_rule(file_name: str, rule: str) -> str:
    """``file_name`` rewritten by one of ``PATH_RULES`` (Objects365 v2: ``images/v2/patch16/x.jpg`` ->
    ``patch16/x.jpg`` by "from-patch", ``x.jpg`` by "basename")."""
    if rule == "from-patch":
        match = _PATCH.search(file_name)
        return match.group(1) if match else file_name
    if rule == "basename":
        return file_name.rsplit("/", 1)[-1]
    return file_name


def choose_path_rule(file_names: list[str], image_root: Path, probe: int = 8) -> str:
    """The first of ``PATH_RULES`` under which one of the first ``probe`` files exists ("as-is" if none)."""
    sample = [f for f in file_names[:probe] if f]
    for rule in PATH_RULES:
        if any((image_root / apply_path_rule(f, rule)).is_file() for f in sample):
            return rule
    return "as-is"


class CocoDetectionDataset:
    """A COCO-format detection file as a sequence of :class:`ImageRecord`, ordered by image id.

    annotation_file: the JSON file. image_root: the folder image paths are relative to.
    dataset_name: the name every record carries (default: the file stem, e.g. "lvis_v1_val").
    skip_empty: drop images without any kept box (useful for training).
    path_rule: how file names map to files (``PATH_RULES``; None: chosen by probing, see the module doc).
    Crowd annotations (OpenImages' group-of boxes when converted with ``--group-of crowd``) and boxes
    narrower or shorter than ``min_box_size`` pixels (after clipping to the image) are not kept.
    Annotations of images the file does not list are ignored; a duplicated image or category id, an
    unknown category, a malformed entry or an image without a size raise RegionSpotError (``regionspot
    data check`` lists them all).
    """

    def __init__(
        self,
        annotation_file: str | Path,
        image_root: str | Path,
        dataset_name: str | None = None,
        *,
        skip_empty: bool = False,
        min_box_size: float = 1.0,
        path_rule: str | None = None,
    ) -> None:
        self.annotation_file = Path(annotation_file)
        self.image_root = Path(image_root)
        if not self.annotation_file.is_file():
            raise RegionSpotError(f"Annotation file not found: {self.annotation_file}; check the path.")
        if not self.image_root.is_dir():
            raise RegionSpotError(f"Image folder not found: {self.image_root}; check the image root path.")
        if path_rule is not None and path_rule not in PATH_RULES:
            raise RegionSpotError(f"path_rule must be one of {', '.join(PATH_RULES)}, got {path_rule!r}.")
        self.name = dataset_name or self.annotation_file.stem
        columns = read_coco_columns(self.annotation_file)
        self._refuse_unusable(columns)
        self.info = columns.info
        self._set_categories(columns.categories)
        self._index_images(columns, skip_empty, min_box_size)
        self.path_rule = path_rule or choose_path_rule(self._file_names, self.image_root)

    def _fail(self, what: str, items: list) -> RegionSpotError:
        return RegionSpotError(
            f"{self.annotation_file}: {what} {preview([str(i) for i in items])}; run `regionspot data check` "
            "to list every problem."
        )

    def _refuse_unusable(self, columns: CocoColumns) -> None:
        if columns.missing_keys:
            raise RegionSpotError(f"{self.annotation_file} lacks {columns.missing_keys}; expected a COCO-format detection file.")
        if not columns.categories:
            raise RegionSpotError(f"{self.annotation_file} has no categories.")
        for kind, examples in columns.problems.examples.items():
            raise self._fail(f"{columns.problems.counts[kind]} {kind}(s), e.g.", examples)
        for what, ids in (("duplicate image ids", duplicated(columns.image_ids)),
                          ("duplicate category ids", duplicated(np.asarray([c["id"] for c in columns.categories])))):
            if len(ids):
                raise self._fail(what, ids.tolist())
        unsized = columns.image_ids[(columns.widths < 1) | (columns.heights < 1)]
        if len(unsized):
            raise self._fail("images without a positive width/height:", unsized.tolist())

    def _set_categories(self, categories: list[dict]) -> None:
        categories = sorted(categories, key=lambda c: c["id"])
        self.category_ids: list[int] = [int(c["id"]) for c in categories]
        self.raw_category_names: list[str] = [c["name"] for c in categories]
        self.category_names: list[str] = [clean_class_name(c["name"]) for c in categories]
        freqs = [c.get("frequency") for c in categories]
        self.frequencies: list[str] | None = freqs if all(f in ("f", "c", "r") for f in freqs) else None
        self._category_id_array = np.asarray(self.category_ids, dtype=np.int64)
        self.cat_id_to_label: dict[int, int] = {cid: i for i, cid in enumerate(self.category_ids)}
        self.label_to_cat_id: dict[int, int] = dict(enumerate(self.category_ids))

    def _index_images(self, columns: CocoColumns, skip_empty: bool, min_box_size: float) -> None:
        """Kept annotations grouped by image (sorted by id) into flat arrays with per-image offsets.

        Memory: int32 positions and float32 boxes, temporaries dropped as soon as they are used."""
        cat_ids = np.asarray(self.category_ids, dtype=np.int64)
        labels = positions_of(cat_ids, np.arange(len(cat_ids)), columns.ann_category_ids).astype(np.int32)
        order = np.argsort(columns.image_ids, kind="stable")
        image_pos = positions_of(columns.image_ids[order], order, columns.ann_image_ids).astype(np.int32)
        unknown = (image_pos >= 0) & (labels < 0)
        if unknown.any():
            bad = [f"annotation {a} -> {c}" for a, c in zip(columns.ann_ids[unknown][:3].tolist(),
                                                             columns.ann_category_ids[unknown][:3].tolist(), strict=True)]
            raise self._fail(f"{int(unknown.sum())} annotation(s) with an unknown category_id:", bad)
        rows = np.flatnonzero((image_pos >= 0) & ~columns.ann_crowd)
        owner = image_pos[rows]
        del image_pos, unknown
        sides = np.stack([columns.widths, columns.heights], 1).astype(np.float32)[owner]  # (K, 2): w, h of each box's image
        boxes = clip_boxes(xywh_to_xyxy(columns.ann_boxes[rows]), sides[:, 1:2], sides[:, 0:1])
        del sides
        big = ((boxes[:, 2] - boxes[:, 0]) >= min_box_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_box_size)
        rows, boxes, owner = rows[big], boxes[big], owner[big]
        # Image positions in id order; annotations sorted by that order, file order within an image.
        rank = np.empty(len(order), dtype=np.int32)
        rank[order] = np.arange(len(order), dtype=np.int32)
        owner = rank[owner]
        by_image = np.argsort(owner, kind="stable")
        counts = np.bincount(owner, minlength=len(order))
        del owner, big
        rows, self._boxes = rows[by_image], boxes[by_image].astype(np.float32, copy=False)
        del boxes, by_image
        keep = np.flatnonzero(counts > 0) if skip_empty else np.arange(len(order))
        starts = np.concatenate([[0], np.cumsum(counts)])
        self._starts, self._stops = starts[keep], starts[keep + 1]
        positions = order[keep]
        self._image_ids = columns.image_ids[positions]
        self._widths, self._heights = columns.widths[positions], columns.heights[positions]
        self._file_names = [columns.file_names[p] for p in positions.tolist()]
        self._extras = {i: columns.image_extras[p] for i, p in enumerate(positions.tolist())
                        if p in columns.image_extras} if columns.image_extras else {}
        self._labels = labels[rows]  # int32
        self._ann_ids = columns.ann_ids[rows]
        self._segmentations = {k: columns.segmentations[r] for k, r in enumerate(rows.tolist())
                               if r in columns.segmentations} if columns.segmentations else {}

    def __len__(self) -> int:
        return len(self._image_ids)

    def __getitem__(self, index: int) -> ImageRecord:
        if not -len(self) <= index < len(self):
            raise IndexError(f"image index {index} out of range [0, {len(self)}).")
        index = int(index) % len(self)
        lo, hi = int(self._starts[index]), int(self._stops[index])
        extras = self._extras.get(index, {})
        if not self._file_names[index]:
            raise RegionSpotError(
                f"Image {int(self._image_ids[index])} has neither 'file_name' nor 'coco_url'; the annotation file "
                "is not COCO-format."
            )
        return ImageRecord(
            dataset=self.name,
            index=index,
            image_id=int(self._image_ids[index]),
            path=self.image_root / apply_path_rule(self._file_names[index], self.path_rule),
            width=int(self._widths[index]),
            height=int(self._heights[index]),
            boxes=self._boxes[lo:hi].copy(),
            labels=self._labels[lo:hi].astype(np.int64),
            category_ids=self._category_id_array[self._labels[lo:hi]],
            annotation_ids=self._ann_ids[lo:hi].copy(),
            neg_category_ids=extras.get("neg_category_ids", ()),
            not_exhaustive_category_ids=extras.get("not_exhaustive_category_ids", ()),
        )

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    @property
    def num_classes(self) -> int:
        return len(self.category_ids)

    @property
    def num_boxes(self) -> int:
        """Kept boxes over all images."""
        return int(self._boxes.shape[0])

    def load_image(self, index: int) -> Image.Image:
        """The RGB PIL image of record ``index`` (EXIF applied); ImageError if missing or corrupt."""
        return load_image(self[index].path)

    def load_masks(self, index: int) -> np.ndarray:
        """(N, H, W) bool masks of record ``index``, aligned with its boxes, at the original image size.

        Accepts polygons, uncompressed RLE and compressed RLE; raises RegionSpotError if an annotation
        has no segmentation.
        """
        record = self[index]
        lo = int(self._starts[index])
        masks = np.zeros((len(record), record.height, record.width), dtype=bool)
        for i in range(len(record)):
            seg = self._segmentations.get(lo + i)
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
