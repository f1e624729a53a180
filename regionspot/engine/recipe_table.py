"""Default training recipes by dataset size, chosen from a measured table (docs/train.md, "Recipes").

``benchmarks/quality/recipes.py`` trains heads on ShapesWorld subsets of the sizes users have with a grid of
(learning rate, batch, steps) and reports box AP on a fixed val set; :data:`MEASURED` keeps the best
point per size. :func:`default_recipe` interpolates between them (geometrically in the number of train
images) and extrapolates past the largest (steps grow with the square root of the size), and
:func:`fill_recipe` fills the keys a training config leaves unset.

The schedule around the three numbers is the one the table was measured with: linear warmup over the
first 5 % of the steps, the learning rate × 0.1 at 75 % and again at 92 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# (train images, lr, batch, steps): the best point per size of the measured table (docs/train.md, "Recipes").
MEASURED: tuple[tuple[int, float, int, int], ...] = (
    (60, 3e-4, 4, 600),
    (300, 3e-4, 8, 1200),
    (1500, 3e-4, 8, 1500),
)
MAX_STEPS = 20_000  # extrapolated schedules stop growing here


@dataclass(frozen=True)
class Recipe:
    """A training recipe: AdamW learning rate, images per step, steps; warmup and lr drops follow the steps."""

    lr: float
    batch_size: int
    max_iters: int

    @property
    def warmup_iters(self) -> int:
        return max(1, self.max_iters // 20)

    @property
    def lr_steps(self) -> list[int]:
        return [int(self.max_iters * 0.75), int(self.max_iters * 0.92)]

    def as_config(self) -> dict[str, Any]:
        """The TrainConfig keys this recipe sets."""
        return {"lr": self.lr, "batch_size": self.batch_size, "max_iters": self.max_iters,
                "warmup_iters": self.warmup_iters, "lr_steps": self.lr_steps}


def _geo(a: float, b: float, t: float) -> float:
    return math.exp((1 - t) * math.log(a) + t * math.log(b))


def default_recipe(num_train_images: int) -> Recipe:
    """The measured recipe for ``num_train_images`` annotated train images (interpolated between sizes).

    Below the smallest measured size its recipe is used as is; above the largest, lr and batch stay and
    the steps grow with sqrt(size), up to MAX_STEPS.
    """
    if num_train_images < 1:
        raise ValueError(f"A recipe needs at least one train image, got {num_train_images}.")
    sizes = [m[0] for m in MEASURED]
    if num_train_images <= sizes[0]:
        _, lr, batch, steps = MEASURED[0]
        return Recipe(lr, batch, steps)
    if num_train_images >= sizes[-1]:
        _, lr, batch, steps = MEASURED[-1]
        grown = steps * math.sqrt(num_train_images / sizes[-1])
        return Recipe(lr, batch, int(min(max(steps, round(grown, -1)), MAX_STEPS)))
    k = next(i for i, s in enumerate(sizes) if s >= num_train_images) - 1
    (n0, lr0, b0, s0), (n1, lr1, b1, s1) = MEASURED[k], MEASURED[k + 1]
    t = math.log(num_train_images / n0) / math.log(n1 / n0)
    batch = 2 ** round(math.log2(_geo(b0, b1, t)))
    return Recipe(float(f"{_geo(lr0, lr1, t):.2g}"), int(batch), int(round(_geo(s0, s1, t), -1)))


def fill_recipe(config: dict[str, Any], num_train_images: int) -> dict[str, Any]:
    """``config`` (a TrainConfig dict, e.g. read from YAML) with the recipe's keys it leaves unset filled in.

    Keys the config sets are kept; warmup_iters and lr_steps follow the recipe's steps only when the
    config sets neither them nor max_iters.
    """
    recipe = default_recipe(num_train_images).as_config()
    filled = dict(config)
    for key in ("lr", "batch_size", "max_iters"):
        filled.setdefault(key, recipe[key])
    if "max_iters" not in config:
        for key in ("warmup_iters", "lr_steps"):
            filled.setdefault(key, recipe[key])
    else:  # the user's length: the same shape of schedule around it
        steps = int(config["max_iters"])
        filled.setdefault("warmup_iters", Recipe(1.0, 1, steps).warmup_iters)
        filled.setdefault("lr_steps", Recipe(1.0, 1, steps).lr_steps)
    return filled
