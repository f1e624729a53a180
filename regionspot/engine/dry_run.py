"""``regionspot train --dry-run``: build everything a run needs and take a few steps on every dataset.

It opens and checks each cache, loads the vision-language model, embeds every dataset's vocabulary,
builds the head, loss, optimizer and schedule exactly as :func:`regionspot.engine.train.train` does, and
then runs ``steps_per_dataset`` optimisation steps on *each* dataset in turn (a real run draws datasets
at random, so a few random steps could miss one). Nothing is written outside a temporary folder: not the
run folder, not the user cache (``$REGIONSPOT_CACHE``: text embeddings, weight fingerprints), which points
into the temporary folder while the run is built; the head is discarded. What it reports is enough to catch a wrong path, a cache made with other backbones, a
vocabulary that does not embed, or a step too slow for the schedule, before a multi-day run starts.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from regionspot.engine.config import TrainConfig
from regionspot.engine.setup import build_training
from regionspot.engine.train import run_step
from regionspot.errors import RegionSpotError


@dataclass
class DatasetProbe:
    """One dataset of the run as the dry run found it. probability: its share of batches (weight / sum)."""

    name: str
    cache: str
    images: int
    regions: int
    vocabulary: int
    weight: float
    probability: float
    losses: list[float]


@dataclass
class DryRunReport:
    """What was built and how the steps went. seconds_per_step: mean over all steps but the first (which
    pays one-time costs) or the only step; hours_for_schedule: ``max_iters`` at that pace, this machine."""

    datasets: list[DatasetProbe]
    head_parameters: int
    vision_language: str
    feature_source: str
    processes: int
    steps: int
    seconds_per_step: float
    hours_for_schedule: float


def dry_run(config: TrainConfig, steps_per_dataset: int = 1, accelerator: Any = None,
            show_progress: bool = True) -> DryRunReport:
    """Build the run of ``config`` and take ``steps_per_dataset`` steps on each dataset (see the module doc)."""
    from accelerate import Accelerator

    config.validate()
    if steps_per_dataset < 1:
        raise RegionSpotError(f"--dry-run-steps must be >= 1, got {steps_per_dataset}.")
    if accelerator is None:
        accelerator = Accelerator(cpu=config.cpu, mixed_precision=config.mixed_precision)
    world = accelerator.num_processes
    if config.batch_size % world:
        raise RegionSpotError(f"batch_size {config.batch_size} is not divisible by {world} processes; change batch_size.")
    per_rank = config.batch_size // world
    with tempfile.TemporaryDirectory(prefix="regionspot-dry-run-") as scratch, _user_cache_in(scratch):
        text_cache = False if config.text_cache_dir is False else str(Path(scratch) / "text")
        config = dataclasses.replace(config, text_cache_dir=text_cache)
        setup = build_training(config, accelerator.device, show_progress and accelerator.is_main_process)
    head, optimizer = accelerator.prepare(setup.head, setup.optimizer)
    head.train()
    total_weight = sum(d.weight for d in config.datasets)
    probes, times, step = [], [], 0
    for index, (spec, cache) in enumerate(zip(config.datasets, setup.caches, strict=True)):
        if cache.num_images == 0:
            raise RegionSpotError(f"Cache {spec.cache} holds no images; rebuild it with `regionspot cache`.")
        rng = np.random.default_rng([config.seed, index])
        losses = []
        for _ in range(steps_per_dataset):
            indices = rng.choice(cache.num_images, per_rank, replace=cache.num_images < per_rank).tolist()
            start = time.perf_counter()
            metrics = run_step(setup, head, optimizer, accelerator, config, index, indices, step)
            setup.scheduler.step()
            times.append(time.perf_counter() - start)
            losses.append(metrics["loss"])
            step += 1
        probes.append(DatasetProbe(cache.dataset_name, spec.cache, cache.num_images, cache.num_regions,
                                   len(setup.texts[index]), spec.weight, spec.weight / total_weight, losses))
    pace = statistics.mean(times[1:]) if len(times) > 1 else times[0]
    params = sum(p.numel() for p in setup.head.parameters())
    return DryRunReport(probes, params, str(Path(config.model.vision_language)), config.feature_source, world, step,
                        pace, pace * config.max_iters / 3600)


@contextmanager
def _user_cache_in(folder: str) -> Iterator[None]:
    """Point ``$REGIONSPOT_CACHE`` (the user cache of text embeddings and weight fingerprints) at ``folder``."""
    before = os.environ.get("REGIONSPOT_CACHE")
    os.environ["REGIONSPOT_CACHE"] = folder
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("REGIONSPOT_CACHE", None)
        else:
            os.environ["REGIONSPOT_CACHE"] = before
