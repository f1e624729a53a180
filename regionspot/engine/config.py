"""Training configuration: a dataclass, read from YAML, with ``key=value`` overrides from the command line.

Overrides use dotted keys into the nested config and YAML values, e.g.
``lr=1e-4 model.head.dropout=0 lr_steps=[300,400] datasets.0.weight=2``.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from regionspot.config import RegionSpotConfig
from regionspot.errors import ConfigError


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

    def validate(self) -> None:
        if not self.datasets:
            raise ConfigError("No training datasets: set `datasets: [{cache: path/to/cache}]` in the config.")
        if self.feature_source not in ("cached", "online"):
            raise ConfigError(f"feature_source must be 'cached' or 'online', got {self.feature_source!r}.")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ConfigError(f"mixed_precision must be no, bf16 or fp16, got {self.mixed_precision!r}.")
        if self.batch_size < 1 or self.max_iters < 1 or self.max_regions < 1:
            raise ConfigError("batch_size, max_iters and max_regions must be positive.")
        if sorted(self.lr_steps) != list(self.lr_steps):
            raise ConfigError(f"lr_steps must be increasing, got {self.lr_steps}.")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["betas"] = list(self.betas)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"Unknown training config keys {sorted(unknown)}; known keys: {sorted(known)}.")
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
        config.validate()
        return config

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"Config file {path} not found; pass --config configs/<name>.yaml.")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"Config file {path} is not valid YAML: {e}") from e
        return cls.from_dict(apply_overrides(data, overrides or []))

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


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
