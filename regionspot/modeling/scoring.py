"""Scoring regions against a vocabulary: the one place ``logit_scale · cos(head(tokens, map), text)`` is
written. The model's forward, both training passes (the step and the accuracy check) and the evaluation
(through the model) call :func:`score_regions`; the CLIP crop baselines score their crop embeddings with
the same :func:`region_text_logits`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from regionspot.modeling.outputs import RegionSpotOutput

__all__ = ["region_text_logits", "score_regions"]


def region_text_logits(
    region_embeddings: torch.Tensor, text_embeddings: torch.Tensor, logit_scale: float | torch.Tensor
) -> torch.Tensor:
    """Scaled cosine similarity: ``logit_scale · cos(region, text)``.

    region_embeddings: (..., N, D), any norm; text_embeddings: (V, D), L2-normalised, on the same device.
    Returns (..., N, V) float32 (under an autocast context, the matmul runs in its dtype).
    """
    regions = F.normalize(region_embeddings.float(), dim=-1, eps=1e-7)
    return logit_scale * regions @ text_embeddings.float().t()


def score_regions(
    head: nn.Module,
    tokens: torch.Tensor,
    feature_map: torch.Tensor | None,
    text_embeddings: torch.Tensor,
    logit_scale: float | torch.Tensor,
    padding_mask: torch.Tensor | None = None,
    return_attention: bool = False,
) -> RegionSpotOutput:
    """Embed regions with the head and score them against the text embeddings.

    head: a ``RegionSpotHead`` (or a wrapper of it, e.g. DDP: it is called, not reached into).
    tokens: (B, N, token_dim) segmenter tokens; feature_map: (B, T, C) vision-language map incl. the
        class token, or None for a head that does not attend to it. Both are moved to the head's device
        and dtype (a no-op when they are there already).
    text_embeddings: (V, D) L2-normalised class embeddings (moved to the regions' device).
    logit_scale: the vision-language model's scale (CLIP: ≈ 100).
    padding_mask: (B, N) bool, True marks padded (absent) regions.
    return_attention: also return the head's cross-attention weights (B, L, heads, N, T) of this forward.
    Returns RegionSpotOutput with logits (B, N, V) float32 and region_embeddings (B, N, D), un-normalised.
    Gradients flow (the caller chooses ``no_grad`` / ``inference_mode`` / autocast around it).
    """
    param = next(head.parameters())
    tokens = tokens.to(device=param.device, dtype=param.dtype)
    if feature_map is not None:
        feature_map = feature_map.to(device=param.device, dtype=param.dtype)
    out = head(tokens, feature_map, padding_mask, return_attention=return_attention)
    regions = out.region_embeddings
    logits = region_text_logits(regions, text_embeddings.to(regions.device), logit_scale)
    return RegionSpotOutput(logits=logits, region_embeddings=regions, attention=out.attention)
