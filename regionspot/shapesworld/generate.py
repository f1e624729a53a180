"""Writing a ShapesWorld dataset: images and COCO / LVIS v1 JSON with RLE masks and frequency buckets.

Output (loadable by pycocotools, lvis-api and :class:`regionspot.data.coco_json.CocoDetectionDataset`)::

    DIR/train/00000001.png ...        file_name "train/00000001.png" (image root is DIR)
    DIR/val/01000001.png ...
    DIR/annotations/train.json
    DIR/annotations/val.json

Every random choice of an image comes from its split's stream, ``stream_rng(seed, split, index)``
(:mod:`regionspot.shapesworld.streams`): the same seed gives byte-identical JSON and pixel-identical
images, and an image does not depend on how many others were generated. Image ids are unique across
splits (val ids start at 1,000,001). Boxes are COCO XYWH in image pixels; masks are the visible parts of
the objects.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
from PIL import Image

from regionspot.errors import RegionSpotError
from regionspot.shapesworld.streams import SPLIT_STREAMS, stream_rng
from regionspot.shapesworld.world import (
    ShapesWorldCategory,
    WorldConfig,
    category_probabilities,
    render_image,
)
from regionspot.utils.progress import progress_bar

VAL_IMAGE_ID_OFFSET = 1_000_000


def _encode_mask(mask: np.ndarray) -> tuple[dict[str, Any], list[float]]:
    """Compressed RLE (counts as str) and the tight XYWH box of an (H, W) bool mask."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    bbox = [float(v) for v in mask_utils.toBbox(rle)]
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}, bbox


def _generate_split(
    out_dir: Path,
    split: str,
    count: int,
    seed: int,
    categories: list[ShapesWorldCategory],
    probabilities: np.ndarray,
    image_size: int,
    world: WorldConfig,
    min_visible_fraction: float,
    neg_category_sample: int | None,
    progress: bool,
) -> tuple[list[dict], list[dict]]:
    image_dir = out_dir / split
    image_dir.mkdir(parents=True, exist_ok=True)
    id_offset = VAL_IMAGE_ID_OFFSET if split == "val" else 0
    images: list[dict] = []
    annotations: list[dict] = []
    all_ids = np.array([c.id for c in categories])
    for index in progress_bar(range(count), desc=f"ShapesWorld {split}", unit="img", disable=not progress):
        rng = stream_rng(seed, SPLIT_STREAMS[split], index)
        pixels, objects = render_image(rng, categories, probabilities, image_size, world,
                                       min_visible_fraction=min_visible_fraction)
        image_id = id_offset + index + 1
        file_name = f"{split}/{image_id:08d}.png"
        Image.fromarray(pixels).save(out_dir / file_name, compress_level=1)
        present = set()
        for obj in objects:
            rle, bbox = _encode_mask(obj.mask)
            cat_id = categories[obj.category_index].id
            present.add(cat_id)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": cat_id,
                    "bbox": bbox,
                    "area": int(obj.mask.sum()),
                    "iscrowd": 0,
                    "segmentation": rle,
                }
            )
        absent = all_ids[~np.isin(all_ids, list(present))]
        if neg_category_sample is not None and absent.size > neg_category_sample:
            absent = np.sort(rng.choice(absent, size=neg_category_sample, replace=False))
        images.append(
            {
                "id": image_id,
                "file_name": file_name,
                "width": image_size,
                "height": image_size,
                "neg_category_ids": [int(i) for i in absent],
                "not_exhaustive_category_ids": [],
            }
        )
    return images, annotations


def _counts(annotations: list[dict]) -> tuple[dict[int, int], dict[int, int]]:
    instances: dict[int, int] = {}
    per_image: dict[int, set[int]] = {}
    for ann in annotations:
        instances[ann["category_id"]] = instances.get(ann["category_id"], 0) + 1
        per_image.setdefault(ann["category_id"], set()).add(ann["image_id"])
    return {k: len(v) for k, v in per_image.items()}, instances


def generate_shapesworld(
    out_dir: str | Path,
    num_train: int,
    num_val: int,
    seed: int = 0,
    image_size: int = 256,
    *,
    world: WorldConfig | None = None,
    train_bucket_weights: tuple[float, float, float] = (1.0, 0.2, 0.0),
    val_bucket_weights: tuple[float, float, float] = (1.0, 0.5, 0.5),
    min_visible_fraction: float = 0.35,
    neg_category_sample: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write a ShapesWorld dataset under ``out_dir`` and return its paths and statistics.

    num_train / num_val: number of images per split (0 allowed). image_size: square side in pixels.
    world: the class grid, object sizes and counts (:class:`WorldConfig`; None: the default world).
    *_bucket_weights: relative sampling
    weight of one category of each bucket (f, c, r); the train weight of r must be 0 (rare classes are
    never seen in training). neg_category_sample: None lists every absent category in each image's
    ``neg_category_ids`` (annotations are exhaustive), an int lists a random sample of that many.

    Returns {"root", "image_root", "train_json", "val_json", "num_categories", "buckets",
    "train": {...stats}, "val": {...stats}, "seconds", "images_per_second"}.
    """
    _check_arguments(num_train, num_val, image_size, train_bucket_weights)
    out = Path(out_dir)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    world = WorldConfig() if world is None else world
    categories = world.categories(seed)
    start = time.perf_counter()
    splits = {}
    for split, count, weights in (("train", num_train, train_bucket_weights), ("val", num_val, val_bucket_weights)):
        probs = category_probabilities(categories, weights)
        splits[split] = _generate_split(
            out, split, count, seed, categories, probs, image_size, world, min_visible_fraction,
            neg_category_sample, progress
        )
    seconds = time.perf_counter() - start

    category_json = _category_json(categories, splits["train"][1])
    buckets = {b: [c.id for c in categories if c.frequency == b] for b in "fcr"}
    result: dict[str, Any] = {
        "root": str(out),
        "image_root": str(out),
        "num_categories": len(categories),
        "buckets": {b: len(ids) for b, ids in buckets.items()},
        "seconds": seconds,
        "images_per_second": (num_train + num_val) / seconds if seconds > 0 else float("inf"),
    }
    for split, weights in (("train", train_bucket_weights), ("val", val_bucket_weights)):
        images, annotations = splits[split]
        stats = _split_stats(images, annotations, buckets)
        info = _split_info(split, seed, image_size, world, weights, buckets, stats)
        document = {
            "info": info,
            "licenses": [],
            "images": images,
            "annotations": annotations,
            "categories": category_json,
        }
        path = out / "annotations" / f"{split}.json"
        path.write_text(json.dumps(document, separators=(",", ":")))
        result[f"{split}_json"] = str(path)
        result[split] = stats
    return result


def _check_arguments(
    num_train: int, num_val: int, image_size: int, train_bucket_weights: tuple[float, float, float]
) -> None:
    if num_train < 0 or num_val < 0:
        raise RegionSpotError(f"Image counts must be >= 0, got train={num_train}, val={num_val}.")
    if image_size < 32:
        raise RegionSpotError(f"image_size must be at least 32 pixels, got {image_size}.")
    if train_bucket_weights[2] != 0:
        raise RegionSpotError("train_bucket_weights[2] (rare) must be 0: rare classes never appear in training.")


def _category_json(categories: list[ShapesWorldCategory], train_annotations: list[dict]) -> list[dict]:
    """The LVIS-style category entries; image_count / instance_count are train-split counts."""
    train_image_counts, train_instance_counts = _counts(train_annotations)
    return [
        {
            "id": c.id,
            "name": c.name,
            "synonyms": [c.name],
            "def": f"a {c.name} shape",
            "frequency": c.frequency,
            "image_count": train_image_counts.get(c.id, 0),
            "instance_count": train_instance_counts.get(c.id, 0),
            "colour": c.colour,
            "shape": c.shape,
        }
        for c in categories
    ]


def _split_stats(images: list[dict], annotations: list[dict], buckets: dict[str, list[int]]) -> dict[str, Any]:
    """Images, annotations, instances per frequency bucket and categories present of one split."""
    _image_counts, instance_counts = _counts(annotations)
    return {
        "images": len(images),
        "annotations": len(annotations),
        "instances_per_bucket": {
            b: sum(instance_counts.get(i, 0) for i in ids) for b, ids in buckets.items()
        },
        "categories_present": len(instance_counts),
    }


def _split_info(
    split: str, seed: int, image_size: int, world: WorldConfig, weights: tuple[float, float, float],
    buckets: dict[str, list[int]], stats: dict[str, Any],
) -> dict[str, Any]:
    """The ``info`` block of one split's JSON: how it was made and its statistics."""
    return {
        "description": "ShapesWorld: synthetic open-vocabulary detection ('<colour> <shape>' classes)",
        "version": "1.0",
        "generator": "regionspot.shapesworld.generate",
        "split": split,
        "seed": seed,
        "image_size": image_size,
        "world": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(world).items()},
        "frequency_split": {
            "rule": (
                "categories are assigned to buckets f/c/r by a seeded permutation; a category's "
                "sampling weight is its bucket's weight; rare (r) categories never appear in train. "
                "image_count/instance_count are train-split counts (LVIS convention)."
            ),
            "bucket_fractions": list(world.bucket_fractions),
            "bucket_weights": list(weights),
            "f": buckets["f"],
            "c": buckets["c"],
            "r": buckets["r"],
        },
        "stats": stats,
    }
