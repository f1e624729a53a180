"""Dataclasses returned by the model (habit 1: tensors in, a dataclass out)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class HeadOutput:
    """region_embeddings: (B, N, D) float, un-normalised region embeddings in the joint space.

    attention: (B, L, heads, N, T) float, when asked for (``return_attention``): layer l's cross-attention
        weights of each region over the T tokens it attends to (the feature map, class token first), as
        that forward used them; each row sums to 1 over T. None otherwise.
    """

    region_embeddings: torch.Tensor
    attention: torch.Tensor | None = None


@dataclass
class RegionSpotOutput:
    """What ``RegionSpot.forward`` returns: B images' regions scored against a vocabulary.

    logits: (B, N, V) float32, logit_scale · cos(region, class); a softmax over V gives the class
        probabilities (``regionspot.modeling.postprocess``), a sigmoid focal loss trains them.
    region_embeddings: (B, N, D) float, un-normalised region embeddings in the joint space.
    attention: (B, L, heads, N, T) float cross-attention weights of the head's forward, when asked for.
    """

    logits: torch.Tensor
    region_embeddings: torch.Tensor
    attention: torch.Tensor | None = None
