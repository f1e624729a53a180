"""The last stage of a ShapesWorld build: a showcase example, the assets the package embeds, and the
fixed val subset that CI re-measures (``metrics.json``)."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from regionspot.shapesworld.generate import generate_shapesworld
from regionspot.shapesworld.report import evaluate_methods, table_rows
from regionspot.shapesworld.streams import EXAMPLE_CANDIDATES, stream_rng
from regionspot.shapesworld.world import WorldConfig, render_image, uniform_probabilities

ASSET_FILES = ("sam", "clip", "head.safetensors", "example.png", "example.json", "vocabulary.txt", "metrics.json")
CI_SUBSET_IMAGES = 60


def showcase_unknowns(logits: np.ndarray, labels: list[str], names: list[str], rejection: dict[str, Any],
                      temperature: float = 1.0) -> list[str]:
    """The classes of an example's objects that can be left out of its vocabulary for a showcase of rejection.

    logits: (N, V) the head's logits of the N objects over ``names`` (V); labels: their N true names (distinct,
    all in ``names``); rejection/temperature: the head's ``RejectionConfig`` (as a dict) and display temperature.
    Leaving class c out qualifies when, with the head's own rule (:func:`~regionspot.modeling.rejection.decide`)
    over the other V - 1 names, the object of class c is rejected (known=False) and every other object keeps its
    true name as top-1 and is not rejected. Returned in :func:`choose_unknown`'s order (best first).
    """
    from regionspot.modeling.rejection import decide

    qualifying = []
    for label in labels:
        kept = [i for i, n in enumerate(names) if n != label]
        _, known = decide(np.asarray(logits)[:, kept], rejection, temperature)
        if known is None:
            raise ValueError("the head has no rejection threshold (run `regionspot calibrate`).")
        top = [names[kept[j]] for j in np.asarray(logits)[:, kept].argmax(axis=1)]
        if all((not known[i]) if truth == label else (known[i] and top[i] == truth)
               for i, truth in enumerate(labels)):
            qualifying.append(label)
    order = choose_unknown(logits, labels, names)
    return [label for label in order if label in qualifying]


def choose_unknown(logits: np.ndarray, labels: list[str], names: list[str]) -> list[str]:
    """The N ``labels`` ordered for leaving one out of the example's vocabulary: by the largest logit of its
    object (row of (N, V) ``logits`` over ``names``) once its own class is dropped, lowest first (the clearest
    "none of these" for this head); ties keep the example's order."""
    best = [float(np.delete(row, names.index(label)).max()) for row, label in zip(logits, labels, strict=True)]
    return [labels[i] for i in np.argsort(best, kind="stable")]


def choose_example(out: Path, head: Path, sam_dir: Path, clip_dir: Path, seed: int = 0, candidates: int = 1000,
                   max_objects: int = 5, world: WorldConfig | None = None,
                   with_unknown: bool = True, show_progress: bool = False) -> dict[str, Any] | None:
    """A showcase image for ``regionspot predict``: among ``candidates`` fresh renders of the
    ``EXAMPLE_CANDIDATES`` stream of ``seed`` (all categories equally likely, 1..``max_objects`` objects of
    distinct classes; at least 2 with ``with_unknown``), the one with the most objects that qualifies; ties prefer a rare class. A render
    qualifies when the trained model labels all its objects correctly (top-1 over the whole vocabulary) and,
    with ``with_unknown``, one of its classes can be left out of the vocabulary so that the head's own
    rejection rule rejects that object and no other (:func:`showcase_unknowns`; the best is chosen).
    The model runs only on renders that would beat the best so far; the search stops early at
    ``max_objects`` objects and a rare class.

    This is a demo picked for being right, not a measurement (the tables are). Writes OUT/example.png;
    returns {"file", "boxes", "labels", "unknown", "candidate", "rendered", "tried"} ("unknown": the class to
    leave out, or None without ``with_unknown``; "candidate": the render's index in the stream; "rendered",
    "tried": renders drawn and renders the model was run on, up to the chosen one) or None when none qualifies.
    """
    from PIL import Image

    from regionspot.inference.predictor import RegionSpotPredictor
    from regionspot.model import RegionSpot
    from regionspot.utils.progress import progress_bar

    world = WorldConfig() if world is None else world
    categories = world.categories(seed)
    names = [c.name for c in categories]
    probs = uniform_probabilities(categories)
    model = RegionSpot.from_pretrained(str(head), segmenter=str(sam_dir), vision_language=str(clip_dir), device="cpu")
    rejection = asdict(model.config.rejection)
    predictor = RegionSpotPredictor(model)
    predictor.set_vocabulary(names)
    best, best_key, tried = None, None, 0
    for index in progress_bar(range(candidates), desc="example", disable=not show_progress):
        pixels, objects = render_image(stream_rng(seed, EXAMPLE_CANDIDATES, index), categories, probs,
                                       world=replace(world, max_objects=max_objects))
        truth = [names[o.category_index] for o in objects]
        if len(objects) < (2 if with_unknown else 1) or len(set(truth)) != len(truth):
            continue  # a showcase of rejection needs a known object besides the unknown one
        key = (len(objects), any(categories[o.category_index].frequency == "r" for o in objects))
        if best_key is not None and key <= best_key:
            continue
        boxes = [list(obj.box) for obj in objects]
        image = Image.fromarray(pixels)
        predictor.set_image(image)
        result = predictor.predict(boxes=boxes, top_k=1, return_masks=False)
        tried += 1
        if list(result.labels) != truth:
            continue
        unknowns = showcase_unknowns(result.logits, truth, names, rejection, model.config.display_temperature) \
            if with_unknown else [None]
        if not unknowns:
            continue
        path = Path(out) / "example.png"
        image.save(path)
        best, best_key = {"file": str(path), "boxes": boxes, "labels": truth, "unknown": unknowns[0],
                          "candidate": index, "rendered": index + 1, "tried": tried}, key
        if key == (max_objects, True):
            break
    return best


def example_spec(example: dict[str, Any], names: list[str], unknown: str | None) -> dict[str, Any]:
    """``example.json``: the image, its boxes, their true labels and the vocabulary ``predict`` uses, which lacks
    ``unknown`` (a true label, listed under "unknown") when given."""
    spec = {"image": "example.png", "boxes": example["boxes"], "labels": example["labels"],
            "vocabulary": [n for n in names if n != unknown]}
    if unknown is not None:
        spec["unknown"] = [unknown]
    return spec


def record_installed_backbones(head: Path, assets: Path) -> Path:
    """Write ``head`` to ``assets/head.safetensors`` naming the installed ``assets/sam`` and ``assets/clip`` as
    its backbones (recorded by name when ``assets`` is the package's), not the build's folders."""
    from regionspot.checkpoint import load_head_checkpoint, save_head_checkpoint

    state, config, meta = load_head_checkpoint(head)
    config.segmenter, config.vision_language = str(assets / "sam"), str(assets / "clip")
    return save_head_checkpoint(assets / "head.safetensors", state, config, meta)


def install_assets(out: Path, assets: Path, example: dict[str, Any] | None, names: list[str]) -> dict[str, float]:
    """Copy the built models (+ example and vocabulary) into ``assets``; return sizes in MB. The example's
    "unknown" (:func:`choose_example`) is left out of the example's vocabulary."""
    assets.mkdir(parents=True, exist_ok=True)
    for name in ("sam", "clip"):
        target = assets / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(out / name, target)
    head = out / "runs" / "regionspot" / "final_head.safetensors"
    if head.is_file():
        record_installed_backbones(head, assets)
    (assets / "vocabulary.txt").write_text("\n".join(names) + "\n")
    if example is not None:
        shutil.copy2(example["file"], assets / "example.png")
        (assets / "example.json").write_text(json.dumps(example_spec(example, names, example.get("unknown")), indent=1))
    sizes = {}
    for name in ("sam", "clip", "head.safetensors"):
        path = assets / name
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        sizes[name] = sum(p.stat().st_size for p in files) / 1e6
    return sizes


def subset_metrics(out_dir: Path, sam: str | Path, clip: str | Path, head: str | Path, seed: int = 0,
                   num_val: int = CI_SUBSET_IMAGES, show_progress: bool = False,
                   world: WorldConfig | None = None) -> dict[str, dict[str, float]]:
    """Box AP (fractions) of RegionSpot and CLIP w/ box on the first ``num_val`` val images of ``seed``.

    The images are regenerated into ``out_dir`` (identical to the build's first val images), so CI can
    re-measure the shipped models without shipping data. Returns {"RegionSpot": row, "CLIP w/ box": row}.
    """
    out_dir = Path(out_dir)
    info = generate_shapesworld(out_dir / "data", 0, num_val, seed=seed, progress=False, world=world)
    summary = evaluate_methods(Path(info["val_json"]), Path(info["image_root"]), out_dir / "eval",
                               ("regionspot", "clip-box"), Path(head), Path(sam), Path(clip), None,
                               out_dir / "text_cache", show_progress, iou_types=("bbox",))
    return table_rows(summary, {"regionspot": "RegionSpot", "clip-box": "CLIP w/ box"})


def shipped_metrics(out: Path, record: dict[str, Any], seed: int, world: WorldConfig) -> dict[str, Any]:
    """What ``metrics.json`` in the assets holds (see the module docstring)."""
    head = out / "runs" / "regionspot" / "final_head.safetensors"
    subset = subset_metrics(out / "ci_subset", out / "sam", out / "clip", head, seed=seed, world=world)
    metrics = record["metrics"]
    return {
        "table": metrics.get("table", {}),
        "ci_subset": {"seed": seed, "num_val_images": CI_SUBSET_IMAGES, "rows": subset, "world": asdict(world)},
        "clip_zero_shot_top1": metrics.get("clip", {}).get("zero_shot_top1"),
        "clip_zero_shot_by_bucket": metrics.get("clip", {}).get("zero_shot_by_bucket"),
        "sam_miou": {k: metrics.get("sam", {}).get(k) for k in ("miou_box", "miou_point")},
        "seconds": {k: v for k, v in record["seconds"].items() if isinstance(v, (int, float))},
        "command": "regionspot shapesworld build",
    }


def reship_example(assets: Path | None = None, candidates: int = 20000, show_progress: bool = False) -> dict[str, Any]:
    """Choose the showcase example again (:func:`choose_example`) with the models installed in ``assets``
    (default: the package's ``assets/shapesworld``), the seed and world their ``metrics.json`` records, and
    write ``example.png`` and ``example.json`` there. Returns the chosen example; RuntimeError if none qualifies.
    Run as ``regionspot shapesworld example [--candidates N]``."""
    import tempfile

    if assets is None:
        from regionspot.registry import assets_dir

        assets = assets_dir() / "shapesworld"
    assets = Path(assets)
    ci = json.loads((assets / "metrics.json").read_text())["ci_subset"]
    names = [n for n in (assets / "vocabulary.txt").read_text().splitlines() if n]
    with tempfile.TemporaryDirectory() as tmp:
        example = choose_example(Path(tmp), assets / "head.safetensors", assets / "sam", assets / "clip",
                                 seed=ci["seed"], candidates=candidates, world=WorldConfig(**ci["world"]),
                                 show_progress=show_progress)
        if example is None:
            raise RuntimeError(f"no example among {candidates} candidates qualifies; search more.")
        shutil.copy2(example["file"], assets / "example.png")
    (assets / "example.json").write_text(json.dumps(example_spec(example, names, example["unknown"]), indent=1))
    return {**example, "file": str(assets / "example.png")}

