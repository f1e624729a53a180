"""From a COCO file to a head in one call: token cache, training, evaluation beside the crop baseline, display
temperature, and ``OUT/head.safetensors`` ready for ``regionspot predict --head``.

Stages (each one line through ``log``; each skipped on a rerun once finished, so a killed run continues):

1. ``cache``: SAM tokens (and the vision-language maps the head trains on) of every train box, under
   ``OUT/cache`` (:func:`regionspot.cache.extract.extract_cache`; finished shards are kept).
2. ``train``: the recipe measured for the number of train images
   (:func:`regionspot.engine.recipe_table.fill_recipe`), in ``OUT/run``; resumes from its latest checkpoint
   (:func:`regionspot.engine.train.train`). The head is written to ``OUT/head.safetensors``.
3. ``eval`` (with a val file): box AP of the head and of CLIP on the box crop on val (ground-truth boxes),
   and :func:`regionspot.engine.collapse.check_val_ap` on the pair.
4. ``calibrate`` (with a val file): the display temperature fitted on val, stored in the head.

Finished stages are recorded in ``OUT/stages/<stage>.json``; a training run that trains again (a larger
``max_iters``, ``restart``) drops the records of the stages after it.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regionspot.errors import ConfigError
from regionspot.utils.io import write_json_atomic

DEFAULT_BACKBONE = "shapesworld"
STAGES = ("cache", "train", "eval", "calibrate")


@dataclass
class CocoTrainOptions:
    """One run from COCO files to a head.

    data / images: the train annotations (COCO json) and their image folder. val / val_images: optional val
    annotations and images (default: ``images``). sam / clip: backbones (registered names, hub ids or
    folders); None: the ones ``init_head`` records, else ``DEFAULT_BACKBONE``. init_head: a head checkpoint
    (or registered model name) to fine-tune from; its architecture is kept. overrides: ``key=value`` changes
    of the training config (as ``regionspot train --config`` takes them). restart: train from step 0.
    eval_limit: evaluate and calibrate on the first images of val only.
    """

    data: Path
    images: Path
    out: Path = Path("runs/mine")
    val: Path | None = None
    val_images: Path | None = None
    sam: str | None = None
    clip: str | None = None
    init_head: str | None = None
    overrides: list[str] = field(default_factory=list)
    restart: bool = False
    eval_limit: int | None = None
    show_progress: bool = True


@dataclass
class CocoTrainResult:
    """head: OUT/head.safetensors; vocabulary: OUT/vocabulary.txt (the train categories, one a line, for
    ``predict --vocab-file``); stages: each stage's record (metrics, seconds, whether it ran now);
    ap / crop_ap: val box AP × 100 of the head and of CLIP on the box crop (None without val); warning: the
    collapse check's line, if any."""

    head: Path
    vocabulary: Path
    stages: dict[str, dict[str, Any]]
    ap: float | None = None
    crop_ap: float | None = None
    warning: str | None = None


def _check_inputs(options: CocoTrainOptions) -> None:
    for name, path in (("--data", options.data), ("--val", options.val)):
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"Annotation file {path} not found; pass {name} path/to/annotations.json (COCO format).")
    for name, path in (("--images", options.images), ("--val-images", options.val_images)):
        if path is not None and not Path(path).is_dir():
            raise ConfigError(f"Image folder {path} not found; pass {name} path/to/images.")


def resolve_init_head(ref: str) -> Path:
    """The checkpoint file of ``ref``: a head file, a run folder holding one, or a registered model name."""
    path = Path(ref).expanduser()
    for candidate in (path, path / "head.safetensors", path / "final_head.safetensors"):
        if candidate.is_file():
            return candidate
    from regionspot.registry import list_pretrained

    known = list_pretrained().get(ref)
    if known is not None and known.head and Path(known.head).is_file():
        return Path(known.head)
    raise ConfigError(f"--init-head {ref} is no head checkpoint, run folder or downloaded model; pass a "
                      "head.safetensors file (or `regionspot download NAME` first).")


def model_section(options: CocoTrainOptions) -> tuple[dict[str, Any], str, str]:
    """(the training config's ``model`` section, segmenter, vision-language) of a run.

    The architecture comes from ``init_head``, else from the head of the registered model both backbones
    name (e.g. ``shapesworld``), else the defaults with sizes read from the backbones.
    """
    from regionspot.checkpoint import load_head_checkpoint
    from regionspot.registry import list_pretrained

    base = None
    if options.init_head is not None:
        _, base, _ = load_head_checkpoint(resolve_init_head(options.init_head))
    sam = options.sam or (base.segmenter if base is not None else DEFAULT_BACKBONE)
    clip = options.clip or (base.vision_language if base is not None else DEFAULT_BACKBONE)
    if base is None and sam == clip and sam in list_pretrained():
        head = list_pretrained()[sam].head
        if head and Path(head).is_file():
            _, base, _ = load_head_checkpoint(head)
    if base is None:
        return {"segmenter": sam, "vision_language": clip}, sam, clip
    model = base.to_dict()
    model.update(segmenter=sam, vision_language=clip, display_temperature=1.0)
    return model, sam, clip


def train_config_dict(options: CocoTrainOptions, num_train_images: int) -> dict[str, Any]:
    """The training config (a TrainConfig dict) of a run: the measured recipe for ``num_train_images``, then
    ``options.overrides``."""
    import torch

    from regionspot.engine.config import apply_overrides
    from regionspot.engine.recipe_table import fill_recipe

    out = Path(options.out)
    model, _, _ = model_section(options)
    cuda = torch.cuda.is_available()
    config: dict[str, Any] = {
        "model": model, "datasets": [{"cache": str(out / "cache")}], "output_dir": str(out / "run"),
        "feature_source": "cached", "mixed_precision": "bf16" if cuda else "no", "cpu": not cuda,
        "text_cache_dir": str(out / "text_cache"), "keep_checkpoints": 1,
    }
    if options.init_head is not None:
        config["init_head"] = str(resolve_init_head(options.init_head))
    config = apply_overrides(fill_recipe(config, num_train_images), options.overrides)
    steps = int(config["max_iters"])
    config.setdefault("checkpoint_every", max(1, steps // 10))
    config.setdefault("log_every", max(1, steps // 20))
    return config


class _Run:
    def __init__(self, options: CocoTrainOptions, log: Callable[[str], None]) -> None:
        self.options, self.log = options, log
        self.out = Path(options.out)
        self.head = self.out / "head.safetensors"
        _, self.sam, self.clip = model_section(options)
        self.config: Any = None

    def stage_cache(self) -> dict[str, Any]:
        from regionspot.backbones.segmenter import load_segmenter
        from regionspot.backbones.vision_language import load_vision_language
        from regionspot.cache.config import CacheConfig
        from regionspot.cache.extract import cache_is_complete, extract_cache
        from regionspot.data.coco_json import CocoDetectionDataset
        from regionspot.registry import resolve_backbone

        folder = self.out / "cache"
        config = self.config
        pre = config.model.preprocess
        dataset = CocoDetectionDataset(self.options.data, self.options.images, dataset_name="train")
        if (folder / "manifest.json").is_file() and cache_is_complete(folder):
            return {"images": len(dataset), "reused": True}
        from regionspot.engine.setup import vision_language_size

        seg = load_segmenter(resolve_backbone(self.sam, "segmenter"), device=None,
                             decoder_layer_norm_eps=pre.sam_decoder_eps)
        vl = load_vision_language(resolve_backbone(self.clip, "vision_language"), image_size=vision_language_size(config),
                                  device=None, resize=pre.clip_resize, antialias=pre.clip_antialias)
        stats = extract_cache(dataset, seg, CacheConfig(out=folder), vision_language=vl, rank=0, world_size=1,
                              show_progress=self.options.show_progress)
        return {"images": stats.images, "boxes": stats.boxes, "skipped_shards": stats.skipped_shards}

    def stage_train(self) -> dict[str, Any]:
        from regionspot.checkpoint import load_head_checkpoint, save_head_checkpoint
        from regionspot.engine.train import train

        result = train(self.config, restart=self.options.restart, show_progress=self.options.show_progress,
                       log=lambda line: self.log(f"train: {line}"))
        if result.final_head is None:
            raise ConfigError(f"Training in {self.config.output_dir} wrote no head; rerun with --restart.")
        if not result.finished or not self.head.is_file():  # a finished run's head may carry its temperature
            state, model, meta = load_head_checkpoint(result.final_head)
            save_head_checkpoint(self.head, state, model, meta)
        return {"steps": result.step, "trained_now": not result.finished,
                "final_loss": result.history[-1]["loss"] if result.history else None}

    def stage_eval(self) -> dict[str, Any]:
        from regionspot.engine.config import EvalOptions
        from regionspot.engine.evaluate import ROW_NAMES, evaluate_dataset, load_parts

        methods = ("regionspot", "clip-box")
        seg, vl, model = load_parts(methods, str(self.head), self.sam, self.clip)
        opts = EvalOptions(methods=methods, iou_types=("bbox",), limit=self.options.eval_limit, overwrite=True,
                           text_cache_dir=str(self.out / "text_cache"))
        summary = evaluate_dataset(self.options.val, self.options.val_images or self.options.images, self.out / "eval",
                                   segmenter=seg, vision_language=vl, model=model, options=opts,
                                   show_progress=self.options.show_progress)
        ap = {m: round(100 * float(summary.results[ROW_NAMES[m]]["bbox"].AP), 2) for m in methods}
        return {"ap": ap["regionspot"], "crop_ap": ap["clip-box"]}

    def stage_calibrate(self) -> dict[str, Any]:
        from regionspot.evaluation.calibration import calibrate_head

        return calibrate_head(self.head, self.options.val, self.options.val_images or self.options.images,
                              limit=self.options.eval_limit, segmenter=self.sam, vision_language=self.clip,
                              show_progress=self.options.show_progress)


def _stage_inputs(stage: str, options: CocoTrainOptions, run: _Run) -> dict[str, Any]:
    """What a finished stage's record must match to be reused (files as absolute paths)."""
    def path(p: Path | None) -> str | None:
        return None if p is None else str(Path(p).resolve())

    if stage == "cache":
        return {"data": path(options.data), "images": path(options.images), "sam": run.sam, "clip": run.clip}
    if stage == "train":
        return {}
    return {"val": path(options.val), "val_images": path(options.val_images or options.images),
            "limit": options.eval_limit}


def _line(stage: str, record: dict[str, Any], reused: bool) -> str:
    m = record["metrics"]
    when = "done before" if reused else f"{record['seconds']:.0f} s"
    if stage == "cache":
        what = f"{m['images']} images under the cache" + (" (reused)" if m.get("reused") else "")
    elif stage == "train":
        what = f"{m['steps']} steps" + ("" if m["trained_now"] else " (finished before)")
    elif stage == "eval":
        what = f"val box AP {m['ap']:.1f} (CLIP on the box crop: {m['crop_ap']:.1f})"
    else:
        what = f"display temperature {m['temperature']:.3g} (val top-1 {100 * m['top1']:.1f}%)"
    return f"{stage}: {what} [{when}]"


def train_from_coco(options: CocoTrainOptions, log: Callable[[str], None] | None = None) -> CocoTrainResult:
    """Run the stages of the module docstring into ``options.out``; return the head and what each stage found.

    A rerun with the same options skips the finished stages and resumes training from its latest checkpoint;
    other options for a folder holding a run are refused by the training step (``restart`` starts it over).
    """
    from regionspot.data.coco_json import CocoDetectionDataset
    from regionspot.engine.collapse import check_val_ap
    from regionspot.engine.config import TrainConfig

    say = log or (lambda _line: None)
    _check_inputs(options)
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    train_set = CocoDetectionDataset(options.data, options.images)
    num_train = sum(1 for i in range(len(train_set)) if len(train_set[i].boxes))
    if num_train == 0:
        raise ConfigError(f"{options.data} has no annotated image; a head needs boxes with categories to train on.")
    vocabulary = out / "vocabulary.txt"
    names = train_set.raw_category_names or train_set.category_names
    vocabulary.write_text("".join(f"{name}\n" for name in names))
    run = _Run(options, say)
    run.config = TrainConfig.from_dict(train_config_dict(options, num_train))
    c = run.config
    say(f"recipe: {num_train} train images -> lr {c.lr:g}, batch {c.batch_size}, {c.max_iters} steps; "
        f"backbones {run.sam} + {run.clip}" + (f"; from {c.init_head}" if c.init_head else ""))
    stages = [s for s in STAGES if options.val is not None or s in ("cache", "train")]
    records: dict[str, dict[str, Any]] = {}
    for stage in stages:
        marker = out / "stages" / f"{stage}.json"
        inputs = _stage_inputs(stage, options, run)
        done = json.loads(marker.read_text()) if marker.is_file() else None
        reused = done is not None and done.get("inputs") == inputs and not options.restart
        if stage == "cache" and done is not None and not reused and (out / "cache").is_dir():
            if not options.restart:
                raise ConfigError(f"{out} holds a token cache of other data or backbones ({done.get('inputs')}); "
                                  "choose another --out, or --restart to build it again.")
            shutil.rmtree(out / "cache")
        if stage == "train":
            reused = False  # training decides itself (finished runs return at once and say so)
        if not reused:
            t0 = time.perf_counter()
            metrics = getattr(run, f"stage_{stage}")()
            record = {"metrics": metrics, "seconds": time.perf_counter() - t0, "inputs": inputs}
            if stage == "train" and metrics["trained_now"]:
                for later in STAGES[STAGES.index("train") + 1:]:
                    (out / "stages" / f"{later}.json").unlink(missing_ok=True)
                shutil.rmtree(out / "eval", ignore_errors=True)
            write_json_atomic(marker, json.loads(json.dumps(record, default=str)), indent=1)
        record = json.loads(marker.read_text())
        record["ran"] = not reused
        records[stage] = record
        say(_line(stage, record, reused))
    result = CocoTrainResult(run.head, vocabulary, records)
    if "eval" in records:
        result.ap, result.crop_ap = records["eval"]["metrics"]["ap"], records["eval"]["metrics"]["crop_ap"]
        result.warning = check_val_ap(result.ap, result.crop_ap, c.lr, c.batch_size)
        if result.warning:
            say(result.warning)
    return result
