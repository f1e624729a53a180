"""Many images as one COCO results file: ``OUT/results.coco.json`` assembled from the finished per-image
result JSONs of a batch (``inference.batch``), with the image-id and category-id map ``OUT/image_ids.json``.
When the batch's prompts came from a COCO file, its ids are used, so the results score against it.
Boxes in COCO results are [x, y, width, height] in original-image pixels."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from regionspot.inference.batch import BatchItem, is_finished, result_path
from regionspot.utils.io import write_json_atomic

COCO_RESULTS = "results.coco.json"
IMAGE_IDS = "image_ids.json"


def coco_entries(payload: dict[str, Any], image_id: int, category_ids: dict[str, int]) -> list[dict[str, Any]]:
    """A result JSON as COCO results: one entry per (region, class of its ``top_k``), the way
    ``RegionResult.to_coco_json`` makes them — bbox [x, y, w, h] original pixels, ``score`` the paper's
    softmax, ``segmentation`` the region's RLE when the JSON has masks."""
    entries = []
    for region in payload["regions"]:
        x1, y1, x2, y2 = region["box_xyxy"]
        for entry in region["top_k"]:
            coco = {"image_id": image_id, "category_id": category_ids[entry["label"]],
                    "bbox": [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)], "score": entry["score"],
                    "category_name": entry["label"]}
            if "mask" in region:
                coco["segmentation"] = region["mask"]
            entries.append(coco)
    return entries


def coco_ids(path: str | Path | None) -> tuple[dict[str, int], dict[str, int]]:
    """({image file_name: id}, {category name: id}) of a COCO file, so results can be scored against it;
    two empty tables when ``path`` is None or not a COCO file."""
    if path is None:
        return {}, {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}, {}
    if not (isinstance(data, dict) and isinstance(data.get("images"), list)):
        return {}, {}
    images = {str(i["file_name"]): int(i["id"]) for i in data["images"] if isinstance(i, dict) and "file_name" in i and "id" in i}
    categories = {str(c["name"]): int(c["id"]) for c in data.get("categories") or [] if isinstance(c, dict) and "name" in c and "id" in c}
    return images, categories


def _numbered(names: Sequence[str], known: dict[str, int], match=None) -> dict[str, int]:
    """An id per name: the known id of its match (``match(name, key)``; default equality), else the next
    id after every known one, in order."""
    ids, following = {}, max(known.values(), default=0) + 1
    for name in names:
        found = next((known[key] for key in known if (match or str.__eq__)(name, key)), None)
        if found is None:
            found, following = following, following + 1
        ids[name] = found
    return ids


def _same_file(path: str, file_name: str) -> bool:
    path, want = Path(path).as_posix(), Path(file_name).as_posix()
    return path == want or path.endswith("/" + want)


def write_coco(items: Sequence[BatchItem], out_dir: str | Path, vocabulary: Sequence[str],
               ground_truth: str | Path | None = None) -> tuple[Path, Path]:
    """Write ``OUT/results.coco.json`` (the COCO results of every item whose result JSON is finished) and
    ``OUT/image_ids.json`` ({"images": {file: image id}, "categories": {name: category id}}). With a COCO
    ``ground_truth`` file (e.g. the ``--prompts`` file), its image and category ids are used for the files
    and names it has, so the results score against it; otherwise, and for the rest, ids count from 1 (after
    the file's largest) in the batch's and the vocabulary's order. Returns both paths."""
    out_dir = Path(out_dir)
    known_images, known_categories = coco_ids(ground_truth)
    image_ids = _numbered([str(item.path) for item in items], known_images, _same_file)
    category_ids = _numbered(list(vocabulary), known_categories)
    results = []
    for item in items:
        if is_finished(item, out_dir, pictures=False):
            payload = json.loads(result_path(out_dir, item).read_text())
            results += coco_entries(payload, image_ids[str(item.path)], category_ids)
    coco_path, ids_path = out_dir / COCO_RESULTS, out_dir / IMAGE_IDS
    write_json_atomic(coco_path, results, indent=None)
    write_json_atomic(ids_path, {"images": image_ids, "categories": category_ids}, indent=1)
    return coco_path, ids_path
