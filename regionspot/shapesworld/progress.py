"""Step- or time-budgeted schedules of the pre-training loops, the loop itself, and its progress bar.

A run has ``steps`` and an optional ``max_seconds``: the schedule position is
max(step / steps, elapsed / max_seconds), so a time budget ends training on schedule (the cosine decay
reaches its end when the time is up) and the bar counts seconds instead of steps.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.std import tqdm

from regionspot.engine.optim import cosine_lr
from regionspot.utils import progress as bars


class Budget(Protocol):
    """What a pre-training config says about its length and learning rate."""

    steps: int
    max_seconds: float | None
    lr: float
    warmup_steps: int


def schedule_progress(step: int, elapsed: float, budget: Budget) -> float:
    """The schedule position in [0, ∞): >= 1 means the run is over. elapsed: seconds since training began."""
    by_step = step / max(1, budget.steps)
    by_time = elapsed / budget.max_seconds if budget.max_seconds else 0.0
    return max(by_step, by_time)


def progress_bar(desc: str, budget: Budget, show: bool) -> tqdm:
    """A bar over steps, or over seconds when the run has a time budget."""
    if budget.max_seconds:
        return bars.progress_bar(total=int(budget.max_seconds), desc=f"{desc} (s)", disable=not show, leave=False)
    return bars.progress_bar(total=budget.steps, desc=desc, disable=not show, leave=False)


def advance(bar: tqdm, step: int, elapsed: float, budget: Budget) -> None:
    """Move ``bar`` to the end of ``step`` (0-based), or to ``elapsed`` seconds under a time budget."""
    done = min(int(elapsed), int(budget.max_seconds)) if budget.max_seconds else step + 1
    bar.update(done - bar.n)


def train_on_budget(
    desc: str,
    budget: Budget,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step_loss: Callable[[int, float], torch.Tensor],
    show_progress: bool,
    after_step: Callable[[], None] | None = None,
    postfix: Callable[[], dict[str, str]] | None = None,
) -> list[float]:
    """The pre-training loop: per step, the warm-up + cosine lr at the schedule position, ``step_loss(step,
    progress)``, backward, gradient norm clipped to 1, optimizer step, ``after_step()``. Stops when the
    step or time budget is spent. Returns the loss of every step taken."""
    losses: list[float] = []
    start = time.perf_counter()
    bar = progress_bar(desc, budget, show_progress)
    for step in range(budget.steps):
        progress = schedule_progress(step, time.perf_counter() - start, budget)
        if progress >= 1.0:
            break
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(budget.lr, step, budget.warmup_steps, progress)
        loss = step_loss(step, progress)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if after_step is not None:
            after_step()
        losses.append(float(loss.detach()))
        advance(bar, step, time.perf_counter() - start, budget)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", **(postfix() if postfix else {}))
    bar.close()
    return losses


def loss_ends(losses: list[float]) -> tuple[float, float]:
    """Mean loss of the first and of the last 10 steps (NaN when no step ran)."""
    if not losses:
        return float("nan"), float("nan")
    return float(np.mean(losses[:10])), float(np.mean(losses[-10:]))


def write_pretrain_metrics(out_dir: Path, result: Any, config: Any) -> None:
    """``out_dir/pretrain_metrics.json``: the result dataclass's fields plus the config that made it."""
    metrics = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(result).items()}
    metrics["config"] = asdict(config)
    (out_dir / "pretrain_metrics.json").write_text(json.dumps(metrics, indent=2))
