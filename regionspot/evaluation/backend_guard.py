"""The accuracy guard of the backends: each backend's logits against the torch fp32 backend's on a labelled COCO
set's ground-truth boxes.

The same comparison as the fast paths' guard (``evaluation/guard.py``: ``compare_logits``, ``passes_guard``,
``guard_table``; top-1 agreement up to ties and the largest logit error), with the regions labelled through the
backends' one interface (``inference/backends.py``): every ground-truth box of the first ``num_images`` labelled
images against the set's whole vocabulary. The ShapesWorld CI subset with the embedded model is the default set
(``shapesworld/guard.run_ci_subset_backend_guard``); ``benchmarks/speed/backends.py`` also guards full-size
random-weight architectures. Each backend is also timed against torch on the same images, and the verdicts can be
recorded for ``--backend auto`` (``inference/backend_choice.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from regionspot.evaluation.guard import (
    SPEED_IMAGES,
    SPEED_REPEATS,
    GuardRow,
    GuardSet,
    read_guard_set,
    time_paths,
)
from regionspot.export.cache import cached_export, int8_folder
from regionspot.inference.backend_choice import model_key, write_backend_verdicts
from regionspot.inference.backends import Backend, backend_spec, open_backend
from regionspot.inference.fast import PathSpeed, compare_logits, passes_guard, pays_off

__all__ = ["backend_logits", "run_backend_guard"]


def backend_logits(backend: Backend, regions: GuardSet) -> torch.Tensor:
    """(sum n_i, V) float32 logits of every box of every image of ``regions`` (no masks), in order."""
    backend.set_vocabulary(regions.names)
    out = []
    for image, boxes in zip(regions.images, regions.boxes, strict=True):
        backend.set_image(image)
        result = backend.predict(boxes=boxes.numpy(), top_k=1, return_masks=False)
        out.append(torch.as_tensor(result.logits, dtype=torch.float32))  # (n_i, V)
    return torch.cat(out)


def run_backend_guard(
    backends: list[str], annotation_file: str | Path, image_root: str | Path, num_images: int = 16,
    weights: str | Path | None = None, onnx_dir: str | Path | None = None, threads: int = 0,
    text_cache_dir: str | Path | None = None, record: bool = False, speed_images: int = SPEED_IMAGES,
    repeats: int = SPEED_REPEATS, clock: Callable[[], float] = time.perf_counter,
) -> list[GuardRow]:
    """Guard each of ``backends`` against the torch fp32 backend on a labelled COCO set, for accuracy and speed;
    optionally record this machine's verdicts for the model (``inference/backend_choice``: what ``--backend auto``
    reads).

    weights: the model (``RegionSpot.from_pretrained``'s name_or_path; None: the embedded model); onnx_dir: the
    ONNX backends' exported folder (None: the weights' export in the model home, made first, untimed); threads:
    the ONNX backends' threads (0: the engine's default). text_cache_dir: where the torch reference keeps its text
    embeddings. Speed: per image, ``set_image`` + ``predict`` of its boxes, on the first ``speed_images`` images,
    ``repeats`` interleaved rounds (``guard.time_paths``); the one-off cost is opening the graphs less torch's
    model load.
    """
    regions = read_guard_set(annotation_file, image_root, num_images)
    truth = torch.cat(regions.labels)
    start = clock()
    opened: dict[str, Backend] = {"torch": open_backend("torch", weights, text_cache_dir=text_cache_dir)}
    open_seconds = {"torch": clock() - start}
    reference = backend_logits(opened["torch"], regions)
    reference_accuracy = float((reference.argmax(-1) == truth).float().mean())
    folder = Path(onnx_dir) if onnx_dir is not None else cached_export(weights)
    results = {}
    for name in backends:
        if backend_spec(name).int8:
            int8_folder(folder)  # made once, before the clock
        start = clock()
        opened[name] = open_backend(name, weights, onnx_dir=folder, threads=threads, text_cache_dir=False)
        open_seconds[name] = clock() - start
        logits = backend_logits(opened[name], regions)
        results[name] = (compare_logits(reference, logits), float((logits.argmax(-1) == truth).float().mean()))
    count = min(speed_images, len(regions.images))
    seconds = time_paths(lambda backend, i: _label(backend, regions, i), ["torch", *backends], count, repeats,
                         prepare=opened.__getitem__, clock=clock)
    key = model_key(weights)
    rows = [GuardRow(name, result, accuracy, reference_accuracy,
                     PathSpeed(seconds[name], seconds["torch"], max(0.0, open_seconds[name] - open_seconds["torch"]), key))
            for name, (result, accuracy) in results.items()]
    if record:
        write_backend_verdicts(key, {row.path: _verdict(row) for row in rows})
    return rows


def _label(backend: Backend, regions: GuardSet, index: int) -> None:
    backend.set_image(regions.images[index])
    backend.predict(boxes=regions.boxes[index].numpy(), top_k=1, return_masks=False)


def _verdict(row: GuardRow) -> dict:
    return {**asdict(row.result), "passed": passes_guard(row.result), "pays_off": pays_off(row.speed),
            "speedup": row.speed.speedup, "seconds": row.speed.seconds, "torch_seconds": row.speed.fp32_seconds,
            "open_seconds": row.speed.switch_seconds, "accuracy": row.accuracy,
            "torch_accuracy": row.reference_accuracy}
