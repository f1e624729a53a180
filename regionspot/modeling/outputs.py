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
    """One image's regions scored against a vocabulary.

    logits: (N, V) float32, logit_scale · cos(region, class).
    region_embeddings: (N, D) float32.
    tokens: (N, token_dim) float32, the segmenter's position-aware tokens.
    iou: (N,) float32 predicted mask IoU.
    masks: (N, H, W) bool at the original image size, or None.
    """

    logits: torch.Tensor
    region_embeddings: torch.Tensor
    tokens: torch.Tensor
    iou: torch.Tensor
    masks: torch.Tensor | None = None
