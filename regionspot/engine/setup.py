"""What a training run is built from, shared by ``train`` and ``dry_run``: the caches (one per dataset,
each with its own vocabulary), their text embeddings, the vision-language model, the head, the loss, the
optimizer, the schedule and the multi-dataset sampler.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch

from regionspot.cache.store import CacheError, TokenCache
from regionspot.config import PreprocessConfig
from regionspot.engine.config import TrainConfig
from regionspot.engine.optim import build_optimizer, build_scheduler
from regionspot.errors import ConfigError
from regionspot.modeling.head import RegionSpotHead
from regionspot.modeling.losses import SigmoidFocalLoss
from regionspot.registry import artifact_backbone, backbone_image_size, resolve_backbone, same_backbone


def make_sampler(sizes: list[int], weights: list[float], batch_size: int, seed: int, rank: int, world: int) -> Any:
    """The multi-dataset batch stream: one dataset per step, drawn with probability proportional to its weight."""
    from regionspot.data.samplers import MultiDatasetSampler

    return MultiDatasetSampler(sizes, weights, batch_size, seed, rank=rank, world_size=world)


def dataset_text_embeddings(vl: Any, cache: TokenCache, config: TrainConfig, show: bool) -> torch.Tensor:
    """(V, D) float32 text embeddings of the cache's own vocabulary (its category names, as the annotation file
    spells them, prepared with the config's class-name style and templates; cached on disk)."""
    from regionspot.text.embeddings import class_text_embeddings

    style = config.model.preprocess.class_names
    names = cache.raw_category_names if cache.raw_category_names is not None else cache.category_names
    with torch.no_grad():
        return class_text_embeddings(
            vl, names, templates=config.model.templates, cache_dir=config.text_cache_dir, show_progress=show,
            name_style=style,
        ).float()


def cache_made_with(cache: TokenCache, ref: str, kind: str) -> bool:
    """Whether the cache's ``kind`` backbone (recorded by name, hub id or a folder relative to the cache) is
    ``ref`` (a registered name, hub id or folder, as a config names it)."""
    m = cache.manifest
    recorded = m["segmenter"] if kind == "segmenter" else (m.get("vision_language") or {}).get("id", "")
    if same_backbone(artifact_backbone(recorded, cache.root), ref, kind):
        return True
    moved_apart = recorded.startswith("..") and not (cache.root / recorded).is_dir()
    expected = m.get(f"{kind}_fingerprint")
    if not (moved_apart and expected):
        return False
    # The cache was moved without its backbone folders: compare the weights themselves.
    from regionspot.backbones.segmenter import load_segmenter
    from regionspot.backbones.vision_language import load_vision_language

    load = load_segmenter if kind == "segmenter" else load_vision_language
    return load(resolve_backbone(ref, kind), device="cpu").weights_fingerprint == expected


def _size_conflict(key: str, stated: Any, found: Any, source: str) -> ConfigError:
    return ConfigError(
        f"{key} is {stated} in the config but {source} gives {found}; drop {key} (sizes come from the backbones) "
        "or choose the matching backbone."
    )


def fill_sizes(config: TrainConfig, caches: list[TokenCache], vl: Any) -> None:
    """Set the sizes the config leaves to its backbones (``config.sizes_from_backbones``) from them, and refuse
    a stated one that contradicts them (one ConfigError line naming the key and both values).

    token_dim: the segmenter's token width, as the caches it made record it; feature_dim / embed_dim: the
    vision-language model's. The image size is chosen before ``vl`` is loaded (:func:`vision_language_size`).
    """
    head, unstated = config.model.head, config.sizes_from_backbones
    found = {"model.head.token_dim": (int(caches[0].manifest["token_dim"]), f"segmenter {config.model.segmenter}"),
             "model.head.feature_dim": (int(vl.feature_dim), f"vision-language model {config.model.vision_language}"),
             "model.head.embed_dim": (int(vl.embed_dim), f"vision-language model {config.model.vision_language}")}
    for key, (value, source) in found.items():
        name = key.rsplit(".", 1)[1]
        if key in unstated:
            setattr(head, name, value)
        elif getattr(head, name) != value:
            raise _size_conflict(key, getattr(head, name), value, source)
    if "model.image_size" in unstated:
        config.model.image_size = int(vl.image_size)


def vision_language_size(config: TrainConfig) -> int | None:
    """The input size to load the vision-language model at: the config's; else, for a registered model, the size
    its head runs at (``regionspot.registry.backbone_image_size``); else None (the model's own)."""
    if "model.image_size" not in config.sizes_from_backbones:
        return config.model.image_size
    return backbone_image_size(config.model.vision_language)


def check_cache(cache: TokenCache, config: TrainConfig) -> None:
    """Refuse a cache made with other backbones or preprocessing than the config names (one CacheError line)."""
    m = cache.manifest
    if not cache_made_with(cache, config.model.segmenter, "segmenter"):
        raise CacheError(
            f"Cache {cache.root} holds tokens of {m['segmenter']!r} but the config's segmenter is "
            f"{config.model.segmenter!r}; rebuild the cache or fix model.segmenter."
        )
    if m["token_dim"] != config.model.head.token_dim:
        raise CacheError(f"Cache {cache.root} tokens are {m['token_dim']}-d, the head expects {config.model.head.token_dim}.")
    pre = config.model.preprocess
    if pre.class_names == "raw" and cache.raw_category_names is None:
        raise CacheError(
            f"Cache {cache.root} predates raw class names (it stores cleaned ones only); rebuild it with "
            "`regionspot cache` or set model.preprocess.class_names=clean."
        )
    cache_eps = cache.preprocess.get("sam_decoder_eps")
    if pre.sam_decoder_eps is not None and cache_eps is not None and not math.isclose(pre.sam_decoder_eps, cache_eps):
        raise CacheError(
            f"Cache {cache.root} tokens were made with SAM decoder eps {cache_eps:g}, the config wants "
            f"{pre.sam_decoder_eps:g}; rebuild the cache with the matching --preprocess or fix model.preprocess.sam_decoder_eps."
        )
    if config.feature_source == "cached":
        vl = m.get("vision_language")
        if vl is None:
            raise CacheError(
                f"Cache {cache.root} has no feature maps; set feature_source=online or rebuild the cache with --clip."
            )
        if not cache_made_with(cache, config.model.vision_language, "vision_language") or vl["image_size"] != config.model.image_size:
            raise CacheError(
                f"Cache {cache.root} maps are from {vl['id']} at {vl['image_size']} px, config wants "
                f"{config.model.vision_language} at {config.model.image_size}; rebuild or set feature_source=online."
            )
        made = (cache.preprocess.get("clip_resize"), cache.preprocess.get("clip_antialias"))
        if made != (pre.clip_resize, pre.clip_antialias):
            raise CacheError(
                f"Cache {cache.root} maps were made with CLIP resize {made[0]} (antialias {made[1]}), the config "
                f"wants {pre.clip_resize} (antialias {pre.clip_antialias}); rebuild the cache with the matching "
                "--preprocess, set model.preprocess to match, or set feature_source=online."
            )


def recorded_preprocess(caches: list[TokenCache], config: TrainConfig) -> PreprocessConfig:
    """The preprocessing a head trained on ``caches`` records: the config's, with the SAM decoder eps
    that made the cached tokens filled in when the config leaves it to the segmenter (None)."""
    found = {c.preprocess.get("sam_decoder_eps") for c in caches} - {None}
    if len(found) > 1:
        raise CacheError(
            f"The training caches were made with different SAM decoder eps {sorted(found)}; rebuild them alike."
        )
    pre = dataclasses.replace(config.model.preprocess)
    if pre.sam_decoder_eps is None and found:
        pre.sam_decoder_eps = found.pop()
    return pre


def uses_negatives(caches: list[TokenCache], config: TrainConfig) -> bool:
    """Whether a run trains with negatives: background boxes from a cache that holds them (unless
    ``negatives_per_image`` is 0), or classes left out of the steps' vocabularies (``vocabulary_drop``)."""
    background = config.negatives_per_image != 0 and any(c.num_negatives for c in caches)
    return bool(background or config.vocabulary_drop > 0)


@dataclass
class TrainingSetup:
    """Everything a step needs. texts[d]: (V_d, D) float32 text embeddings of dataset d's vocabulary."""

    caches: list[TokenCache]
    vision_language: Any
    texts: list[torch.Tensor]
    logit_scale: float
    head: RegionSpotHead
    criterion: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    fingerprints: dict[str, str] = dataclasses.field(default_factory=dict)  # the backbones' weights, for the head
    logit_bias: float | None = None  # the vision-language model's (SigLIP), added to every logit; None: CLIP


def build_training(config: TrainConfig, device: Any, show_progress: bool = True) -> TrainingSetup:
    """Open and check every cache, load the vision-language model, embed each dataset's vocabulary, build
    the head (from ``config.init_head`` when set), loss, optimizer and schedule.

    Sets ``config.model.preprocess`` to what the head will record (see :func:`recorded_preprocess`), and
    ``config.model.trained_with_negatives`` (:func:`uses_negatives`).
    """
    from regionspot.backbones.vision_language import load_vision_language

    caches = [TokenCache(d.cache, verify=config.verify_cache) for d in config.datasets]
    for cache in caches:
        if not cache_made_with(cache, config.model.segmenter, "segmenter"):
            check_cache(cache, config)  # the one-line refusal naming both segmenters
    config.model.preprocess = recorded_preprocess(caches, config)
    config.model.trained_with_negatives = uses_negatives(caches, config)
    pre = config.model.preprocess
    vl = load_vision_language(resolve_backbone(config.model.vision_language, "vision_language"),
                              image_size=vision_language_size(config), device=device,
                              resize=pre.clip_resize, antialias=pre.clip_antialias)
    fill_sizes(config, caches, vl)
    for cache in caches:
        check_cache(cache, config)
    texts = [dataset_text_embeddings(vl, c, config, show_progress) for c in caches]
    torch.manual_seed(config.seed)
    head = RegionSpotHead(config.model.head)
    if config.init_head:
        from regionspot.checkpoint import load_head_checkpoint

        state, _, _ = load_head_checkpoint(config.init_head)
        head.load_state_dict(state, strict=True)
    optimizer = build_optimizer(head, config.lr, config.weight_decay, tuple(config.betas))
    scheduler = build_scheduler(optimizer, config.warmup_iters, config.warmup_factor, config.lr_steps, config.lr_gamma)
    fingerprints = {"segmenter": caches[0].manifest.get("segmenter_fingerprint") or "",
                    "vision_language": vl.weights_fingerprint}
    return TrainingSetup(caches, vl, texts, float(vl.logit_scale), head,
                         SigmoidFocalLoss(config.focal_alpha, config.focal_gamma), optimizer, scheduler, fingerprints,
                         getattr(vl, "logit_bias", None))
