"""Run configurations: training (``TrainConfig``, read from YAML with ``key=value`` overrides from the command
line) and evaluation (``EvalOptions``). Both reject bad values with one ``ConfigError`` line naming the fix.

Overrides use dotted keys into the nested config and YAML values, e.g.
``lr=1e-4 model.head.dropout=0 lr_steps=[300,400] datasets.0.weight=2``.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from regionspot.config import INPUT_RESIZES, RegionSpotConfig, check_keys
from regionspot.errors import ConfigError

if TYPE_CHECKING:  # the command line imports these options before torch (cli --help answers without it)
    from regionspot.evaluation.protocol import Protocol

METHODS = ("regionspot", "clip-box", "clip-mask")
# The sizes a training config may leave to its backbones (dotted keys as a config spells them).
SIZE_KEYS = ("model.head.token_dim", "model.head.feature_dim", "model.head.embed_dim", "model.image_size")
MASK_RETURNS = ("sam", "nearest")


@dataclass
class DatasetSpec:
    """One training dataset: a token cache built by ``regionspot cache`` and its sampling weight."""

    cache: str
    weight: float = 1.0


@dataclass
class TrainConfig:
    """Everything a training run needs. Defaults are the paper's (AdamW 2.5e-5, wd 1e-4, batch 16,
    450k iterations, lr ÷10 at 350k and 420k).

    batch_size: global images per step (split evenly over processes).
    feature_source: "cached" reads vision-language maps from the cache; "online" runs the model on the
        (flipped, colour-jittered) image each step.
    max_regions: boxes per image are randomly subsampled to at most this many.
    flip_prob: probability of using the mirrored variant of an image (tokens cached for both).
    color_jitter: brightness/contrast/saturation strength for online features (0 disables).
    mixed_precision: "no", "bf16" or "fp16" (autocast; on CPU only "no" and "bf16" make sense).
    clip_grad_norm: max gradient L2 norm, or None to disable.
    init_head: a head checkpoint (safetensors) to start from, e.g. stage 1's final head for stage 2.
    negatives_per_image: background boxes per image and step, drawn from those the cache holds (``regionspot
        cache --negatives-per-image``), with all-zero targets (None: all the cache holds; 0: none).
    vocabulary_drop: the chance of each class of the dataset's vocabulary being left out of a step's vocabulary
        (drawn per step); the step's regions of a left-out class become negatives with all-zero targets (0: the
        whole vocabulary every step, as the paper trains).
    A run that uses negatives of either kind records ``model.trained_with_negatives`` in its head.

    Sizes: the head's token_dim / feature_dim / embed_dim and ``model.image_size`` that a config read by
    :meth:`from_dict` does not state are listed in ``sizes_from_backbones`` (dotted keys of ``SIZE_KEYS``):
    training reads them from the chosen backbones (``regionspot.engine.setup.fill_sizes``), and
    :meth:`to_dict` leaves them out. A config built in Python states them all.
    """

    model: RegionSpotConfig = field(default_factory=RegionSpotConfig)
    datasets: list[DatasetSpec] = field(default_factory=list)
    output_dir: str = "runs/regionspot"
    feature_source: str = "cached"
    batch_size: int = 16
    max_regions: int = 100
    lr: float = 2.5e-5
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    max_iters: int = 450_000
    warmup_iters: int = 1000
    warmup_factor: float = 0.001
    lr_steps: list[int] = field(default_factory=lambda: [350_000, 420_000])
    lr_gamma: float = 0.1
    clip_grad_norm: float | None = 1.0
    mixed_precision: str = "bf16"
    cpu: bool = False
    seed: int = 42
    flip_prob: float = 0.5
    color_jitter: float = 0.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    checkpoint_every: int = 5000
    keep_checkpoints: int = 3
    log_every: int = 20
    text_cache_dir: str | None = None
    init_head: str | None = None
    verify_cache: str = "full"
    negatives_per_image: int | None = None
    vocabulary_drop: float = 0.0

    def validate(self) -> None:
        if not self.datasets:
            raise ConfigError("No training datasets: set `datasets: [{cache: path/to/cache}]` in the config.")
        if self.feature_source not in ("cached", "online"):
            raise ConfigError(f"feature_source must be 'cached' or 'online', got {self.feature_source!r}.")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ConfigError(f"mixed_precision must be no, bf16 or fp16, got {self.mixed_precision!r}.")
        if self.batch_size < 1 or self.max_iters < 1 or self.max_regions < 1:
            raise ConfigError("batch_size, max_iters and max_regions must be positive.")
        if self.negatives_per_image is not None and self.negatives_per_image < 0:
            raise ConfigError(f"negatives_per_image must be >= 0 or null (all cached), got {self.negatives_per_image}.")
        if not 0 <= self.vocabulary_drop < 1:
            raise ConfigError(f"vocabulary_drop must be in [0, 1), got {self.vocabulary_drop}.")
        if sorted(self.lr_steps) != list(self.lr_steps):
            raise ConfigError(f"lr_steps must be increasing, got {self.lr_steps}.")

    @property
    def sizes_from_backbones(self) -> tuple[str, ...]:
        """The keys of ``SIZE_KEYS`` this config leaves to its backbones (none unless read by ``from_dict``)."""
        return getattr(self, "_sizes_from_backbones", ())

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["betas"] = list(self.betas)
        for key in self.sizes_from_backbones:
            node = data
            *parents, last = key.split(".")
            for part in parents:
                node = node[part]
            node.pop(last, None)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        stated = copy.deepcopy(data)
        data = dict(data)
        check_keys(cls, data, ConfigError)
        try:
            model = RegionSpotConfig.from_dict(data.pop("model", {}) or {})
        except (ValueError, TypeError) as e:
            raise ConfigError(f"Bad `model` section: {e}") from e
        datasets = []
        for d in data.pop("datasets", []) or []:
            if isinstance(d, str):
                d = {"cache": d}
            if not isinstance(d, dict) or "cache" not in d or set(d) - {"cache", "weight"}:
                raise ConfigError(f"Each dataset needs `cache:` (and optionally `weight:`), got {d!r}.")
            datasets.append(DatasetSpec(cache=str(d["cache"]), weight=float(d.get("weight", 1.0))))
        if "betas" in data:
            data["betas"] = tuple(data["betas"])
        try:
            config = cls(model=model, datasets=datasets, **data)
        except TypeError as e:
            raise ConfigError(f"Bad training config: {e}") from e
        config._sizes_from_backbones = tuple(key for key in SIZE_KEYS if not _states(stated, key))
        config.validate()
        return config

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
        """A config file (with its ``base:`` files merged in, see :func:`read_config_yaml`) and overrides."""
        return cls.from_dict(apply_overrides(read_config_yaml(path), overrides or []))

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def _states(data: Any, key: str) -> bool:
    """Whether the nested mapping ``data`` sets the dotted ``key`` (to anything but null)."""
    for part in key.split("."):
        if not isinstance(data, dict) or data.get(part) is None:
            return False
        data = data[part]
    return True


def read_config_yaml(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A YAML config as a dict, its ``base:`` files (one name or a list, relative to the file) merged under it.

    Bases are merged in order, then the file itself: mappings merge key by key, any other value (lists
    included) replaces the base's. So a stage-2 recipe can say ``base: [regionspot_bl_o365.yaml,
    data/o365_oi_v3det.yaml]`` and change only what differs.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {path} not found; pass --config configs/<name>.yaml.")
    if path.resolve() in _chain:
        raise ConfigError(f"Config {path} is its own base ({' -> '.join(str(p) for p in (*_chain, path.resolve()))}).")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"Config file {path} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {path} must hold a mapping of keys to values.")
    bases = data.pop("base", None) or []
    merged: dict[str, Any] = {}
    for base in [bases] if isinstance(bases, str) else bases:
        merged = _merge(merged, read_config_yaml(path.parent / str(base), (*_chain, path.resolve())))
    return _merge(merged, data)


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in top.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else copy.deepcopy(value)
    return out


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``dotted.key=yaml_value`` applied (list items by index)."""
    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"Override {item!r} is not key=value (e.g. lr=1e-4 or model.head.dropout=0).")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise ConfigError(f"Override {item!r}: value is not valid YAML ({e}).") from e
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
            try:
                value = float(value)
            except ValueError:
                pass
        parts = key.strip().split(".")
        node: Any = data
        for part in parts[:-1]:
            if isinstance(node, list):
                node = node[int(part)]
            else:
                node = node.setdefault(part, {})
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return data


@dataclass
class EvalOptions:
    """Everything ``regionspot eval`` is asked: the one list of its options (the command line fills it field by
    field; :func:`regionspot.engine.evaluate.run_evaluation` runs it). Messages name these fields.

    data / images: the COCO/LVIS ground truth and its image root (:func:`~regionspot.engine.evaluate.evaluate_dataset`
        takes them as arguments, with the model parts built). out: the run folder (predictions, report).
    head / segmenter / vision_language: the head (checkpoint or registered name; None: the embedded model) and
        overrides of its backbones (registered name, hub id or folder). device: where they run (None: the
        accelerator's). merge_only: no prediction: merge what ``out`` holds and score it.
    methods: rows of the table, a subset of ``METHODS``, in order.
    boxes: "gt" (every ground-truth box is a prompt) or a COCO-results json of detections.
    iou_types: ("bbox",), ("segm",) or both; "segm" scores the segmenter's masks.
    max_dets_per_image: the evaluator's per-image cap (LVIS: 300); also how many (box, class) pairs an
        image keeps in the prediction store. fixed_ap: Dave et al.'s fixed AP (no per-image cap, top
        10,000 per class); the store then keeps ``fixed_ap_pairs_per_image`` pairs per image.
    limit: evaluate only the first ``limit`` images (by id). batch_size: images per SAM image-encoder and
        CLIP feature-map call. chunk_size: boxes per SAM decoder call (None: all boxes of an image in one call).
    workers: processes that decode and resize images ahead of the model (0: threads of the main process;
        None: 0 on a CPU, min(4, CPUs - 1) on a GPU). sync_timing: synchronise the GPU around each stage so
        that the per-stage seconds are exact (costs the overlap of host and device work; images/s is exact
        either way).
    crop_batch_size: crops per CLIP call for the baselines.
    max_boxes_per_image / min_box_score: detections source only: keep the top boxes by detector score.
    evaluator: "faster_coco_eval" or "lvis". templates: set name or list (None: the model's / "imagenet").
    text_cache_dir: text-embedding cache (None: the default cache; False: none).
    overwrite: discard predictions already in ``out`` instead of resuming.
    eval_resize / eval_min_size / eval_max_size: the image both backbones see, as ``PreprocessConfig``'s fields
        of the same names: "none" (original), "shortest-edge" (detectron2's
        ResizeShortestEdge(eval_min_size, eval_max_size), PIL bilinear; boxes scaled with it) or None (the
        head's ``preprocess.eval_resize``; "none" without a head).
    mask_return: "sam" (SAM's bilinear upsampling of the mask logits straight to the original size) or
        "nearest" (masks at the input scale, then torch's nearest-neighbour to the original size, as the
        released evaluation does).
    paper_protocol: the released evaluation: eval_resize "shortest-edge" 800/1333 and mask_return
        "nearest" (the head's CLIP resize, class names and SAM eps come from its checkpoint as always).
    fast_path: the backbones' numerics (``regionspot.inference.fast``): "fp32" (default), "bf16", "int8",
        "compile", "eager", or "auto" (the fastest whose accuracy guard passed on this machine).
    backend: what runs the model (``regionspot.inference.backends.BACKENDS``): "torch" (default), or the exported
        graphs on the CPU under "onnxruntime", "onnxruntime-int8", "openvino", "openvino-bf16" (the regionspot
        method only, one process, one image at a time: ``regionspot.engine.eval_onnx``). onnx: the folder of
        exported graphs an ONNX backend runs (None: the head's export kept in the model home, made on first use).
    """

    data: Path | None = None
    images: Path | None = None
    out: Path = Path("eval")
    head: str | None = None
    segmenter: str | None = None
    vision_language: str | None = None
    device: str | None = None
    merge_only: bool = False
    methods: tuple[str, ...] = ("regionspot",)
    boxes: str = "gt"
    iou_types: tuple[str, ...] = ("bbox", "segm")
    max_dets_per_image: int | None = 300
    fixed_ap: bool = False
    fixed_ap_pairs_per_image: int = 1000
    limit: int | None = None
    batch_size: int = 4
    workers: int | None = None
    sync_timing: bool = False
    chunk_size: int | None = None
    crop_batch_size: int = 64
    max_boxes_per_image: int = 300
    min_box_score: float = 0.0
    evaluator: str = "faster_coco_eval"
    templates: str | list[str] | None = None
    text_cache_dir: str | None | bool = None
    overwrite: bool = False
    eval_resize: str | None = None
    eval_min_size: int = 800
    eval_max_size: int = 1333
    mask_return: str = "sam"
    paper_protocol: bool = False
    fast_path: str = "fp32"
    backend: str = "torch"
    onnx: Path | None = None

    def __post_init__(self) -> None:
        self.methods, self.iou_types = tuple(self.methods), tuple(self.iou_types)
        if self.paper_protocol:
            self.eval_resize, self.eval_min_size, self.eval_max_size = "shortest-edge", 800, 1333
            self.mask_return = "nearest"

    def validate(self) -> None:
        """Raise one ``ConfigError`` naming the field (in backticks) of the first bad value."""
        if not self.methods:
            raise ConfigError(f"No method given; pass `methods` with one of {', '.join(METHODS)}.")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ConfigError(f"Unknown method(s) {unknown}; choose from {', '.join(METHODS)}.")
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"A method is given twice in {list(self.methods)}; pass each once.")
        bad = [t for t in self.iou_types if t not in ("bbox", "segm")]
        if bad or not self.iou_types:
            raise ConfigError(f"`iou_types` must be bbox, segm or bbox,segm; got {','.join(self.iou_types)}.")
        if self.evaluator not in ("faster_coco_eval", "lvis"):
            raise ConfigError(f"`evaluator` must be faster_coco_eval or lvis, got {self.evaluator!r}.")
        for name in ("batch_size", "crop_batch_size", "max_boxes_per_image", "fixed_ap_pairs_per_image"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"`{name}` must be >= 1, got {getattr(self, name)}.")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 0):
            raise ConfigError(f"`workers` must be a whole number >= 0, got {self.workers!r}.")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ConfigError(f"`chunk_size` must be >= 1 or None, got {self.chunk_size}.")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"`limit` must be >= 1, got {self.limit}.")
        if self.max_dets_per_image is not None and self.max_dets_per_image < 1:
            raise ConfigError(f"`max_dets_per_image` must be >= 1, got {self.max_dets_per_image}.")
        if self.eval_resize is not None and self.eval_resize not in INPUT_RESIZES:
            raise ConfigError(f"`eval_resize` must be one of {', '.join(INPUT_RESIZES)}, got {self.eval_resize!r}.")
        if self.mask_return not in MASK_RETURNS:
            raise ConfigError(f"`mask_return` must be one of {', '.join(MASK_RETURNS)}, got {self.mask_return!r}.")
        if not 1 <= self.eval_min_size <= self.eval_max_size:
            raise ConfigError(f"`eval_min_size` and `eval_max_size` must satisfy 1 <= min <= max, got "
                              f"{self.eval_min_size}/{self.eval_max_size}.")
        from regionspot.inference.fast import FAST_PATHS

        if self.fast_path not in (*FAST_PATHS, "auto"):
            raise ConfigError(f"`fast_path` must be one of {', '.join(FAST_PATHS)} or auto, got {self.fast_path!r}.")
        self.validate_backend()
        if self.boxes != "gt" and not Path(self.boxes).is_file():
            raise ConfigError(f"Detections file not found: {self.boxes}; pass `boxes` gt or a COCO results json.")
        if self.data is not None and not Path(self.data).is_file():
            raise ConfigError(f"Annotation file not found: {self.data}; pass `data` ANN.json.")
        if self.images is not None and not Path(self.images).is_dir():
            raise ConfigError(f"Image folder not found: {self.images}; pass `images` ROOT.")

    def store_inputs(self, annotation_file: str | os.PathLike) -> dict[str, Any]:
        """What a prediction store's contents depend on among these options and the ground truth, whichever
        backend fills it (the run's manifest adds the model's parts)."""
        from regionspot.evaluation.predictions import file_identity

        other_boxes = self.boxes != "gt"
        return {
            "annotation_file": file_identity(annotation_file),
            "boxes": file_identity(self.boxes) if other_boxes else "gt",
            "methods": list(self.methods),
            "masks": "segm" in self.iou_types,
            "pairs_per_image": self.pairs_per_image,
            "max_boxes_per_image": self.max_boxes_per_image if other_boxes else None,
            "min_box_score": self.min_box_score if other_boxes else None,
        }

    def validate_backend(self) -> None:
        """The backend's own refusals: an unknown name, and what only the torch backend does (one line each)."""
        from regionspot.inference.backends import backend_spec

        if backend_spec(self.backend).engine is None:
            if self.onnx is not None:
                raise ConfigError("`onnx` names exported graphs for an ONNX backend: add `backend` onnxruntime "
                                  "(or openvino), or drop `onnx`.")
            return
        others = [m for m in self.methods if m != "regionspot"]
        refused = [
            (others, f"`methods` {', '.join(others)} (CLIP on crops)"),
            (self.fast_path != "fp32", f"`fast_path` {self.fast_path} (torch numerics)"),
            (self.device not in (None, "cpu"), f"`device` {self.device}"),
            (self.templates is not None, "`templates` other than the head's (exported with it)"),
            (int(os.environ.get("WORLD_SIZE") or 1) > 1, "A run over several processes (accelerate launch)"),
        ]
        for given, what in refused:
            if given:
                raise ConfigError(f"{what} runs only with `backend` torch; drop it or use `backend` torch.")
        if self.onnx is not None and (self.head is not None or self.segmenter or self.vision_language):
            raise ConfigError("Pass `onnx` DIR (exported graphs) or the weights (`head`, `segmenter`, "
                              "`vision_language`), not both.")

    def protocol(self, segmenter: Any, vision_language: Any, model: Any = None) -> Protocol:
        """The run's pipeline (input size, mask return, the head's recorded preprocessing); see
        ``regionspot.evaluation.protocol.resolve_protocol``."""
        from regionspot.evaluation.protocol import resolve_protocol

        return resolve_protocol(segmenter, vision_language, model, input_resize=self.eval_resize,
                                min_size=self.eval_min_size, max_size=self.eval_max_size, mask_return=self.mask_return)

    @property
    def pairs_per_image(self) -> int | None:
        """How many (box, class) pairs an image keeps in the store."""
        return self.fixed_ap_pairs_per_image if self.fixed_ap else self.max_dets_per_image

    @property
    def needs_masks(self) -> bool:
        return "segm" in self.iou_types or "clip-mask" in self.methods
