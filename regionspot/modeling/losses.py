"""Training losses, separate from the model (habit 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sigmoid_focal_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    valid: torch.Tensor | None = None,
    alpha: float = 0.25,
    gamma: float = 2.0,
) -> torch.Tensor:
    """Sigmoid focal loss over one-hot targets, summed over classes and averaged over labelled regions.

    logits: (B, N, V) float; labels: (B, N) long class index in [0, V), or -1 for a negative (a background
    box, an object of a class outside the vocabulary): its target is all zeros, so every class is pushed
    down on it; valid: (B, N) bool, False for padded regions (they contribute nothing). The sum over valid
    regions is divided by the number of valid labelled ones (labels >= 0; at least 1), as RetinaNet divides
    by its positives, so adding negatives does not shrink the labelled regions' share. Without negatives
    this is the mean over valid regions. Returns a scalar.
    """
    logits = logits.float()
    known = labels >= 0
    targets = F.one_hot(labels.clamp(min=0), logits.shape[-1]).to(logits.dtype)  # (B, N, V)
    targets = targets * known.unsqueeze(-1).to(logits.dtype)  # negatives: all-zero targets
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    per_region = loss.sum(-1)  # (B, N)
    valid = torch.ones_like(known) if valid is None else valid.bool()
    weight = valid.to(per_region.dtype)
    return (per_region * weight).sum() / (valid & known).sum().to(per_region.dtype).clamp(min=1.0)


class SigmoidFocalLoss(torch.nn.Module):
    """Callable wrapper so a training loop can hold the criterion like DETR does."""

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0) -> None:
        super().__init__()
        self.alpha, self.gamma = alpha, gamma

    def forward(self, logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        return sigmoid_focal_loss(logits, labels, valid, self.alpha, self.gamma)
