"""The SAM 2 family behind the ``Segmenter`` protocol: SAM 2.1 (``Sam2Model``), EdgeTAM (``EdgeTamModel``) and
the SAM 3 tracker (``Sam3TrackerModel``), all of which share transformers' SAM 2 prompt encoder and mask decoder.

The position-aware token. The SAM 2 mask decoder prepends three kinds of output tokens to the prompt tokens:
``[object-score, IoU, mask_0, mask_1, mask_2, mask_3, prompts...]`` (``Sam2MaskDecoder.forward``:
``torch.cat([obj_score_token, iou_token, mask_tokens])``; it reads the IoU token at index 1 and the mask
tokens from index 2). ``mask_0`` is the single-mask output token (the decoder's ``multimask_output=False``
slice ``0:1`` of its mask tokens), so the token RegionSpot takes is index :data:`SINGLE_MASK_TOKEN` = 2 of the
two-way transformer's output queries, read with a forward hook on ``mask_decoder.transformer`` (SAM's is index
1: SAM has no object-score token). The model is not forked.

``dynamic_multimask_via_stability``. SAM 2 checkpoints switch it on (for tracking): in eval mode with
``multimask_output=False`` the decoder then replaces an *unstable* single mask (stability < 0.98 at ±0.05
logits) and its IoU by the best of the three multimask outputs — which come from other tokens. The adapter
switches it off on the model it owns, so that the mask, the IoU and the token always come from the same
(single-mask) output token, as with SAM; where a single mask is unstable, masks and IoU therefore differ from
``SAM2ImagePredictor.predict(multimask_output=False)``, never the token.

Multi-scale features: the image encoder gives three maps (stride 4, 8, 16 of the input; the first two already
projected by the decoder's ``conv_s0`` / ``conv_s1``, as transformers precomputes them). ``state.embeddings`` is the
stride-16 map; ``state.extra["high_resolution_features"]`` keeps the two others for the mask branch.

Frames: the encoder sees the whole image resized to S × S (S = 1024, SAM 3: 1008; ``SamPreprocess.square``),
so prompts scale by S / W and S / H. The decoder's low-resolution logits (4 × the embedding side: 256², SAM 3: 288²)
cover the whole image; masks are those logits upsampled bilinearly straight to the image (the SAM 2
processor's ``post_process_masks``): their ``MaskFrame`` is the low-res grid itself (pad_size = its side,
reshaped_size = the whole grid), whose first resize is the identity.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from regionspot.backbones.base import SegmenterBatch, SegmenterImageState
from regionspot.backbones.constants import IMAGENET_MEAN, IMAGENET_STD
from regionspot.backbones.hub import cached_file_or_none, from_pretrained
from regionspot.backbones.numerics import switch_numerics
from regionspot.backbones.promptable import PromptableSegmenter, TokensCaptured
from regionspot.backbones.sam_inputs import SamPreprocess
from regionspot.errors import CheckpointError
from regionspot.masks.resize import MaskFrame

__all__ = [
    "DECODER_EPS", "SAM2_FAMILY", "SINGLE_MASK_TOKEN", "Sam2Segmenter", "image_model_config", "load_sam2_segmenter",
    "missing_library",
]

# Index of the single-mask output token in the two-way transformer's queries: [object-score, IoU, mask_0, ...].
SINGLE_MASK_TOKEN = 2
IOU_TOKEN = 1
# The SAM 2 two-way transformer's LayerNorms are nn.LayerNorm's default (as in the official code); not configurable.
DECODER_EPS = 1e-5
# config model_type -> (image model class name, its config class name). Video checkpoints load the image model.
SAM2_FAMILY: dict[str, tuple[str, str]] = {
    "sam2": ("Sam2Model", "Sam2Config"),
    "sam2_video": ("Sam2Model", "Sam2Config"),
    "edgetam": ("EdgeTamModel", "EdgeTamConfig"),
    "edgetam_video": ("EdgeTamModel", "EdgeTamConfig"),
    "sam3_tracker": ("Sam3TrackerModel", "Sam3TrackerConfig"),
    "sam3_tracker_video": ("Sam3TrackerModel", "Sam3TrackerConfig"),
    "sam3_video": ("Sam3TrackerModel", "Sam3TrackerConfig"),
}
# SAM 3's processor normalises with mean = std = 0.5; SAM 2 and EdgeTAM with ImageNet's.
_FAMILY_STATS = {"sam3": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))}
_HINT = (
    "pass a transformers SAM 2.1 / EdgeTAM / SAM 3 folder or hub id (e.g. facebook/sam2.1-hiera-tiny), or convert an "
    "official SAM 2.1 checkpoint with `regionspot convert sam2 sam2.1_hiera_tiny.pt --out DIR` and pass DIR"
)


class Sam2Segmenter(PromptableSegmenter):
    """A frozen SAM 2-family model that turns box/point prompts into position-aware tokens.

    Build it with :func:`load_sam2_segmenter` (``load_segmenter`` dispatches here) or from a loaded model:
    ``Sam2Segmenter(model, model_id, SamPreprocess(longest_edge=S, pad_size=S, square=True))``. The same API as
    ``SamSegmenter``: ``encode_image`` / ``encode_batch`` / ``decode_prompts`` (``backbones/promptable.py``) /
    ``input_preprocessor`` / ``set_numerics``.
    """

    def __init__(self, model: nn.Module, model_id: str, preprocess: SamPreprocess) -> None:
        if not preprocess.square:
            raise ValueError("SAM 2-family models take the whole image resized to a square: SamPreprocess(square=True).")
        super().__init__(model, model_id, preprocess)
        # One output token for token, mask and IoU: see the module docstring.
        model.mask_decoder.dynamic_multimask_via_stability = False

    def set_numerics(self, mode: str) -> str:
        """Run in numerics ``mode`` (``backbones.numerics.NUMERICS``); returns its fingerprint suffix. bf16: the
        image encoder and mask decoder under bf16 autocast (the prompt encoder stays fp32, as for SAM);
        int8 / compile: the image encoder."""
        self._fingerprint_before_int8(mode)
        model = self._model
        encoder, decoder = model.vision_encoder, model.mask_decoder
        self._numerics_suffix = switch_numerics(
            model, mode, self._numerics, self.device, bf16=(encoder, decoder, decoder.iou_prediction_head),
            int8=(encoder,), compiled=(encoder,))
        self._numerics = mode
        return self._numerics_suffix

    @property
    def decoder_layer_norm_eps(self) -> float:
        """LayerNorm eps of the mask decoder's two-way transformer: fixed at 1e-5 in this family."""
        return DECODER_EPS

    def _low_res_side(self) -> int:
        return int(self._model.prompt_encoder.mask_input_size[0])

    def _mask_frame(self, state: SegmenterImageState, size: tuple[int, int]) -> MaskFrame:
        side = self._low_res_side()
        return MaskFrame(side, (side, side), size)

    @torch.no_grad()
    def encode_batch(self, batch: SegmenterBatch) -> list[SegmenterImageState]:
        """Run the image encoder once on B prepared images (``input_preprocessor()``; ``SegmenterBatch.cat``).

        batch.pixels: (B, 3, S, S) uint8 (the whole images resized to S × S), normalised on the model's device.
        Returns B states: embeddings (1, C, S/16, S/16) (SAM 2: 256 × 64 × 64), extra["high_resolution_features"]
        = [(1, C/8, S/4, S/4), (1, C/4, S/8, S/8)] — views into the batch's maps.
        """
        maps = self._model.get_image_embeddings(self._normalized(batch))  # [stride 4, stride 8, stride 16]
        *high_res, embeddings = maps
        return [
            SegmenterImageState(
                embeddings=embeddings[i : i + 1], original_size=batch.original_sizes[i],
                reshaped_size=batch.reshaped_sizes[i],
                extra={"high_resolution_features": [t[i : i + 1] for t in high_res]},
            )
            for i in range(len(batch))
        ]

    @torch.no_grad()
    def _decode_chunk(
        self,
        state: SegmenterImageState,
        boxes: torch.Tensor | None,
        points: torch.Tensor | None,
        labels: torch.Tensor | None,
        return_masks: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One decoder call for n prompts in the model frame: tokens (n, C), IoU (n,) and the low-res mask
        logits (n, s, s) float32 (s = ``_low_res_side()``) over the whole (square-resized) image, or None when masks are not wanted."""
        device, dtype = self.device, self.dtype
        captured: dict[str, torch.Tensor] = {}

        def capture(_module: nn.Module, _inputs: tuple, output: tuple) -> None:
            captured["queries"] = output[0]  # (1, n, T, C): T = object-score + IoU + K mask tokens + prompt tokens
            if not return_masks:
                raise TokensCaptured

        maps = [*state.extra["high_resolution_features"], state.embeddings]
        kwargs: dict = {"image_embeddings": [t.to(device=device, dtype=dtype) for t in maps], "multimask_output": False}
        kwargs.update(self._prompt_kwargs(boxes, points, labels))
        handle, output = self._model.mask_decoder.transformer.register_forward_hook(capture), None
        try:
            output = self._model(**kwargs)
        except TokensCaptured:
            pass
        finally:
            handle.remove()

        queries = captured["queries"][0]  # (n, T, C)
        tokens = queries[:, SINGLE_MASK_TOKEN, :].float()
        if output is None:
            # Stopped after the transformer: the IoU head is one MLP on the IoU token; column 0 is the
            # single-mask output's (the slice Sam2MaskDecoder takes without the dynamic fallback).
            iou = self._model.mask_decoder.iou_prediction_head(queries[:, IOU_TOKEN, :])[:, 0].float()
            return tokens, iou, None
        return tokens, output.iou_scores[0, :, 0].float(), output.pred_masks[0, :, 0].float()


# --------------------------------------------------------------------- loading
def image_model_config(config, model_id: str):
    """(image model class, its config) for a SAM 2-family config (a video model's config gives the image
    model's: its vision encoder, prompt encoder and mask decoder, which the image model loads)."""
    import transformers

    model_type = config.model_type
    if model_type == "sam3_video":
        config = config.tracker_config
    class_name, config_name = SAM2_FAMILY[model_type]
    model_class, config_class = getattr(transformers, class_name), getattr(transformers, config_name)
    if isinstance(config, config_class):
        return model_class, config

    def part(sub):
        data = sub.to_dict() if hasattr(sub, "to_dict") else dict(sub)
        data.pop("model_type", None)
        data.pop("transformers_version", None)
        return data

    vision = config.vision_config
    return model_class, config_class(vision_config=vision.to_dict() if hasattr(vision, "to_dict") else vision,
                                     prompt_encoder_config=part(config.prompt_encoder_config),
                                     mask_decoder_config=part(config.mask_decoder_config))


def missing_library(model_id: str, error: ImportError) -> str:
    """One line for a model whose code needs a library that is not installed (EdgeTAM's backbone: timm)."""
    text = str(error)
    if "timm" in text:
        return f"{model_id!r} needs timm (EdgeTAM's RepViT backbone), which is not installed: `pip install timm`."
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"{model_id!r} needs a library that is not installed: {lines[0] if lines else type(error).__name__}"


def load_sam2_segmenter(
    model_id: str,
    config,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    decoder_layer_norm_eps: float | None = None,
) -> Sam2Segmenter:
    """Load a frozen SAM 2.1 / EdgeTAM / SAM 3 tracker segmenter (``load_segmenter`` calls this).

    model_id: a hub id (facebook/sam2.1-hiera-tiny, ...) or local folder; config: its loaded config
        (model_type in :data:`SAM2_FAMILY`; a video model's folder loads its image model).
    decoder_layer_norm_eps: None or 1e-5 (the family's fixed value); anything else raises CheckpointError.
    Raises WeightsNotFoundError when the weights are not reachable, CheckpointError when EdgeTAM's backbone
    library (timm) is missing.
    """
    if decoder_layer_norm_eps is not None and abs(float(decoder_layer_norm_eps) - DECODER_EPS) > 1e-12:
        raise CheckpointError(
            f"{model_id!r} is a SAM 2-family model whose decoder LayerNorm eps is fixed at 1e-5; "
            f"sam_decoder_eps {decoder_layer_norm_eps:g} is for SAM: set preprocess.sam_decoder_eps to null or 1e-5."
        )
    model_class, image_config = image_model_config(config, model_id)
    try:
        model = from_pretrained(model_class.from_pretrained, model_id, "the segmenter weights", _HINT, config=image_config)
    except ImportError as error:
        raise CheckpointError(missing_library(model_id, error)) from None
    model.requires_grad_(False).eval()
    if device is not None:
        model.to(device=torch.device(device))
    if dtype is not None:
        model.to(dtype=dtype)
    side = int(image_config.prompt_encoder_config.image_size)
    mean, std = _FAMILY_STATS.get(config.model_type.split("_")[0], (IMAGENET_MEAN, IMAGENET_STD))
    processor_json = cached_file_or_none(model_id, "preprocessor_config.json")
    preprocess = SamPreprocess.from_json(processor_json, image_size=side, square=True, mean=mean, std=std)
    return Sam2Segmenter(model, str(Path(model_id)) if Path(model_id).is_dir() else model_id, preprocess)
