"""The collapse check: one label for most regions, a flat loss, val AP far below the crop baseline — and its
hook in the training loop (a run forced to collapse warns, the same run left alone does not)."""

from __future__ import annotations

import warnings

import pytest
import torch

from regionspot.engine import train as train_module
from regionspot.engine.collapse import CollapseCheck, CollapseMonitor, check_val_ap
from regionspot.errors import CollapseWarning
from tests.engine.test_train import env, make_config  # noqa: F401  (the module fixture)

V = 16


def _batch(pred: list[int], labels: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """logits (1, N, V) whose argmax is ``pred``, labels (1, N), valid (1, N)."""
    logits = torch.zeros(1, len(pred), V)
    logits[0, torch.arange(len(pred)), torch.tensor(pred)] = 1.0
    return logits, torch.tensor([labels]), torch.ones(1, len(pred), dtype=torch.bool)


def _run(monitor: CollapseMonitor, steps: int, predict, loss, log_every: int = 5, first: int = 1) -> list[str]:
    gen = torch.Generator().manual_seed(0)
    lines = []
    for step in range(first, first + steps):
        labels = torch.randint(0, V, (20,), generator=gen).tolist()
        monitor.observe_batch(*_batch(predict(labels, gen), labels))
        monitor.observe({"loss": loss(step), "accuracy": 0.1})
        if step % log_every == 0:
            lines += monitor.check(step)
    return lines


def test_one_label_for_most_regions_warns_once_with_the_fix():
    monitor = CollapseMonitor(lr=2e-3, batch_size=4, max_iters=100)
    with pytest.warns(CollapseWarning, match="one label") as caught:
        lines = _run(monitor, 100, lambda labels, gen: [3] * len(labels), lambda s: 1.0 / s)
    assert len(lines) == 1 and len([w for w in caught if "one label" in str(w.message)]) == 1
    assert "class 3" in lines[0] and "lr=0.00067" in lines[0] and "batch_size=8" in lines[0]


def test_diverse_predictions_and_a_falling_loss_do_not_warn():
    monitor = CollapseMonitor(lr=1e-3, batch_size=8, max_iters=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)
        # half right, half random: the labels' own diversity
        lines = _run(monitor, 100, lambda labels, gen: [la if k % 2 else int(torch.randint(0, V, (1,), generator=gen))
                                                        for k, la in enumerate(labels)], lambda s: 1.0 / s)
    assert lines == [] and monitor.warned == {}


def test_one_label_is_fine_when_the_labels_are_one_class():
    monitor = CollapseMonitor(max_iters=100)
    gen_labels = [5] * 20
    for step in range(1, 101):
        monitor.observe_batch(*_batch([5] * 20, gen_labels))
        monitor.observe({"loss": 1.0 / step, "accuracy": 1.0})
        if step % 5 == 0:
            assert monitor.check(step) == []


def test_a_flat_loss_at_low_accuracy_warns_and_not_before_the_start_fraction():
    monitor = CollapseMonitor(lr=1e-3, batch_size=8, max_iters=1000)
    diverse = lambda labels, gen: list(labels)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)
        assert _run(monitor, 60, diverse, lambda s: 0.05) == []  # steps 1-60 < 10 % of 1000: no check yet
    early = CollapseMonitor(max_iters=100)  # nor before step 50, whatever the run's length
    assert _run(early, 45, lambda labels, gen: [3] * len(labels), lambda s: 0.05) == []
    with pytest.warns(CollapseWarning, match="flat"):
        lines = _run(monitor, 200, diverse, lambda s: 0.05)
    assert any("loss is flat" in line for line in lines)
    converged = CollapseMonitor(max_iters=1000, flat_until=300)  # the same flat loss after the first lr drop
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)
        _run(converged, 300, diverse, lambda s: 1.0 / s)
        assert _run(converged, 200, diverse, lambda s: 0.05, first=301) == []


def test_val_ap_far_below_the_crop_baseline():
    with pytest.warns(CollapseWarning, match="crop baseline"):
        assert "batch_size=8" in check_val_ap(4.3, 33.2, lr=2e-3, batch_size=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)
        assert check_val_ap(21.9, 33.2) is None and check_val_ap(4.3, None) is None
        assert check_val_ap(18.7, 45.5) is None  # the recipe table's best 60-image head beside its crop baseline
    with pytest.warns(CollapseWarning):
        check_val_ap(13.1, 45.5)  # the table's 300-image head at lr 2e-3


def test_training_warns_when_forced_to_collapse_and_not_otherwise(env, tmp_path, monkeypatch):  # noqa: F811
    check = CollapseCheck(min_regions=10, min_step=0)
    monkeypatch.setattr(train_module, "CollapseMonitor",
                        lambda *a, **kw: CollapseMonitor(*a, **{**kw, "check": check}))
    lines: list[str] = []
    config = make_config(env, tmp_path / "healthy", max_iters=40, log_every=5, checkpoint_every=40, lr=3e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)
        train_module.train(config, show_progress=False, log=lines.append)
    assert not any("collapse" in line for line in lines)

    real = train_module.score_regions

    def one_label(*args, **kwargs):  # every region's top-1 is class 0, whatever the head learns
        out = real(*args, **kwargs)
        out.logits = out.logits + torch.nn.functional.one_hot(
            torch.zeros_like(out.logits[..., 0], dtype=torch.long), out.logits.shape[-1]) * 1e3
        return out

    monkeypatch.setattr(train_module, "score_regions", one_label)
    config = make_config(env, tmp_path / "collapsed", max_iters=40, log_every=5, checkpoint_every=40, lr=3e-3)
    with pytest.warns(CollapseWarning, match="one label"):
        train_module.train(config, show_progress=False, log=lines.append)
    assert sum("collapse check" in line for line in lines) == 1
