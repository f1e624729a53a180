"""The two small protocols the rest of regionspot depends on.

Everything above this layer (head, predictor, cache, evaluation) talks to a segmenter and a
vision-language model only through these protocols, so a newer SAM or a SigLIP can be swapped in
by writing one adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import torch
from PIL import Image

from regionspot.masks.resize import MaskFrame


@dataclass
class SegmenterImageState:
    """What a segmenter keeps per image so that prompts can be decoded without re-encoding.

    embeddings: (1, 256, h, w) float, the image embedding (SAM: 256×64×64).
    original_size: (height, width) of the original image in pixels.
    reshaped_size: (height, width) of the resized image before padding, in pixels.
    extra: adapter-specific tensors (e.g. SAM-HQ intermediate embeddings).
    """

    embeddings: torch.Tensor
    original_size: tuple[int, int]
    reshaped_size: tuple[int, int]
    extra: dict | None = None


@dataclass
class SegmenterBatch:
    """Images prepared for a segmenter's image encoder on the CPU (by data-loader worker processes), so
    that the device only normalises and encodes them.

    pixels: (B, 3, S, S) tensor in the adapter's input format (SAM: uint8, resized so that the longest
        side is its ``longest_edge``, zero-padded bottom/right to S; normalised on the device).
    original_sizes: B × (height, width) in pixels of the images given (the frame prompts are in).
    reshaped_sizes: B × (height, width) in pixels after the resize, before the padding.
    """

    pixels: torch.Tensor
    original_sizes: list[tuple[int, int]]
    reshaped_sizes: list[tuple[int, int]]

    def __len__(self) -> int:
        return len(self.original_sizes)

    @classmethod
    def cat(cls, batches: Sequence[SegmenterBatch]) -> SegmenterBatch:
        """One batch of all images of ``batches``, in order."""
        return cls(
            pixels=torch.cat([b.pixels for b in batches]),
            original_sizes=[s for b in batches for s in b.original_sizes],
            reshaped_sizes=[s for b in batches for s in b.reshaped_sizes],
        )

    def pin_memory(self) -> SegmenterBatch:
        """The same batch with its pixels in page-locked memory (called by ``DataLoader(pin_memory=True)``)."""
        return replace(self, pixels=self.pixels.pin_memory())


# What ``Segmenter.decode_prompts(masks=...)`` returns of the masks: full-size boolean masks, the decoder's
# low-resolution logits with their frame, or none (the decoder stops before its mask branch).
MASK_MODES: tuple[str, ...] = ("full", "low_res", "none")


@dataclass
class SegmenterOutput:
    """Per-prompt results of a segmenter.

    tokens: (N, 256) float32, the position-aware token of each prompt.
    iou: (N,) float32, the predicted IoU of each mask.
    masks: (N, H, W) bool at the encoded image's size (or the ``mask_size`` asked for) with
        ``masks="full"``; else None.
    stability: (N,) float32, each mask's stability score (IoU of the mask at logit thresholds ±offset),
        or None when not asked for (``stability_offset``).
    low_res_masks: (N, h, w) float32 on the segmenter's device, the decoder's mask logits in the padded
        model-input frame that ``mask_frame`` describes, with ``masks="low_res"``; else None.
    mask_frame: where ``low_res_masks`` sit and the size masks come out at; None without them.
    boxes: (N, 4) float32 on the CPU, XYXY original-image pixels: the box prompts as decoded, i.e.
        clipped to the image; None when the prompts had no boxes.
    """

    tokens: torch.Tensor
    iou: torch.Tensor
    masks: torch.Tensor | None = None
    stability: torch.Tensor | None = None
    low_res_masks: torch.Tensor | None = None
    mask_frame: MaskFrame | None = None
    boxes: torch.Tensor | None = None


@runtime_checkable
class Segmenter(Protocol):
    """A promptable segmenter that yields a position-aware token per prompt.

    model_id: hub id or folder it was loaded from; token_dim: width of the token (SAM: 256);
    weights_fingerprint: identity of its weights (``regionspot.utils.fingerprint``) for cache manifests, with
    the suffix of a lossy numerics mode (``set_numerics``);
    decoder_layer_norm_eps: eps of its mask decoder's LayerNorms (recorded with caches and heads; None
    for a segmenter without one); device: where it runs.
    """

    model_id: str
    token_dim: int

    @property
    def weights_fingerprint(self) -> str: ...

    @property
    def decoder_layer_norm_eps(self) -> float | None: ...

    @property
    def device(self) -> torch.device: ...

    def encode_image(self, image: Image.Image) -> SegmenterImageState: ...

    def set_numerics(self, mode: str) -> str:
        """Run in numerics ``mode`` (``backbones.numerics.NUMERICS``: "fp32", "eager", "bf16", "int8", "compile");
        returns the fingerprint suffix of that mode ("+bf16" / "+int8", else ""), which ``weights_fingerprint``
        then ends in. Raises ValueError for an unknown mode, RegionSpotError for one the device cannot run."""
        ...

    def input_preprocessor(self) -> Callable[[Image.Image], SegmenterBatch]:
        """A picklable CPU function: one RGB image -> a ``SegmenterBatch`` of one (for worker processes)."""
        ...

    def encode_batch(self, batch: SegmenterBatch) -> list[SegmenterImageState]:
        """One image-encoder call for B prepared images; state i equals ``encode_image`` of image i."""
        ...

    def decode_prompts(
        self,
        state: SegmenterImageState,
        boxes: torch.Tensor | None = None,
        points: torch.Tensor | None = None,
        point_labels: torch.Tensor | None = None,
        *,
        masks: str = "full",
        chunk_size: int = 16,
        mask_size: tuple[int, int] | None = None,
        stability_offset: float | None = None,
    ) -> SegmenterOutput:
        """N box and/or point prompts (original-image pixels) -> tokens, IoU, the masks of the ``masks`` mode
        (one of ``MASK_MODES``) at ``mask_size``, stability scores (``stability_offset``, full masks only)
        and the boxes as decoded (clipped to the image)."""
        ...


@runtime_checkable
class VisionLanguage(Protocol):
    """A CLIP-like model: an image feature map for the head and text embeddings for scoring.

    Optional: ``logit_bias`` (float), a sigmoid-trained model's bias that scoring adds after the scale (SigLIP);
    ``scoring_form`` ("softmax" or "sigmoid", ``modeling.scoring.SCORING_FORMS``) and ``default_templates`` (the
    template set recommended for the model). The adapters are listed in ``vision_language.VISION_LANGUAGE_TYPES``.
    """

    model_id: str
    feature_dim: int  # C: width of the feature map
    embed_dim: int  # D: width of the joint image-text space
    image_size: int  # side of the square input in pixels
    num_tokens: int  # T: feature-map tokens at image_size
    weights_fingerprint: str  # identity of the weights (+ a lossy numerics mode's suffix), for cache keys
    resize: str  # "pil" or "torch-bilinear" (PreprocessConfig.clip_resize)
    antialias: bool
    mean: tuple[float, ...]  # pixel normalisation on the 0..1 scale
    std: tuple[float, ...]

    @property
    def logit_scale(self) -> float: ...

    @property
    def device(self) -> torch.device: ...

    def feature_map(self, images: Sequence[Image.Image] | torch.Tensor) -> torch.Tensor:
        """(B, T, C) float32: vision tokens (CLIP: incl. the class token, before the post-layernorm; each
        adapter documents its tokens and layer).

        images: PIL images, or their (B, 3, S, S) float32 pixels from ``input_preprocessor()``.
        """
        ...

    def set_numerics(self, mode: str) -> str:
        """As ``Segmenter.set_numerics``: run in numerics ``mode``; returns its fingerprint suffix."""
        ...

    def input_preprocessor(self) -> Callable[[Sequence[Image.Image]], torch.Tensor]:
        """A picklable CPU function: B RGB images -> (B, 3, S, S) float32 pixels for ``feature_map``."""
        ...

    def encode_text(self, prompts: Sequence[str], batch_size: int = 256, normalize: bool = True) -> torch.Tensor:
        """(P, D) float32 text embeddings, one per prompt; L2-normalised unless ``normalize`` is False
        (template ensembles average the raw projections, then normalise once)."""
        ...

    def encode_image(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """(B, D) float32, L2-normalised image embeddings (used by the crop baselines)."""
        ...
