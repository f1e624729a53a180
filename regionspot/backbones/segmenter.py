"""The frozen segmenter: SAM (and SAM-HQ) from transformers behind the ``Segmenter`` protocol, and
:func:`load_segmenter`, which loads any supported segmenter (the SAM 2 family through
``backbones/sam2_segmenter.py``) by its config's model_type.

RegionSpot needs one thing from SAM per prompt: the *position-aware token*, i.e. the output of the
mask decoder's two-way transformer at the single-mask token (index 1 along the token axis, after the
IoU token). We read it with a forward hook on ``mask_decoder.transformer``; SAM itself is not forked.
What every SAM-family adapter shares (prompt checks, frames, chunks, mask modes) is in
``backbones/promptable.py``.

Coordinate frames:
- user prompts: original-image pixels, boxes XYXY, points xy;
- model prompts: pixels of the resized image (longest side = ``image_size``, 1024 for real SAM), the
  frame transformers' ``SamModel`` expects (its prompt encoder adds 0.5 and divides by image_size).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from regionspot.backbones.base import SegmenterBatch, SegmenterImageState
from regionspot.backbones.hub import cached_file_or_none, from_pretrained, looks_like_path
from regionspot.backbones.numerics import switch_numerics
from regionspot.backbones.promptable import PromptableSegmenter, TokensCaptured, stability_score
from regionspot.backbones.sam2_segmenter import SAM2_FAMILY, load_sam2_segmenter, missing_library
from regionspot.backbones.sam_attention import one_image_token_major, set_sam_attention, use_chunked_bias
from regionspot.backbones.sam_inputs import SamPreprocess
from regionspot.errors import CheckpointError, WeightsNotFoundError

__all__ = [
    "ORIGINAL_DECODER_EPS", "SamPreprocess", "SamSegmenter", "default_decoder_eps", "load_segmenter", "stability_score",
]

# Index of the single-mask output token in the two-way transformer's queries: [iou, mask_0, ...].
SINGLE_MASK_TOKEN = 1
# The original SAM (and SAM-HQ) two-way transformer uses nn.LayerNorm's default eps; transformers'
# SamMaskDecoderConfig (and the hub configs converted with it) say 1e-6. Hub ids of those releases:
ORIGINAL_DECODER_EPS = 1e-5
_ORIGINAL_RELEASE_PREFIXES = ("facebook/sam-vit-", "syscv-community/sam-hq-vit-")
_PROVIDE_WEIGHTS_HINT = (
    "run `regionspot download BB|BL|BL@336` (SAM included; add `--from DIR` for files fetched by other means), "
    "or convert an official checkpoint with `regionspot convert sam sam_vit_b_01ec64.pth --out DIR` and pass DIR"
)


class SamSegmenter(PromptableSegmenter):
    """A frozen SAM-family model that turns box/point prompts into position-aware tokens.

    Build it with :func:`load_segmenter`. ``encode_image`` runs the ViT once per image (``encode_batch``
    once per batch of prepared images);
    ``decode_prompts`` (``backbones/promptable.py``) runs the prompt encoder + mask decoder for N prompts in
    chunks, reusing the cached image embedding.
    """

    def __init__(self, model: nn.Module, model_id: str, preprocess: SamPreprocess) -> None:
        super().__init__(model, model_id, preprocess)
        self._is_hq = model.config.model_type == "sam_hq"

    def set_numerics(self, mode: str) -> str:
        """Run in numerics ``mode`` (``backbones.numerics.NUMERICS``); returns its fingerprint suffix. bf16: the
        image encoder and mask decoder under bf16 autocast (the prompt encoder's random-Fourier positional
        encoding is precision-sensitive: it stays fp32); int8 / compile: the image encoder."""
        self._fingerprint_before_int8(mode)
        sam = self._model
        encoder, decoder = sam.vision_encoder, sam.mask_decoder
        self._numerics_suffix = switch_numerics(
            sam, mode, self._numerics, self.device, bf16=(encoder, decoder, decoder.iou_prediction_head),
            int8=(encoder,), compiled=(encoder,), attention=set_sam_attention)
        self._numerics = mode
        return self._numerics_suffix

    @property
    def decoder_layer_norm_eps(self) -> float:
        """LayerNorm eps of the mask decoder's two-way transformer, as the loaded model runs it."""
        return float(self._model.config.mask_decoder_config.layer_norm_eps)

    @torch.no_grad()
    def encode_batch(self, batch: SegmenterBatch) -> list[SegmenterImageState]:
        """Run the image encoder once on B prepared images (``input_preprocessor()``; ``SegmenterBatch.cat``).

        batch.pixels: (B, 3, S, S) uint8 on the CPU (pinned for an asynchronous copy) or on the device; it
        is normalised on the model's device. Returns B states, state i as :meth:`encode_image` of image i
        (embeddings (1, 256, 64, 64), views into the batch's (B, 256, 64, 64)) and, for SAM-HQ,
        ``extra["intermediate_embeddings"]`` (the early ViT features its HQ branch needs).
        """
        output = self._model.get_image_embeddings(self._normalized(batch))
        intermediate = None
        if self._is_hq:
            embeddings, intermediate = output  # intermediate: HQ's early ViT features, batch first
        else:
            embeddings = output  # (B, 256, 64, 64)
        return [
            SegmenterImageState(
                embeddings=embeddings[i : i + 1], original_size=batch.original_sizes[i],
                reshaped_size=batch.reshaped_sizes[i],
                extra=None if intermediate is None else {"intermediate_embeddings": [t[i : i + 1] for t in intermediate]},
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
        """One decoder call for n prompts already in the model frame. Returns tokens (n, C), IoU (n,) and
        the low-res mask logits (n, h, w) float32 in the padded input frame (None when masks are not wanted)."""
        device, dtype = self.device, self.dtype
        captured: dict[str, torch.Tensor] = {}

        def capture(_module: nn.Module, _inputs: tuple, output: tuple) -> None:
            captured["queries"] = output[0]  # (1, n, T, C): T = 1 IoU + K mask tokens + prompt tokens
            if not return_masks:
                raise TokensCaptured

        kwargs: dict = {"image_embeddings": state.embeddings.to(device=device, dtype=dtype), "multimask_output": False}
        kwargs.update(self._prompt_kwargs(boxes, points, labels))
        if self._is_hq and state.extra is not None:
            kwargs["intermediate_embeddings"] = [
                t.to(device=device, dtype=dtype) for t in state.extra["intermediate_embeddings"]
            ]

        transformer, output = self._model.mask_decoder.transformer, None
        handles = (transformer.register_forward_pre_hook(one_image_token_major, with_kwargs=True),
                   transformer.register_forward_hook(capture))  # one image, no mask prompts: see the hook
        try:
            output = self._model(**kwargs)
        except TokensCaptured:
            pass
        finally:
            for handle in handles:
                handle.remove()

        queries = captured["queries"][0]  # (n, T, C)
        tokens = queries[:, SINGLE_MASK_TOKEN, :].float()
        if output is None:
            # The decoder stopped after its transformer: its IoU head is one MLP on the IoU token;
            # column 0 is the single-mask output's IoU (the same slice SamMaskDecoder takes).
            iou = self._model.mask_decoder.iou_prediction_head(queries[:, 0, :])[:, 0].float()
            return tokens, iou, None
        iou = output.iou_scores[0, :, 0].float()  # (n,)
        return tokens, iou, output.pred_masks[0, :, 0].float()  # (n, h, w) logits, h = w = image_size / 4


# --------------------------------------------------------------------- loading
def _model_class(model_type: str, model_id: str) -> type[nn.Module]:
    from transformers import SamHQModel, SamModel

    if model_type == "sam":
        return SamModel
    if model_type == "sam_hq":
        return SamHQModel
    if model_type.startswith(("sam2", "sam3", "edgetam")):
        raise CheckpointError(
            f"{model_id!r} is a {model_type} model without a promptable mask decoder; use SAM, SAM-HQ, SAM 2.1, EdgeTAM "
            "or the SAM 3 tracker (e.g. facebook/sam-vit-base, facebook/sam2.1-hiera-tiny)."
        )
    raise CheckpointError(
        f"{model_id!r} is a {model_type!r} model, not a segmenter; pass a SAM, SAM-HQ, SAM 2.1, EdgeTAM or SAM 3 "
        "tracker model id or folder."
    )


def default_decoder_eps(model_id: str, config_eps: float) -> float:
    """The two-way-transformer LayerNorm eps to run ``model_id`` with when the caller names none.

    Hub ids of the original SAM / SAM-HQ releases get the original architecture's 1e-5 (their hub
    configs say 1e-6); anything else (a local folder, e.g. one written by ``regionspot convert sam``,
    which records 1e-5, or a model trained in transformers) keeps its config's value.
    """
    return ORIGINAL_DECODER_EPS if model_id.startswith(_ORIGINAL_RELEASE_PREFIXES) else float(config_eps)


def load_segmenter(
    model_id: str,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    decoder_layer_norm_eps: float | None = None,
) -> PromptableSegmenter:
    """Load a frozen segmenter: SAM / SAM-HQ (``SamSegmenter``), or SAM 2.1 / EdgeTAM / the SAM 3 tracker
    (``backbones.sam2_segmenter.Sam2Segmenter``), chosen by the config's model_type.

    model_id: a hub id (facebook/sam-vit-base, facebook/sam-vit-huge, syscv-community/sam-hq-vit-base,
        facebook/sam2.1-hiera-tiny, ...) or a local folder written by ``save_pretrained`` / ``regionspot convert
        sam`` / ``regionspot convert sam2``.
    device, dtype: where and in which precision to run (default: CPU, float32).
    decoder_layer_norm_eps: LayerNorm eps of the mask decoder's two-way transformer; None chooses
        :func:`default_decoder_eps` (1e-5 for the original releases' hub ids, else the config's); the SAM 2
        family's is fixed at 1e-5 (None or 1e-5 only).
    The local cache is tried first (no network), then the hub unless HF_HUB_OFFLINE is set.
    Raises WeightsNotFoundError when the weights are not reachable, CheckpointError for a non-SAM model.
    """
    from transformers import AutoConfig

    model_id = str(model_id)
    if looks_like_path(model_id) and not Path(model_id).expanduser().is_dir():
        raise WeightsNotFoundError(f"SAM model folder {model_id} does not exist; " + _PROVIDE_WEIGHTS_HINT + ".")
    if Path(model_id).expanduser().is_dir():
        model_id = str(Path(model_id).expanduser())
    try:
        config = from_pretrained(AutoConfig.from_pretrained, model_id, "the SAM config", _PROVIDE_WEIGHTS_HINT)
    except ImportError as error:  # e.g. EdgeTAM's config names a timm backbone
        raise CheckpointError(missing_library(model_id, error)) from None
    if config.model_type in SAM2_FAMILY:
        return load_sam2_segmenter(model_id, config, device=device, dtype=dtype,
                                   decoder_layer_norm_eps=decoder_layer_norm_eps)
    model_class = _model_class(config.model_type, model_id)
    decoder = config.mask_decoder_config
    if decoder_layer_norm_eps is None:
        decoder_layer_norm_eps = default_decoder_eps(model_id, decoder.layer_norm_eps)
    decoder.layer_norm_eps = float(decoder_layer_norm_eps)
    model = from_pretrained(model_class.from_pretrained, model_id, "the SAM weights", _PROVIDE_WEIGHTS_HINT, config=config)
    use_chunked_bias(model.requires_grad_(False).eval())
    if device is not None:
        model.to(device=torch.device(device))
    if dtype is not None:
        model.to(dtype=dtype)

    processor_json = cached_file_or_none(model_id, "preprocessor_config.json")
    preprocess = SamPreprocess.from_json(processor_json, image_size=int(config.vision_config.image_size))
    return SamSegmenter(model, model_id, preprocess)
