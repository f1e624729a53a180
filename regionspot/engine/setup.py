"""What a training run is built from, shared by ``train`` and ``dry_run``: the caches (one per dataset,
each with its own vocabulary), their text embeddings, the vision-language model, the head, the loss, the
optimizer, the schedule and the multi-dataset sampler.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from regionspot.cache.store import CacheError, TokenCache
from regionspot.config import PreprocessConfig
from regionspot.engine.config import TrainConfig
from regionspot.engine.optim import build_optimizer, build_scheduler
from regionspot.errors import RegionSpotError
from regionspot.modeling.head import RegionSpotHead
from regionspot.modeling.losses import SigmoidFocalLoss


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


def same_model(a: str, b: str) -> bool:
    """Hub ids must match; local folders match when they are the same folder (relative paths, symlinks)."""
    if a == b:
        return True
    pa, pb = Path(a), Path(b)
    return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()


def check_cache(cache: TokenCache, config: TrainConfig) -> None:
    """Refuse a cache made with other backbones or preprocessing than the config names (one CacheError line)."""
    m = cache.manifest
    if not same_model(m["segmenter"], config.model.segmenter):
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
        if not same_model(vl["id"], config.model.vision_language) or vl["image_size"] != config.model.image_size:
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


def build_training(config: TrainConfig, device: Any, show_progress: bool = True) -> TrainingSetup:
    """Open and check every cache, load the vision-language model, embed each dataset's vocabulary, build
    the head (from ``config.init_head`` when set), loss, optimizer and schedule.

    Sets ``config.model.preprocess`` to what the head will record (see :func:`recorded_preprocess`).
    """
    from regionspot.backbones.vision_language import load_vision_language

    caches = [TokenCache(d.cache, verify=config.verify_cache) for d in config.datasets]
    for cache in caches:
        check_cache(cache, config)
    config.model.preprocess = recorded_preprocess(caches, config)
    pre = config.model.preprocess
    vl = load_vision_language(config.model.vision_language, image_size=config.model.image_size, device=device,
                              resize=pre.clip_resize, antialias=pre.clip_antialias)
    if vl.feature_dim != config.model.head.feature_dim or vl.embed_dim != config.model.head.embed_dim:
        raise RegionSpotError(
            f"{config.model.vision_language} has feature_dim {vl.feature_dim}, embed_dim {vl.embed_dim}; set "
            "model.head.feature_dim / embed_dim to match."
        )
    texts = [dataset_text_embeddings(vl, c, config, show_progress) for c in caches]
    torch.manual_seed(config.seed)
    head = RegionSpotHead(config.model.head)
    if config.init_head:
        from regionspot.checkpoint import load_head_checkpoint

        state, _, _ = load_head_checkpoint(config.init_head)
        head.load_state_dict(state, strict=True)
    optimizer = build_optimizer(head, config.lr, config.weight_decay, tuple(config.betas))
    scheduler = build_scheduler(optimizer, config.warmup_iters, config.warmup_factor, config.lr_steps, config.lr_gamma)
    return TrainingSetup(caches, vl, texts, float(vl.logit_scale), head,
                         SigmoidFocalLoss(config.focal_alpha, config.focal_gamma), optimizer, scheduler)
