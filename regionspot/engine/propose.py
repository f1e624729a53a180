"""``regionspot propose``: a detections file of our own for ``regionspot eval --boxes FILE``.

For every image of a COCO/LVIS-format dataset (id order, the same ``--limit`` selection as ``eval``), a
box source gives up to ``max_per_image`` boxes; the file is a list in the LVIS/COCO results format::

    [{"image_id": 397133, "category_id": 3, "bbox": [x, y, w, h], "score": 0.87}, ...]

``bbox`` is XYWH in pixels of the original image (as the annotation's width x height). ``category_id``
is the dataset category of the detector's best query when it was queried with the dataset's class
names, and 0 (no class) for class-agnostic boxes (OWLv2 objectness; SAM's automatic proposals, scored
by predicted IoU × stability). ``eval --boxes`` ignores
the category and multiplies the score with RegionSpot's class probability, as the paper does with GLIP.

The run is resumable: each finished image is appended to ``OUT.partial.jsonl`` (first line: the
settings), a rerun skips those images, and the final JSON is written atomically at the end.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from regionspot.data.coco_json import CocoDetectionDataset
from regionspot.data.transforms import xyxy_to_xywh
from regionspot.engine.evaluate import select_records
from regionspot.errors import ImageError, RegionSpotError
from regionspot.inference.box_sources import BoxSource, ScoredBoxes
from regionspot.utils.io import atomic_path


@dataclass
class ProposeStats:
    """images: images with boxes written (this run and before); failed: images that could not be read."""

    out: Path
    images: int
    boxes: int
    failed: list[str]
    resumed: int
    seconds: float


def _resume(partial: Path, settings: dict, overwrite: bool) -> dict[int, list[dict]]:
    """Finished images of an earlier run with the same settings (a cut last line is dropped)."""
    if overwrite or not partial.is_file():
        partial.unlink(missing_ok=True)
        return {}
    lines = partial.read_text(encoding="utf-8").split("\n")
    try:
        if json.loads(lines[0]) != settings:
            raise RegionSpotError(
                f"{partial} was made with other settings ({lines[0][:120]}); pass --overwrite to start over."
            )
    except json.JSONDecodeError:
        raise RegionSpotError(f"{partial} is not a proposals progress file; delete it or pass --overwrite.") from None
    done: dict[int, list[dict]] = {}
    for line in lines[1:]:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # the empty tail, or a line cut by a crash
        done[int(entry["image_id"])] = entry["detections"]
    return done


def propose_boxes(
    dataset: CocoDetectionDataset,
    source: BoxSource,
    out: str | Path,
    settings: dict,
    *,
    category_ids: list[int] | None = None,
    max_per_image: int = 300,
    limit: int | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
) -> ProposeStats:
    """Run ``source`` (any ``inference.box_sources.BoxSource``) on each selected image of ``dataset`` and
    write the results file ``out``.

    settings: what made the boxes (detector id, queries, thresholds); a resumed run must match it.
    category_ids: the dataset category of each query index (None: class-agnostic, category_id 0).
    """
    from regionspot.utils.progress import progress_bar

    if max_per_image < 1:
        raise RegionSpotError(f"--max-per-image must be >= 1, got {max_per_image}.")
    out = Path(out)
    partial = out.with_name(out.name + ".partial.jsonl")
    settings = {**settings, "max_per_image": max_per_image, "dataset": str(dataset.annotation_file)}
    done = _resume(partial, settings, overwrite)
    resumed, failed, start = len(done), [], time.perf_counter()
    records = select_records(dataset, limit)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(partial, "a", encoding="utf-8") as log:
        if not resumed:
            log.write(json.dumps(settings) + "\n")
        for record in progress_bar(records, desc="propose", unit="img", disable=not show_progress):
            if record.image_id in done:
                continue
            try:
                image = dataset.load_image(record.index)
            except ImageError as error:
                failed.append(f"{record.image_id}: {error}")
                continue
            found = source(image)
            done[record.image_id] = _results(record.image_id, found, category_ids, max_per_image)
            log.write(json.dumps({"image_id": record.image_id, "detections": done[record.image_id]}) + "\n")
            log.flush()
    selected = [r.image_id for r in records if r.image_id in done]
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps([d for image_id in selected for d in done[image_id]]))
    partial.unlink()
    return ProposeStats(out, len(selected), sum(len(done[i]) for i in selected), failed, resumed,
                        time.perf_counter() - start)


def _results(image_id: int, found: ScoredBoxes, category_ids: list[int] | None, cap: int) -> list[dict]:
    """COCO results entries of one image: XYWH pixels rounded to 0.01, at most ``cap``, best first."""
    boxes = xyxy_to_xywh(found.boxes[:cap].double()).tolist()
    out = []
    scores = found.scores[:cap].tolist() if found.scores is not None else [1.0] * len(boxes)  # unscored: 1
    for box, score, label in zip(boxes, scores, found.labels[:cap].tolist(), strict=True):
        category = category_ids[label] if category_ids is not None and label >= 0 else 0
        out.append({"image_id": image_id, "category_id": int(category), "bbox": [round(v, 2) for v in box],
                    "score": float(score)})
    return out
