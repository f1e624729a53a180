"""The frozen TIPSv2 adapter (transformers ``Tipsv2Model``, model_type "tipsv2") for the ``VisionLanguage`` protocol.

TIPSv2 is text-image pretraining whose image tower (a DINOv2-with-registers ViT) is trained to have
spatially aware patch features: its dense features are the patch tokens of the tower's output sequence after
its final LayerNorm, the space in which they are compared with text. The tower's output sequence is
``[class token (aligned with web alt-text), R register tokens (TIPSv2: a second class token aligned with
synthetic captions), (S/p)² patch tokens]``, all normalised by ONE LayerNorm (unlike CLIP, whose post-LN is
applied to the pooled class token only).

- ``feature_map``: (B, 1 + R + (S/p)², C) float32, that whole sequence AFTER the final LayerNorm
  (``vision_model(...).last_hidden_state``): the spatially aware patch tokens TIPS trains, with both class
  tokens first (as CLIP's map carries its class token). Before the LN the tokens are the raw residual stream,
  which TIPS does not align with text, so the CLIP rule "before the post-LN" does not carry over.
- ``encode_image``: the normalised first class token (``pooler_output``), as ``Tipsv2Model`` scores images;
  TIPS has no projection, so D = C = the text width.
- ``encode_text``: the text tower's masked mean over the prompt's tokens (``get_text_features``); prompts are
  padded per batch to the longest one with an attention mask, which gives the embeddings of the processor's
  padding to 64 (the mask removes padding from attention and from the mean).
- scores: ``cos(image, text) / temperature`` with a softmax over texts (``logit_scale = 1 / temperature``).
- input: the whole image resized to S × S (PIL bilinear, the image processor's filter), pixels / 255 with
  no mean/std normalisation (the processor's ``do_normalize: false``); S defaults to the config's 448; other
  sizes interpolate the position grid (the tower does it itself).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image

from regionspot.backbones.vision_language import ClipAdapter

__all__ = ["TipsAdapter"]


class TipsAdapter(ClipAdapter):
    """A frozen transformers ``Tipsv2Model`` seen through the ``VisionLanguage`` protocol (see the module notes)."""

    has_class_token = True
    scoring_form = "softmax"
    default_templates = "imagenet"
    preprocess_defaults = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), int(Image.Resampling.BILINEAR))

    @staticmethod
    def _embed_dim(config) -> int:
        return int(config.text_config.hidden_size)

    @property
    def num_prefix_tokens(self) -> int:
        """The class token and the register tokens ahead of the patch tokens in the map."""
        return 1 + int(self.model.config.vision_config.num_register_tokens)

    @property
    def num_tokens(self) -> int:
        """T = 1 + R + (S/p)², the feature-map tokens at ``image_size``."""
        grid = self.image_size // self.patch_size
        return grid * grid + self.num_prefix_tokens

    @property
    def logit_scale(self) -> float:
        """1 / the model's temperature (TIPSv2 divides the cosine by it)."""
        return float(1.0 / self.model.temperature.detach().float())

    @torch.no_grad()
    def feature_map(self, images: Sequence[Image.Image] | torch.Tensor) -> torch.Tensor:
        """(B, 1 + R + (S/p)², C) float32: class, register and patch tokens after the tower's final LayerNorm."""
        pixels = self.preprocess(images)
        return self.model.vision_model(pixel_values=pixels).last_hidden_state.float()
