"""OpenImages v6/v7 box annotations (the public CSVs) -> a COCO-format JSON that ``CocoDetectionDataset`` reads.

Inputs, as downloaded from storage.googleapis.com/openimages:

- the box CSV (``oidv6-train-annotations-bbox.csv``, ``validation-annotations-bbox.csv``, ...): one row per
  box, ``ImageID, LabelName, XMin, XMax, YMin, YMax, IsGroupOf`` among other columns (read by name),
  coordinates normalised to [0, 1] of the image as stored;
- the class descriptions (``oidv7-class-descriptions-boxable.csv`` with a ``LabelName,DisplayName``
  header, or the header-less ``class-descriptions-boxable.csv`` of v4-v6): the class names;
- optionally the image list (``train-images-boxable-with-rotation.csv`` or any CSV with an ``ImageID``
  column): only these images are converted;
- the image folder holding ``<ImageID>.jpg`` (file names in the JSON are relative to it).

What the output holds:

- images: every image with at least one box, ids 1.. in the order the CSV first names them, width and
  height read from the file's header (PIL, no decoding) as :func:`regionspot.data.images.load_image`
  shows it (EXIF orientation applied; OpenImages' ``Rotation`` column is *not* applied: it tells how the
  author meant the photo to be shown, while the boxes refer to the image as stored);
- annotations: boxes scaled to pixels (clipped to [0, 1] first; moved with the EXIF orientation when a
  file has one), COCO XYWH, ``area`` = w x h;
- ``IsGroupOf`` policy (``group_of``): "crowd" (default) writes group boxes with ``iscrowd: 1``, which
  the reader and training skip, as detectron2 does, while the file still records them; "drop" leaves
  them out; "keep" writes them as ordinary boxes;
- categories: the classes that have at least one written box (all of the descriptions file with
  ``all_classes``), id = the class's row number in the descriptions file (1-based, stable across splits),
  name = ``DisplayName``, and ``"freebase_id"`` = the ``LabelName`` (MID).

Memory is bounded by the number of images, not boxes: the CSV is read in chunks, each chunk's new images
have their headers read by a thread pool, and annotations are written as they are made (images and
categories follow them in the file). Boxes of missing or unreadable images, of images outside the list,
of unknown classes and degenerate boxes are skipped and counted with the first few examples.
"""

from __future__ import annotations

import csv
import json
import os
import time
from array import array
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from regionspot.data.coco_index import ProblemLog
from regionspot.data.images import probe_images_in, shown_size
from regionspot.data.transforms import orient_normalized_boxes
from regionspot.errors import RegionSpotError
from regionspot.utils.io import atomic_path

GROUP_OF_POLICIES = ("crowd", "drop", "keep")
BOX_COLUMNS = ("ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax")
CHUNK_ROWS = 50_000


@dataclass
class ConversionReport:
    """What a conversion read (rows), wrote (images, boxes, categories; group_of: IsGroupOf boxes met) and
    skipped (problems: skipped or clipped boxes by reason, with examples)."""

    out: Path
    rows: int
    images: int
    problems: ProblemLog = field(default_factory=ProblemLog)
    boxes: int = 0
    group_of: int = 0
    categories: int = 0
    seconds: float = 0.0

    @property
    def boxes_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def read_class_descriptions(path: str | Path) -> list[tuple[str, str]]:
    """[(LabelName, DisplayName)] in file order, from a descriptions CSV with or without its header."""
    rows = _read_csv_rows(path)
    if rows and [c.strip() for c in rows[0][:2]] == ["LabelName", "DisplayName"]:
        rows = rows[1:]
    bad = [i + 1 for i, r in enumerate(rows) if len(r) < 2 or not r[0].strip() or not r[1].strip()]
    if bad or not rows:
        raise RegionSpotError(
            f"{path} is not an OpenImages class-descriptions CSV (LabelName,DisplayName rows); "
            f"{'it is empty' if not rows else f'row {bad[0]} has no name'}."
        )
    return [(r[0].strip(), r[1].strip()) for r in rows]


def read_image_list(path: str | Path) -> set[str]:
    """The ImageIDs of an image-list CSV (an ``ImageID`` column, or one id per line without a header)."""
    rows = _read_csv_rows(path)
    if not rows:
        raise RegionSpotError(f"Image list {path} is empty; pass the split's image-IDs CSV.")
    header = [c.strip() for c in rows[0]]
    column = header.index("ImageID") if "ImageID" in header else None
    if column is None:
        return {r[0].strip() for r in rows if r and r[0].strip()}
    return {r[column].strip() for r in rows[1:] if len(r) > column and r[column].strip()}


def _read_csv_rows(path: str | Path) -> list[list[str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return [row for row in csv.reader(handle) if row]
    except OSError as error:
        raise RegionSpotError(f"Cannot read {path} ({error.strerror}); check the path.") from None


class _ImageTable:
    """ImageID -> image position, with the shown size and EXIF orientation read from each file's header.

    Headers are read by ``pool`` (processes: PIL's header parsing holds the GIL) in one slice per worker.
    """

    def __init__(self, folder: Path, pool: Executor | None, workers: int, problems: ProblemLog) -> None:
        self.folder, self.pool, self.workers, self.problems = folder, pool, workers, problems
        self.index: dict[str, int] = {}  # ImageID -> position (or -1: missing or unreadable)
        self.names: list[str] = []
        self.widths, self.heights, self.orientation = array("q"), array("q"), array("b")

    def add(self, image_ids: list[str]) -> None:
        new = [i for i in dict.fromkeys(image_ids) if i not in self.index]
        if not new:
            return
        headers = probe_images_in(self.pool, self.workers, [self.folder / f"{i}.jpg" for i in new])
        for image_id, header in zip(new, headers, strict=True):
            if isinstance(header, str):
                self.problems.add(header, str(self.folder / f"{image_id}.jpg"))
                self.index[image_id] = -1
                continue
            width, height = shown_size(*header)
            self.index[image_id] = len(self.names)
            self.names.append(image_id)
            self.widths.append(width)
            self.heights.append(height)
            self.orientation.append(header[2])

    def lookup(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(widths float64, heights float64, orientations int8) of the images at ``positions``."""
        # The numpy views end with this call, before the arrays grow again.
        return (np.frombuffer(self.widths, dtype=np.int64)[positions].astype(np.float64),
                np.frombuffer(self.heights, dtype=np.int64)[positions].astype(np.float64),
                np.frombuffer(self.orientation, dtype=np.int8)[positions])


def _chunks(handle: TextIO, on_bytes: Callable[[int], None]) -> Iterator[tuple[list[list[str]], list[int]]]:
    """(rows, column positions of BOX_COLUMNS + IsGroupOf (-1 if absent)) of the box CSV, ``CHUNK_ROWS`` at a time."""

    def lines() -> Iterator[str]:
        while batch := handle.readlines(1 << 22):
            on_bytes(sum(map(len, batch)))
            yield from batch

    reader = csv.reader(lines())
    header = [c.strip() for c in next(reader, [])]
    missing = [c for c in BOX_COLUMNS if c not in header]
    if missing:
        raise RegionSpotError(
            f"{handle.name} is not an OpenImages box CSV: no {', '.join(missing)} column(s); pass e.g. "
            "oidv6-train-annotations-bbox.csv."
        )
    columns = [header.index(c) for c in BOX_COLUMNS] + [header.index("IsGroupOf") if "IsGroupOf" in header else -1]
    chunk: list[list[str]] = []
    for row in reader:
        chunk.append(row)
        if len(chunk) == CHUNK_ROWS:
            yield chunk, columns
            chunk = []
    if chunk:
        yield chunk, columns


@dataclass
class _Chunk:
    """One chunk's boxes that survive: image positions (K,), class ids (K,), stored-frame normalised XYXY
    (K, 4) float64 and group-of flags (K,)."""

    image: np.ndarray
    category: np.ndarray
    boxes: np.ndarray
    group: np.ndarray


def _parse_chunk(rows: list[list[str]], columns: list[int], table: _ImageTable, class_ids: dict[str, int],
                 allowed: set[str] | None, problems: ProblemLog) -> _Chunk:
    """Columns of one chunk, with rows that cannot become a box counted and removed."""
    width = max(columns) + 1
    short = [r for r in rows if len(r) < width]
    if short:
        problems.add_many("malformed row", [",".join(r) for r in short[:5]], len(short))
        rows = [r for r in rows if len(r) >= width]
    c_id, c_label, c_x0, c_x1, c_y0, c_y1, c_group = columns
    ids = [r[c_id] for r in rows]
    if allowed is not None:
        outside = [i for i in ids if i not in allowed]
        problems.add_many("box of an image not in the image list", outside[:5], len(outside))
    table.add([i for i in ids if allowed is None or i in allowed])
    image = np.fromiter((table.index.get(i, -1) if allowed is None or i in allowed else -2 for i in ids),
                        np.int64, len(ids))
    unreadable = image == -1
    problems.add_many("box of a missing or unreadable image", [ids[k] for k in np.flatnonzero(unreadable)[:5]],
                      int(unreadable.sum()))
    category = np.fromiter((class_ids.get(r[c_label], 0) for r in rows), np.int64, len(rows))
    unknown = np.flatnonzero((category == 0) & (image >= 0))
    problems.add_many("box of a class not in the descriptions", [rows[k][c_label] for k in unknown[:5]], len(unknown))
    try:
        coords = np.fromiter(map(float, [r[c] for r in rows for c in (c_x0, c_y0, c_x1, c_y1)]), np.float64,
                             4 * len(rows)).reshape(-1, 4)
    except ValueError:
        coords = np.array([_numbers(r[c_x0], r[c_y0], r[c_x1], r[c_y1]) for r in rows], dtype=np.float64).reshape(-1, 4)
    bad = ~np.isfinite(coords).all(1) & (image >= 0) & (category > 0)
    problems.add_many("malformed row", [",".join(rows[k]) for k in np.flatnonzero(bad)[:5]], int(bad.sum()))
    group = np.fromiter(((r[c_group] == "1") if c_group >= 0 else False for r in rows), bool, len(rows))
    keep = (image >= 0) & (category > 0) & ~bad
    return _Chunk(image[keep], category[keep], coords[keep], group[keep])


def _numbers(*texts: str) -> tuple[float, ...]:
    """Floats of the texts, NaN for any that is not a number."""
    out = []
    for text in texts:
        try:
            out.append(float(text))
        except ValueError:
            out.append(float("nan"))
    return tuple(out)


def _pixel_boxes(chunk: _Chunk, table: _ImageTable, problems: ProblemLog) -> tuple[np.ndarray, np.ndarray]:
    """(boxes (K, 4) float64 XYXY pixels of the shown image rounded to 0.01, kept (K,) bool)."""
    outside = ((chunk.boxes < 0) | (chunk.boxes > 1)).any(1)
    problems.add_many("box outside [0, 1], clipped to the image",
                      [f"image {table.names[i]}" for i in chunk.image[outside][:5]], int(outside.sum()))
    widths, heights, orientation = table.lookup(chunk.image)
    boxes = orient_normalized_boxes(np.clip(chunk.boxes, 0.0, 1.0), orientation)
    boxes = np.round(boxes * np.stack([widths, heights, widths, heights], 1), 2)
    kept = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    problems.add_many("degenerate box (zero width or height)",
                      [f"image {table.names[i]}" for i in chunk.image[~kept][:5]], int((~kept).sum()))
    return boxes, kept


def _annotation_text(first_id: int, chunk: _Chunk, boxes: np.ndarray, policy: str) -> tuple[str, int, int]:
    """(JSON text of the chunk's annotations, joined by commas; boxes written; group-of boxes in the chunk)."""
    write = np.ones(len(boxes), dtype=bool) if policy != "drop" else ~chunk.group
    crowd = chunk.group & (policy == "crowd")
    image_ids, cats = (chunk.image[write] + 1).tolist(), chunk.category[write].tolist()
    x, y = boxes[write, 0], boxes[write, 1]
    w, h = boxes[write, 2] - x, boxes[write, 3] - y
    parts = [
        f'{{"id":{first_id + k},"image_id":{i},"category_id":{c},"bbox":[{bx:.2f},{by:.2f},{bw:.2f},{bh:.2f}],'
        f'"area":{bw * bh:.2f},"iscrowd":{g}}}'
        for k, (i, c, bx, by, bw, bh, g) in enumerate(zip(image_ids, cats, x.tolist(), y.tolist(), w.tolist(), h.tolist(),
                                                           crowd[write].astype(int).tolist(), strict=True))
    ]
    return ",".join(parts), len(parts), int(chunk.group.sum())


def convert_openimages(
    boxes_csv: str | Path,
    classes_csv: str | Path,
    images_dir: str | Path,
    out: str | Path,
    *,
    image_list: str | Path | None = None,
    group_of: str = "crowd",
    all_classes: bool = False,
    workers: int | None = None,
    max_examples: int = 5,
    show_progress: bool = True,
) -> ConversionReport:
    """Convert one OpenImages split to COCO-format JSON at ``out`` (written atomically); see the module doc.

    images_dir: the folder of ``<ImageID>.jpg`` files; the JSON's file names are relative to it.
    group_of: "crowd", "drop" or "keep" (IsGroupOf policy).
    workers: processes reading image headers (None: up to 8, one per CPU; 1: in this process).
    Returns a :class:`ConversionReport` (rows read, images and boxes written, what was skipped and why).
    """
    if group_of not in GROUP_OF_POLICIES:
        raise RegionSpotError(f"group_of must be one of {', '.join(GROUP_OF_POLICIES)}, got {group_of!r}.")
    boxes_csv, images_dir, out = Path(boxes_csv), Path(images_dir), Path(out)
    if not images_dir.is_dir():
        raise RegionSpotError(f"Image folder not found: {images_dir}; pass the folder of <ImageID>.jpg files.")
    classes = read_class_descriptions(classes_csv)
    class_ids = {mid: k + 1 for k, (mid, _) in enumerate(classes)}
    allowed = read_image_list(image_list) if image_list is not None else None
    report = ConversionReport(out=out, rows=0, images=0, problems=ProblemLog(max_examples))
    workers = max(1, workers if workers is not None else min(8, os.cpu_count() or 1))
    with ProcessPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
        table = _ImageTable(images_dir, pool, workers, report.problems)
        _convert(boxes_csv, out, table, class_ids, classes, allowed, group_of, all_classes, report, show_progress)
    return report


def _convert(boxes_csv: Path, out: Path, table: _ImageTable, class_ids: dict[str, int], classes: list[tuple[str, str]],
             allowed: set[str] | None, group_of: str, all_classes: bool, report: ConversionReport,
             show_progress: bool) -> None:
    """The streaming pass of :func:`convert_openimages`: CSV chunks in, JSON text out; fills ``report``."""
    from regionspot.utils.progress import progress_bar

    used: set[int] = set()
    start = time.perf_counter()
    try:
        handle = open(boxes_csv, newline="", encoding="utf-8-sig")
    except OSError as error:
        raise RegionSpotError(f"Cannot read {boxes_csv} ({error.strerror}); check the path.") from None
    bar = progress_bar(total=boxes_csv.stat().st_size, unit="B", unit_scale=True, desc="openimages", disable=not show_progress)
    with handle, atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write('{"info": ' + json.dumps({"description": f"OpenImages boxes from {boxes_csv.name}",
                                          "group_of": group_of}) + ', "annotations": [')
        for rows, columns in _chunks(handle, bar.update):
            report.rows += len(rows)
            chunk = _parse_chunk(rows, columns, table, class_ids, allowed, report.problems)
            boxes, kept = _pixel_boxes(chunk, table, report.problems)
            chunk = _Chunk(chunk.image[kept], chunk.category[kept], chunk.boxes[kept], chunk.group[kept])
            text, written, groups = _annotation_text(report.boxes + 1, chunk, boxes[kept], group_of)
            if written:
                f.write(("," if report.boxes else "") + text)
            report.boxes += written
            report.group_of += groups
            used.update(np.unique(chunk.category).tolist())
            bar.set_postfix(boxes=report.boxes, images=len(table.names))
        bar.close()
        _write_tail(f, table, classes, used, all_classes)
    report.images = len(table.names)
    report.categories = len(classes) if all_classes else len(used)
    report.seconds = time.perf_counter() - start


def _write_tail(f: TextIO, table: _ImageTable, classes: list[tuple[str, str]], used: set[int], all_classes: bool) -> None:
    """The images and categories arrays, and the closing brace."""
    f.write('], "images": [')
    for lo in range(0, len(table.names), CHUNK_ROWS):
        names = table.names[lo : lo + CHUNK_ROWS]
        widths, heights, _ = table.lookup(np.arange(lo, lo + len(names)))
        f.write(("," if lo else "") + ",".join(
            f'{{"id":{lo + k + 1},"file_name":{json.dumps(name + ".jpg")},"width":{int(w)},"height":{int(h)},'
            f'"openimages_id":{json.dumps(name)}}}'
            for k, (name, w, h) in enumerate(zip(names, widths.tolist(), heights.tolist(), strict=True))))
    categories = [{"id": k + 1, "name": name, "freebase_id": mid} for k, (mid, name) in enumerate(classes)
                  if all_classes or k + 1 in used]
    f.write('], "categories": ' + json.dumps(categories, ensure_ascii=False) + "}")
