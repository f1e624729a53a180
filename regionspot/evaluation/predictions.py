"""An append-only, crash-safe store of evaluation predictions, one file per process (rank).

Layout under ``root`` (usually ``OUT/predictions``)::

    manifest.json        what produced the predictions (data file, methods, box source, models, caps)
    rank00000.jsonl      one JSON line per finished image of rank 0
    rank00001.jsonl      ... of rank 1, etc.

A line is one image, written and flushed (and fsync'ed, per line or per batch) as soon as the image is finished; it is the
"done" marker at the same time, so an image is either wholly in the store or not at all. A crash can
leave at most one truncated last line; it is dropped on reopening and the image is recomputed.

Line of a scored image (boxes XYWH in original-image pixels, as COCO results)::

    {"image_id": 7, "boxes": [[x, y, w, h], ...], "segm": [RLE, ...] | null,
     "methods": {"regionspot": [[box_index, category_id, score], ...], "clip-box": [...]}}

The (box, class) pairs are kept compactly (each box's mask RLE is stored once, not once per label) and
expanded into COCO results by :func:`expand_record`. Line of an image that failed to decode::

    {"image_id": 8, "error": "ImageError: cannot identify image file ..."}

Sharding: rank ``r`` of ``w`` processes owns the images ``ids[r::w]`` of the (ordered) image list; every
rank reads the done ids of *all* shard files first, so a run resumed with another number of processes
recomputes nothing. :func:`merge` concatenates the shards (an image present twice keeps its first line).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regionspot.errors import PredictionStoreError
from regionspot.utils.io import write_json_atomic

__all__ = [
    "PredictionStoreError",
    "PredictionStore",
    "MergedPredictions",
    "shard_ids",
    "read_records",
    "done_image_ids",
    "merge",
    "expand_record",
    "write_manifest",
    "file_identity",
]

MANIFEST = "manifest.json"


def shard_ids(image_ids: Sequence[int], rank: int, world_size: int) -> list[int]:
    """The images rank ``rank`` of ``world_size`` processes evaluates: round-robin, ``ids[rank::world_size]``."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
    return list(image_ids)[rank::world_size]


def _shard_path(root: Path, rank: int) -> Path:
    return root / f"rank{rank:05d}.jsonl"


def _shard_files(root: Path) -> list[Path]:
    return sorted(root.glob("rank*.jsonl"))


def read_records(path: str | os.PathLike) -> Iterator[dict]:
    """The complete records of one shard file, in order. A truncated (unterminated) last line is skipped;
    a corrupt line elsewhere raises PredictionStoreError naming the file and line."""
    path = Path(path)
    with path.open("r", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith("\n"):
                return  # a write cut short by a crash: that image is recomputed
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                raise PredictionStoreError(
                    f"{path} line {number} is corrupt; delete that file to recompute its images."
                ) from None


def done_image_ids(root: str | os.PathLike) -> set[int]:
    """Ids of every image finished (scored or failed) by any rank under ``root``."""
    root = Path(root)
    done: set[int] = set()
    if root.is_dir():
        for path in _shard_files(root):
            done.update(int(r["image_id"]) for r in read_records(path))
    return done


def file_identity(path: str | os.PathLike) -> dict[str, Any]:
    """A file as a manifest records it: its resolved path and size."""
    stat = Path(path).stat()
    return {"path": str(Path(path).resolve()), "size": stat.st_size}


def write_manifest(root: str | os.PathLike, manifest: dict[str, Any], overwrite: bool = False) -> None:
    """Create ``root`` and record what the predictions are of; refuse to mix two different runs.

    An existing manifest must equal ``manifest`` (a resumed run), unless ``overwrite`` clears the folder.
    """
    root = Path(root)
    path = root / MANIFEST
    if overwrite and root.is_dir():
        for shard in _shard_files(root):
            shard.unlink()
        if path.exists():
            path.unlink()
    root.mkdir(parents=True, exist_ok=True)
    manifest = json.loads(json.dumps(manifest))  # normalise (tuples -> lists, keys -> str)
    if path.exists():
        old = json.loads(path.read_text())
        if old != manifest:
            changed = sorted(k for k in set(old) | set(manifest) if old.get(k) != manifest.get(k))
            raise PredictionStoreError(
                f"{root} holds predictions of another run (differs in {', '.join(changed)}); pass another --out "
                "or --overwrite to start afresh."
            )
        return
    write_json_atomic(path, manifest, indent=2, sort_keys=True)


class PredictionStore:
    """The shard file of one rank, opened for appending.

    >>> with PredictionStore(root, rank=0) as store:
    ...     store.add(image_id, boxes_xywh, segm, {"regionspot": pairs})
    """

    def __init__(self, root: str | os.PathLike, rank: int = 0, fsync: bool = True) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = _shard_path(self.root, rank)
        self.fsync = fsync
        self._repair()
        self._handle = self.path.open("a", encoding="utf-8")

    def _repair(self) -> None:
        """Cut a truncated last line left by a crash, so the next append starts on a fresh line."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with self.path.open("r+b") as handle:
                handle.truncate(cut)

    def _write(self, record: dict) -> None:
        self._handle.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._handle.flush()
        if self.fsync:
            os.fsync(self._handle.fileno())

    def add(
        self,
        image_id: int,
        boxes_xywh: Sequence[Sequence[float]],
        segm: Sequence[dict] | None,
        pairs_by_method: dict[str, Sequence[Sequence[float]]],
    ) -> None:
        """Append one finished image.

        boxes_xywh: (N, 4) [x, y, w, h] original-image pixels; segm: N compressed RLEs or None;
        pairs_by_method: method -> K triples [box_index, category_id, score].
        """
        self._write(
            {
                "image_id": int(image_id),
                "boxes": [[float(v) for v in box] for box in boxes_xywh],
                "segm": None if segm is None else list(segm),
                "methods": {m: [[int(b), int(c), float(s)] for b, c, s in p] for m, p in pairs_by_method.items()},
            }
        )

    def add_failure(self, image_id: int, error: str) -> None:
        """Append an image that could not be processed (it is not retried on resume)."""
        self._write({"image_id": int(image_id), "error": str(error)})

    def sync(self) -> None:
        """Make every line written so far durable (``os.fsync``); with ``fsync=False`` a loop calls this
        once per batch instead of once per line. Lines are flushed to the OS on every write either way."""
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()

    def __enter__(self) -> PredictionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def expand_record(record: dict, method: str, with_segm: bool) -> list[dict]:
    """COCO results of one stored image for one method (bbox always; "segmentation" when asked and stored)."""
    boxes, segm = record["boxes"], record.get("segm")
    if with_segm and segm is None:
        raise PredictionStoreError(
            f"image {record['image_id']} has no stored masks; re-run with --iou-types bbox,segm into a new --out"
        )
    out = []
    for b, c, s in record["methods"].get(method, []):
        det = {"image_id": int(record["image_id"]), "category_id": int(c), "bbox": list(boxes[b]), "score": float(s)}
        if with_segm:
            det["segmentation"] = dict(segm[b])
        out.append(det)
    return out


@dataclass
class MergedPredictions:
    """All shards together: per-image records (first wins on duplicates) and failed images."""

    records: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)  # {"image_id", "error"}

    @property
    def image_ids(self) -> list[int]:
        return [int(r["image_id"]) for r in self.records]

    def results(self, method: str, with_segm: bool = False) -> list[dict]:
        """COCO results of ``method`` over all scored images, ordered by image id."""
        out: list[dict] = []
        for record in self.records:
            out.extend(expand_record(record, method, with_segm))
        return out


def merge(root: str | os.PathLike, image_ids: Iterable[int] | None = None) -> MergedPredictions:
    """Concatenate every rank's shard under ``root``; keep only ``image_ids`` when given.

    Records are ordered by image id, so the merged list does not depend on the number of ranks.
    """
    root = Path(root)
    if not root.is_dir():
        raise PredictionStoreError(f"No predictions under {root}; run the evaluation first.")
    wanted = None if image_ids is None else {int(i) for i in image_ids}
    seen: dict[int, dict] = {}
    for path in _shard_files(root):
        for record in read_records(path):
            image_id = int(record["image_id"])
            if (wanted is None or image_id in wanted) and image_id not in seen:
                seen[image_id] = record
    merged = MergedPredictions()
    for image_id in sorted(seen):
        record = seen[image_id]
        (merged.failures if "error" in record else merged.records).append(record)
    return merged
