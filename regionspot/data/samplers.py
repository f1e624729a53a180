"""Batches drawn from several datasets, one dataset per batch, as a resumable deterministic stream.

Each batch comes from ONE dataset, so its regions are scored against that dataset's own vocabulary.
The stream is a pure function of (seed, step, per-dataset cursors):

- step ``t`` picks dataset ``d`` with probability proportional to ``weights[d]``, from
  ``default_rng([seed, t])``; every rank picks the same dataset at the same step (balanced DDP work).
- dataset ``d`` is read through an endless sequence of epochs, epoch ``e`` being the permutation
  ``default_rng([seed, d, e]).permutation(size_d)``; a cursor counts the indices consumed by all ranks.
- at each step the ranks together take the next ``batch_size * world_size`` indices of that dataset's
  sequence, and rank ``r`` keeps the ``r``-th slice, so ranks are disjoint within an epoch.

The state (step and cursors) is small and saved with :meth:`MultiDatasetSampler.state_dict`; loading it
continues the exact same stream.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from regionspot.errors import RegionSpotError


class MultiDatasetSampler:
    """Endless iterator of ``(dataset_index, [record indices])`` batches.

    dataset_sizes: number of records of each dataset. weights: relative probability that a batch comes
    from each dataset (non-negative, at least one positive). batch_size: records per batch per rank.
    rank / world_size: this process's place in distributed training.
    """

    def __init__(
        self,
        dataset_sizes: Sequence[int],
        weights: Sequence[float],
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        sizes = [int(s) for s in dataset_sizes]
        probs = np.asarray(weights, dtype=np.float64)
        if not sizes or len(sizes) != len(probs):
            raise ValueError(
                f"Give one weight per dataset: got {len(sizes)} dataset sizes and {len(probs)} weights."
            )
        if not np.isfinite(probs).all() or (probs < 0).any() or probs.sum() <= 0:
            raise RegionSpotError(f"Dataset weights must be finite, non-negative and not all zero, got {list(weights)}.")
        empty = [i for i, (s, p) in enumerate(zip(sizes, probs, strict=True)) if p > 0 and s <= 0]
        if empty:
            raise RegionSpotError(f"Datasets {empty} are empty but have a positive weight; give them weight 0.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"Need 0 <= rank < world_size, got rank={rank}, world_size={world_size}.")
        self.dataset_sizes = sizes
        self.weights = [float(w) for w in weights]
        self._probs = probs / probs.sum()
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.step = 0
        self.cursors = [0] * len(sizes)
        self._perm_cache: dict[int, tuple[int, np.ndarray]] = {}

    def _permutation(self, dataset: int, epoch: int) -> np.ndarray:
        cached = self._perm_cache.get(dataset)
        if cached is None or cached[0] != epoch:
            perm = np.random.default_rng([self.seed, dataset, epoch]).permutation(self.dataset_sizes[dataset])
            cached = (epoch, perm)
            self._perm_cache[dataset] = cached
        return cached[1]

    def _take(self, dataset: int, start: int, count: int) -> list[int]:
        """Indices ``start .. start+count`` of dataset ``dataset``'s endless permuted sequence."""
        size = self.dataset_sizes[dataset]
        out: list[int] = []
        position = start
        while len(out) < count:
            epoch, offset = divmod(position, size)
            chunk = self._permutation(dataset, epoch)[offset : offset + count - len(out)]
            out.extend(int(i) for i in chunk)
            position += len(chunk)
        return out

    def __iter__(self) -> Iterator[tuple[int, list[int]]]:
        return self

    def __next__(self) -> tuple[int, list[int]]:
        dataset = int(np.random.default_rng([self.seed, self.step]).choice(len(self._probs), p=self._probs))
        start = self.cursors[dataset] + self.rank * self.batch_size
        indices = self._take(dataset, start, self.batch_size)
        self.cursors[dataset] += self.batch_size * self.world_size
        self.step += 1
        return dataset, indices

    def state_dict(self) -> dict[str, Any]:
        """The position in the stream plus what defines it (checked on load)."""
        return {
            "step": self.step,
            "cursors": list(self.cursors),
            "seed": self.seed,
            "dataset_sizes": list(self.dataset_sizes),
            "weights": list(self.weights),
            "batch_size": self.batch_size,
            "world_size": self.world_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the stream saved by :meth:`state_dict`.

        The seed, dataset sizes, weights and batch size must match (otherwise the stream would differ and
        a RegionSpotError says which). A different world size is allowed: the cursors count records
        consumed by all ranks, so the stream continues without repeating records of the current epoch.
        """
        for key in ("seed", "dataset_sizes", "weights", "batch_size"):
            mine = getattr(self, key)
            if list(np.atleast_1d(state[key])) != list(np.atleast_1d(mine)):
                raise RegionSpotError(
                    f"Sampler state has {key}={state[key]} but this run has {mine}; resume with the same data settings."
                )
        self.step = int(state["step"])
        self.cursors = [int(c) for c in state["cursors"]]
        self._perm_cache.clear()
