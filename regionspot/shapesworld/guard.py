"""The fast-path accuracy guard on ShapesWorld val with the embedded (really trained) tiny models.

For each fast path, every ground-truth box of the first ``num_images`` val images of the CI subset
(seed and world of ``metrics.json``) is recognised against the full ShapesWorld vocabulary, and the
logits are compared with the fp32 path's (:func:`regionspot.inference.fast.compare_logits`). Also
reported: top-1 accuracy against the ground-truth class for both, so a path's effect on the task is
visible next to its agreement.

The table is printed by ``benchmarks/accuracy_guard.py``; ``regionspot predict --fast`` runs the guard
once per machine and keeps the verdicts (``regionspot.inference.fast.verdicts_path``).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from regionspot.inference.fast import GuardResult, apply_fast_path, compare_logits, write_verdicts
from regionspot.inference.predictor import RegionSpotPredictor
from regionspot.model import RegionSpot
from regionspot.registry import assets_dir
from regionspot.shapesworld.generate import generate_shapesworld
from regionspot.shapesworld.world import WorldConfig


@dataclass(frozen=True)
class GuardRow:
    """One path's guard: agreement with fp32, its GT top-1 accuracy and fp32's on the same regions."""

    path: str
    result: GuardResult
    accuracy: float
    reference_accuracy: float


def regenerate_ci_subset(out_dir: Path, num_images: int) -> dict:
    """Regenerate the first ``num_images`` CI-subset val images (seed and world of the embedded model's
    ``metrics.json``) into ``out_dir``; ``generate_shapesworld``'s info ("val_json", "image_root", ...)."""
    subset = json.loads((assets_dir() / "shapesworld" / "metrics.json").read_text())["ci_subset"]
    return generate_shapesworld(out_dir, 0, num_images, seed=int(subset["seed"]), progress=False,
                                world=WorldConfig(**subset["world"]) if "world" in subset else None)


def guard_set(out_dir: Path, num_images: int) -> tuple[list[Path], list[torch.Tensor], list[torch.Tensor], list[str]]:
    """Regenerate the first ``num_images`` CI-subset val images into ``out_dir``.

    Returns image paths, per image GT boxes (n, 4) XYXY pixels and class indices (n,) into the returned
    vocabulary (the embedded model's class names).
    """
    info = regenerate_ci_subset(out_dir, num_images)
    data = json.loads(Path(info["val_json"]).read_text())
    names = [c["name"] for c in sorted(data["categories"], key=lambda c: c["id"])]
    index = {c["id"]: names.index(c["name"]) for c in data["categories"]}
    images, boxes, labels = [], [], []
    for image in data["images"]:
        anns = [a for a in data["annotations"] if a["image_id"] == image["id"]]
        if not anns:
            continue
        images.append(Path(info["image_root"]) / image["file_name"])
        boxes.append(torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)]))
        labels.append(torch.tensor([index[a["category_id"]] for a in anns]))
    return images, boxes, labels, names


def region_logits(model: RegionSpot, images: list[Path], boxes: list[torch.Tensor], names: list[str],
                  text_cache: Path | None = None) -> torch.Tensor:
    """(sum n_i, V) float32 logits of every box of every image (no masks), in order."""
    predictor = RegionSpotPredictor(model, text_cache_dir=str(text_cache) if text_cache else None)
    predictor.set_vocabulary(names)
    out = []
    with torch.inference_mode():
        for image, image_boxes in zip(images, boxes):
            predictor.set_image(image)
            seg = model.segmenter.decode_prompts(predictor._state, boxes=image_boxes, masks="none")
            out.append(model(seg.tokens[None], predictor._feature_map, predictor._text).logits[0].float())
    return torch.cat(out)


def run_guard(paths: list[str], num_images: int = 16, device: str = "cpu", record: bool = True,
              work: Path | None = None) -> list[GuardRow]:
    """Guard each of ``paths`` against fp32 with the embedded model; optionally record the verdicts."""
    with tempfile.TemporaryDirectory(prefix="regionspot-guard-") as tmp:
        root = Path(work or tmp)
        images, boxes, labels, names = guard_set(root / "data", num_images)
        truth = torch.cat(labels)
        cache = root / "text"
        reference = region_logits(RegionSpot.from_pretrained(device=device), images, boxes, names, cache)
        reference_accuracy = float((reference.argmax(-1) == truth).float().mean())
        rows = []
        for path in paths:
            model = apply_fast_path(RegionSpot.from_pretrained(device=device), path)
            logits = region_logits(model, images, boxes, names, None)  # text re-encoded on the path
            rows.append(GuardRow(path, compare_logits(reference, logits),
                                 float((logits.argmax(-1) == truth).float().mean()), reference_accuracy))
    if record:
        write_verdicts({row.path: row.result for row in rows}, device)
    return rows
