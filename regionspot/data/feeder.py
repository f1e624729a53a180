"""The image feeder: the CPU work of a model's inputs (decode, resize, the encoders' preprocessing), done a
batch at a time ahead of the consumer, in threads of this process or in worker processes.

``feed(items, prepare, batch_size, collate=...)`` yields ``collate([prepare(item) for item in chunk])`` for
consecutive chunks of ``batch_size`` items, in the items' order, while the consumer works on the batch
before:

- ``workers=0``: two threads of this process prepare the next batch (PIL decodes and resizes release the
  GIL; nothing is pickled);
- ``workers=N``: N worker processes (``torch.utils.data.DataLoader``), two batches ahead each; ``prepare``
  and ``collate`` must then be picklable (a module-level function, a ``functools.partial`` of one, a
  frozen dataclass with ``__call__``); ``collate`` runs in the worker, so each batch crosses processes once;
- ``pin=True``: the batch's tensors in page-locked memory (a CUDA consumer copies them asynchronously): a
  tensor is pinned, an object with a ``pin_memory()`` method is replaced by what it returns.

Both give the same batches. An exception raised by ``prepare`` or ``collate`` reaches the consumer as
itself (not wrapped by the data loader) when it gets to that batch; a caller who wants a failed item
instead of an error catches it inside ``prepare``.

The feeder knows nothing of the models: each caller passes its ``prepare`` (``engine.eval_inputs`` for
evaluation, ``cache.inputs`` for the token cache, ``engine.online_maps`` for training's online feature
maps). :func:`stack_inputs` is the ``collate`` of items prepared for both encoders (a segmenter's and a
vision-language model's inputs, or a failure): an :class:`InputBatch`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["InputBatch", "default_workers", "feed", "pin_batch", "stack_inputs"]

T = TypeVar("T")
R = TypeVar("R")
PREPARE_THREADS = 2  # threads of this process that prepare items when workers=0


def default_workers(device: torch.device | str) -> int:
    """Worker processes when none are asked for: 0 on a CPU (the model needs its cores), else
    min(4, CPUs this process may use - 1)."""
    if torch.device(device).type == "cpu":
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(4, cpus - 1))


def pin_batch(batch: Any) -> Any:
    """``batch`` with its tensors page-locked: a tensor is pinned, an object with ``pin_memory()`` (a
    dataclass batch) gives what that returns, a list or tuple is pinned item by item; anything else is kept."""
    if isinstance(batch, torch.Tensor) or hasattr(batch, "pin_memory"):
        return batch.pin_memory()
    if isinstance(batch, (list, tuple)):
        return type(batch)(pin_batch(item) for item in batch)
    return batch


@dataclass
class InputBatch:
    """Consecutive prepared items, for a segmenter and a vision-language model.

    items: the items in order, their inputs dropped (each input crosses processes once, stacked); good: the
    indexes of the items prepared without error; sam: the good items' segmenter inputs joined by their
    class's ``cat`` (a ``SegmenterBatch``), or None; clip: their vision-language pixels concatenated
    ((G, 3, S, S) float32), or None.
    """

    items: list[Any]
    good: list[int] = field(default_factory=list)
    sam: Any = None
    clip: torch.Tensor | None = None

    def pin_memory(self) -> InputBatch:
        """The batch with its tensors page-locked (``DataLoader(pin_memory=True)`` calls this)."""
        return replace(self, sam=None if self.sam is None else self.sam.pin_memory(),
                       clip=None if self.clip is None else self.clip.pin_memory())


def stack_inputs(items: list[Any]) -> InputBatch:
    """The ``collate`` of prepared items that are dataclasses with fields ``error`` (None once prepared),
    ``sam`` (an object whose class has ``cat``) and ``clip`` (a tensor or None); runs in the worker."""
    good = [i for i, item in enumerate(items) if item.error is None]
    sam = type(items[good[0]].sam).cat([items[i].sam for i in good]) if good else None
    clip = torch.cat([items[i].clip for i in good]) if good and items[good[0]].clip is not None else None
    return InputBatch(items=[replace(item, sam=None, clip=None) for item in items], good=good, sam=sam, clip=clip)


@dataclass
class _Raised:
    """An exception met in a worker, carried to the consumer to be raised there as itself."""

    error: BaseException

    def pin_memory(self) -> _Raised:
        return self


@dataclass(frozen=True)
class _Prepare:
    prepare: Callable[[Any], Any]

    def __call__(self, item: Any) -> Any:
        try:
            return self.prepare(item)
        except Exception as error:  # noqa: BLE001 — re-raised by the consumer, as itself
            return _Raised(error)


@dataclass(frozen=True)
class _Collate:
    collate: Callable[[list], Any]

    def __call__(self, prepared: list) -> Any:
        raised = next((p for p in prepared if isinstance(p, _Raised)), None)
        if raised is not None:
            return raised
        try:
            return self.collate(prepared)
        except Exception as error:  # noqa: BLE001
            return _Raised(error)


class _Items(Dataset):
    def __init__(self, items: Sequence[Any], prepare: _Prepare) -> None:
        self.items, self.prepare = items, prepare

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        return self.prepare(self.items[index])


def feed(
    items: Sequence[T],
    prepare: Callable[[T], R],
    batch_size: int,
    *,
    collate: Callable[[list[R]], Any] = list,
    workers: int = 0,
    pin: bool = False,
) -> Iterator[Any]:
    """``collate([prepare(item) ...])`` of consecutive chunks of ``batch_size`` items, in order, prepared
    ahead of the consumer (see the module's docstring for ``workers`` and ``pin``).

    Raises, when the consumer reaches the batch, the first exception ``prepare`` raised for one of its items.
    """
    if batch_size < 1 or workers < 0:
        raise ValueError(f"feed needs batch_size >= 1 and workers >= 0, got {batch_size} and {workers}.")
    if len(items) == 0:
        return
    wrapped, combine = _Prepare(prepare), _Collate(collate)
    if workers > 0:
        batches: Iterator[Any] = iter(DataLoader(_Items(items, wrapped), batch_size=batch_size, shuffle=False,
                                                 num_workers=workers, collate_fn=combine, pin_memory=pin,
                                                 prefetch_factor=2))
    else:
        batches = _threaded(items, wrapped, combine, batch_size, pin)
    try:
        for batch in batches:
            if isinstance(batch, _Raised):
                raise batch.error
            yield batch
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()


def _threaded(items: Sequence[Any], prepare: _Prepare, combine: _Collate, batch_size: int, pin: bool) -> Iterator[Any]:
    """The batches, each prepared by ``PREPARE_THREADS`` threads while the consumer uses the one before."""
    chunks = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]

    def load(chunk: Sequence[Any], pool: ThreadPoolExecutor) -> Any:
        batch = combine(list(pool.map(prepare, chunk)))
        return pin_batch(batch) if pin and not isinstance(batch, _Raised) else batch

    with ThreadPoolExecutor(max_workers=PREPARE_THREADS) as pool, ThreadPoolExecutor(max_workers=1) as ahead:
        pending = ahead.submit(load, chunks[0], pool)
        try:
            for index in range(len(chunks)):
                batch = pending.result()
                if index + 1 < len(chunks):
                    pending = ahead.submit(load, chunks[index + 1], pool)
                yield batch
        finally:
            pending.cancel()
