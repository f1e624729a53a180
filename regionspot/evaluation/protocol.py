"""The pipeline of one evaluation run: which image the backbones see, how masks come back, and what the
head's recorded preprocessing says (see docs/protocol.md).

By default both backbones see the original image and masks come from SAM's own bilinear upsampling of
its mask logits to the original size. The released RegionSpot evaluation first resizes every image with
detectron2's ``ResizeShortestEdge(800, max_size=1333)`` (PIL bilinear; boxes scaled with it) and brings
the masks back by torch's nearest-neighbour; a head converted from the released code records that input
size, and ``mask_return="nearest"`` reproduces the mask return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image

from regionspot.backbones.base import Segmenter, VisionLanguage
from regionspot.data.transforms import shortest_edge_size


@dataclass(frozen=True)
class Protocol:
    """The resolved evaluation pipeline of one run (recorded in the store's manifest and the report).

    input_resize / min_size / max_size: the image both backbones see; mask_return: "sam" or "nearest";
    class_names / clip_resize / clip_antialias / sam_decoder_eps: what the head (or, without one, the
    loaded backbones) runs with.
    """

    input_resize: str
    min_size: int
    max_size: int
    mask_return: str
    class_names: str
    clip_resize: str
    clip_antialias: bool
    sam_decoder_eps: float | None

    def model_input(self, image: Image.Image) -> Image.Image:
        """The image the backbones see: ``image`` itself, or its shortest-edge resize (PIL bilinear)."""
        if self.input_resize == "none":
            return image
        height, width = shortest_edge_size(image.height, image.width, self.min_size, self.max_size)
        return image.resize((width, height), resample=Image.Resampling.BILINEAR)

    def report_lines(self) -> dict[str, str]:
        """Scalar facts for the report header."""
        size = f"shortest edge {self.min_size}, long side <= {self.max_size} (PIL bilinear)"
        return {
            "input_resize": "original image" if self.input_resize == "none" else size,
            "mask_return": "SAM logits upsampled to the original size" if self.mask_return == "sam"
            else "masks at the input scale, nearest-neighbour to the original size (released)",
            "clip_resize": f"{self.clip_resize}" + (" (antialias)" if self.clip_antialias else ""),
            "class_names": self.class_names,
            "sam_decoder_eps": "segmenter default" if self.sam_decoder_eps is None else f"{self.sam_decoder_eps:g}",
        }


def resolve_protocol(
    segmenter: Segmenter,
    vision_language: VisionLanguage,
    model: Any = None,
    *,
    input_resize: str | None = None,
    min_size: int = 800,
    max_size: int = 1333,
    mask_return: str = "sam",
) -> Protocol:
    """The run's pipeline: an explicit ``input_resize`` first, then the head's recorded
    ``preprocess.eval_resize`` (``model.config``), then the original image. CLIP resize and SAM eps are
    read from the loaded backbones, class names from the head ("clean" without one)."""
    preprocess = getattr(getattr(model, "config", None), "preprocess", None)
    if input_resize is not None:
        resize, lo, hi = input_resize, min_size, max_size
    elif preprocess is not None:
        resize, lo, hi = preprocess.eval_resize, preprocess.eval_min_size, preprocess.eval_max_size
    else:
        resize, lo, hi = "none", min_size, max_size
    eps = segmenter.decoder_layer_norm_eps
    return Protocol(
        input_resize=resize, min_size=int(lo), max_size=int(hi), mask_return=mask_return,
        class_names=preprocess.class_names if preprocess is not None else "clean",
        clip_resize=vision_language.resize,
        clip_antialias=bool(vision_language.antialias),
        sam_decoder_eps=float(eps) if eps is not None else None,
    )
