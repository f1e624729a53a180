"""Sharded, memory-mapped token cache: a manifest, a few large shards, and a reader that verifies them.

Layout of a cache directory::

    DIR/manifest.json                 what produced the cache (backbones by registered name, hub id or a
                                      folder relative to DIR, and their weights fingerprints; prompt type,
                                      code version, dataset vocabulary, the image folder relative to DIR)
                                      and the shard plan (which images each shard holds); no absolute path,
                                      so the cache can be moved with what it refers to
    DIR/shards/<name>.bin             one binary file per shard: sections laid end to end, 64-byte aligned
    DIR/shards/<name>.json            the shard's index: sections (offset, dtype, shape), byte size, sha256,
                                      file names; written last, so its presence means "shard finished"

Sections of a shard (M regions over n cached image variants)::

    tokens   (M, token_dim) float16   position-aware segmenter token of each box
    boxes    (M, 4) float32           XYXY, pixels of the (possibly flipped) original image
    labels   (M,) int64               contiguous class index into the manifest's ``category_names``; -1 for a
                                      background box (a cache built with negatives: each variant's
                                      background boxes follow its labelled ones)
    images   (n, 8) int64             per variant: IMAGE_COLUMNS below
    clip     (n, T, C) float16        optional vision-language feature map of the same (flipped) image

Both the original and the horizontally flipped image are cached as separate "variants" when the cache
is built with ``flip=True``: the flip is applied to the image and the boxes *before* the segmenter, so
a training step that flips the vision-language image reads tokens computed for exactly that image.

Writes are atomic (temporary name, fsync, rename); a shard's sha256 and size are recorded when it is
finalised, and :class:`TokenCache` checks them on open, so a truncated or corrupt shard raises
:class:`CacheError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from regionspot.errors import CacheError
from regionspot.utils.io import atomic_path, write_json_atomic

CACHE_FORMAT_VERSION = 1
IMAGE_COLUMNS = ("image_index", "image_id", "start", "count", "width", "height", "flip", "clip_row")
_ALIGN = 64


@dataclass
class CachedRegions:
    """One cached image variant.

    tokens: (N, token_dim) float16, segmenter tokens of the N annotated boxes.
    boxes: (N, 4) float32, XYXY in pixels of the image as it was given to the segmenter (flipped if ``flip``).
    labels: (N,) int64, contiguous class indices into the cache's ``category_names``.
    feature_map: (T, C) float16 vision-language map of the same image, or None when not cached.
    negative_tokens / negative_boxes: (K, token_dim) float16 / (K, 4) float32 tokens and XYXY pixel boxes of
        background boxes of the same image (no labelled object under them), or None when the cache has none.
    """

    tokens: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor
    image_index: int
    image_id: int
    file_name: str
    width: int
    height: int
    flip: bool
    feature_map: torch.Tensor | None = None
    negative_tokens: torch.Tensor | None = None
    negative_boxes: torch.Tensor | None = None


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class ShardWriter:
    """Accumulates image variants in memory and writes one shard file atomically on :meth:`finalize`.

    A shard is bounded by the number of images the plan assigns to it, so memory stays bounded.
    """

    def __init__(self, root: str | Path, name: str, token_dim: int) -> None:
        self.dir = Path(root) / "shards"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.token_dim = token_dim
        self._tokens: list[np.ndarray] = []
        self._boxes: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []
        self._images: list[list[int]] = []
        self._clip: list[np.ndarray] = []
        self._file_names: list[str] = []
        self._num_regions = 0
        self._num_negatives = 0

    def add(
        self,
        *,
        image_index: int,
        image_id: int,
        file_name: str,
        width: int,
        height: int,
        flip: bool,
        tokens: torch.Tensor | np.ndarray,
        boxes: torch.Tensor | np.ndarray,
        labels: torch.Tensor | np.ndarray,
        feature_map: torch.Tensor | np.ndarray | None = None,
        negative_tokens: torch.Tensor | np.ndarray | None = None,
        negative_boxes: torch.Tensor | np.ndarray | None = None,
    ) -> None:
        """Add one image variant. tokens (N, token_dim), boxes (N, 4) XYXY px, labels (N,) >= 0, feature_map (T, C);
        negative_tokens (K, token_dim) / negative_boxes (K, 4): its background boxes (stored after the labelled
        ones with label -1)."""
        tokens = np.asarray(torch.as_tensor(tokens).detach().float().cpu(), dtype=np.float16)
        boxes = np.asarray(torch.as_tensor(boxes).detach().cpu(), dtype=np.float32).reshape(-1, 4)
        labels = np.asarray(torch.as_tensor(labels).detach().cpu(), dtype=np.int64).reshape(-1)
        n = tokens.shape[0]
        if tokens.shape != (n, self.token_dim) or boxes.shape[0] != n or labels.shape[0] != n:
            raise ValueError(
                f"tokens {tokens.shape}, boxes {boxes.shape}, labels {labels.shape} disagree (token_dim {self.token_dim})."
            )
        if (labels < 0).any():
            raise ValueError("labels must be class indices >= 0; pass background boxes as negative_tokens/negative_boxes.")
        k = 0
        if negative_tokens is not None:
            neg_tokens = np.asarray(torch.as_tensor(negative_tokens).detach().float().cpu(), dtype=np.float16)
            neg_boxes = np.asarray(torch.as_tensor(negative_boxes).detach().cpu(), dtype=np.float32).reshape(-1, 4)
            k = neg_tokens.shape[0]
            if neg_tokens.shape != (k, self.token_dim) or neg_boxes.shape[0] != k:
                raise ValueError(f"negative tokens {neg_tokens.shape} and boxes {neg_boxes.shape} disagree.")
            tokens, boxes = np.concatenate([tokens, neg_tokens]), np.concatenate([boxes, neg_boxes])
            labels = np.concatenate([labels, np.full(k, -1, dtype=np.int64)])
            n += k
        clip_row = -1
        if feature_map is not None:
            fm = np.asarray(torch.as_tensor(feature_map).detach().float().cpu(), dtype=np.float16)
            if self._clip and fm.shape != self._clip[0].shape:
                raise ValueError(f"feature map shape {fm.shape} differs from {self._clip[0].shape} in the same shard.")
            clip_row = len(self._clip)
            self._clip.append(fm)
        self._images.append(
            [image_index, image_id, self._num_regions, n, width, height, int(flip), clip_row]
        )
        self._file_names.append(file_name)
        self._tokens.append(tokens)
        self._boxes.append(boxes)
        self._labels.append(labels)
        self._num_regions += n
        self._num_negatives += k

    def finalize(self) -> dict[str, Any]:
        """Write ``<name>.bin`` then ``<name>.json`` (both atomically); return the shard index."""
        arrays: dict[str, np.ndarray] = {
            "tokens": np.concatenate(self._tokens) if self._tokens else np.zeros((0, self.token_dim), np.float16),
            "boxes": np.concatenate(self._boxes) if self._boxes else np.zeros((0, 4), np.float32),
            "labels": np.concatenate(self._labels) if self._labels else np.zeros((0,), np.int64),
            "images": np.asarray(self._images, dtype=np.int64).reshape(-1, len(IMAGE_COLUMNS)),
        }
        if self._clip:
            arrays["clip"] = np.stack(self._clip)
        sections: dict[str, dict[str, Any]] = {}
        bin_path = self.dir / f"{self.name}.bin"
        digest = hashlib.sha256()
        offset = 0
        with atomic_path(bin_path) as tmp, open(tmp, "wb") as f:
            for key, arr in arrays.items():
                pad = (-offset) % _ALIGN
                if pad:
                    f.write(b"\0" * pad)
                    digest.update(b"\0" * pad)
                    offset += pad
                data = np.ascontiguousarray(arr).tobytes()
                f.write(data)
                digest.update(data)
                sections[key] = {"offset": offset, "dtype": str(arr.dtype), "shape": list(arr.shape)}
                offset += len(data)
        meta = {
            "name": self.name,
            "file": bin_path.name,
            "nbytes": offset,
            "sha256": digest.hexdigest(),
            "num_regions": int(self._num_regions),
            "num_negatives": int(self._num_negatives),
            "num_variants": len(self._images),
            "sections": sections,
            "file_names": self._file_names,
        }
        write_json_atomic(self.dir / f"{self.name}.json", meta)
        return meta


def shard_is_finished(root: str | Path, name: str) -> bool:
    """True when the shard's index was written (it is written only after its binary is complete)."""
    return (Path(root) / "shards" / f"{name}.json").is_file()


def read_manifest(root: str | Path) -> dict[str, Any]:
    path = Path(root) / "manifest.json"
    if not path.is_file():
        raise CacheError(f"No token cache at {root} (missing {path}); build one with `regionspot cache`.")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CacheError(f"Corrupt cache manifest {path} ({e}); delete the cache and rebuild it.") from e


def cache_preprocess(manifest: dict[str, Any]) -> dict[str, Any]:
    """The preprocessing a cache was built with: {"sam_decoder_eps", "clip_resize", "clip_antialias"}.

    Older caches did not record it: they used the "pil" CLIP resize and the segmenter config's eps,
    whose value was not written down (None).
    """
    recorded = manifest.get("preprocess")
    if recorded is not None:
        return dict(recorded)
    has_maps = manifest.get("vision_language") is not None
    return {"sam_decoder_eps": None, "clip_resize": "pil" if has_maps else None, "clip_antialias": False if has_maps else None}


class _Shard:
    """A verified, memory-mapped shard."""

    def __init__(self, root: Path, name: str, verify: str) -> None:
        meta_path = root / "shards" / f"{name}.json"
        if not meta_path.is_file():
            raise CacheError(
                f"Token cache {root} is incomplete: shard {meta_path.name} is missing; rerun the same "
                "`regionspot cache` command to finish it."
            )
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as e:
            raise CacheError(f"Corrupt shard index {meta_path} ({e}); delete it and rerun `regionspot cache`.") from e
        self.path = root / "shards" / meta["file"]
        if not self.path.is_file():
            raise CacheError(f"Shard file {self.path} is missing; delete {meta_path} and rerun `regionspot cache`.")
        size = self.path.stat().st_size
        if size != meta["nbytes"]:
            raise CacheError(
                f"Shard {self.path} is truncated or corrupt: {size} bytes, expected {meta['nbytes']}; delete it and "
                f"{meta_path.name}, then rerun `regionspot cache`."
            )
        if verify == "full" and sha256_file(self.path) != meta["sha256"]:
            raise CacheError(
                f"Shard {self.path} is corrupt (sha256 mismatch); delete it and {meta_path.name}, then rerun "
                "`regionspot cache`."
            )
        self.meta = meta
        self.file_names: list[str] = meta["file_names"]
        self.arrays: dict[str, np.ndarray] = {}
        if meta["nbytes"] == 0:
            return
        mm = np.memmap(self.path, dtype=np.uint8, mode="r")
        for key, sec in meta["sections"].items():
            dtype = np.dtype(sec["dtype"])
            count = int(np.prod(sec["shape"]))
            view = mm[sec["offset"] : sec["offset"] + count * dtype.itemsize]
            self.arrays[key] = view.view(dtype).reshape(sec["shape"])


def _image_root(root: Path, recorded: str | None) -> str | None:
    """The image folder a manifest records relative to the cache (older caches: as given, absolute or not)."""
    if not recorded:
        return recorded
    beside = root / recorded
    return str(beside.resolve()) if not Path(recorded).is_absolute() and beside.is_dir() else recorded


class TokenCache:
    """Reads a cache built by :func:`regionspot.cache.extract.extract_cache`.

    verify: "full" checks size and sha256 of every shard on open (a few seconds per GB); "size" only sizes.
    Images are addressed by ``image_index`` (position among the cached images, 0..num_images-1) and a
    flip flag; :meth:`get` returns torch tensors copied out of the memory map.
    """

    def __init__(self, root: str | Path, verify: Literal["full", "size"] = "full") -> None:
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        if self.manifest.get("format_version") != CACHE_FORMAT_VERSION:
            raise CacheError(
                f"Token cache {self.root} has format {self.manifest.get('format_version')}, this regionspot reads "
                f"{CACHE_FORMAT_VERSION}; rebuild it with `regionspot cache`."
            )
        self.category_names: list[str] = list(self.manifest["category_names"])
        # Names as the annotation file spells them (older caches kept only the cleaned ones).
        raw = self.manifest.get("raw_category_names")
        self.raw_category_names: list[str] | None = list(raw) if raw is not None else None
        self.preprocess: dict[str, Any] = cache_preprocess(self.manifest)
        self.dataset_name: str = self.manifest["dataset_name"]
        self.image_root: str | None = _image_root(self.root, self.manifest.get("image_root"))
        self._shards = [_Shard(self.root, s["name"], verify) for s in self.manifest["shards"]]
        # (image position, flip) -> (shard, row in the shard's images table)
        self._where: dict[tuple[int, bool], tuple[int, int]] = {}
        for si, shard in enumerate(self._shards):
            table = shard.arrays.get("images")
            if table is None:
                continue
            for row, rec in enumerate(table):
                self._where[(int(rec[0]), bool(rec[6]))] = (si, row)
        self.image_indices = sorted({k[0] for k in self._where})
        self._position = {idx: pos for pos, idx in enumerate(self.image_indices)}

    @property
    def num_images(self) -> int:
        return len(self.image_indices)

    def __len__(self) -> int:
        return self.num_images

    @property
    def has_flip(self) -> bool:
        return bool(self.manifest.get("flip", False))

    @property
    def has_feature_maps(self) -> bool:
        return self.manifest.get("vision_language") is not None

    @property
    def num_regions(self) -> int:
        """Labelled regions (background boxes not counted)."""
        return sum(s.meta["num_regions"] - s.meta.get("num_negatives", 0) for s in self._shards)

    @property
    def num_negatives(self) -> int:
        """Background boxes (0 for a cache built without negatives)."""
        return sum(s.meta.get("num_negatives", 0) for s in self._shards)

    @property
    def nbytes(self) -> int:
        return sum(s.meta["nbytes"] for s in self._shards)

    def get(self, position: int, flip: bool = False) -> CachedRegions:
        """The cached variant of the ``position``-th image (0..num_images-1), flipped or not."""
        if not 0 <= position < self.num_images:
            raise IndexError(f"image position {position} out of range [0, {self.num_images}).")
        key = (self.image_indices[position], bool(flip))
        if key not in self._where:
            raise CacheError(f"Cache {self.root} has no flipped variants; build it with flip enabled.")
        si, row = self._where[key]
        shard = self._shards[si]
        rec = shard.arrays["images"][row]
        start, count = int(rec[2]), int(rec[3])
        fmap = None
        if int(rec[7]) >= 0:
            fmap = torch.from_numpy(np.array(shard.arrays["clip"][int(rec[7])]))
        tokens = torch.from_numpy(np.array(shard.arrays["tokens"][start : start + count]))
        boxes = torch.from_numpy(np.array(shard.arrays["boxes"][start : start + count]))
        labels = torch.from_numpy(np.array(shard.arrays["labels"][start : start + count]))
        known = int((labels >= 0).sum())  # labelled boxes come first, background boxes (label -1) after
        negatives = (tokens[known:], boxes[known:]) if known < count else (None, None)
        return CachedRegions(
            tokens=tokens[:known],
            boxes=boxes[:known],
            labels=labels[:known],
            image_index=int(rec[0]),
            image_id=int(rec[1]),
            file_name=shard.file_names[row],
            width=int(rec[4]),
            height=int(rec[5]),
            flip=bool(rec[6]),
            feature_map=fmap,
            negative_tokens=negatives[0],
            negative_boxes=negatives[1],
        )
