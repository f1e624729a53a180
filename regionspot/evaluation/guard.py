"""The fast-path accuracy guard on any labelled COCO set.

For each fast path, every ground-truth box of the set's first ``num_images`` labelled images is recognised
against the set's whole vocabulary (its category names, in category-id order) with the model loaded in that
path, and the logits are compared with the fp32 model's on the same boxes
(:func:`regionspot.inference.fast.compare_logits`). Also reported: top-1 accuracy against the ground-truth
class for both, so a path's effect on the task is visible next to its agreement. Everything goes through
public calls: the COCO reader (``CocoDetectionDataset``) and the model's own methods.

The ShapesWorld CI subset with the embedded model is one such set (``regionspot.shapesworld.guard``);
``regionspot guard`` (``GuardOptions``) runs it, prints :func:`guard_table` and records the verdicts that
``--fast`` reads; ``benchmarks/speed/accuracy_guard.py`` adds AP and full-size tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from regionspot.data.coco_json import CocoDetectionDataset
from regionspot.data.images import load_image
from regionspot.errors import RegionSpotError
from regionspot.evaluation.guard_options import GuardOptions  # noqa: F401  (re-exported)
from regionspot.inference.fast import (
    GuardResult,
    compare_logits,
    passes_guard,
    write_verdicts,
)
from regionspot.model import RegionSpot
from regionspot.text.templates import validate_vocabulary

__all__ = ["GuardOptions", "GuardRow", "GuardSet", "guard_table", "read_guard_set", "region_logits", "run_guard"]


@dataclass(frozen=True)
class GuardRow:
    """One path's guard: agreement with fp32, its GT top-1 accuracy and fp32's on the same regions."""

    path: str
    result: GuardResult
    accuracy: float
    reference_accuracy: float


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


@torch.inference_mode()
def region_logits(model: RegionSpot, regions: GuardSet, text_cache_dir: str | Path | bool | None = None) -> torch.Tensor:
    """(sum n_i, V) float32 logits of every box of every image of ``regions`` (no masks), in order.

    text_cache_dir: where the text embeddings are cached (``RegionSpot.text_embeddings``; False: not cached).
    """
    names = validate_vocabulary(regions.names, model.config.preprocess.class_names)
    text = model.text_embeddings(names, cache_dir=text_cache_dir, show_progress=len(names) > 50)  # (V, D)
    out = []
    for image, boxes in zip(regions.images, regions.boxes, strict=True):
        picture = load_image(image)
        state = model.segmenter.encode_image(picture)
        feature_map = model.vision_language.feature_map([picture])  # (1, T, C)
        tokens = model.segmenter.decode_prompts(state, boxes=boxes, masks="none").tokens  # (n, 256)
        out.append(model(tokens[None], feature_map, text).logits[0].float().cpu())  # (n, V)
    return torch.cat(out)


def run_guard(
    paths: list[str], annotation_file: str | Path, image_root: str | Path, num_images: int = 16,
    weights: str | Path | None = None, device: str = "cpu", record: bool = True,
    text_cache_dir: str | Path | None = None,
) -> list[GuardRow]:
    """Guard each of ``paths`` against fp32 on a labelled COCO set; optionally record the verdicts of this machine.

    weights: the model (``RegionSpot.from_pretrained``'s name_or_path; None: the embedded model), loaded once
    per path. text_cache_dir: where fp32's text embeddings are cached (None: the default cache); each path
    re-encodes its own.
    """
    regions = read_guard_set(annotation_file, image_root, num_images)
    truth = torch.cat(regions.labels)
    reference = region_logits(RegionSpot.from_pretrained(weights, device=device), regions, text_cache_dir)
    reference_accuracy = float((reference.argmax(-1) == truth).float().mean())
    rows = []
    for path in paths:
        logits = region_logits(RegionSpot.from_pretrained(weights, device=device, fast_path=path), regions, False)
        rows.append(GuardRow(path, compare_logits(reference, logits),
                             float((logits.argmax(-1) == truth).float().mean()), reference_accuracy))
    if record:
        write_verdicts({row.path: row.result for row in rows}, device)
    return rows


def guard_table(rows: list[GuardRow]) -> list[str]:
    """The guard's Markdown table, one row per path: logit error, agreement with fp32, GT top-1, verdict."""
    lines = ["| path | regions | max abs Δlogit | mean abs Δlogit | top-1 agree | top-1 agree up to ties | top-5 overlap "
             "| GT top-1 (path / fp32) | guard |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        r = row.result
        lines.append(f"| {row.path} | {r.regions} | {r.max_abs:.4f} | {r.mean_abs:.5f} | {100 * r.top1:.1f} % | "
                     f"{100 * r.top1_up_to_ties:.1f} % | {100 * r.top5:.1f} % | {100 * row.accuracy:.1f} % / "
                     f"{100 * row.reference_accuracy:.1f} % | {'pass' if passes_guard(r) else 'FAIL'} |")
    return lines
