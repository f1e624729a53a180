"""Build a token cache: run the segmenter once over every annotated box of a dataset.

The work is planned deterministically: the dataset's annotated images are split into ``world_size``
contiguous slices, and each rank's slice into shards of ``shard_size`` images. A rerun of the same
command skips finished shards (their index file exists), so a killed run resumes without computing
anything twice. Under ``torchrun`` / ``accelerate launch`` each process reads its rank from the
environment (RANK, WORLD_SIZE, LOCAL_RANK) and writes only its own shards; no communication is needed.
"""

from __future__ import annotations

import bisect
import itertools
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from regionspot.backbones.base import Segmenter, VisionLanguage
from regionspot.cache.config import CacheConfig
from regionspot.cache.inputs import CacheImage, CachePreparer, segmenter_slice
from regionspot.cache.negatives import background_boxes
from regionspot.cache.store import (
    CACHE_FORMAT_VERSION,
    CacheError,
    ShardWriter,
    read_manifest,
    shard_is_finished,
)
from regionspot.data.feeder import InputBatch, default_workers, feed, stack_inputs
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
    "negatives",
)


@dataclass
class CacheStats:
    """What one process computed: images/boxes (labelled; ``negatives``: background boxes), wall time,
    throughput, bytes per box on disk."""

    images: int
    boxes: int
    seconds: float
    bytes_written: int
    skipped_shards: int
    written_shards: int
    negatives: int = 0

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
            if key in ("preprocess", "negatives") and key not in old:
                continue  # an older cache, which did not record it (and had no negatives)
            if old.get(key) != manifest.get(key) and not _same_backbones(key, old, manifest, out):
                raise CacheError(
                    f"Cache {out} was built with {key}={old.get(key)!r}, this run has {manifest.get(key)!r}; "
                    "rerun with the same settings or choose a new `out` folder."
                )
        return
    write_json_atomic(out / "manifest.json", manifest)


def extract_cache(
    dataset: Any,
    segmenter: Segmenter,
    config: CacheConfig,
    *,
    vision_language: VisionLanguage | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    show_progress: bool = True,
) -> CacheStats:
    """Cache segmenter tokens (fp16) of every annotated box of ``dataset`` into ``config.out``.

    dataset: a ``CocoDetectionDataset`` (``dataset[i]`` records with boxes (N, 4) XYXY original px, contiguous labels,
        width, height; ``category_names``; ``load_image(i)``).
    config: the options read here are ``out``, ``flip`` (also cache the horizontally mirrored image: image and
        boxes mirrored before the segmenter), ``shard_size``, ``chunk_size``, ``batch_size`` (images per
        encoder call, a mirrored copy counting as one), ``workers``, ``limit`` (only the first annotated images)
        and ``negatives_per_image`` / ``negative_max_iou`` (background boxes of each image, drawn once from its
        id by ``regionspot.cache.negatives.background_boxes`` and mirrored with it, stored with label -1).
    vision_language: when given, its (T, C) feature map of each cached image variant is stored too (fp16,
        ≈0.5 MB per image for CLIP-L/14 at 224: for small datasets only).
    rank / world_size: this process's share (None: from the launcher's environment).
    Returns this process's :class:`CacheStats`.
    """
    config.validate()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    env_rank, env_world, _ = distributed_rank()
    rank = env_rank if rank is None else rank
    world_size = env_world if world_size is None else world_size
    positions = [i for i in range(len(dataset)) if len(dataset[i].boxes) > 0]
    if config.limit is not None:
        positions = positions[: config.limit]
    if not positions:
        raise CacheError("The dataset has no annotated boxes; check the annotation file.")
    plan = plan_shards(len(positions), world_size, config.shard_size)
    _check_or_write_manifest(out, _manifest(dataset, segmenter, vision_language, config, out, len(positions),
                                            world_size, plan))

    mine = [s for s in plan if s["rank"] == rank]
    todo = [s for s in mine if not shard_is_finished(out, s["name"])]
    stats = CacheStats(0, 0, 0.0, 0, len(mine) - len(todo), 0)
    bar = progress_bar(total=sum(s["stop"] - s["start"] for s in todo), desc=f"cache rank {rank}", unit="img",
                       disable=not show_progress)
    t0 = time.perf_counter()
    with torch.inference_mode():
        _extract_shards(dataset, segmenter, vision_language, config, out, positions, todo, stats, bar, t0)
    bar.close()
    stats.seconds = time.perf_counter() - t0
    return stats


def _manifest(dataset: Any, segmenter: Segmenter, vision_language: VisionLanguage | None, config: CacheConfig,
              out: Path, num_images: int, world_size: int, plan: list[dict[str, Any]]) -> dict[str, Any]:
    """What the cache records about how it was made (the keys of ``_MUST_MATCH`` must match on reuse)."""
    vl_info = None
    if vision_language is not None:
        vl_info = {"id": portable_backbone(vision_language.model_id, "vision_language", out),
                   "image_size": int(vision_language.image_size)}
    eps = segmenter.decoder_layer_norm_eps
    preprocess = {
        "sam_decoder_eps": float(eps) if eps is not None else None,
        "clip_resize": vision_language.resize if vision_language is not None else None,
        "clip_antialias": bool(vision_language.antialias) if vision_language is not None else None,
    }
    return {
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
        "flip": bool(config.flip),
        "dataset_name": str(getattr(dataset, "name", None) or "dataset"),
        "category_names": list(dataset.category_names),
        "raw_category_names": list(getattr(dataset, "raw_category_names", dataset.category_names)),
        "preprocess": preprocess,
        "category_ids": [int(c) for c in getattr(dataset, "category_ids", [])],
        "image_root": portable_folder(getattr(dataset, "image_root", None), out),
        "num_images": num_images,
        "world_size": world_size,
        "shard_size": config.shard_size,
        "shards": plan,
        "negatives": (None if not config.negatives_per_image else
                      {"per_image": config.negatives_per_image, "max_iou": config.negative_max_iou, "source": "random"}),
    }


class _TodoImages(Sequence):
    """The images of the shards ``todo`` in order, as :class:`CacheImage` s made when asked for (a large
    dataset's records are not all held at once)."""

    def __init__(self, dataset: Any, positions: list[int], todo: list[dict[str, Any]]) -> None:
        self.dataset, self.positions, self.todo = dataset, positions, todo
        self.ends = list(itertools.accumulate(s["stop"] - s["start"] for s in todo))

    def __len__(self) -> int:
        return self.ends[-1] if self.ends else 0

    def __getitem__(self, k: Any) -> Any:
        if isinstance(k, slice):
            return [self[j] for j in range(*k.indices(len(self)))]
        which = bisect.bisect_right(self.ends, k)
        shard = self.todo[which]
        pos = shard["stop"] - (self.ends[which] - k)
        index = self.positions[pos]
        return CacheImage(index=index, pos=pos, shard=shard["name"], record=_record(self.dataset, index))


def _extract_shards(dataset: Any, segmenter: Segmenter, vision_language: VisionLanguage | None, config: CacheConfig,
                    out: Path, positions: list[int], todo: list[dict[str, Any]], stats: CacheStats, bar: Any,
                    t0: float) -> None:
    """Fill the shards ``todo``: the image feeder prepares the images ahead (``config.workers`` processes, or
    threads), the encoders run on ``config.batch_size`` variants at a time, the prompt decoder per variant;
    each shard is finalised when its last image is written."""
    variants = (False, True) if config.flip else (False,)
    device = torch.device(segmenter.device)
    workers = default_workers(device) if config.workers is None else config.workers
    preparer = CachePreparer(dataset, segmenter.input_preprocessor(),
                             None if vision_language is None else vision_language.input_preprocessor(), config.flip)
    per_batch = max(1, config.batch_size // len(variants))  # dataset images per feeder batch
    batches = feed(_TodoImages(dataset, positions, todo), preparer, per_batch, collate=stack_inputs, workers=workers,
                   pin=device.type == "cuda")
    writer = None
    try:
        for batch in batches:
            states, maps = _encode(segmenter, vision_language, batch, config.batch_size)
            for k, item in enumerate(batch.items):
                if item.error is not None:
                    raise item.error
                image, rec = item.image, item.image.record
                if writer is None or writer.name != image.shard:
                    if writer is not None:
                        _finish(writer, stats)
                    writer = ShardWriter(out, image.shard, int(segmenter.token_dim))
                first = batch.good.index(k) * len(variants)
                background = background_boxes(rec["boxes"], rec["width"], rec["height"], config.negatives_per_image,
                                              config.negative_max_iou, seed=rec["image_id"])
                for offset, flipped in enumerate(variants):
                    boxes = hflip_boxes(rec["boxes"], rec["width"]) if flipped else rec["boxes"]
                    negatives = hflip_boxes(background, rec["width"]) if flipped else background
                    result = segmenter.decode_prompts(states[first + offset], boxes=boxes, masks="none",
                                                      chunk_size=config.chunk_size)
                    # Background boxes in their own calls: the labelled tokens are those of a cache without them.
                    background_tokens = None if not len(negatives) else segmenter.decode_prompts(
                        states[first + offset], boxes=negatives, masks="none", chunk_size=config.chunk_size).tokens
                    writer.add(image_index=image.pos, image_id=rec["image_id"], file_name=rec["file_name"],
                               width=rec["width"], height=rec["height"], flip=flipped, tokens=result.tokens,
                               boxes=boxes, labels=rec["labels"],
                               feature_map=None if maps is None else maps[first + offset],
                               negative_tokens=background_tokens,
                               negative_boxes=negatives if len(negatives) else None)
                    stats.boxes += len(boxes)
                    stats.negatives += len(negatives)
                stats.images += 1
                bar.update(1)
                bar.set_postfix(boxes_per_s=f"{stats.boxes / max(time.perf_counter() - t0, 1e-9):.1f}")
        if writer is not None:
            _finish(writer, stats)
    finally:
        batches.close()


def _encode(segmenter: Segmenter, vision_language: VisionLanguage | None, batch: InputBatch,
            batch_size: int) -> tuple[list[Any], torch.Tensor | None]:
    """The segmenter's image states and the (T, C) feature maps (or None) of the batch's prepared variants,
    ``batch_size`` variants per encoder call."""
    if batch.sam is None:
        return [], None
    states, maps = [], []
    for start in range(0, len(batch.sam), batch_size):
        states.extend(segmenter.encode_batch(segmenter_slice(batch.sam, start, start + batch_size)))
        if batch.clip is not None and vision_language is not None:
            maps.append(vision_language.feature_map(batch.clip[start : start + batch_size]))
    return states, torch.cat(maps) if maps else None


def _finish(writer: ShardWriter, stats: CacheStats) -> None:
    meta = writer.finalize()
    stats.bytes_written += meta["nbytes"]
    stats.written_shards += 1


def cache_is_complete(out_dir: str | Path) -> bool:
    """True when every planned shard of the cache has been finalised."""
    manifest = read_manifest(out_dir)
    return all(shard_is_finished(out_dir, s["name"]) for s in manifest["shards"])
