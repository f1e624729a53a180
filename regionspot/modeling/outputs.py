"""Dataclasses returned by the model (habit 1: tensors in, a dataclass out)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class HeadOutput:
    """region_embeddings: (B, N, D) float, un-normalised region embeddings in the joint space."""

    region_embeddings: torch.Tensor


@dataclass
class RegionSpotOutput:
    """What ``RegionSpot.forward`` returns: B images' regions scored against a vocabulary.

    logits: (B, N, V) float32, logit_scale · cos(region, class); a softmax over V gives the class
        probabilities (``regionspot.modeling.postprocess``), a sigmoid focal loss trains them.
    region_embeddings: (B, N, D) float, un-normalised region embeddings in the joint space.
    """

    logits: torch.Tensor
    region_embeddings: torch.Tensor
