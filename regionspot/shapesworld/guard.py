"""The fast-path accuracy guard's ShapesWorld input: the CI subset with the embedded (really trained) tiny models.

:func:`regenerate_ci_subset` regenerates the first val images of the CI subset (seed and world of the embedded
model's ``metrics.json``); :func:`run_ci_subset_guard` runs the guard on them (``regionspot.evaluation.guard``,
which takes any labelled COCO set); :func:`run_ci_subset_backend_guard` guards the backends on them
(``regionspot.evaluation.backend_guard``). ``benchmarks/speed/accuracy_guard.py`` prints the table and records the verdicts
that ``regionspot predict --fast`` reads (``regionspot.inference.fast.verdicts_path``).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from regionspot.evaluation.guard import GuardRow, run_guard
from regionspot.registry import assets_dir
from regionspot.shapesworld.generate import generate_shapesworld
from regionspot.shapesworld.world import WorldConfig

__all__ = ["regenerate_ci_subset", "run_ci_subset_backend_guard", "run_ci_subset_guard"]


def regenerate_ci_subset(out_dir: Path, num_images: int) -> dict:
    """Regenerate the first ``num_images`` CI-subset val images (seed and world of the embedded model's
    ``metrics.json``) into ``out_dir``; ``generate_shapesworld``'s info ("val_json", "image_root", ...)."""
    subset = json.loads((assets_dir() / "shapesworld" / "metrics.json").read_text())["ci_subset"]
    return generate_shapesworld(out_dir, 0, num_images, seed=int(subset["seed"]), progress=False,
                                world=WorldConfig(**subset["world"]) if "world" in subset else None)


def run_ci_subset_guard(paths: list[str], num_images: int = 16, device: str = "cpu", record: bool = True,
                        work: Path | None = None) -> list[GuardRow]:
    """Guard each of ``paths`` against fp32 with the embedded model on the first ``num_images`` CI-subset val
    images (regenerated into ``work``, default a temporary folder); optionally record the verdicts. Text
    embeddings go to the default cache (a second run, and ``predict`` on the same names, reuse them)."""
    with tempfile.TemporaryDirectory(prefix="regionspot-guard-") as tmp:
        root = Path(work or tmp)
        info = regenerate_ci_subset(root / "data", num_images)
        return run_guard(paths, info["val_json"], info["image_root"], num_images, device=device, record=record)


def run_ci_subset_backend_guard(backends: list[str], num_images: int = 16, threads: int = 0,
                                work: Path | None = None, onnx_dir: Path | None = None,
                                record: bool = False) -> list[GuardRow]:
    """Guard each of ``backends`` (``inference.backends.BACKENDS``) against the torch fp32 backend with the embedded
    model on the first ``num_images`` CI-subset val images (regenerated into ``work``, default a temporary folder);
    onnx_dir: the embedded model's exported graphs (None: its export kept in the model home); record: keep the
    verdicts for ``--backend auto``."""
    from regionspot.evaluation.backend_guard import run_backend_guard

    with tempfile.TemporaryDirectory(prefix="regionspot-guard-") as tmp:
        root = Path(work or tmp)
        info = regenerate_ci_subset(root / "data", num_images)
        return run_backend_guard(backends, info["val_json"], info["image_root"], num_images, onnx_dir=onnx_dir,
                                 threads=threads, text_cache_dir=root / "text", record=record)
