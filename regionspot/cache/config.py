"""``CacheConfig``: every option of building a token cache, in one place.

The ``cache`` command builds one from its flags (the field names are its parameter names; ``segmenter`` is
``--sam``, ``vision_language`` is ``--clip``); library callers build one with the fields they need.
:func:`regionspot.cache.extract.extract_cache` reads the extraction fields (``out``, ``flip``,
``shard_size``, ``chunk_size``, ``batch_size``, ``workers``, ``limit``, ``negatives_per_image``,
``negative_max_iou``); the others say what the command
loads (the annotation file, the backbones, their device, dtype and preprocessing).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from regionspot.config import PREPROCESS_PRESETS
from regionspot.errors import CacheError

__all__ = ["DTYPES", "CacheConfig"]

DTYPES = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class CacheConfig:
    """The options of one token cache.

    out: the cache folder (shards + index + manifest).
    dataset / images: the COCO-format annotation file and the image root its file names are relative to
        (the command's; a library caller passes a loaded dataset instead).
    segmenter / vision_language: the SAM-family model and, when given, the model whose (T, C) feature maps
        are cached too (fp16): registered names, hub ids or folders. image_size: the vision-language input
        size (None: the model's). dataset_name: recorded with every record (None: the file's stem).
    flip: also cache the horizontally mirrored image (image and boxes mirrored before the segmenter).
    shard_size: images per shard (the unit of resuming). chunk_size: boxes per SAM prompt-decoder call.
    batch_size: images per SAM image-encoder call and per vision-language call, a mirrored copy counting as
        an image (an image and its copy are prepared together, so with ``flip`` a batch holds
        ``2 * (batch_size // 2)``; 1: one image at a time, as the cache was always built). workers: processes that decode and prepare the images ahead of
        the model (0: two threads of this process; None: 0 on a CPU, a few on a GPU).
    device / dtype: where the backbones run ("cpu", "cuda", ...; None: the best available) and their
        weights' dtype (one of ``DTYPES``; None: as stored). limit: only the first ``limit`` annotated images.
    preprocess: the preprocessing preset ("default" or "released"; ``regionspot.config.PREPROCESS_PRESETS``).
    negatives_per_image: also cache the tokens of this many background boxes per image (random boxes whose IoU
        with every labelled box is below ``negative_max_iou``; ``regionspot.cache.negatives``), for training with
        all-zero targets (0: none, the cache as it always was).
    """

    out: Path
    dataset: Path | None = None
    images: Path | None = None
    segmenter: str = "facebook/sam-vit-base"
    vision_language: str | None = None
    image_size: int | None = None
    dataset_name: str | None = None
    flip: bool = True
    shard_size: int = 64
    chunk_size: int = 16
    batch_size: int = 1
    workers: int | None = None
    device: str | None = None
    dtype: str | None = None
    limit: int | None = None
    preprocess: str = "default"
    negatives_per_image: int = 0
    negative_max_iou: float = 0.1

    def validate(self) -> None:
        """Raise CacheError naming the first bad field (in backticks)."""
        if self.dataset is not None and not Path(self.dataset).is_file():
            raise CacheError(f"Annotation file {self.dataset} not found; set `dataset` to a COCO-format JSON file.")
        if self.images is not None and not Path(self.images).is_dir():
            raise CacheError(f"Image folder {self.images} not found; set `images` to the folder the JSON's "
                             "file names are relative to.")
        if self.dtype is not None and self.dtype not in DTYPES:
            raise CacheError(f"`dtype` must be one of {', '.join(DTYPES)}, got {self.dtype!r}.")
        if self.preprocess not in PREPROCESS_PRESETS:
            raise CacheError(f"`preprocess` must be one of {', '.join(sorted(PREPROCESS_PRESETS))}, "
                             f"got {self.preprocess!r}.")
        for name in ("shard_size", "chunk_size", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise CacheError(f"`{name}` must be a whole number >= 1, got {value!r}.")
        if not isinstance(self.negatives_per_image, int) or self.negatives_per_image < 0:
            raise CacheError(f"`negatives_per_image` must be a whole number >= 0, got {self.negatives_per_image!r}.")
        if not 0 < self.negative_max_iou <= 1:
            raise CacheError(f"`negative_max_iou` must be in (0, 1], got {self.negative_max_iou!r}.")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 0):
            raise CacheError(f"`workers` must be a whole number >= 0, got {self.workers!r}.")
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            raise CacheError(f"`limit` must be a whole number >= 1, got {self.limit!r}.")
