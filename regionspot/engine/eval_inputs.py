"""What the evaluation loop's image feeder (``regionspot.data.feeder``) prepares: for each record, decode
the image, resize it to the run's model input and prepare the encoders' pixels (:class:`InputPreparer`,
picklable for worker processes); a batch stacks them (``data.feeder.stack_inputs``, in the worker).

An image that cannot be decoded or prepared becomes a failed item (one-line reason), not an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from regionspot.backbones.base import Segmenter, SegmenterBatch, VisionLanguage
from regionspot.data.coco_json import ImageRecord
from regionspot.data.feeder import InputBatch, feed, stack_inputs
from regionspot.data.images import load_image
from regionspot.errors import ImageError
from regionspot.evaluation.protocol import Protocol

__all__ = ["EvalBatch", "EvalItem", "InputPreparer", "eval_batches"]


@dataclass
class EvalItem:
    """One record after the CPU work: its sizes and encoder inputs, or the reason it failed.

    size: (height, width) of the original image; model_size: (height, width) of the image the backbones
    see (the same, or the protocol's resize). sam: the segmenter's prepared input (a batch of one).
    clip: (1, 3, S, S) float32 CLIP pixels, or None when the run needs no feature map. image: the original
    image, kept only when a crop baseline needs it.
    """

    record: ImageRecord
    error: str | None = None
    size: tuple[int, int] = (0, 0)
    model_size: tuple[int, int] = (0, 0)
    sam: SegmenterBatch | None = None
    clip: torch.Tensor | None = None
    image: Image.Image | None = None


EvalBatch = InputBatch  # the feeder's batch of EvalItems: items, good, sam (G images), clip ((G, 3, S, S) or None)


@dataclass(frozen=True)
class InputPreparer:
    """Picklable CPU work for one record: decode, the protocol's resize, the encoders' preprocessing.

    sam: ``Segmenter.input_preprocessor()``; clip: ``VisionLanguage.input_preprocessor()`` or None (no
    feature map wanted); keep_image: keep the original image (crop baselines).
    """

    protocol: Protocol
    sam: Callable[[Image.Image], SegmenterBatch]
    clip: Callable[[Sequence[Image.Image]], torch.Tensor] | None
    keep_image: bool

    @classmethod
    def for_run(cls, protocol: Protocol, segmenter: Segmenter, vision_language: VisionLanguage,
                methods: Sequence[str]) -> InputPreparer:
        """The preparer of an evaluation of ``methods`` with these parts."""
        return cls(protocol=protocol, sam=segmenter.input_preprocessor(),
                   clip=vision_language.input_preprocessor() if "regionspot" in methods else None,
                   keep_image=any(m != "regionspot" for m in methods))

    def __call__(self, record: ImageRecord) -> EvalItem:
        try:
            image = load_image(record.path)
            model_image = self.protocol.model_input(image)
            return EvalItem(
                record=record, size=(image.height, image.width), model_size=(model_image.height, model_image.width),
                sam=self.sam(model_image), clip=None if self.clip is None else self.clip([model_image]),
                image=image if self.keep_image else None,
            )
        except (ImageError, OSError, ValueError) as error:
            return EvalItem(record=record, error=f"{type(error).__name__}: {error}")


def eval_batches(
    records: Sequence[ImageRecord], prepare: InputPreparer, batch_size: int, workers: int = 0, pin: bool = False
) -> Iterator[EvalBatch]:
    """Prepared :class:`EvalBatch` es of ``batch_size`` consecutive records, computed ahead of the consumer by
    the image feeder (``regionspot.data.feeder.feed``: ``workers`` processes, or threads when 0; ``pin``:
    page-locked tensors, for a CUDA model)."""
    return feed(records, prepare, batch_size, collate=stack_inputs, workers=workers, pin=pin)
