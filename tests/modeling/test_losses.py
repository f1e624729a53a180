"""The focal loss's negatives: label -1 means an all-zero target row, and the loss is per labelled region."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from regionspot.modeling.losses import sigmoid_focal_loss


def _focal(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-region focal loss (alpha 0.25, gamma 2) of explicit targets: (B, N, V) -> (B, N)."""
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    pt = p * targets + (1 - p) * (1 - targets)
    return ((0.25 * targets + 0.75 * (1 - targets)) * ce * (1 - pt) ** 2).sum(-1)


def test_a_negative_has_all_zero_targets_and_the_sum_is_divided_by_the_labelled_regions():
    torch.manual_seed(0)
    logits = torch.randn(1, 4, 5)
    labels = torch.tensor([[3, -1, 0, -1]])
    valid = torch.tensor([[True, True, True, False]])  # the last negative is padding
    targets = torch.zeros(1, 4, 5)
    targets[0, 0, 3] = targets[0, 2, 0] = 1.0
    per = _focal(logits, targets)
    expected = (per[0, 0] + per[0, 1] + per[0, 2]) / 2  # three valid regions, two of them labelled
    torch.testing.assert_close(sigmoid_focal_loss(logits, labels, valid), expected)
    # Read as class 0 (what a clamp alone would do), the negative would get another loss.
    targets[0, 1, 0] = 1.0
    assert not torch.isclose(sigmoid_focal_loss(logits, labels, valid), (per[0, 0] + _focal(logits, targets)[0, 1]
                                                                         + per[0, 2]) / 2)


def test_the_loss_pushes_every_class_down_on_a_negative():
    logits = torch.zeros(1, 1, 6, requires_grad=True)
    sigmoid_focal_loss(logits, torch.tensor([[-1]])).backward()
    assert (logits.grad > 0).all()  # gradient descent lowers every class's logit


def test_without_negatives_it_is_the_mean_over_valid_regions():
    torch.manual_seed(1)
    logits, labels = torch.randn(2, 3, 4), torch.tensor([[0, 1, 2], [3, 0, 1]])
    valid = torch.tensor([[True, True, False], [True, True, True]])
    per = _focal(logits, F.one_hot(labels, 4).float())
    torch.testing.assert_close(sigmoid_focal_loss(logits, labels, valid), per[valid].mean())
    torch.testing.assert_close(sigmoid_focal_loss(logits, labels), per.mean())
