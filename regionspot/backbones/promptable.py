"""The half that every SAM-family adapter shares: prompts in original-image pixels checked, moved to the model's
frame and decoded in chunks, masks returned in one of ``MASK_MODES``; preprocessing and fingerprints.

``SamSegmenter`` (``backbones/segmenter.py``: SAM, SAM-HQ) and ``Sam2Segmenter`` (``backbones/sam2_segmenter.py``:
SAM 2.1, EdgeTAM, the SAM 3 tracker) subclass :class:`PromptableSegmenter` and give what differs: the image
encoder call (``encode_batch``), one decoder call on a chunk of prompts (``_decode_chunk``, which reads the
position-aware token with a forward hook), the frame of the low-resolution masks (``_mask_frame``) and the
numerics switch (``set_numerics``).

Coordinate frames:
- user prompts: original-image pixels, boxes XYXY, points xy;
- model prompts: pixels of the resized image (``reshaped_size``) that the encoder saw: SAM's longest-side
  resize, SAM 2's square resize. The prompt encoders add 0.5 and divide by their input side.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from PIL import Image
from torch import nn

from regionspot.backbones.base import SegmenterBatch, SegmenterImageState, SegmenterOutput
from regionspot.backbones.prompts import check_decode_options, validate_prompts
from regionspot.backbones.sam_inputs import SamPreprocess, normalize_sam_pixels, prepare_sam_input
from regionspot.masks.resize import MaskFrame, upsample_mask_logits
from regionspot.utils.fingerprint import weights_fingerprint

__all__ = ["PromptableSegmenter", "TokensCaptured", "stability_score"]


class TokensCaptured(Exception):
    """Raised by a capture hook to stop the mask decoder after its transformer (masks not wanted)."""


class PromptableSegmenter:
    """A frozen promptable segmenter (transformers model + preprocessing) behind the ``Segmenter`` protocol.

    Subclasses implement ``encode_batch``, ``_decode_chunk``, ``set_numerics``, ``decoder_layer_norm_eps`` and,
    where their masks do not sit like SAM's, ``_mask_frame``.
    """

    def __init__(self, model: nn.Module, model_id: str, preprocess: SamPreprocess) -> None:
        self._model = model
        self._model_id = model_id
        self._pre = preprocess
        self._fingerprint: str | None = None
        self._numerics, self._numerics_suffix = "fp32", ""

    # ----------------------------------------------------------------- properties
    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def token_dim(self) -> int:
        """Width of the position-aware token (256 for every released SAM, SAM 2, EdgeTAM, SAM 3)."""
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

    def _fingerprint_before_int8(self, mode: str) -> None:
        if mode == "int8" and self._fingerprint is None:
            self._fingerprint = weights_fingerprint(self._model)  # int8 weights cannot be summed

    # ----------------------------------------------------------------- image
    def preprocess_image(self, image: Image.Image) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
        """Resize, rescale, normalise (and for SAM zero-pad) an RGB image.

        Returns pixel_values (1, 3, S, S) float32 on the CPU with S = pad_size, original (H, W), resized (h, w).
        """
        batch = prepare_sam_input(image, self._pre)
        pixels = normalize_sam_pixels(batch.pixels, batch.reshaped_sizes, self._pre)
        return pixels, batch.original_sizes[0], batch.reshaped_sizes[0]

    def input_preprocessor(self) -> Callable[[Image.Image], SegmenterBatch]:
        """The CPU half of the preprocessing as a picklable function (image -> ``SegmenterBatch`` of one,
        uint8), for data-loader worker processes; :meth:`encode_batch` does the rest on the device."""
        return functools.partial(prepare_sam_input, preprocess=self._pre)

    def _normalized(self, batch: SegmenterBatch) -> torch.Tensor:
        """(B, 3, S, S) encoder input on the model's device and dtype from a batch of uint8 pixels."""
        pixels = batch.pixels.to(device=self.device, non_blocking=True)
        return normalize_sam_pixels(pixels, batch.reshaped_sizes, self._pre).to(self.dtype)

    @torch.no_grad()
    def encode_image(self, image: Image.Image) -> SegmenterImageState:
        """Run the image encoder once on an RGB PIL image (also a path or HWC array, via ``load_image``)."""
        return self.encode_batch(prepare_sam_input(image, self._pre))[0]

    def encode_batch(self, batch: SegmenterBatch) -> list[SegmenterImageState]:
        raise NotImplementedError

    # ----------------------------------------------------------------- prompts
    def _mask_frame(self, state: SegmenterImageState, size: tuple[int, int]) -> MaskFrame:
        """Where the decoder's low-res logits sit (SAM: the padded square input) and where masks go."""
        return MaskFrame(self._pre.pad_size, tuple(state.reshaped_size), size)

    def _low_res_side(self) -> int:
        """Side of the decoder's low-resolution mask grid (a quarter of the encoder's embedding side × 16)."""
        return self._pre.pad_size // 4

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
            "low_res": the decoder's logits ``low_res_masks`` (N, h, w) float32 on the model's device (SAM and
              SAM 2: 256²: memory independent of the image size) and their ``mask_frame`` (``size`` = mask_size),
              for ``masks.lowres.LowResMasks`` / ``masks.regions.full_size_chunks`` to upsample a region at a time;
            "none": the decoder stops after its two-way transformer (no mask branch, no resize).
        chunk_size: prompts per decoder call (memory ∝ chunk_size × 256 × 64 × 64 floats).
        mask_size: (height, width) the masks come out at; default the encoded image's size (e.g. the size
            of the image an evaluation resized before encoding). Not with masks="none".
        stability_offset: also return each mask's stability score (SAM's automatic mask generator): the
            IoU of the masks thresholded at logit +offset and -offset, at ``mask_size``. masks="full" only.

        Returns SegmenterOutput: tokens (N, C) float32 (C = ``token_dim``), iou (N,) float32, the masks of the
        mode, stability (N,) float32 or None, boxes (N, 4) float32 as decoded (clipped; None without box
        prompts). ValueError for an unknown ``masks`` or an option the mode has no use for.
        """
        if not isinstance(state, SegmenterImageState):
            raise TypeError("decode_prompts needs the state returned by encode_image(image); call that first.")
        check_decode_options(masks, chunk_size, mask_size, stability_offset)
        height, width = state.original_size
        boxes_t, points_t, labels_t = validate_prompts(boxes, points, point_labels, height, width)
        count = len(boxes_t) if boxes_t is not None else len(points_t)
        size = (int(mask_size[0]), int(mask_size[1])) if mask_size is not None else tuple(state.original_size)
        frame = self._mask_frame(state, size)
        if count == 0:
            return self._empty_output(masks, frame, stability_offset is not None, boxes_t)

        # original pixels -> resized-image pixels (the frame the model's prompt encoder expects)
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

    def _decode_chunk(
        self,
        state: SegmenterImageState,
        boxes: torch.Tensor | None,
        points: torch.Tensor | None,
        labels: torch.Tensor | None,
        return_masks: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One decoder call for n prompts already in the model frame. Returns tokens (n, C), IoU (n,) and
        the low-res mask logits (n, h, w) float32 in ``_mask_frame``'s frame (None when masks are not wanted)."""
        raise NotImplementedError

    def _prompt_kwargs(
        self, boxes: torch.Tensor | None, points: torch.Tensor | None, labels: torch.Tensor | None
    ) -> dict:
        """The prompts of one image as the model's forward takes them: boxes (1, n, 4), points (1, n, P, 2),
        labels (1, n, P), on the model's device (coordinates in its dtype)."""
        device, dtype = self.device, self.dtype
        kwargs: dict = {}
        if boxes is not None:
            kwargs["input_boxes"] = boxes.unsqueeze(0).to(device=device, dtype=dtype)
        if points is not None:
            kwargs["input_points"] = points.unsqueeze(0).to(device=device, dtype=dtype)
            kwargs["input_labels"] = labels.unsqueeze(0).to(device=device)
        return kwargs

    def _empty_output(self, masks: str, frame: MaskFrame, stability: bool, boxes: torch.Tensor | None) -> SegmenterOutput:
        height, width = frame.size
        device = self.device
        side = self._low_res_side()
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
