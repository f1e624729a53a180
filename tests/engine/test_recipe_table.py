"""Default recipes by dataset size: the measured points, interpolation between them, and filling a config."""

from __future__ import annotations

import pytest

from regionspot.engine.config import TrainConfig
from regionspot.engine.recipe_table import MEASURED, Recipe, default_recipe, fill_recipe


def test_measured_sizes_give_their_measured_point():
    for size, lr, batch, steps in MEASURED:
        assert default_recipe(size) == Recipe(lr, batch, steps)


def test_between_sizes_is_between_and_more_data_never_means_fewer_steps():
    sizes = [1, 10, 60, 100, 200, 300, 700, 1000, 1500, 5000, 10**6]
    recipes = [default_recipe(n) for n in sizes]
    steps = [r.max_iters for r in recipes]
    assert steps == sorted(steps) and steps[-1] <= 20_000
    lrs, batches = [m[1] for m in MEASURED], [m[2] for m in MEASURED]
    for r in recipes:
        assert min(lrs) <= r.lr <= max(lrs) and min(batches) <= r.batch_size <= max(batches)
    assert default_recipe(1) == default_recipe(MEASURED[0][0])
    with pytest.raises(ValueError, match="at least one"):
        default_recipe(0)


def test_schedule_follows_the_steps():
    r = Recipe(1e-3, 8, 1000)
    assert (r.warmup_iters, r.lr_steps) == (50, [750, 920])
    assert r.as_config() == {"lr": 1e-3, "batch_size": 8, "max_iters": 1000, "warmup_iters": 50, "lr_steps": [750, 920]}


def test_fill_recipe_fills_only_unset_keys_and_makes_a_valid_config():
    base = {"datasets": [{"cache": "caches/mine"}], "cpu": True}
    filled = fill_recipe(base, 60)
    assert {k: filled[k] for k in ("lr", "batch_size", "max_iters")} == {
        "lr": MEASURED[0][1], "batch_size": MEASURED[0][2], "max_iters": MEASURED[0][3]}
    config = TrainConfig.from_dict(filled)
    assert config.lr_steps == default_recipe(60).lr_steps and base == {"datasets": [{"cache": "caches/mine"}], "cpu": True}
    own = fill_recipe({**base, "lr": 5e-4, "max_iters": 400}, 60)
    assert (own["lr"], own["max_iters"], own["batch_size"]) == (5e-4, 400, MEASURED[0][2])
    assert (own["warmup_iters"], own["lr_steps"]) == (20, [300, 368])
