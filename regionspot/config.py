"""Configuration dataclasses, with plain-dict and YAML round trips.

CLI arguments never reach model code: the CLI builds one of these and a builder assembles the model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class HeadConfig:
    """The trainable RegionSpot head.

    token_dim: width of the segmenter's position-aware token (SAM: 256).
    feature_dim: C, width of the vision-language feature map (CLIP-B/16: 768, CLIP-L/14: 1024).
    embed_dim: D, width of the joint image-text space (CLIP-B/16: 512, CLIP-L/14: 768).
    use_feature_map: False is the paper's "SAM token only" ablation: cross-attention then attends to
        the region tokens themselves, so no CLIP image information reaches the head.
    """

    token_dim: int = 256
    feature_dim: int = 1024
    embed_dim: int = 768
    depth: int = 3
    num_heads: int = 8
    ffn_dim: int = 2048
    dropout: float = 0.1
    use_feature_map: bool = True


@dataclass
class RegionSpotConfig:
    """A whole RegionSpot model: which frozen backbones, the head, and how text is prompted.

    segmenter / vision_language: hub ids or local folders of transformers models.
    image_size: input size of the vision-language model (224, or 336 via position interpolation).
    templates: a template-set name from ``regionspot.text.prompts`` or an explicit list.
    """

    segmenter: str = "facebook/sam-vit-base"
    vision_language: str = "openai/clip-vit-large-patch14"
    image_size: int = 224
    head: HeadConfig = field(default_factory=HeadConfig)
    templates: str | list[str] = "imagenet"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegionSpotConfig:
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"Unknown RegionSpotConfig keys {sorted(unknown)}; expected some of {sorted(known)}.")
        head = data.pop("head", {}) or {}
        head_known = {f.name for f in dataclasses.fields(HeadConfig)}
        if set(head) - head_known:
            raise ValueError(f"Unknown HeadConfig keys {sorted(set(head) - head_known)}.")
        return cls(head=HeadConfig(**head), **data)

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_yaml(cls, path: str | Path) -> RegionSpotConfig:
        return cls.from_dict(yaml.safe_load(Path(path).read_text()) or {})


# Named variants (the paper's): weights are registered apart, in regionspot.registry.
VARIANTS: dict[str, RegionSpotConfig] = {
    "BB": RegionSpotConfig(
        segmenter="facebook/sam-vit-base",
        vision_language="openai/clip-vit-base-patch16",
        image_size=224,
        head=HeadConfig(feature_dim=768, embed_dim=512),
    ),
    "BL": RegionSpotConfig(
        segmenter="facebook/sam-vit-base",
        vision_language="openai/clip-vit-large-patch14",
        image_size=224,
        head=HeadConfig(feature_dim=1024, embed_dim=768),
    ),
    "BL@336": RegionSpotConfig(
        segmenter="facebook/sam-vit-base",
        vision_language="openai/clip-vit-large-patch14-336",
        image_size=336,
        head=HeadConfig(feature_dim=1024, embed_dim=768),
    ),
}


def variant_config(name: str) -> RegionSpotConfig:
    """A fresh copy of a named variant's config ("BB", "BL", "BL@336")."""
    if name not in VARIANTS:
        raise ValueError(f"Unknown variant {name!r}; choose one of {sorted(VARIANTS)}.")
    return RegionSpotConfig.from_dict(VARIANTS[name].to_dict())
