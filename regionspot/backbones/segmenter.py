"""The frozen segmenter: SAM (and SAM-HQ) from transformers behind the ``Segmenter`` protocol.

RegionSpot needs one thing from SAM per prompt: the *position-aware token*, i.e. the output of the
mask decoder's two-way transformer at the single-mask token (index 1 along the token axis, after the
IoU token). We read it with a forward hook on ``mask_decoder.transformer``; SAM itself is not forked.

Coordinate frames:
- user prompts: original-image pixels, boxes XYXY, points xy;
- model prompts: pixels of the resized image (longest side = ``image_size``, 1024 for real SAM), the
  frame transformers' ``SamModel`` expects (its prompt encoder adds 0.5 and divides by image_size).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from regionspot.backbones.base import SegmenterBatch, SegmenterImageState, SegmenterOutput
from regionspot.backbones.hub import cached_file_or_none, from_pretrained, looks_like_path
from regionspot.backbones.numerics import switch_numerics
from regionspot.backbones.prompts import check_decode_options, validate_prompts
from regionspot.backbones.sam_attention import one_image_token_major, set_sam_attention, use_chunked_bias
from regionspot.backbones.sam_inputs import SamPreprocess, normalize_sam_pixels, prepare_sam_input
from regionspot.errors import CheckpointError, WeightsNotFoundError
from regionspot.masks.resize import MaskFrame, upsample_mask_logits
from regionspot.utils.fingerprint import weights_fingerprint

__all__ = ["ORIGINAL_DECODER_EPS", "SamPreprocess", "SamSegmenter", "default_decoder_eps", "load_segmenter", "stability_score"]

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


class _TokensCaptured(Exception):
    """Raised by the capture hook to stop the mask decoder after its transformer (masks not wanted)."""


class SamSegmenter:
    """A frozen SAM-family model that turns box/point prompts into position-aware tokens.

    Build it with :func:`load_segmenter`. ``encode_image`` runs the ViT once per image (``encode_batch``
    once per batch of prepared images);
    ``decode_prompts`` runs the prompt encoder + mask decoder for N prompts in chunks, reusing the
    cached image embedding.
    """

    def __init__(self, model: nn.Module, model_id: str, preprocess: SamPreprocess) -> None:
        self._model = model
        self._model_id = model_id
        self._pre = preprocess
        self._is_hq = model.config.model_type == "sam_hq"
        self._fingerprint: str | None = None
        self._numerics, self._numerics_suffix = "fp32", ""

    # ----------------------------------------------------------------- properties
    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def token_dim(self) -> int:
        """Width of the position-aware token (256 for every released SAM)."""
        return int(self._model.config.mask_decoder_config.hidden_size)

    @property
    def device(self) -> torch.device:
        return self._model.mask_decoder.iou_token.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self._model.mask_decoder.iou_token.weight.dtype

    @property
    def model(self) -> nn.Module:
        """The frozen transformers model (eval mode, requires_grad False)."""
        return self._model

    @property
    def preprocess(self) -> SamPreprocess:
        return self._pre

    @property
    def weights_fingerprint(self) -> str:
        """Identity of the weights (computed once), with the numerics suffix of a lossy mode (``set_numerics``)."""
        if self._fingerprint is None:
            self._fingerprint = weights_fingerprint(self._model)
        return self._fingerprint + self._numerics_suffix

    def set_numerics(self, mode: str) -> str:
        """Run in numerics ``mode`` (``backbones.numerics.NUMERICS``); returns its fingerprint suffix. bf16: the
        image encoder and mask decoder under bf16 autocast (the prompt encoder's random-Fourier positional
        encoding is precision-sensitive: it stays fp32); int8 / compile: the image encoder."""
        if mode == "int8" and self._fingerprint is None:
            self._fingerprint = weights_fingerprint(self._model)  # int8 weights cannot be summed
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

    # ----------------------------------------------------------------- image
    def preprocess_image(self, image: Image.Image) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
        """Resize (longest side), rescale, normalise and zero-pad an RGB image.

        Returns pixel_values (1, 3, S, S) float32 on the CPU with S = pad_size, original (H, W), resized (h, w).
        """
        batch = prepare_sam_input(image, self._pre)
        pixels = normalize_sam_pixels(batch.pixels, batch.reshaped_sizes, self._pre)
        return pixels, batch.original_sizes[0], batch.reshaped_sizes[0]

    def input_preprocessor(self) -> Callable[[Image.Image], SegmenterBatch]:
        """The CPU half of the preprocessing as a picklable function (image -> ``SegmenterBatch`` of one,
        uint8), for data-loader worker processes; :meth:`encode_batch` does the rest on the device."""
        return functools.partial(prepare_sam_input, preprocess=self._pre)

    @torch.no_grad()
    def encode_image(self, image: Image.Image) -> SegmenterImageState:
        """Run the image encoder once.

        image: an RGB PIL image (also a path or HWC array, via ``load_image``).
        Returns a state with embeddings (1, 256, 64, 64) in the model dtype (real SAM sizes) and, for
        SAM-HQ, ``extra["intermediate_embeddings"]`` (the early ViT features its HQ branch needs).
        """
        return self.encode_batch(prepare_sam_input(image, self._pre))[0]

    @torch.no_grad()
    def encode_batch(self, batch: SegmenterBatch) -> list[SegmenterImageState]:
        """Run the image encoder once on B prepared images (``input_preprocessor()``; ``SegmenterBatch.cat``).

        batch.pixels: (B, 3, S, S) uint8 on the CPU (pinned for an asynchronous copy) or on the device; it
        is normalised on the model's device. Returns B states, state i as :meth:`encode_image` of image i
        (embeddings (1, 256, 64, 64), views into the batch's (B, 256, 64, 64)).
        """
        pixels = batch.pixels.to(device=self.device, non_blocking=True)
        pixels = normalize_sam_pixels(pixels, batch.reshaped_sizes, self._pre).to(self.dtype)  # (B, 3, S, S)
        output = self._model.get_image_embeddings(pixels)
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

    # ----------------------------------------------------------------- prompts
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
        """Decode N prompts against one encoded image.

        boxes: (N, 4) float, XYXY, original-image pixels; clipped to the image (with a warning) when partly
            outside; NaN/inf, zero-area or wholly-outside boxes raise PromptError.
        points: (N, P, 2) float, xy, original-image pixels; point_labels (N, P) int with 1 = foreground,
            0 = background, -1 = padding (ignored). Labels default to 1. With boxes too, prompt i is
            box i plus points i.
        masks: which masks come back (``MASK_MODES``); tokens and IoU are identical in every mode.
            "full": ``masks`` (N, H, W) bool at ``mask_size``, the logits upsampled bilinearly straight to it;
            "low_res": the decoder's logits ``low_res_masks`` (N, h, w) float32 on the model's device (SAM:
              256²: memory independent of the image size) and their ``mask_frame`` (``size`` = mask_size),
              for ``masks.lowres.LowResMasks`` / ``masks.regions.full_size_chunks`` to upsample a region at a time;
            "none": the decoder stops after its two-way transformer (no mask branch, no resize).
        chunk_size: prompts per decoder call (memory ∝ chunk_size × 256 × 64 × 64 floats).
        mask_size: (height, width) the masks come out at; default the encoded image's size (e.g. the size
            of the image an evaluation resized before encoding). Not with masks="none".
        stability_offset: also return each mask's stability score (SAM's automatic mask generator): the
            IoU of the masks thresholded at logit +offset and -offset, at ``mask_size``. masks="full" only.

        Returns SegmenterOutput: tokens (N, 256) float32, iou (N,) float32, the masks of the mode, stability
        (N,) float32 or None, boxes (N, 4) float32 as decoded (clipped; None without box prompts). ValueError
        for an unknown ``masks`` or an option the mode has no use for (``prompts.check_decode_options``).
        """
        if not isinstance(state, SegmenterImageState):
            raise TypeError("decode_prompts needs the state returned by encode_image(image); call that first.")
        check_decode_options(masks, chunk_size, mask_size, stability_offset)
        height, width = state.original_size
        boxes_t, points_t, labels_t = validate_prompts(boxes, points, point_labels, height, width)
        count = len(boxes_t) if boxes_t is not None else len(points_t)
        size = (int(mask_size[0]), int(mask_size[1])) if mask_size is not None else tuple(state.original_size)
        frame = MaskFrame(self._pre.pad_size, tuple(state.reshaped_size), size)
        if count == 0:
            return self._empty_output(masks, frame, stability_offset is not None, boxes_t)

        # original pixels -> resized-image pixels (the frame SamModel expects)
        new_h, new_w = state.reshaped_size
        scale = torch.tensor([new_w / width, new_h / height], dtype=torch.float32)
        model_boxes = None if boxes_t is None else boxes_t * scale.repeat(2)
        model_points = None if points_t is None else points_t * scale

        tokens, ious, full, low_res, stability = [], [], [], [], []
        for start in range(0, count, chunk_size):
            part = slice(start, start + chunk_size)
            chunk = self._decode_chunk(
                state,
                None if model_boxes is None else model_boxes[part],
                None if model_points is None else model_points[part],
                None if labels_t is None else labels_t[part],
                masks != "none",
            )
            tokens.append(chunk[0])
            ious.append(chunk[1])
            if masks == "low_res":
                low_res.append(chunk[2])
            elif masks == "full":
                logits = upsample_mask_logits(chunk[2], frame)  # (n, H, W)
                full.append(logits > 0.0)
                if stability_offset is not None:
                    stability.append(stability_score(logits, stability_offset))
        return SegmenterOutput(
            tokens=torch.cat(tokens),
            iou=torch.cat(ious),
            masks=torch.cat(full) if full else None,
            stability=torch.cat(stability) if stability else None,
            low_res_masks=torch.cat(low_res) if low_res else None,
            mask_frame=frame if low_res else None,
            boxes=boxes_t,
        )

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
                raise _TokensCaptured

        kwargs: dict = {"image_embeddings": state.embeddings.to(device=device, dtype=dtype), "multimask_output": False}
        if boxes is not None:
            kwargs["input_boxes"] = boxes.unsqueeze(0).to(device=device, dtype=dtype)  # (1, n, 4)
        if points is not None:
            kwargs["input_points"] = points.unsqueeze(0).to(device=device, dtype=dtype)  # (1, n, P, 2)
            kwargs["input_labels"] = labels.unsqueeze(0).to(device=device)  # (1, n, P)
        if self._is_hq and state.extra is not None:
            kwargs["intermediate_embeddings"] = [
                t.to(device=device, dtype=dtype) for t in state.extra["intermediate_embeddings"]
            ]

        transformer, output = self._model.mask_decoder.transformer, None
        handles = (transformer.register_forward_pre_hook(one_image_token_major, with_kwargs=True),
                   transformer.register_forward_hook(capture))  # one image, no mask prompts: see the hook
        try:
            output = self._model(**kwargs)
        except _TokensCaptured:
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

    def _empty_output(self, masks: str, frame: MaskFrame, stability: bool, boxes: torch.Tensor | None) -> SegmenterOutput:
        height, width = frame.size
        device = self.device
        side = frame.pad_size // 4  # SAM's low-res masks are a quarter of its input side
        low_res = masks == "low_res"
        return SegmenterOutput(
            tokens=torch.zeros(0, self.token_dim, device=device),
            iou=torch.zeros(0, device=device),
            masks=torch.zeros(0, height, width, dtype=torch.bool, device=device) if masks == "full" else None,
            stability=torch.zeros(0, device=device) if stability else None,
            low_res_masks=torch.zeros(0, side, side, device=device) if low_res else None,
            mask_frame=frame if low_res else None,
            boxes=boxes,
        )


def stability_score(logits: torch.Tensor, offset: float) -> torch.Tensor:
    """(n, H, W) mask logits -> (n,) float32: |logits > +offset| / |logits > -offset| (1 when both are empty).

    The IoU of the mask thresholded high and low, as in SAM's automatic mask generator: a mask whose
    outline barely moves when the threshold does is a confident one.
    """
    high = (logits > offset).flatten(1).float().sum(-1)  # float sums: exact counts up to 2^24 pixels, 2x faster
    low = (logits > -offset).flatten(1).float().sum(-1)
    return torch.where(low > 0, high / low.clamp(min=1), torch.ones_like(low))


# --------------------------------------------------------------------- loading
def _model_class(model_type: str, model_id: str) -> type[nn.Module]:
    from transformers import SamHQModel, SamModel

    if model_type == "sam":
        return SamModel
    if model_type == "sam_hq":
        return SamHQModel
    if model_type.startswith(("sam2", "sam3", "edgetam")):
        raise CheckpointError(
            f"{model_id!r} is a {model_type} model; SAM 2/3 segmenters are not supported yet "
            "(their decoder puts an object-score token first); use a SAM or SAM-HQ model such as facebook/sam-vit-base."
        )
    raise CheckpointError(f"{model_id!r} is a {model_type!r} model, not SAM; pass a SAM or SAM-HQ model id or folder.")


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
) -> SamSegmenter:
    """Load a frozen SAM / SAM-HQ segmenter.

    model_id: a hub id (facebook/sam-vit-base, facebook/sam-vit-huge, syscv-community/sam-hq-vit-base)
        or a local folder written by ``save_pretrained`` / ``regionspot convert sam``.
    device, dtype: where and in which precision to run (default: CPU, float32).
    decoder_layer_norm_eps: LayerNorm eps of the mask decoder's two-way transformer; None chooses
        :func:`default_decoder_eps` (1e-5 for the original releases' hub ids, else the config's).
    The local cache is tried first (no network), then the hub unless HF_HUB_OFFLINE is set.
    Raises WeightsNotFoundError when the weights are not reachable, CheckpointError for a non-SAM model.
    """
    from transformers import AutoConfig

    model_id = str(model_id)
    if looks_like_path(model_id) and not Path(model_id).expanduser().is_dir():
        raise WeightsNotFoundError(f"SAM model folder {model_id} does not exist; " + _PROVIDE_WEIGHTS_HINT + ".")
    if Path(model_id).expanduser().is_dir():
        model_id = str(Path(model_id).expanduser())
    config = from_pretrained(AutoConfig.from_pretrained, model_id, "the SAM config", _PROVIDE_WEIGHTS_HINT)
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
