"""What the token cache's image feeder (``regionspot.data.feeder``) prepares for each annotated image:
the image decoded and checked against its annotation, mirrored when the cache holds flips, and each
variant's encoder inputs (the segmenter's ``input_preprocessor()``, the vision-language model's). A batch
(``data.feeder.stack_inputs``) stacks the variants of its images, image by image (original first, then
mirrored).

A decoding or size error does not stop the feeder: the item carries it, and extraction raises it when it
reaches that image, so everything before it is written as it would have been one image at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image, ImageOps

from regionspot.backbones.base import SegmenterBatch
from regionspot.errors import CacheError, RegionSpotError

__all__ = ["CacheImage", "CacheInput", "CachePreparer", "segmenter_slice"]


@dataclass(frozen=True)
class CacheImage:
    """One annotated image to prepare: ``index`` into the dataset, ``pos`` in the cache's order, ``shard``
    (the name of the shard it is written to) and ``record``: what the cache stores of its annotation
    (boxes (N, 4) XYXY px, labels (N,), image_id, file_name, width, height)."""

    index: int
    pos: int
    shard: str
    record: dict[str, Any]


@dataclass
class CacheInput:
    """A prepared image: sam — the segmenter's inputs of its V variants (V = 2 with flips: original,
    mirrored); clip — (V, 3, S, S) float32 vision-language pixels or None; error — why it could not be
    prepared (raised by the consumer), else None."""

    image: CacheImage
    sam: SegmenterBatch | None = None
    clip: torch.Tensor | None = None
    error: RegionSpotError | None = None


@dataclass(frozen=True)
class CachePreparer:
    """Picklable CPU work for one image: ``dataset.load_image``, the size check, the mirror, the encoders'
    preprocessing. sam: ``Segmenter.input_preprocessor()``; clip: ``VisionLanguage.input_preprocessor()``
    or None (no feature maps cached); flip: also the mirrored variant."""

    dataset: Any
    sam: Callable[[Image.Image], SegmenterBatch]
    clip: Callable[[Sequence[Image.Image]], torch.Tensor] | None
    flip: bool

    def __call__(self, image: CacheImage) -> CacheInput:
        try:
            decoded = self.dataset.load_image(image.index)
            width, height = image.record["width"], image.record["height"]
            if decoded.size != (width, height):
                raise CacheError(
                    f"Image {image.record['file_name']} is {decoded.size[0]}x{decoded.size[1]} but its annotation "
                    f"says {width}x{height}; fix the annotation file."
                )
        except RegionSpotError as error:
            return CacheInput(image=image, error=error)
        variants = [decoded, ImageOps.mirror(decoded)] if self.flip else [decoded]
        return CacheInput(
            image=image, sam=SegmenterBatch.cat([self.sam(v) for v in variants]),
            clip=None if self.clip is None else torch.cat([self.clip([v]) for v in variants]),
        )


def segmenter_slice(batch: SegmenterBatch, start: int, stop: int) -> SegmenterBatch:
    """Images ``start:stop`` of a prepared segmenter batch."""
    return SegmenterBatch(pixels=batch.pixels[start:stop], original_sizes=batch.original_sizes[start:stop],
                          reshaped_sizes=batch.reshaped_sizes[start:stop])
