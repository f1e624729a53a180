"""Scoring regions against a vocabulary: the one place ``logit_scale · cos(head(tokens, map), text)`` is
written. The model's forward, both training passes (the step and the accuracy check) and the evaluation
(through the model) call :func:`score_regions`; the CLIP crop baselines score their crop embeddings with
the same :func:`region_text_logits`.

Scoring forms (``SCORING_FORMS``; each vision-language adapter names its own as ``scoring_form``):

- ``"softmax"`` (CLIP, MetaCLIP 2, TIPSv2): logits ``scale · cos``; a softmax over the vocabulary.
- ``"sigmoid"`` (SigLIP, SigLIP 2): logits ``scale · cos + bias`` with the model's own bias; each
  region-class pair is an independent sigmoid (:func:`class_probabilities`). The training loss (a sigmoid
  focal loss) sees these biased logits. A softmax over the vocabulary, which the AP protocol and the shown
  confidence use for every model, does not change with the bias.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from regionspot.modeling.outputs import RegionSpotOutput

__all__ = ["SCORING_FORMS", "class_probabilities", "region_text_logits", "score_regions"]

SCORING_FORMS = ("softmax", "sigmoid")


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
    logit_bias: float | torch.Tensor | None = None,
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
    logit_bias: the sigmoid-trained model's bias (SigLIP), added to every logit; None (CLIP) adds nothing.
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
    if logit_bias is not None:
        logits = logits + logit_bias
    return RegionSpotOutput(logits=logits, region_embeddings=regions, attention=out.attention)


def class_probabilities(logits: torch.Tensor, form: str = "softmax") -> torch.Tensor:
    """(..., V) logits -> (..., V) float32 probabilities in scoring ``form``: a softmax over V ("softmax"), or
    an independent sigmoid per class ("sigmoid", the logits already biased by :func:`score_regions`)."""
    if form == "softmax":
        return torch.softmax(logits.float(), dim=-1)
    if form == "sigmoid":
        return torch.sigmoid(logits.float())
    raise ValueError(f"Unknown scoring form {form!r}; choose one of {', '.join(SCORING_FORMS)}.")
