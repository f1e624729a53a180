"""Frozen SigLIP and SigLIP 2 adapters (sigmoid-trained image-text models) for the ``VisionLanguage`` protocol.

Both score an image and a text the way they were trained: ``logit_scale · cos(image, text) + logit_bias``,
read as an independent sigmoid per pair (``scoring_form = "sigmoid"``); a head over their map is scored with
the same scale AND bias (``modeling.scoring.score_regions(..., logit_bias=...)``). Their recommended prompt
is "This is a photo of {}." (template set ``"siglip"``).

- ``SiglipAdapter`` — transformers ``SiglipModel`` (model_type "siglip": SigLIP, and the fixed-resolution
  SigLIP 2 checkpoints, which are published in this format). Square input, conv patches.
- ``Siglip2Adapter`` — transformers ``Siglip2Model`` (model_type "siglip2": the SigLIP 2 **NaFlex**
  checkpoints). NaFlex takes patch sequences of any grid (the image processor keeps the aspect ratio under a
  patch budget, so every image has its own h × w grid, padded to the budget with a mask). The head attends to
  a fixed (T, C) map without a memory mask and the token cache stores one shape, so this adapter feeds NaFlex
  the project's whole-image square input: the image resized to S × S, cut into the (S/p)² patches NaFlex's
  own ``convert_image_to_patches`` makes (row-major, each patch p × p × 3), ``spatial_shapes`` (S/p, S/p),
  every patch valid. NaFlex resizes its position grid to that shape itself, so any S that is a multiple of
  the patch size works; the default S is the side whose grid is the checkpoint's position grid
  (``sqrt(num_patches) · p``, e.g. 16 · 16 = 256 px), where that resize is the identity. Variable-grid
  (aspect-preserving) maps are not used.

Feature map (both): the encoder's last hidden state BEFORE the post-layernorm, as CLIP's map is taken before
its post-LN; SigLIP has no class token (its image embedding comes from an attention-pooling head over the
post-LN tokens), so the map is the N = (S/p)² patch tokens only.
Text (both): SigLIP pools the last position and was trained on text padded to its full context, so prompts
are padded to ``max_position_embeddings``; SigLIP 2 uses its tokenizer's own padding (its side and its
attention mask, exactly as ``Siglip2Processor(padding="max_length")`` feeds the model).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image

from regionspot.backbones.vision_language import ClipAdapter

__all__ = ["SIGLIP_MEAN", "SIGLIP_STD", "Siglip2Adapter", "SiglipAdapter", "patchify"]

SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)


class SiglipAdapter(ClipAdapter):
    """A frozen transformers ``SiglipModel``: no class token, text padded to the full context.

    SigLIP was trained with text padded to ``max_length`` and pools the last token, so prompts are padded
    to the context length and no attention mask is used. ``feature_map`` returns the encoder's last hidden
    state before the post-layernorm (B, N, C), without a class token. ``logit_bias`` holds SigLIP's bias.
    """

    has_class_token = False
    scoring_form = "sigmoid"
    default_templates = "siglip"
    preprocess_defaults = (SIGLIP_MEAN, SIGLIP_STD, int(Image.Resampling.BICUBIC))

    @property
    def logit_bias(self) -> float:
        """The model's learned logit bias (added after the scale; a sigmoid of the sum is the pair's probability)."""
        return float(self.model.logit_bias.detach().float().reshape(-1)[0])

    @staticmethod
    def _embed_dim(config) -> int:
        text = config.text_config
        return int(getattr(text, "projection_size", None) or text.hidden_size)

    def _pad_length(self, longest: int) -> int:
        return self.context_length

    def _text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.get_text_features(input_ids=input_ids).pooler_output

    @torch.no_grad()
    def feature_map(self, images: Sequence[Image.Image] | torch.Tensor) -> torch.Tensor:
        """(B, N, C) float32 patch tokens before the post-layernorm (SigLIP has no class token)."""
        pixels = self.preprocess(images)
        outputs = self.model.vision_model(
            pixel_values=pixels, interpolate_pos_encoding=self._interpolate, output_hidden_states=True
        )
        return outputs.hidden_states[-1].float()


def patchify(pixels: torch.Tensor, patch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """NaFlex inputs of square images: (B, 3, S, S) pixels -> (patches (B, g², p·p·3), spatial_shapes (B, 2)
    int64 = (g, g)), g = S // p; the patch layout of transformers' ``convert_image_to_patches`` (row-major
    patches, each flattened as (p, p, channel))."""
    batch, channels, height, width = pixels.shape
    if height != width or height % patch_size:
        raise ValueError(f"NaFlex input must be square with a side divisible by {patch_size}, got {height}x{width}.")
    grid = height // patch_size
    patches = pixels.reshape(batch, channels, grid, patch_size, grid, patch_size)
    patches = patches.permute(0, 2, 4, 3, 5, 1).reshape(batch, grid * grid, patch_size * patch_size * channels)
    shapes = torch.tensor([[grid, grid]], dtype=torch.long, device=pixels.device).expand(batch, 2)
    return patches, shapes


class Siglip2Adapter(SiglipAdapter):
    """A frozen transformers ``Siglip2Model`` (SigLIP 2 NaFlex) on a fixed square grid (see the module notes).

    image_size: S, a multiple of the patch size (default: ``sqrt(num_patches) · patch_size``).
    Text: the tokenizer pads to the context (its padding side) and its attention mask is passed on.
    """

    preprocess_defaults = (SIGLIP_MEAN, SIGLIP_STD, int(Image.Resampling.BILINEAR))

    def __init__(self, model: torch.nn.Module, *args, **kwargs):
        super().__init__(model, *args, **kwargs)
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} of a SigLIP 2 NaFlex model must be a multiple of "
                             f"its patch size {self.patch_size}.")

    @staticmethod
    def _native_image_size(vision_config) -> int:
        side = round(int(vision_config.num_patches) ** 0.5)
        return side * int(vision_config.patch_size)

    def naflex_inputs(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 3, S, S) pixels -> the keyword inputs of ``Siglip2VisionModel``: patches, an all-valid
        ``pixel_attention_mask`` (B, g²) and ``spatial_shapes`` (B, 2)."""
        patches, shapes = patchify(pixels, self.patch_size)
        mask = torch.ones(patches.shape[:2], dtype=torch.long, device=patches.device)
        return {"pixel_values": patches, "pixel_attention_mask": mask, "spatial_shapes": shapes}

    @torch.no_grad()
    def feature_map(self, images: Sequence[Image.Image] | torch.Tensor) -> torch.Tensor:
        """(B, (S/p)², C) float32 patch tokens before the post-layernorm, row-major over the square grid."""
        pixels = self.preprocess(images)
        outputs = self.model.vision_model(**self.naflex_inputs(pixels), output_hidden_states=True)
        return outputs.hidden_states[-1].float()

    def _image_embeddings(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.get_image_features(**self.naflex_inputs(pixels)).pooler_output

    def _pad_batch(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor | None]:
        padded = self.tokenizer.pad({"input_ids": rows}, padding="max_length", max_length=self.context_length,
                                    return_tensors="pt")
        return padded["input_ids"].long(), padded.get("attention_mask")

    def _text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        return self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output
