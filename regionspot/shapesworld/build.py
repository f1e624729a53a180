"""``regionspot shapesworld build``: every ShapesWorld model from scratch, and the results table.

Stages (one progress bar over them; each stage shows its own bar below it):

1. ``data``: generate ShapesWorld (COCO json + images) with ``regionspot.shapesworld.generate``.
2. ``clip``: pre-train the tiny CLIP on its own renders covering all categories (``pretrain_clip``).
3. ``sam``: pre-train the tiny SAM class-agnostically (``pretrain_sam``), mIoU on val.
4. ``cache``: SAM tokens (+ CLIP maps) of every train box (``regionspot cache``).
5. ``head``: three heads with ``regionspot train`` on f + c categories (rare never appear in train),
   both backbones frozen: RegionSpot (depth 3), SAM token only (no CLIP map), depth 1.
6. ``calibrate``: the display temperature of the RegionSpot head, fitted on val (temperature scaling,
   :mod:`regionspot.evaluation.calibration`) and written into its checkpoint.
7. ``eval``: ``regionspot eval`` on val with GT boxes: CLIP w/ box, CLIP w/ mask and the three heads.
8. ``ship`` (``install=True``): copy sam/, clip/, head.safetensors, an example image + boxes (with one of its
   objects' classes left out of the example's vocabulary, to show a region that is none of the names) and the
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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import yaml

from regionspot.errors import RegionSpotError
from regionspot.shapesworld.generate import generate_shapesworld
from regionspot.shapesworld.pretrain_clip import ClipPretrainConfig, pretrain_clip
from regionspot.shapesworld.pretrain_sam import SamPretrainConfig, pretrain_sam
from regionspot.shapesworld.report import evaluate_rows, report_markdown
from regionspot.shapesworld.ship import choose_example, install_assets, shipped_metrics
from regionspot.shapesworld.world import WorldConfig, world_preset
from regionspot.utils.io import write_json_atomic
from regionspot.utils.progress import progress_bar

STAGES = ("data", "clip", "sam", "cache", "head", "calibrate", "eval", "ship")
# Pre-training steps (CLIP, SAM) of a full build per world: step budgets, not seconds, so that a build gives
# the same models on any machine. v1's are what the time budgets of the first shipped build (1300 s and
# 600 s on a 2-core CPU) came to; v2 has half the classes and gets half the steps.
FULL_STEPS = {"v1": (4800, 2900), "v2": (2400, 1450)}
# Weight of the tiny SAM's auxiliary shape-name loss on its mask token (``token_probe``) per world.
FULL_SAM_SHAPE_LOSS = {"v1": 0.0, "v2": 0.0}
HEADS = (("regionspot", None, True), ("sam_token_only", None, False), ("depth1", 1, True))  # name, depth, map

@dataclass
class BuildConfig:
    """Sizes and time budgets of a build (``full()`` for the shipped models, ``quick()`` for a smoke run).

    world: the ShapesWorld of every stage (data, both backbones' pre-training, example, CI subset).
    clip_image_size: the size RegionSpot feeds the whole image to CLIP at (position interpolation).
    head_iters: steps of each head training; head_batch: images per step.
    example_candidates: renders searched for the bundled example (the most objects, all labelled right, one
        class left out that the head rejects; ``ship.choose_example``).
    negatives_per_image / vocabulary_drop: the heads' negatives: background boxes cached per train image and
        the chance of a class leaving a step's vocabulary (``CacheConfig`` / ``TrainConfig`` fields; 0: none).
    backbones_from: a folder holding a finished build's ``sam/`` and ``clip/`` (e.g. the installed assets) to
        copy instead of pre-training them, with its ``metrics.json`` for their figures: retrains the heads only.
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
    example_candidates: int = 20000
    negatives_per_image: int = 0
    vocabulary_drop: float = 0.0
    backbones_from: str | None = None

    @classmethod
    def full(cls, world: str = "v2", sam_shape_loss: float | None = None) -> BuildConfig:
        """The shipped recipe of ``world``; sam_shape_loss overrides its SAM shape-loss weight."""
        preset = world_preset(world)  # a one-line error for an unknown name
        clip_steps, sam_steps = FULL_STEPS[world]
        return cls(world=preset, clip=ClipPretrainConfig(steps=clip_steps),
                   sam=SamPretrainConfig(steps=sam_steps, shape_loss_weight=_shape_loss(world, sam_shape_loss)))

    @classmethod
    def quick(cls, world: str = "v2", sam_shape_loss: float | None = None) -> BuildConfig:
        return cls(
            world=world_preset(world),
            num_train=24,
            num_val=8,
            clip=ClipPretrainConfig(steps=12, warmup_steps=3, pool_images=40, pool_scenes=16, heldout_images=10,
                                    batch_size=32, scene_batch_size=8),
            sam=SamPretrainConfig(steps=8, warmup_steps=2, pool_images=12, heldout_images=4,
                                  shape_loss_weight=_shape_loss(world, sam_shape_loss)),
            head_iters=12,
            head_batch=4,
            sam_val_limit=8,
        )


def _shape_loss(world: str, override: float | None) -> float:
    """The SAM shape-loss weight of a build: ``override``, else the world's recipe (FULL_SAM_SHAPE_LOSS)."""
    if override is None:
        return FULL_SAM_SHAPE_LOSS[world]
    if override < 0:
        raise RegionSpotError(f"The SAM shape-loss weight must be >= 0, got {override}.")
    return float(override)


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
        "vocabulary_drop": build.vocabulary_drop,
    }
    path = out / "configs" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


class _Build:
    """One build's folders and stage bodies; each stage returns its metrics (JSON-ready)."""

    def __init__(self, out: Path, config: BuildConfig, show_progress: bool) -> None:
        self.out, self.config, self.show_progress = out, config, show_progress
        self.data, self.sam, self.clip, self.cache = out / "data", out / "sam", out / "clip", out / "cache"
        self.val_json, self.train_json = self.data / "annotations" / "val.json", self.data / "annotations" / "train.json"
        self.head = out / "runs" / "regionspot" / "final_head.safetensors"

    def stage_data(self) -> dict[str, Any]:
        info = generate_shapesworld(self.data, self.config.num_train, self.config.num_val, seed=self.config.seed,
                                    progress=self.show_progress, world=self.config.world)
        return {"train": info["train"], "val": info["val"], "buckets": info["buckets"]}

    def stage_clip(self) -> dict[str, Any]:
        if self.config.backbones_from is not None:
            return self._reuse("clip")
        result = pretrain_clip(self.clip, self.config.clip, show_progress=self.show_progress)
        return {k: v for k, v in asdict(result).items() if k != "folder"}

    def _reuse(self, name: str) -> dict[str, Any]:
        """Copy ``backbones_from/name`` into the build; its figures from that folder's metrics.json, if any."""
        source = Path(self.config.backbones_from) / name
        if not (source / "config.json").is_file():
            raise RegionSpotError(f"{source} holds no model; point backbones_from at a folder with sam/ and clip/ "
                                  "(the installed assets, or a finished build).")
        shutil.rmtree(self.out / name, ignore_errors=True)
        shutil.copytree(source, self.out / name)
        shipped = source.parent / "metrics.json"
        recorded = json.loads(shipped.read_text()) if shipped.is_file() else {}
        if name == "clip":
            figures = {"zero_shot_top1": recorded.get("clip_zero_shot_top1"),
                       "zero_shot_by_bucket": recorded.get("clip_zero_shot_by_bucket")}
        else:
            figures = dict(recorded.get("sam_miou") or {})
        return {"reused": str(source), **{k: v for k, v in figures.items() if v is not None}}

    def stage_sam(self) -> dict[str, Any]:
        if self.config.backbones_from is not None:
            return self._reuse("sam")
        result = pretrain_sam(self.sam, self.config.sam, show_progress=self.show_progress, val_annotations=self.val_json,
                              val_image_root=self.data, val_limit=self.config.sam_val_limit)
        return {k: v for k, v in asdict(result).items() if k != "folder"}

    def stage_cache(self) -> dict[str, Any]:
        from regionspot.backbones.segmenter import load_segmenter
        from regionspot.backbones.vision_language import load_vision_language
        from regionspot.cache.config import CacheConfig
        from regionspot.cache.extract import extract_cache
        from regionspot.data.coco_json import CocoDetectionDataset

        dataset = CocoDetectionDataset(self.train_json, self.data, dataset_name="shapesworld-train")
        clip = load_vision_language(str(self.clip), image_size=self.config.clip_image_size, device="cpu")
        config = CacheConfig(out=self.cache, negatives_per_image=self.config.negatives_per_image)
        stats = extract_cache(dataset, load_segmenter(str(self.sam), device="cpu"), config,
                              vision_language=clip,
                              rank=0, world_size=1, show_progress=self.show_progress)
        return asdict(stats)

    def stage_head(self) -> dict[str, Any]:
        from regionspot.engine.config import TrainConfig
        from regionspot.engine.train import train

        seconds = {}
        for name, depth, use_map in HEADS:
            if (self.out / "runs" / name / "final_head.safetensors").is_file():
                continue  # finished before an interruption
            start = time.perf_counter()
            recipe = _train_config(self.config, self.out, self.cache, self.sam, self.clip, name,
                                   depth or self.config.head_depth, use_map)
            train(TrainConfig.from_yaml(recipe), show_progress=self.show_progress)  # resumes a killed run
            seconds[name] = time.perf_counter() - start
        return {"seconds": seconds}

    def stage_calibrate(self) -> dict[str, Any]:
        from regionspot.evaluation.calibration import calibrate_head

        return calibrate_head(self.head, self.val_json, self.data, limit=self.config.sam_val_limit,
                              segmenter=str(self.sam), vision_language=str(self.clip), show_progress=self.show_progress)

    def stage_eval(self) -> dict[str, Any]:
        return {"table": evaluate_rows(self.out, self.config.eval_limit, self.show_progress)}

    def stage_ship(self) -> dict[str, Any]:
        from regionspot.registry import assets_dir

        example = choose_example(self.out, self.head, self.sam, self.clip, seed=self.config.seed, world=self.config.world,
                                 candidates=self.config.example_candidates)
        names = [c["name"] for c in json.loads(self.val_json.read_text())["categories"]]
        sizes = install_assets(self.out, assets_dir() / "shapesworld", example, names)
        return {"example": example, "unknown": None if example is None else example["unknown"], "sizes_mb": sizes}


def run_build(out: str | Path, config: BuildConfig, install: bool = False, show_progress: bool = True,
              stop_after: str | None = None, resume: bool = True) -> dict[str, Any]:
    """Run every stage into ``out`` (see module docstring); return the build record (also OUT/build.json).

    Each stage ends by writing ``OUT/stages/<stage>.json`` (its metrics and seconds), after its outputs.
    resume (default): a stage whose file exists is not run again, so a build killed at any point and rerun
    continues after its last finished stage. The config must then be the one the folder was started
    with. resume=False starts the folder over. stop_after: a stage name to stop after.
    """
    out = Path(out)
    stages = [s for s in STAGES if s != "ship" or install]
    if stop_after is not None and stop_after not in stages:
        raise RegionSpotError(f"Unknown stage {stop_after!r}; choose one of {stages}.")
    config = replace(config, clip=replace(config.clip, world=config.world), sam=replace(config.sam, world=config.world))
    _start_folder(out, config, resume)
    torch.set_num_threads(config.threads)
    build = _Build(out, config, show_progress)
    record: dict[str, Any] = {"config": asdict(config), "seconds": {}, "metrics": {}}
    start = time.perf_counter()
    bar = progress_bar(stages, desc="build", disable=not show_progress, position=0)
    for stage in bar:
        bar.set_description(f"build: {stage}")
        marker = out / "stages" / f"{stage}.json"
        if not marker.is_file():
            t0 = time.perf_counter()
            body: Callable[[], dict[str, Any]] = getattr(build, f"stage_{stage}")
            metrics = body()
            if stage == "eval":
                (out / "report.md").write_text(report_markdown({**record, "metrics": {**record["metrics"], **metrics}}))
            done = {"metrics": metrics, "seconds": time.perf_counter() - t0}
            write_json_atomic(marker, json.loads(json.dumps(done, default=str)), indent=1)
        done = json.loads(marker.read_text())
        record["seconds"][stage] = done["seconds"]
        record["metrics"].update(done["metrics"] if stage in ("eval", "ship") else {stage: done["metrics"]})
        _save_record(out, record, start)
        if stage == "ship":
            from regionspot.registry import assets_dir

            shipped = shipped_metrics(out, record, config.seed, config.world)
            record["metrics"]["ci_subset"] = shipped["ci_subset"]
            write_json_atomic(assets_dir() / "shapesworld" / "metrics.json", shipped, indent=1)
        if stage == stop_after:
            break
    bar.close()
    _save_record(out, record, start)
    return record


def _start_folder(out: Path, config: BuildConfig, resume: bool) -> None:
    """Record the config in OUT/build_config.json; refuse to resume a folder started with another one."""
    saved = out / "build_config.json"
    wanted = json.loads(json.dumps(asdict(config), default=str))
    if resume and saved.is_file() and json.loads(saved.read_text()) != wanted:
        raise RegionSpotError(f"{out} holds a build with another configuration; rerun with --fresh to start it "
                              "over, or choose another --out.")
    if not resume:
        for stale in ("stages", "cache", "runs", "eval"):
            shutil.rmtree(out / stale, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(saved, wanted, indent=1)


def _save_record(out: Path, record: dict[str, Any], start: float) -> None:
    stage_times = [v for k, v in record["seconds"].items() if k in STAGES]
    record["seconds"]["total"] = sum(stage_times)  # a resumed build still reports the whole build
    record["seconds"]["this_run"] = time.perf_counter() - start
    write_json_atomic(out / "build.json", json.loads(json.dumps(record, default=str)), indent=2)
