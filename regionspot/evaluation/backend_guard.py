"""The accuracy guard of the backends: each backend's logits against the torch fp32 backend's on a labelled COCO
set's ground-truth boxes.

The same comparison as the fast paths' guard (``evaluation/guard.py``: ``compare_logits``, ``passes_guard``,
``guard_table``; top-1 agreement up to ties and the largest logit error), with the regions labelled through the
backends' one interface (``inference/backends.py``): every ground-truth box of the first ``num_images`` labelled
images against the set's whole vocabulary. The ShapesWorld CI subset with the embedded model is the default set
(``shapesworld/guard.run_ci_subset_backend_guard``); ``benchmarks/speed/backends.py`` also guards full-size
random-weight architectures.
"""

from __future__ import annotations

from pathlib import Path

import torch

from regionspot.evaluation.guard import GuardRow, GuardSet, read_guard_set
from regionspot.inference.backends import Backend, open_backend
from regionspot.inference.fast import compare_logits

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
    text_cache_dir: str | Path | None = None,
) -> list[GuardRow]:
    """Guard each of ``backends`` against the torch fp32 backend on a labelled COCO set.

    weights: the model (``RegionSpot.from_pretrained``'s name_or_path; None: the embedded model); onnx_dir: the
    ONNX backends' exported folder (None: the weights' export in the model home); threads: the ONNX backends'
    threads (0: the engine's default). text_cache_dir: where the torch reference keeps its text embeddings.
    """
    regions = read_guard_set(annotation_file, image_root, num_images)
    truth = torch.cat(regions.labels)
    reference = backend_logits(open_backend("torch", weights, text_cache_dir=text_cache_dir), regions)
    reference_accuracy = float((reference.argmax(-1) == truth).float().mean())
    rows = []
    for name in backends:
        backend = open_backend(name, weights, onnx_dir=onnx_dir, threads=threads, text_cache_dir=False)
        logits = backend_logits(backend, regions)
        rows.append(GuardRow(name, compare_logits(reference, logits), float((logits.argmax(-1) == truth).float().mean()),
                             reference_accuracy))
    return rows
