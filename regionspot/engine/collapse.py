"""A collapse check during training: warn, in one line with the fix, when a head stops learning.

A head that has collapsed gives (almost) every region the same label: the sigmoid focal loss is small
for a head that scores every class low, so a too-large step can park it there and the loss stays flat.
Three signs are watched:

- **one label for most regions**: over the last ``window`` logged intervals, more than ``dominant_share``
  of the training regions get the same top-1 class while the labels are diverse (the most common label
  holds less than ``max_label_share`` of them);
- **loss flat**: the mean loss of the later half of the last ``flat_logs`` logs is within ``flat_tolerance``
  (relative) of the earlier half while training accuracy stays below ``flat_max_accuracy``, before the
  first learning-rate drop (after it, a flat loss is convergence);
- **val AP far below the crop baseline** (when both are known): AP < ``baseline_ratio`` × the AP of
  CLIP on the box crop (:func:`check_val_ap`).

Each kind is reported once per run, through ``warnings.warn`` (:class:`CollapseWarning`) and the
training log callback; the library never prints.
"""

from __future__ import annotations

import warnings
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

import torch

from regionspot.errors import CollapseWarning


@dataclass
class CollapseCheck:
    """Thresholds of :class:`CollapseMonitor` (see the module docstring)."""

    dominant_share: float = 0.6
    max_label_share: float = 0.4
    window: int = 3
    min_regions: int = 50
    flat_logs: int = 10
    flat_tolerance: float = 0.01
    flat_max_accuracy: float = 0.5
    # A third: on the recipe table's val set (crop 45.5) it flags every lr 2e-3 head (10.6-13.1) and none
    # of the best ones (17.6-23.4); half would flag the best 60-image head (18.7).
    baseline_ratio: float = 1 / 3
    start_fraction: float = 0.1
    min_step: int = 50


def batch_label_counts(logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> tuple[Counter, Counter]:
    """(top-1 class counts, label counts) over the valid regions of a batch.

    logits: (B, N, V); labels: (B, N) int64; valid: (B, N) bool.
    """
    pred = logits.detach().argmax(-1)[valid].tolist()
    return Counter(pred), Counter(labels[valid].tolist())


def _fix(lr: float | None, batch_size: int | None) -> str:
    lower = f"lr={lr / 3:.2g}" if lr else "a lower lr"
    larger = f"batch_size={2 * batch_size}" if batch_size else "a larger batch_size"
    return (f"fix: train again with {lower} or {larger} (regionspot.engine.recipe_table.default_recipe(num_images) gives "
            "a measured recipe)")


class CollapseMonitor:
    """Watches a run's per-step metrics; :meth:`check` at each log step warns once per kind of collapse.

    lr / batch_size: the run's, to name the fix. max_iters: the run's length (no check in its first
    ``start_fraction`` nor before step ``min_step``: a head finding its feet often gives one label).
    flat_until: the step of the first learning-rate drop (no flat-loss check after it). log: called with
    the one-line warning.
    """

    def __init__(self, lr: float | None = None, batch_size: int | None = None, max_iters: int | None = None,
                 check: CollapseCheck | None = None, log: Callable[[str], None] | None = None,
                 flat_until: int | None = None) -> None:
        self.check_config = check or CollapseCheck()
        self.lr, self.batch_size, self.max_iters, self.log = lr, batch_size, max_iters, log
        self.flat_until = flat_until
        c = self.check_config
        self._pred: Counter = Counter()
        self._labels: Counter = Counter()
        self._windows: deque[tuple[Counter, Counter]] = deque(maxlen=c.window)
        self._losses: list[float] = []
        self._accuracies: list[float] = []
        self._logs: deque[tuple[float, float]] = deque(maxlen=c.flat_logs)
        self.warned: dict[str, str] = {}

    def observe_batch(self, logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> None:
        """Add one step's predictions: logits (B, N, V), labels (B, N) int64, valid (B, N) bool."""
        pred, labs = batch_label_counts(logits, labels, valid)
        self._pred.update(pred)
        self._labels.update(labs)

    def observe(self, metrics: dict) -> None:
        """Add one step's metrics ({"loss", "accuracy"})."""
        self._losses.append(float(metrics["loss"]))
        self._accuracies.append(float(metrics.get("accuracy", 0.0)))

    def check(self, step: int) -> list[str]:
        """Close the logged interval ending at ``step``; warn about new signs of collapse; return the lines."""
        c = self.check_config
        if self._losses:
            n = len(self._losses)
            self._logs.append((sum(self._losses) / n, sum(self._accuracies) / n))
        self._windows.append((self._pred, self._labels))
        self._losses, self._accuracies, self._pred, self._labels = [], [], Counter(), Counter()
        if step < c.min_step or (self.max_iters and step < c.start_fraction * self.max_iters):
            return []
        lines = []
        one_label = self._one_label()
        if one_label is not None and "one_label" not in self.warned:
            lines.append(self._warn("one_label", f"step {step}: {one_label}"))
        flat = self._flat() if self.flat_until is None or step <= self.flat_until else None
        if flat is not None and "flat" not in self.warned:
            lines.append(self._warn("flat", f"step {step}: {flat}"))
        return lines

    def _one_label(self) -> str | None:
        c = self.check_config
        if len(self._windows) < c.window:
            return None
        pred, labels = Counter(), Counter()
        for p, lab in self._windows:
            pred.update(p)
            labels.update(lab)
        total = sum(labels.values())
        if total < c.min_regions:
            return None
        top_class, top_count = pred.most_common(1)[0]
        share, label_share = top_count / total, labels.most_common(1)[0][1] / total
        if share > c.dominant_share and label_share < c.max_label_share:
            return (f"{100 * share:.0f}% of training regions get one label (class {top_class}) while the most common "
                    f"label is {100 * label_share:.0f}% of them: the head has collapsed")
        return None

    def _flat(self) -> str | None:
        c = self.check_config
        if len(self._logs) < c.flat_logs:
            return None
        half = c.flat_logs // 2
        losses = [loss for loss, _ in self._logs]
        early, late = sum(losses[:half]) / half, sum(losses[half:]) / (len(losses) - half)
        accuracy = sum(acc for _, acc in list(self._logs)[half:]) / (len(losses) - half)
        if abs(early - late) <= c.flat_tolerance * max(abs(early), 1e-12) and accuracy < c.flat_max_accuracy:
            return (f"the loss is flat ({early:.4g} -> {late:.4g} over the last {c.flat_logs} logs) at training "
                    f"accuracy {100 * accuracy:.0f}%: the head has stopped learning")
        return None

    def _warn(self, kind: str, text: str) -> str:
        line = f"collapse check: {text}; {_fix(self.lr, self.batch_size)}"
        self.warned[kind] = line
        warnings.warn(line, CollapseWarning, stacklevel=3)
        if self.log is not None:
            self.log(line)
        return line


def check_val_ap(ap: float, baseline_ap: float | None, lr: float | None = None, batch_size: int | None = None,
                 ratio: float = CollapseCheck.baseline_ratio) -> str | None:
    """Warn (and return the line) when a head's val box AP is below ``ratio`` × the crop baseline's AP.

    ap / baseline_ap: box AP of the head and of CLIP on the box crop, same val set and scale (fractions
    or × 100). None baseline: nothing to compare, no warning.
    """
    if baseline_ap is None or baseline_ap <= 0 or ap >= ratio * baseline_ap:
        return None
    line = (f"collapse check: val box AP {ap:.3g} is below {ratio:.2g} x the crop baseline's {baseline_ap:.3g}; "
            f"{_fix(lr, batch_size)}")
    warnings.warn(line, CollapseWarning, stacklevel=2)
    return line
