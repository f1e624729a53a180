"""The fast-path accuracy guard on any labelled COCO set.

For each fast path, every ground-truth box of the set's first ``num_images`` labelled images is recognised
against the set's whole vocabulary (its category names, in category-id order) with the model switched to that
path, and the logits are compared with the fp32 model's on the same boxes
(:func:`regionspot.inference.fast.compare_logits`). Also reported: top-1 accuracy against the ground-truth
class for both, so a path's effect on the task is visible next to its agreement. The model is loaded once
(:class:`PathModels`); every image runs every path in turn, then the first images are timed again, interleaved
(:func:`time_paths`), for each path's speed against fp32 (:class:`regionspot.inference.fast.PathSpeed`).
Everything goes through public calls: the COCO reader (``CocoDetectionDataset``) and the model's own methods.

The ShapesWorld CI subset with the embedded model is one such set (``regionspot.shapesworld.guard``);
``regionspot guard`` (``GuardOptions``) runs it, prints :func:`guard_table` and records the verdicts that
``--fast`` reads; ``benchmarks/speed/accuracy_guard.py`` adds AP and full-size tables.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from regionspot.backbones.numerics import ONE_WAY_NUMERICS
from regionspot.data.coco_json import CocoDetectionDataset
from regionspot.data.images import load_image
from regionspot.errors import RegionSpotError
from regionspot.evaluation.guard_options import GuardOptions  # noqa: F401  (re-exported)
from regionspot.inference.fast import (
    GUARD_MIN_SPEEDUP,
    GuardResult,
    PathSpeed,
    candidate_paths,
    compare_logits,
    passes_guard,
    pays_off,
    write_verdicts,
)
from regionspot.model import RegionSpot
from regionspot.text.templates import validate_vocabulary

__all__ = ["SPEED_IMAGES", "SPEED_REPEATS", "GuardOptions", "GuardRow", "GuardSet", "PathModels", "guard_table",
           "guard_text", "image_logits", "read_guard_set", "region_logits", "run_guard", "time_paths"]

# The speed guard times the first SPEED_IMAGES images, SPEED_REPEATS rounds each (best round kept): 3 rounds
# drop a stray slow run on a shared machine; 4 images cost about 1 s with the embedded model.
SPEED_IMAGES = 4
SPEED_REPEATS = 3


@dataclass(frozen=True)
class GuardRow:
    """One path's guard: agreement with fp32, its GT top-1 accuracy and fp32's on the same regions, and its
    speed against fp32 in the same run (None: not timed)."""

    path: str
    result: GuardResult
    accuracy: float
    reference_accuracy: float
    speed: PathSpeed | None = None


@dataclass(frozen=True)
class GuardSet:
    """The regions a guard compares: per image its file, GT boxes (n_i, 4) float32 XYXY original-image pixels
    and classes (n_i,) int64 indices into ``names`` (the set's category names as written, by category id)."""

    images: list[Path]
    boxes: list[torch.Tensor]
    labels: list[torch.Tensor]
    names: list[str]


def read_guard_set(annotation_file: str | Path, image_root: str | Path, num_images: int) -> GuardSet:
    """The first ``num_images`` images (by id) of a COCO file that have a kept box (see ``CocoDetectionDataset``)."""
    dataset = CocoDetectionDataset(annotation_file, image_root, skip_empty=True)
    if len(dataset) == 0:
        raise RegionSpotError(f"{annotation_file} has no image with a box; the accuracy guard needs labelled images.")
    records = [dataset[i] for i in range(min(num_images, len(dataset)))]
    return GuardSet([r.path for r in records], [torch.from_numpy(r.boxes) for r in records],
                    [torch.from_numpy(r.labels) for r in records], list(dataset.raw_category_names))


def image_logits(model: RegionSpot, picture: Image.Image, boxes: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """(n, V) float32 CPU logits of one image's boxes (n, 4) XYXY original-image pixels against text (V, D): both
    image encoders, the prompt decoder without masks, the head — what the guard compares and times."""
    state = model.segmenter.encode_image(picture)
    feature_map = model.vision_language.feature_map([picture])  # (1, T, C)
    tokens = model.segmenter.decode_prompts(state, boxes=boxes, masks="none").tokens  # (n, 256)
    return model(tokens[None], feature_map, text).logits[0].float().cpu()  # (n, V)


def guard_text(model: RegionSpot, regions: GuardSet, text_cache_dir: str | Path | bool | None = None) -> torch.Tensor:
    """(V, D) text embeddings of the set's names in the model's current numerics (``RegionSpot.text_embeddings``;
    text_cache_dir: None the default cache, False not cached)."""
    names = validate_vocabulary(regions.names, model.config.preprocess.class_names)
    return model.text_embeddings(names, cache_dir=text_cache_dir, show_progress=len(names) > 50)


@torch.inference_mode()
def region_logits(model: RegionSpot, regions: GuardSet, text_cache_dir: str | Path | bool | None = None) -> torch.Tensor:
    """(sum n_i, V) float32 logits of every box of every image of ``regions`` (no masks), in order.

    text_cache_dir: where the text embeddings are cached (``RegionSpot.text_embeddings``; False: not cached).
    """
    text = guard_text(model, regions, text_cache_dir)  # (V, D)
    return torch.cat([image_logits(model, load_image(image), boxes, text)
                      for image, boxes in zip(regions.images, regions.boxes, strict=True)])


class PathModels:
    """The guard's models from one loaded fp32 model: the paths a switch can take back (eager, bf16) switch it
    in place each time they run; a one-way path (int8, compile) gets its own copy, made before any switch.

    switch_seconds: per path, the one-off time of switching a loaded fp32 model to it (``set_numerics``)."""

    def __init__(self, model: RegionSpot, paths: Sequence[str], clock: Callable[[], float] = time.perf_counter):
        self.base = model
        self.copies: dict[str, RegionSpot] = {}
        self.switch_seconds: dict[str, float] = {}
        for path in paths:
            target = copy.deepcopy(model) if path in ONE_WAY_NUMERICS else model
            start = clock()
            target.set_numerics(path)
            self.switch_seconds[path] = clock() - start
            if target is model:
                model.set_numerics("fp32")
            else:
                self.copies[path] = target

    def get(self, path: str) -> RegionSpot:
        """The model running ``path`` ("fp32": the loaded model as loaded)."""
        if path in self.copies:
            return self.copies[path]
        self.base.set_numerics(path)
        return self.base


def time_paths(run: Callable[[Any, int], object], paths: Sequence[str], images: int, repeats: int,
               prepare: Callable[[str], Any] = lambda path: path,
               clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Seconds per image of each path, interleaved: for each of ``images`` images, ``repeats`` rounds that run
    every path once (``run(prepare(path), image)``, ``prepare`` untimed; the order rotated each round so no path
    always goes first); a path's best round per image, averaged over the images. Run a warm-up first."""
    if images < 1 or repeats < 1:
        raise ValueError(f"images and repeats must be >= 1, got {images} and {repeats}.")
    best = {path: [float("inf")] * images for path in paths}
    for image in range(images):
        for round_ in range(repeats):
            shift = round_ % len(paths)
            for path in [*paths[shift:], *paths[:shift]]:
                subject = prepare(path)
                start = clock()
                run(subject, image)
                best[path][image] = min(best[path][image], clock() - start)
    return {path: sum(times) / images for path, times in best.items()}


@torch.inference_mode()
def run_guard(
    paths: list[str], annotation_file: str | Path, image_root: str | Path, num_images: int = 16,
    weights: str | Path | None = None, device: str = "cpu", record: bool = True,
    text_cache_dir: str | Path | bool | None = None, speed_images: int = SPEED_IMAGES, repeats: int = SPEED_REPEATS,
    clock: Callable[[], float] = time.perf_counter,
) -> list[GuardRow]:
    """Guard each of ``paths`` against fp32 on a labelled COCO set, for accuracy and speed; optionally record the
    verdicts of this machine.

    weights: the model (``RegionSpot.from_pretrained``'s name_or_path; None: the embedded model), loaded once
    (:class:`PathModels`). text_cache_dir: where each path's text embeddings are cached (None: the default cache,
    so a second run and ``predict`` on that vocabulary reuse them; False: not cached). Every image runs every path
    in turn (the logits compared; also the warm-up), then the first ``speed_images`` images are timed
    (:func:`time_paths`, ``repeats`` rounds; ``clock`` for tests).
    """
    regions = read_guard_set(annotation_file, image_root, num_images)
    truth = torch.cat(regions.labels)
    models = PathModels(RegionSpot.from_pretrained(weights, device=device), paths, clock)
    every = ["fp32", *[p for p in paths if p != "fp32"]]
    texts = {path: guard_text(models.get(path), regions, text_cache_dir) for path in every}  # (V, D) each
    logits: dict[str, list[torch.Tensor]] = {path: [] for path in every}
    pictures = []
    for image, boxes in zip(regions.images, regions.boxes, strict=True):
        picture = load_image(image)
        for path in every:
            logits[path].append(image_logits(models.get(path), picture, boxes, texts[path]))
        if len(pictures) < speed_images:
            pictures.append(picture)
    seconds = time_paths(lambda subject, i: image_logits(subject[0], pictures[i], regions.boxes[i], subject[1]),
                         every, len(pictures), repeats, prepare=lambda path: (models.get(path), texts[path]),
                         clock=clock)
    reference = torch.cat(logits["fp32"])
    reference_accuracy = float((reference.argmax(-1) == truth).float().mean())
    rows = []
    for path in paths:
        mine = torch.cat(logits[path])
        rows.append(GuardRow(path, compare_logits(reference, mine), float((mine.argmax(-1) == truth).float().mean()),
                             reference_accuracy,
                             PathSpeed(seconds[path], seconds["fp32"], models.switch_seconds.get(path, 0.0),
                                       str(weights or "shapesworld"))))
    if record:
        write_verdicts({row.path: row.result for row in rows}, device, speeds={row.path: row.speed for row in rows})
    return rows


def _speed_cells(speed: PathSpeed | None) -> str:
    if speed is None:
        return "— | — | not measured"
    verdict = "faster" if pays_off(speed) else (
        f"< {GUARD_MIN_SPEEDUP:.2f}×" if speed.speedup < GUARD_MIN_SPEEDUP else "switch > saving")
    return (f"{1e3 * speed.seconds:.1f} / {1e3 * speed.fp32_seconds:.1f} | {speed.speedup:.2f}× | {verdict}")


def guard_table(rows: list[GuardRow], device: str = "cpu", backends: bool = False) -> list[str]:
    """The guard's Markdown table, one row per path: logit error, agreement with fp32, GT top-1, accuracy verdict;
    ms per image against fp32's, speed-up and speed verdict (:func:`~regionspot.inference.fast.pays_off`); and
    whether ``--fast`` may pick the path on ``device`` (both verdicts, and one of its candidates) — for
    ``backends`` rows (reference: the torch fp32 backend), whether ``--backend auto`` may pick it."""
    candidates = [row.path for row in rows] if backends else candidate_paths(device)
    picker = "--backend auto may pick" if backends else "--fast may pick"
    lines = ["| path | regions | max abs Δlogit | mean abs Δlogit | top-1 agree | top-1 agree up to ties | top-5 overlap "
             f"| GT top-1 (path / fp32) | accuracy | ms / image (path / fp32) | speed-up | speed | {picker} |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        r = row.result
        accurate, fast = passes_guard(r), row.speed is not None and pays_off(row.speed)
        lines.append(f"| {row.path} | {r.regions} | {r.max_abs:.4f} | {r.mean_abs:.5f} | {100 * r.top1:.1f} % | "
                     f"{100 * r.top1_up_to_ties:.1f} % | {100 * r.top5:.1f} % | {100 * row.accuracy:.1f} % / "
                     f"{100 * row.reference_accuracy:.1f} % | {'pass' if accurate else 'FAIL'} | "
                     f"{_speed_cells(row.speed)} | {'yes' if accurate and fast and row.path in candidates else 'no'} |")
    return lines
