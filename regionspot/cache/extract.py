"""Build a token cache: run the segmenter once over every annotated box of a dataset.

The work is planned deterministically: the dataset's annotated images are split into ``world_size``
contiguous slices, and each rank's slice into shards of ``shard_size`` images. A rerun of the same
command skips finished shards (their index file exists), so a killed run resumes without computing
anything twice. Under ``torchrun`` / ``accelerate launch`` each process reads its rank from the
environment (RANK, WORLD_SIZE, LOCAL_RANK) and writes only its own shards; no communication is needed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from regionspot.backbones.base import Segmenter, VisionLanguage
from regionspot.cache.store import (
    CACHE_FORMAT_VERSION,
    CacheError,
    ShardWriter,
    read_manifest,
    shard_is_finished,
)
from regionspot.data.transforms import hflip_boxes
from regionspot.registry import artifact_backbone, portable_backbone, same_backbone
from regionspot.utils.io import write_json_atomic
from regionspot.utils.progress import progress_bar
from regionspot.version import __version__

# Manifest fields that must match when a cache directory is reused (resume or another rank).
_MUST_MATCH = (
    "format_version",
    "segmenter",
    "segmenter_fingerprint",
    "prompt_type",
    "token_dim",
    "vision_language",
    "flip",
    "dataset_name",
    "num_images",
    "world_size",
    "shard_size",
    "preprocess",
)


@dataclass
class CacheStats:
    """What one process computed: images/boxes, wall time, throughput, bytes per box on disk."""

    images: int
    boxes: int
    seconds: float
    bytes_written: int
    skipped_shards: int
    written_shards: int

    @property
    def boxes_per_second(self) -> float:
        return self.boxes / self.seconds if self.seconds > 0 else 0.0

    @property
    def bytes_per_box(self) -> float:
        return self.bytes_written / self.boxes if self.boxes else 0.0


def distributed_rank() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from the launcher's environment; (0, 1, 0) when run directly."""
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    local = int(os.environ.get("LOCAL_RANK", rank))
    return rank, world, local


def _record(dataset: Any, index: int) -> dict[str, Any]:
    """The fields of one dataset record that the cache needs; degenerate boxes dropped."""
    rec = dataset[index]
    boxes = torch.as_tensor(np.asarray(rec.boxes, dtype=np.float32)).reshape(-1, 4)
    labels = torch.as_tensor(np.asarray(rec.labels, dtype=np.int64)).reshape(-1)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    path = rec.path
    root = getattr(dataset, "image_root", None)
    file_name = str(Path(path).relative_to(root)) if root and Path(path).is_relative_to(root) else str(path)
    return {
        "boxes": boxes[keep],
        "labels": labels[keep],
        "image_id": int(getattr(rec, "image_id", index)),
        "file_name": file_name,
        "width": int(rec.width),
        "height": int(rec.height),
    }


def plan_shards(num_images: int, world_size: int, shard_size: int) -> list[dict[str, Any]]:
    """Deterministic plan: rank r gets a contiguous slice, cut into shards of ``shard_size`` images.

    Returns a list of {"name", "rank", "start", "stop"} over positions 0..num_images-1.
    """
    shards = []
    bounds = np.linspace(0, num_images, world_size + 1).round().astype(int)
    for rank in range(world_size):
        lo, hi = int(bounds[rank]), int(bounds[rank + 1])
        for k, start in enumerate(range(lo, hi, shard_size)):
            name = f"w{world_size:03d}-r{rank:03d}-{k:05d}"
            shards.append({"name": name, "rank": rank, "start": start, "stop": min(start + shard_size, hi)})
    return shards


def portable_folder(folder: str | Path | None, out: Path) -> str:
    """``folder`` as the manifest in ``out`` records it: relative to ``out`` (absolute only across drives); "" for none."""
    if not folder:
        return ""
    try:
        return Path(os.path.relpath(Path(folder).resolve(), out.resolve())).as_posix()
    except ValueError:
        return str(Path(folder).resolve())


def _same_backbones(key: str, old: dict[str, Any], new: dict[str, Any], out: Path) -> bool:
    """Whether two manifests' ``key`` ("segmenter" or "vision_language") name the same backbone, spelled otherwise:
    the same weights fingerprint (a moved cache, a folder renamed), or the same folder or name (an older
    manifest's absolute path)."""
    if key not in ("segmenter", "vision_language"):
        return False
    a, b = old.get(key), new.get(key)
    if key == "vision_language":
        if not isinstance(a, dict) or not isinstance(b, dict) or {**a, "id": ""} != {**b, "id": ""}:
            return False
        a, b = a.get("id", ""), b.get("id", "")
    prints = old.get(f"{key}_fingerprint"), new.get(f"{key}_fingerprint")
    if prints[0] and prints[0] == prints[1]:
        return True
    return same_backbone(artifact_backbone(str(a), out), artifact_backbone(str(b), out), key)


def _check_or_write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    if (out / "manifest.json").is_file():
        old = read_manifest(out)
        for key in _MUST_MATCH:
            if key == "preprocess" and key not in old:
                continue  # an older cache, which did not record it
            if old.get(key) != manifest.get(key) and not _same_backbones(key, old, manifest, out):
                raise CacheError(
                    f"Cache {out} was built with {key}={old.get(key)!r}, this run has {manifest.get(key)!r}; "
                    "rerun with the same settings or choose a new --out."
                )
        return
    write_json_atomic(out / "manifest.json", manifest)


def extract_cache(
    dataset: Any,
    segmenter: Segmenter,
    out_dir: str | Path,
    *,
    vision_language: VisionLanguage | None = None,
    flip: bool = True,
    shard_size: int = 64,
    chunk_size: int = 16,
    rank: int | None = None,
    world_size: int | None = None,
    limit: int | None = None,
    show_progress: bool = True,
) -> CacheStats:
    """Cache segmenter tokens (fp16) of every annotated box of ``dataset`` into ``out_dir``.

    dataset: a ``CocoDetectionDataset`` (``dataset[i]`` records with boxes (N, 4) XYXY original px, contiguous labels,
        width, height; ``category_names``; ``load_image(i)``).
    vision_language: when given, its (T, C) feature map of each cached image variant is stored too (fp16,
        ≈0.5 MB per image for CLIP-L/14 at 224: for small datasets only).
    flip: also cache the horizontally mirrored image (image and boxes mirrored before the segmenter).
    limit: cache only the first ``limit`` annotated images (smoke runs).
    Returns this process's :class:`CacheStats`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    env_rank, env_world, _ = distributed_rank()
    rank = env_rank if rank is None else rank
    world_size = env_world if world_size is None else world_size
    positions = [i for i in range(len(dataset)) if len(dataset[i].boxes) > 0]
    if limit is not None:
        positions = positions[:limit]
    if not positions:
        raise CacheError("The dataset has no annotated boxes; check the annotation file.")
    vl_info = None
    if vision_language is not None:
        vl_info = {"id": portable_backbone(vision_language.model_id, "vision_language", out), "image_size": int(vision_language.image_size)}
    eps = segmenter.decoder_layer_norm_eps
    preprocess = {
        "sam_decoder_eps": float(eps) if eps is not None else None,
        "clip_resize": vision_language.resize if vision_language is not None else None,
        "clip_antialias": bool(vision_language.antialias) if vision_language is not None else None,
    }
    plan = plan_shards(len(positions), world_size, shard_size)
    manifest = {
        "format_version": CACHE_FORMAT_VERSION,
        "code_version": __version__,
        "segmenter": portable_backbone(segmenter.model_id, "segmenter", out),
        "segmenter_fingerprint": segmenter.weights_fingerprint,
        "prompt_type": "box",
        "token_dim": int(segmenter.token_dim),
        "token_dtype": "float16",
        "vision_language": vl_info,
        "vision_language_fingerprint": vision_language.weights_fingerprint if vision_language else None,
        "feature_dtype": "float16" if vl_info else None,
        "flip": bool(flip),
        "dataset_name": str(getattr(dataset, "name", None) or "dataset"),
        "category_names": list(dataset.category_names),
        "raw_category_names": list(getattr(dataset, "raw_category_names", dataset.category_names)),
        "preprocess": preprocess,
        "category_ids": [int(c) for c in getattr(dataset, "category_ids", [])],
        "image_root": portable_folder(getattr(dataset, "image_root", None), out),
        "num_images": len(positions),
        "world_size": world_size,
        "shard_size": shard_size,
        "shards": plan,
    }
    _check_or_write_manifest(out, manifest)

    mine = [s for s in plan if s["rank"] == rank]
    todo = [s for s in mine if not shard_is_finished(out, s["name"])]
    total_images = sum(s["stop"] - s["start"] for s in todo)
    stats = CacheStats(0, 0, 0.0, 0, len(mine) - len(todo), 0)
    bar = progress_bar(total=total_images, desc=f"cache rank {rank}", unit="img", disable=not show_progress)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for shard in todo:
            writer = ShardWriter(out, shard["name"], int(segmenter.token_dim))
            for pos in range(shard["start"], shard["stop"]):
                index = positions[pos]
                rec = _record(dataset, index)
                image = dataset.load_image(index)
                if image.size != (rec["width"], rec["height"]):
                    raise CacheError(
                        f"Image {rec['file_name']} is {image.size[0]}x{image.size[1]} but its annotation says "
                        f"{rec['width']}x{rec['height']}; fix the annotation file."
                    )
                for flipped in (False, True) if flip else (False,):
                    img: Image.Image = ImageOps.mirror(image) if flipped else image
                    boxes = hflip_boxes(rec["boxes"], rec["width"]) if flipped else rec["boxes"]
                    state = segmenter.encode_image(img)
                    result = segmenter.decode_prompts(state, boxes=boxes, masks="none", chunk_size=chunk_size)
                    fmap = vision_language.feature_map([img])[0] if vision_language is not None else None
                    writer.add(
                        image_index=pos,
                        image_id=rec["image_id"],
                        file_name=rec["file_name"],
                        width=rec["width"],
                        height=rec["height"],
                        flip=flipped,
                        tokens=result.tokens,
                        boxes=boxes,
                        labels=rec["labels"],
                        feature_map=fmap,
                    )
                    stats.boxes += len(boxes)
                stats.images += 1
                bar.update(1)
                elapsed = time.perf_counter() - t0
                bar.set_postfix(boxes_per_s=f"{stats.boxes / max(elapsed, 1e-9):.1f}")
            meta = writer.finalize()
            stats.bytes_written += meta["nbytes"]
            stats.written_shards += 1
    bar.close()
    stats.seconds = time.perf_counter() - t0
    return stats


def cache_is_complete(out_dir: str | Path) -> bool:
    """True when every planned shard of the cache has been finalised."""
    manifest = read_manifest(out_dir)
    return all(shard_is_finished(out_dir, s["name"]) for s in manifest["shards"])
