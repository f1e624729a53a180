"""Step- or time-budgeted schedules of the pre-training loops, and the progress bar that follows them.

A run has ``steps`` and an optional ``max_seconds``: the schedule position is
max(step / steps, elapsed / max_seconds), so a time budget ends training on schedule (the cosine decay
reaches its end when the time is up) and the bar counts seconds instead of steps.
"""

from __future__ import annotations

from typing import Protocol

from tqdm.auto import tqdm


class Budget(Protocol):
    """What a pre-training config says about its length."""

    steps: int
    max_seconds: float | None


def schedule_progress(step: int, elapsed: float, budget: Budget) -> float:
    """The schedule position in [0, ∞): >= 1 means the run is over. elapsed: seconds since training began."""
    by_step = step / max(1, budget.steps)
    by_time = elapsed / budget.max_seconds if budget.max_seconds else 0.0
    return max(by_step, by_time)


def progress_bar(desc: str, budget: Budget, show: bool) -> tqdm:
    """A bar over steps, or over seconds when the run has a time budget."""
    if budget.max_seconds:
        return tqdm(total=int(budget.max_seconds), desc=f"{desc} (s)", disable=not show, leave=False)
    return tqdm(total=budget.steps, desc=desc, disable=not show, leave=False)


def advance(bar: tqdm, step: int, elapsed: float, budget: Budget) -> None:
    """Move ``bar`` to the end of ``step`` (0-based), or to ``elapsed`` seconds under a time budget."""
    done = min(int(elapsed), int(budget.max_seconds)) if budget.max_seconds else step + 1
    bar.update(done - bar.n)
