"""Everything wrong with a COCO-format dataset, counted, with the first few examples of each kind.

``check_dataset`` streams the annotation file (bounded memory, like the reader) and looks at every entry
and every image file. Problem kinds (``ProblemLog`` keys):

- files: "missing image", "unreadable image" (header, or pixels with ``decode``), "image size differs
  from the file" (the JSON's width x height against the header's, EXIF orientation applied, as
  :func:`regionspot.data.images.load_image` shows it), "image without a positive width/height",
  "image without a file name";
- boxes: "malformed box" (not finite, or width/height <= 0), "box outside the image" (beyond the image
  by more than ``tolerance`` pixels);
- references: "unknown category", "annotation of an unknown image";
- ids and names: "duplicate image id", "duplicate annotation id", "duplicate category id",
  "duplicate class name" (two categories that are the same prompt once cleaned), "duplicate file name";
- entries that cannot be read at all: "malformed image entry", "malformed annotation", "malformed
  category entry", and a missing top-level key.
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regionspot.data.coco_index import CocoColumns, ProblemLog, positions_of, read_coco_columns
from regionspot.data.coco_json import apply_path_rule, choose_path_rule
from regionspot.data.images import probe_images_in, shown_size
from regionspot.errors import RegionSpotError
from regionspot.text.templates import clean_class_name

IMAGE_BATCH = 20_000


@dataclass
class CheckReport:
    """What ``check_dataset`` found. problems: counts and examples per kind; the rest are totals."""

    annotation_file: Path
    image_root: Path
    path_rule: str
    images: int
    annotations: int
    categories: int
    images_without_boxes: int
    problems: ProblemLog

    @property
    def ok(self) -> bool:
        return self.problems.total == 0


def check_dataset(
    annotation_file: str | Path,
    image_root: str | Path,
    *,
    decode: bool = False,
    tolerance: float = 1.0,
    max_examples: int = 5,
    workers: int | None = None,
    path_rule: str | None = None,
    show_progress: bool = True,
) -> CheckReport:
    """Check a COCO-format detection file and its images; see the module doc for what is looked at.

    decode: decode every image fully (slow) instead of reading headers only. tolerance: pixels a box may
    reach past the image before it counts as outside. workers: processes reading image files (None: up
    to 8). path_rule: as ``CocoDetectionDataset`` (None: probed). Never raises for content problems;
    raises RegionSpotError only when the file cannot be read as JSON or a folder is missing.
    """
    from regionspot.utils.progress import progress_bar

    annotation_file, image_root = Path(annotation_file), Path(image_root)
    if not annotation_file.is_file():
        raise RegionSpotError(f"Annotation file not found: {annotation_file}; check the path.")
    if not image_root.is_dir():
        raise RegionSpotError(f"Image folder not found: {image_root}; check the image root path.")
    bar = progress_bar(desc="read annotations", unit=" entries", unit_scale=True, disable=not show_progress)
    columns = read_coco_columns(annotation_file, keep_segmentations=False, max_examples=max_examples,
                                on_element=lambda: bar.update())
    bar.close()
    problems = columns.problems
    for key in columns.missing_keys:
        problems.add("missing top-level key", key)
    rule = path_rule or choose_path_rule(columns.file_names, image_root)
    _check_ids_and_names(columns, problems)
    has_boxes = _check_annotations(columns, tolerance, problems)
    workers = max(1, workers if workers is not None else min(8, os.cpu_count() or 1))
    with ProcessPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
        _check_files(columns, image_root, rule, decode, pool, workers, problems, show_progress)
    return CheckReport(annotation_file, image_root, rule, len(columns.image_ids), len(columns.ann_ids),
                       len(columns.categories), int((~has_boxes).sum()), problems)


def _repeats(kind: str, values: np.ndarray | list, problems: ProblemLog) -> None:
    """Every value that occurs more than once counts once (with its number of occurrences)."""
    if isinstance(values, np.ndarray):
        uniq, counts = np.unique(values, return_counts=True)
        repeated = list(zip(uniq[counts > 1].tolist(), counts[counts > 1].tolist(), strict=True))
    else:
        repeated = [(v, n) for v, n in Counter(values).items() if n > 1]
    problems.add_many(kind, [f"{v!r} x{n}" for v, n in repeated[: problems.max_examples]], len(repeated))


def _check_ids_and_names(columns: CocoColumns, problems: ProblemLog) -> None:
    _repeats("duplicate image id", columns.image_ids, problems)
    _repeats("duplicate annotation id", columns.ann_ids[columns.ann_ids >= 0], problems)
    _repeats("duplicate category id", [c["id"] for c in columns.categories], problems)
    _repeats("duplicate class name", [clean_class_name(c["name"]) for c in columns.categories], problems)
    _repeats("duplicate file name", [f for f in columns.file_names if f], problems)


def _examples(mask: np.ndarray, describe, limit: int) -> list[str]:
    return [describe(int(k)) for k in np.flatnonzero(mask)[:limit]]


def _check_annotations(columns: CocoColumns, tolerance: float, problems: ProblemLog) -> np.ndarray:
    """Count annotation problems; return (I,) bool: image has at least one annotation."""
    limit = problems.max_examples
    ann_ids, image_ids = columns.ann_ids, columns.ann_image_ids
    cat_ids = np.unique([c["id"] for c in columns.categories]).astype(np.int64)
    unknown_cat = positions_of(cat_ids, np.arange(len(cat_ids)), columns.ann_category_ids) < 0
    problems.add_many("unknown category", _examples(
        unknown_cat, lambda k: f"annotation {ann_ids[k]}: category_id {columns.ann_category_ids[k]}", limit),
        int(unknown_cat.sum()))
    order = np.argsort(columns.image_ids, kind="stable")
    where = positions_of(columns.image_ids[order], order, image_ids)
    orphan = where < 0
    problems.add_many("annotation of an unknown image", _examples(
        orphan, lambda k: f"annotation {ann_ids[k]}: image_id {image_ids[k]}", limit), int(orphan.sum()))
    boxes = columns.ann_boxes.astype(np.float64)
    malformed = ~np.isfinite(boxes).all(1) | (boxes[:, 2] <= 0) | (boxes[:, 3] <= 0)
    problems.add_many("malformed box", _examples(
        malformed, lambda k: f"annotation {ann_ids[k]}: bbox {boxes[k].tolist()}", limit), int(malformed.sum()))
    sized = ~orphan & ~malformed
    width = np.where(sized, columns.widths[where], 0).astype(np.float64)
    height = np.where(sized, columns.heights[where], 0).astype(np.float64)
    sized &= (width > 0) & (height > 0)
    outside = sized & ((boxes[:, 0] < -tolerance) | (boxes[:, 1] < -tolerance)
                       | (boxes[:, 0] + boxes[:, 2] > width + tolerance) | (boxes[:, 1] + boxes[:, 3] > height + tolerance))
    problems.add_many("box outside the image", _examples(
        outside, lambda k: f"annotation {ann_ids[k]}: bbox {boxes[k].round(2).tolist()} in a {int(width[k])}x{int(height[k])} "
                           f"image {image_ids[k]}", limit), int(outside.sum()))
    has_boxes = np.zeros(len(columns.image_ids), dtype=bool)
    has_boxes[where[~orphan]] = True
    return has_boxes


def _check_files(columns: CocoColumns, root: Path, rule: str, decode: bool, pool: Executor | None, workers: int,
                 problems: ProblemLog, show_progress: bool) -> None:
    """Probe every image file (in batches) against the JSON's width and height."""
    from regionspot.utils.progress import progress_bar

    limit = problems.max_examples
    unsized = (columns.widths < 1) | (columns.heights < 1)
    problems.add_many("image without a positive width/height", _examples(
        unsized, lambda k: f"image {columns.image_ids[k]}", limit), int(unsized.sum()))
    unnamed = [k for k, f in enumerate(columns.file_names) if not f]
    problems.add_many("image without a file name", [f"image {columns.image_ids[k]}" for k in unnamed[:limit]], len(unnamed))
    todo = [k for k, f in enumerate(columns.file_names) if f]
    bar = progress_bar(total=len(todo), desc="check images", unit="img", disable=not show_progress)
    for lo in range(0, len(todo), IMAGE_BATCH):
        batch = todo[lo : lo + IMAGE_BATCH]
        paths = [root / apply_path_rule(columns.file_names[k], rule) for k in batch]
        for k, path, result in zip(batch, paths, probe_images_in(pool, workers, paths, decode), strict=True):
            if isinstance(result, str):
                problems.add(result, str(path))
            elif not unsized[k] and shown_size(*result) != (columns.widths[k], columns.heights[k]):
                shown = "x".join(map(str, shown_size(*result)))
                problems.add("image size differs from the file",
                             f"image {columns.image_ids[k]}: JSON {columns.widths[k]}x{columns.heights[k]}, file {shown} ({path})")
        bar.update(len(batch))
    bar.close()

