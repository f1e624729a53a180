"""``regionspot shapesworld build``: every ShapesWorld model from scratch, and the results table.

Stages (one progress bar over them; each stage shows its own bar below it):

1. ``data``: generate ShapesWorld (COCO json + images) with ``regionspot.shapesworld.generate``.
2. ``clip``: pre-train the tiny CLIP on its own renders covering all categories (``pretrain_clip``).
3. ``sam``: pre-train the tiny SAM class-agnostically (``pretrain_sam``), mIoU on val.
4. ``cache``: SAM tokens (+ CLIP maps) of every train box (``regionspot cache``).
5. ``head``: three heads with ``regionspot train`` on f + c categories (rare never appear in train),
   both backbones frozen: RegionSpot (depth 3), SAM token only (no CLIP map), depth 1.
6. ``eval``: ``regionspot eval`` on val with GT boxes: CLIP w/ box, CLIP w/ mask and the three heads.
7. ``ship`` (``install=True``): copy sam/, clip/, head.safetensors, an example image + boxes and the
   vocabulary into ``regionspot/assets/shapesworld``, with ``metrics.json``: the table, the backbone
   metrics, the build times and the AP of RegionSpot and CLIP w/ box on the fixed val subset that CI
   re-measures (the first ``CI_SUBSET_IMAGES`` val images of the seed, regenerated bit-identically).

Writes ``OUT/report.md`` (the table, :mod:`regionspot.shapesworld.report`) and ``OUT/build.json``
(timings, metrics, sizes). ``BuildConfig.quick()`` is a few-minute smoke version with tiny data and short
schedules (numbers meaningless); the CLI command chooses the config and prints the report.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm.auto import tqdm

from regionspot.errors import RegionSpotError
from regionspot.shapesworld.generate import generate_shapesworld
from regionspot.shapesworld.pretrain_clip import ClipPretrainConfig, pretrain_clip
from regionspot.shapesworld.pretrain_sam import SamPretrainConfig, pretrain_sam
from regionspot.shapesworld.report import evaluate_methods, evaluate_rows, report_markdown, table_rows
from regionspot.shapesworld.streams import EXAMPLE_CANDIDATES, stream_rng
from regionspot.shapesworld.world import WorldConfig, uniform_probabilities, world_preset

ASSET_FILES = ("sam", "clip", "head.safetensors", "example.png", "example.json", "vocabulary.txt", "metrics.json")
CI_SUBSET_IMAGES = 60


@dataclass
class BuildConfig:
    """Sizes and time budgets of a build (``full()`` for the shipped models, ``quick()`` for a smoke run).

    world: the ShapesWorld of every stage (data, both backbones' pre-training, example, CI subset).
    clip_image_size: the size RegionSpot feeds the whole image to CLIP at (position interpolation).
    head_iters: steps of each head training; head_batch: images per step.
    """

    seed: int = 0
    world: WorldConfig = field(default_factory=WorldConfig)
    num_train: int = 1000
    num_val: int = 200
    clip: ClipPretrainConfig = field(default_factory=ClipPretrainConfig)
    sam: SamPretrainConfig = field(default_factory=SamPretrainConfig)
    clip_image_size: int = 128
    head_depth: int = 3
    head_heads: int = 4
    head_iters: int = 1500
    head_batch: int = 8
    head_lr: float = 1e-3
    sam_val_limit: int | None = 200
    eval_limit: int | None = None
    threads: int = 2

    @classmethod
    def full(cls, world: str = "v1") -> BuildConfig:
        return cls(
            world=world_preset(world),
            clip=ClipPretrainConfig(steps=100_000, max_seconds=1300),
            sam=SamPretrainConfig(steps=100_000, max_seconds=600),
        )

    @classmethod
    def quick(cls, world: str = "v1") -> BuildConfig:
        return cls(
            world=world_preset(world),
            num_train=24,
            num_val=8,
            clip=ClipPretrainConfig(steps=12, warmup_steps=3, pool_images=40, pool_scenes=16, heldout_images=10,
                                    batch_size=32, scene_batch_size=8),
            sam=SamPretrainConfig(steps=8, warmup_steps=2, pool_images=12, heldout_images=4),
            head_iters=12,
            head_batch=4,
            sam_val_limit=8,
        )


def _train_config(build: BuildConfig, out: Path, cache: Path, sam_dir: Path, clip_dir: Path, name: str,
                  depth: int, use_feature_map: bool) -> Path:
    """Write the YAML recipe of one head training; return its path."""
    width = int(build.clip.vision_width)
    recipe = {
        "model": {
            "segmenter": str(sam_dir),
            "vision_language": str(clip_dir),
            "image_size": build.clip_image_size,
            "templates": "imagenet",
            "head": {
                "token_dim": int(build.sam.width),
                "feature_dim": width,
                "embed_dim": int(build.clip.projection_dim),
                "depth": depth,
                "num_heads": build.head_heads,
                "ffn_dim": 4 * width,
                "dropout": 0.1,
                "use_feature_map": use_feature_map,
            },
        },
        "datasets": [{"cache": str(cache)}],
        "output_dir": str(out / "runs" / name),
        "feature_source": "cached",
        "batch_size": build.head_batch,
        "max_regions": 100,
        "lr": build.head_lr,
        "weight_decay": 1e-4,
        "max_iters": build.head_iters,
        "warmup_iters": max(1, build.head_iters // 20),
        "lr_steps": [int(build.head_iters * 0.75), int(build.head_iters * 0.92)],
        "mixed_precision": "no",
        "cpu": True,
        "checkpoint_every": build.head_iters,
        "keep_checkpoints": 1,
        "log_every": max(1, build.head_iters // 20),
        "seed": build.seed,
        "text_cache_dir": str(out / "text_cache"),
    }
    path = out / "configs" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def choose_example(out: Path, head: Path, sam_dir: Path, clip_dir: Path, seed: int = 0, candidates: int = 1000,
                   max_objects: int = 3, world: WorldConfig | None = None) -> dict[str, Any] | None:
    """A showcase image for ``regionspot predict``: among ``candidates`` fresh renders (all categories
    equally likely, 1..``max_objects`` objects of distinct classes), the one with the most objects that
    the trained model labels all correctly (top-1 over the whole vocabulary); ties prefer a rare class.

    This is a demo picked for being right, not a measurement (the table is). Writes OUT/example.png;
    returns {"file", "boxes", "labels"} or None when no candidate qualifies.
    """
    from PIL import Image

    from regionspot.inference.predictor import RegionSpotPredictor
    from regionspot.model import RegionSpot

    world = WorldConfig() if world is None else world
    categories = world.categories(seed)
    names = [c.name for c in categories]
    probs = uniform_probabilities(categories)
    model = RegionSpot.from_pretrained(str(head), segmenter=str(sam_dir), vision_language=str(clip_dir), device="cpu")
    predictor = RegionSpotPredictor(model)
    predictor.set_vocabulary(names)
    best, best_key = None, None
    for index in range(candidates):
        pixels, objects = world.render(stream_rng(seed, EXAMPLE_CANDIDATES, index), categories, probs,
                                       max_objects=max_objects)
        truth = [names[o.category_index] for o in objects]
        if not objects or len(set(truth)) != len(truth):
            continue
        key = (len(objects), any(categories[o.category_index].frequency == "r" for o in objects))
        if best_key is not None and key <= best_key:
            continue
        boxes = [list(obj.box) for obj in objects]
        image = Image.fromarray(pixels)
        predictor.set_image(image)
        result = predictor.predict(boxes=boxes, top_k=1, return_masks=False)
        if list(result.labels) == truth:
            path = Path(out) / "example.png"
            image.save(path)
            best, best_key = {"file": str(path), "boxes": boxes, "labels": truth}, key
    return best


def install_assets(out: Path, assets: Path, example: dict[str, Any] | None, names: list[str]) -> dict[str, float]:
    """Copy the built models (+ example and vocabulary) into ``assets``; return sizes in MB."""
    assets.mkdir(parents=True, exist_ok=True)
    for name in ("sam", "clip"):
        target = assets / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(out / name, target)
    head = out / "runs" / "regionspot" / "final_head.safetensors"
    if head.is_file():
        shutil.copy2(head, assets / "head.safetensors")
    (assets / "vocabulary.txt").write_text("\n".join(names) + "\n")
    if example is not None:
        shutil.copy2(example["file"], assets / "example.png")
        spec = {"image": "example.png", "boxes": example["boxes"], "labels": example["labels"], "vocabulary": names}
        (assets / "example.json").write_text(json.dumps(spec, indent=1))
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


def shipped_metrics(out: Path, record: dict[str, Any], config: BuildConfig) -> dict[str, Any]:
    """What ``metrics.json`` in the assets holds (see the module docstring)."""
    head = out / "runs" / "regionspot" / "final_head.safetensors"
    subset = subset_metrics(out / "ci_subset", out / "sam", out / "clip", head, seed=config.seed,
                            world=config.world)
    metrics = record["metrics"]
    return {
        "table": metrics.get("table", {}),
        "ci_subset": {"seed": config.seed, "num_val_images": CI_SUBSET_IMAGES, "rows": subset,
                      "world": asdict(config.world)},
        "clip_zero_shot_top1": metrics.get("clip", {}).get("zero_shot_top1"),
        "clip_zero_shot_by_bucket": metrics.get("clip", {}).get("zero_shot_by_bucket"),
        "sam_miou": {k: metrics.get("sam", {}).get(k) for k in ("miou_box", "miou_point")},
        "seconds": {k: v for k, v in record["seconds"].items() if isinstance(v, (int, float))},
        "command": "regionspot shapesworld build",
    }


def run_build(out: str | Path, config: BuildConfig, install: bool = False, show_progress: bool = True,
              stop_after: str | None = None, resume: bool = False) -> dict[str, Any]:
    """Run every stage into ``out`` (see module docstring); return the build record (also OUT/build.json).

    stop_after: a stage name to stop after (e.g. "sam" builds the backbones only).
    resume: skip stages whose outputs a previous run into ``out`` finished (data, clip, sam, cache, head).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(config.threads)
    config = replace(config, clip=replace(config.clip, world=config.world), sam=replace(config.sam, world=config.world))
    record: dict[str, Any] = {"config": asdict(config), "seconds": {}, "metrics": {}}
    stages = ["data", "clip", "sam", "cache", "head", "eval"] + (["ship"] if install else [])
    if stop_after is not None and stop_after not in stages:
        raise RegionSpotError(f"Unknown stage {stop_after!r}; choose one of {stages}.")
    bar = tqdm(stages, desc="build", disable=not show_progress, position=0)
    start = time.perf_counter()
    data_dir, sam_dir, clip_dir, cache_dir = out / "data", out / "sam", out / "clip", out / "cache"
    val_json, train_json = data_dir / "annotations" / "val.json", data_dir / "annotations" / "train.json"

    def save() -> None:
        # Sum of the stage times, so a resumed build still reports the whole build.
        stage_times = [v for k, v in record["seconds"].items() if k in stages and isinstance(v, (int, float))]
        record["seconds"]["total"] = sum(stage_times)
        record["seconds"]["this_run"] = time.perf_counter() - start
        (out / "build.json").write_text(json.dumps(record, indent=2, default=str))

    names: list[str] = []
    previous = json.loads((out / "build.json").read_text()) if resume and (out / "build.json").is_file() else {}
    for stage in bar:
        bar.set_description(f"build: {stage}")
        t0 = time.perf_counter()
        if resume and _stage_done(stage, out):
            record["seconds"][stage] = previous.get("seconds", {}).get(stage)
            if stage in previous.get("metrics", {}):
                record["metrics"][stage] = previous["metrics"][stage]
            if stage == "head":
                record["seconds"]["heads"] = previous.get("seconds", {}).get("heads")
            if stage == stop_after:
                break
            continue
        if stage == "data":
            info = generate_shapesworld(data_dir, config.num_train, config.num_val, seed=config.seed,
                                       progress=show_progress, world=config.world)
            record["metrics"]["data"] = {"train": info["train"], "val": info["val"], "buckets": info["buckets"]}
        elif stage == "clip":
            result = pretrain_clip(clip_dir, config.clip, show_progress=show_progress)
            record["metrics"]["clip"] = {k: v for k, v in asdict(result).items() if k != "folder"}
        elif stage == "sam":
            result = pretrain_sam(sam_dir, config.sam, show_progress=show_progress, val_annotations=val_json,
                                  val_image_root=data_dir, val_limit=config.sam_val_limit)
            record["metrics"]["sam"] = {k: v for k, v in asdict(result).items() if k != "folder"}
        elif stage == "cache":
            from regionspot.backbones.segmenter import load_segmenter
            from regionspot.backbones.vision_language import load_vision_language
            from regionspot.cache.extract import extract_cache
            from regionspot.data.coco_json import CocoDetectionDataset

            dataset = CocoDetectionDataset(train_json, data_dir, dataset_name="shapesworld-train")
            stats = extract_cache(dataset, load_segmenter(str(sam_dir), device="cpu"), cache_dir,
                                  vision_language=load_vision_language(str(clip_dir), image_size=config.clip_image_size,
                                                                       device="cpu"),
                                  rank=0, world_size=1, show_progress=show_progress)
            record["metrics"]["cache"] = asdict(stats)
        elif stage == "head":
            from regionspot.engine.config import TrainConfig
            from regionspot.engine.train import train

            record["seconds"]["heads"] = {}
            for name, depth, use_map in (("regionspot", config.head_depth, True), ("sam_token_only", config.head_depth, False),
                                         ("depth1", 1, True)):
                t_head = time.perf_counter()
                recipe = _train_config(config, out, cache_dir, sam_dir, clip_dir, name, depth, use_map)
                train(TrainConfig.from_yaml(recipe), resume=False, show_progress=show_progress)
                record["seconds"]["heads"][name] = time.perf_counter() - t_head
        elif stage == "eval":
            names = [c["name"] for c in json.loads(val_json.read_text())["categories"]]
            record["metrics"]["table"] = evaluate_rows(out, config.eval_limit, show_progress)
        elif stage == "ship":
            from regionspot.registry import assets_dir

            head = out / "runs" / "regionspot" / "final_head.safetensors"
            example = choose_example(out, head, sam_dir, clip_dir, seed=config.seed, world=config.world)
            record["metrics"]["example"] = example
            record["metrics"]["sizes_mb"] = install_assets(out, assets_dir() / "shapesworld", example,
                                                           names or _names(val_json))
            record["seconds"]["ship"] = time.perf_counter() - t0
            save()
            shipped = shipped_metrics(out, record, config)
            record["metrics"]["ci_subset"] = shipped["ci_subset"]
            (assets_dir() / "shapesworld" / "metrics.json").write_text(json.dumps(shipped, indent=1) + "\n")
        record["seconds"][stage] = time.perf_counter() - t0
        save()
        if stage == "eval":
            (out / "report.md").write_text(report_markdown(record))
        if stage == stop_after:
            break
    bar.close()
    save()
    return record


def _stage_done(stage: str, out: Path) -> bool:
    """Whether a previous run into ``out`` finished ``stage`` (its outputs exist)."""
    if stage == "data":
        return (out / "data" / "annotations" / "val.json").is_file()
    if stage in ("clip", "sam"):
        return (out / stage / "pretrain_metrics.json").is_file()
    if stage == "cache":
        from regionspot.cache.extract import cache_is_complete

        try:
            return cache_is_complete(out / "cache")
        except (OSError, RegionSpotError):
            return False
    if stage == "head":
        return all((out / "runs" / n / "final_head.safetensors").is_file() for n in ("regionspot", "sam_token_only", "depth1"))
    if stage == "eval":
        return (out / "report.md").is_file() and (out / "eval" / "depth1" / "report.json").is_file()
    return False


def _names(val_json: Path) -> list[str]:
    return [c["name"] for c in json.loads(val_json.read_text())["categories"]]
