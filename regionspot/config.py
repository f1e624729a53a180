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


def check_keys(cls: type, data: dict[str, Any], error: type[Exception] = ValueError) -> None:
    """Raise ``error`` naming the keys of ``data`` that are not fields of the dataclass ``cls``."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise error(f"Unknown {cls.__name__} keys {unknown}; expected some of {sorted(known)}.")


CLIP_RESIZES = ("pil", "torch-bilinear")
INPUT_RESIZES = ("none", "shortest-edge")
NAME_STYLES = ("clean", "raw")


@dataclass
class PreprocessConfig:
    """How a head's inputs were made. A head is trained on what its inputs looked like, so these
    choices travel with its checkpoint (see docs/protocol.md for where the released code does each).

    clip_resize: how an image becomes the square vision-language input (whole image, no crop):
        "pil": PIL resize of the uint8 pixels with the filter of the model's preprocessor_config.json
        (CLIP: bicubic) — regionspot's default; "torch-bilinear": ``F.interpolate(mode="bilinear",
        align_corners=False)`` of the float pixels in [0, 1] — the released RegionSpot code.
    clip_antialias: antialias of the "torch-bilinear" resize (the released code ran without; torchvision
        >= 0.17 turns it on for tensors by default).
    eval_resize: the image that evaluation feeds to both backbones: "none" (the original image) or
        "shortest-edge" (detectron2's ResizeShortestEdge(eval_min_size, max_size=eval_max_size), PIL
        bilinear — the released LVIS evaluation; boxes are scaled with it).
    class_names: "clean" (``bat_(animal)`` -> ``bat animal``) or "raw" (the name as the dataset spells
        it, only ``-other``/``-merged``/``-stuff`` stripped — the released code).
    sam_decoder_eps: LayerNorm eps of SAM's two-way transformer; None keeps the segmenter's own value
        (1e-5 for the original SAM release, whatever its config says otherwise).
    """

    clip_resize: str = "pil"
    clip_antialias: bool = False
    eval_resize: str = "none"
    eval_min_size: int = 800
    eval_max_size: int = 1333
    class_names: str = "clean"
    sam_decoder_eps: float | None = None

    def validate(self) -> None:
        for name, allowed in (("clip_resize", CLIP_RESIZES), ("eval_resize", INPUT_RESIZES), ("class_names", NAME_STYLES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"preprocess.{name} must be one of {list(allowed)}, got {getattr(self, name)!r}.")
        if self.eval_min_size < 1 or self.eval_max_size < self.eval_min_size:
            raise ValueError(
                f"preprocess.eval_min_size/eval_max_size must satisfy 1 <= min <= max, got "
                f"{self.eval_min_size}/{self.eval_max_size}."
            )
        if self.sam_decoder_eps is not None and not 0 < float(self.sam_decoder_eps) < 1:
            raise ValueError(f"preprocess.sam_decoder_eps must be in (0, 1) or null, got {self.sam_decoder_eps!r}.")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        check_keys(cls, data)
        config = cls(**data)
        config.validate()
        return config


# The two named pipelines: regionspot's own defaults, and the released RegionSpot code's.
PREPROCESS_PRESETS: dict[str, PreprocessConfig] = {
    "default": PreprocessConfig(),
    "released": PreprocessConfig(
        clip_resize="torch-bilinear", clip_antialias=False, eval_resize="shortest-edge", eval_min_size=800,
        eval_max_size=1333, class_names="raw", sam_decoder_eps=1e-5,
    ),
}


def preprocess_preset(name: str) -> PreprocessConfig:
    """A fresh copy of a named preprocessing ("default" or "released")."""
    if name not in PREPROCESS_PRESETS:
        raise ValueError(f"Unknown preprocessing preset {name!r}; choose one of {sorted(PREPROCESS_PRESETS)}.")
    return dataclasses.replace(PREPROCESS_PRESETS[name])


@dataclass
class RejectionConfig:
    """How a head answers "none of these" (``regionspot.modeling.rejection``), fitted by ``regionspot calibrate``.

    score: the rejection score (``modeling.rejection.REJECTION_SCORES``: "msp", "max_logit", "energy",
        "sigmoid", "learned"); computed from the logits, higher = more like some class of the vocabulary.
    threshold: a region is known (labelled) when its score is >= this; None: not calibrated, every region
        is labelled.
    known_rate: the share of known labelled regions the threshold keeps on the calibration set (None: not
        calibrated).
    """

    score: str = "max_logit"
    threshold: float | None = None
    known_rate: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RejectionConfig:
        check_keys(cls, data)
        return cls(**data)


@dataclass
class RegionSpotConfig:
    """A whole RegionSpot model: which frozen backbones, the head, and how text is prompted.

    segmenter / vision_language: hub ids or local folders of transformers models.
    image_size: input size of the vision-language model (224, or 336 via position interpolation).
    templates: a template-set name from ``regionspot.text.templates`` or an explicit list.
    preprocess: how the head's inputs are made (CLIP resize, evaluation input size, class names, SAM
        eps); a checkpoint that lacks it was written before these were recorded (see checkpoint.py).
    display_temperature: the softmax temperature of the *displayed* confidence (fitted by temperature
        scaling on a validation set; 1.0 = the paper's softmax). Scores used for AP never use it.
    rejection: the "none of these" score and threshold (``RejectionConfig``; fitted by ``regionspot calibrate``).
    trained_with_negatives: whether the head was trained with negatives (background boxes or objects of
        classes outside the step's vocabulary, with all-zero targets), so its per-class sigmoids can say "none
        of these"; set by training, False for a checkpoint that predates it and for the official heads.
    """

    segmenter: str = "facebook/sam-vit-base"
    vision_language: str = "openai/clip-vit-large-patch14"
    image_size: int = 224
    head: HeadConfig = field(default_factory=HeadConfig)
    templates: str | list[str] = "imagenet"
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    display_temperature: float = 1.0
    rejection: RejectionConfig = field(default_factory=RejectionConfig)
    trained_with_negatives: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegionSpotConfig:
        data = dict(data)
        check_keys(cls, data)
        head = data.pop("head", {}) or {}
        check_keys(HeadConfig, head)
        preprocess = PreprocessConfig.from_dict(data.pop("preprocess", None) or {})
        rejection = RejectionConfig.from_dict(data.pop("rejection", None) or {})
        return cls(head=HeadConfig(**head), preprocess=preprocess, rejection=rejection, **data)

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
    # Newer backbones (no released heads: train them with configs/regionspot_tl_*.yaml / regionspot_ssigl_*.yaml).
    # T-L: SAM 2.1 Hiera-T's token (a third of ViT-B's encoder FLOPs) with BL's CLIP-L: the CPU lever.
    "T-L": RegionSpotConfig(
        segmenter="facebook/sam2.1-hiera-tiny",
        vision_language="openai/clip-vit-large-patch14",
        image_size=224,
        head=HeadConfig(feature_dim=1024, embed_dim=768),
    ),
    # S-SigL: Hiera-S (better masks than T for ~20% more encoder FLOPs) with SigLIP 2 L/16 at 256 (the same tower
    # cost as CLIP-L/14 at 224; width 1024 and a 1024-d joint space, so the head's dims follow it).
    "S-SigL": RegionSpotConfig(
        segmenter="facebook/sam2.1-hiera-small",
        vision_language="google/siglip2-large-patch16-256",
        image_size=256,
        head=HeadConfig(feature_dim=1024, embed_dim=1024),
    ),
}
# Variants whose heads the paper's authors released (``regionspot download NAME``); the others are architectures
# with training recipes.
RELEASED_VARIANTS: tuple[str, ...] = ("BB", "BL", "BL@336")


def variant_config(name: str) -> RegionSpotConfig:
    """A fresh copy of a named variant's config ("BB", "BL", "BL@336", "T-L", "S-SigL")."""
    if name not in VARIANTS:
        raise ValueError(f"Unknown variant {name!r}; choose one of {sorted(VARIANTS)}.")
    return RegionSpotConfig.from_dict(VARIANTS[name].to_dict())
