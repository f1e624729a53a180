"""Optimizer and learning-rate schedule: AdamW, linear warmup, then step decay (the paper's recipe)."""

from __future__ import annotations

import torch
from torch import nn


def build_optimizer(
    model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.999)
) -> torch.optim.AdamW:
    """AdamW over the parameters that require grad.

    Matrices get ``weight_decay``; biases and LayerNorm weights (1-D parameters) get none.
    """
    decay, no_decay = [], []
    for _, param in sorted(model.named_parameters()):
        if not param.requires_grad:
            continue
        (decay if param.ndim >= 2 else no_decay).append(param)
    if not decay and not no_decay:
        raise ValueError("The model has no trainable parameters.")
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=betas)


def lr_factor(step: int, warmup_iters: int, warmup_factor: float, lr_steps: list[int], gamma: float) -> float:
    """Multiplier of the base lr at ``step`` (0-based): linear warmup from ``warmup_factor``, then ×gamma per milestone."""
    factor = gamma ** sum(step >= s for s in lr_steps)
    if step < warmup_iters:
        alpha = step / warmup_iters
        factor *= warmup_factor * (1 - alpha) + alpha
    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    warmup_iters: int,
    warmup_factor: float,
    lr_steps: list[int],
    gamma: float,
) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR with :func:`lr_factor`; call ``step()`` once per optimizer step."""
    steps = list(lr_steps)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup_iters, warmup_factor, steps, gamma)
    )
