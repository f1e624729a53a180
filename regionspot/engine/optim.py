"""The one home of optimizer parameter groups and learning-rate schedules.

The head trains with the paper's recipe (AdamW, linear warmup, then step decay: :func:`build_optimizer`,
:func:`build_scheduler`); the ShapesWorld backbones pretrain with a warmup + cosine schedule
(:func:`cosine_lr`). Both take their parameter groups from :func:`param_groups`.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float, no_decay_names: tuple[str, ...] = ()) -> list[dict]:
    """Two AdamW groups over the parameters that require grad, in sorted-name order.

    Matrices get ``weight_decay``; 1-D parameters (biases, LayerNorm weights) and any parameter whose
    name contains one of ``no_decay_names`` (e.g. "embed", "logit_scale") get none.
    """
    decay, no_decay = [], []
    for name, param in sorted(model.named_parameters()):
        if not param.requires_grad:
            continue
        if param.ndim < 2 or any(part in name for part in no_decay_names):
            no_decay.append(param)
        else:
            decay.append(param)
    if not decay and not no_decay:
        raise ValueError("The model has no trainable parameters.")
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(
    model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.999)
) -> torch.optim.AdamW:
    """AdamW over the head's trainable parameters (see :func:`param_groups`)."""
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas)


def cosine_lr(base: float, step: int, warmup: int, progress: float) -> float:
    """Linear warm-up for ``warmup`` steps, then cosine from ``base`` to 2% of it over ``progress`` 0..1."""
    if step < warmup:
        return base * (step + 1) / warmup
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


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
