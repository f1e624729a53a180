"""Pre-train a tiny CLIP (transformers ``CLIPModel``) contrastively on ShapesWorld image/caption pairs.

The model plays the role of web-scale CLIP in the ShapesWorld pipeline, so it sees EVERY category,
rare ones included: its pairs come from images rendered here with uniform category probabilities on
their own streams (``streams.CLIP_*``; never the dataset's train split, where rare classes are absent).

Two kinds of pairs, mixed by ``scene_every``:

- object crops: a square crop around one object (context 1.1-2.6× its box side, random shift, flip,
  90° rotation), resized to the native input ``image_size``;
- scenes: a whole 256² image with exactly one object (plus unannotated distractors; object radius up to
  ``scene_max_radius`` of the side, so close-ups occur), resized to ``scene_size`` (the size RegionSpot
  feeds the whole image at) — so the feature map is trained at the scale the head will read it.

Captions vary ("red star", "a photo of a red star on a cluttered background", CLIP's ImageNet
templates, ...). The loss is the symmetric InfoNCE with a learnable logit scale; pairs of the same
class in a batch are all positives (soft targets). The tokenizer is a BPE (``regionspot.text.tokenizer``)
trained on the caption corpus (:mod:`regionspot.shapesworld.captions`).

``pretrain_clip(out_dir, config)`` trains, writes a folder that ``load_vision_language(out_dir)`` reads
offline (fp16 safetensors, config dtype float32 so loading upcasts), and reports the zero-shot top-1 on
held-out crops (context 1.5) with the project's template ensemble, per LVIS-style frequency bucket, and,
when it trained on scenes, on held-out single-object scenes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import CLIPModel

from regionspot.backbones.constants import CLIP_MEAN, CLIP_STD
from regionspot.data.transforms import normalize_pixels
from regionspot.engine.optim import param_groups
from regionspot.shapesworld.captions import caption_corpus, sample_captions, tokenize_captions
from regionspot.shapesworld.progress import loss_ends, train_on_budget, write_pretrain_metrics
from regionspot.shapesworld.streams import (
    CLIP_BATCHES,
    CLIP_CROPS,
    CLIP_HELDOUT_CROPS,
    CLIP_HELDOUT_SCENES,
    CLIP_SCENES,
    stream_rng,
)
from regionspot.shapesworld.tiny_models import build_clip, clip_config, folder_size_mb, save_clip_folder
from regionspot.shapesworld.world import (
    WorldConfig,
    render_image,
    uniform_probabilities,
)
from regionspot.text.tokenizer import save_clip_tokenizer
from regionspot.utils.progress import progress_bar

CROP_STORE = 96  # side of the stored object crops (context 2.6× the box side)
CROP_CONTEXT = 2.6

@dataclass
class ClipPretrainConfig:
    """Architecture and schedule of the tiny CLIP.

    image_size / patch_size: native vision input (object crops); scene_size: whole-image pairs.
    vision_*/text_*: widths, depths and heads of the two towers; context_length: text positions.
    steps / batch_size / lr: AdamW with linear warm-up and cosine decay; scene_every: every n-th step
    is a batch of ``scene_batch_size`` whole single-object scenes (0 disables, 1 trains on scenes only).
    scene_max_radius: largest object radius in a scene, as a fraction of its side (None: the world's).
    world: the ShapesWorld the crops and scenes come from. pool_images /
    pool_scenes: rendered images whose crops / scenes form the training pool. heldout_images: fresh
    renders for the zero-shot tests.
    max_seconds: the cosine schedule runs on max(step / steps, elapsed / max_seconds), so a time
    budget ends training on schedule; None trains exactly ``steps`` steps.
    """

    image_size: int = 48
    scene_size: int = 128
    patch_size: int = 8
    vision_width: int = 128
    vision_layers: int = 4
    vision_heads: int = 4
    text_width: int = 96
    text_layers: int = 3
    text_heads: int = 4
    context_length: int = 32
    projection_dim: int = 96
    vocab_size: int = 600
    steps: int = 2500
    batch_size: int = 96
    scene_batch_size: int = 24
    scene_max_radius: float | None = None
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup_steps: int = 100
    scene_every: int = 4
    pool_images: int = 2000
    pool_scenes: int = 1200
    heldout_images: int = 300
    seed: int = 1234
    dataset_seed: int = 0
    world: WorldConfig = field(default_factory=WorldConfig)
    max_seconds: float | None = None
    templates_zero_shot: str = "imagenet"


@dataclass
class ClipPretrainResult:
    """What a run produced: the folder, zero-shot accuracies and timings."""

    folder: Path
    steps: int
    seconds: float
    first_loss: float
    last_loss: float
    zero_shot_top1: float
    zero_shot_by_bucket: dict[str, float]
    size_mb: float
    zero_shot_scene_top1: float | None = None


# ------------------------------------------------------------------------------------------------
# Data


def _square_crop(image: np.ndarray, box: tuple[float, float, float, float], context: float, out: int) -> np.ndarray:
    """(out, out, 3) uint8: a square crop of side ``context × max(box w, h)`` centred on ``box``.

    image: (H, W, 3) uint8; box: XYXY pixels. Outside the image the border is replicated.
    """
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0, 4.0) * context
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    pad = int(math.ceil(side))
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    left, top = cx - side / 2 + pad, cy - side / 2 + pad
    pil = Image.fromarray(padded)
    crop = pil.resize((out, out), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side))
    return np.asarray(crop)


def render_crop_pool(
    num_images: int, seed: int, key: int, dataset_seed: int = 0, context: float = CROP_CONTEXT, out: int = CROP_STORE,
    show_progress: bool = False, world: WorldConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Object crops from fresh renders with uniform category probabilities.

    key: the stream id (``streams.CLIP_CROPS`` for training, ``CLIP_HELDOUT_CROPS`` for the zero-shot
    test); image ``i`` is drawn from ``stream_rng(seed, key, i)``. Returns (crops (M, out, out, 3) uint8, labels (M,) int64 0-based category indices).
    """
    world = WorldConfig() if world is None else world
    categories = world.categories(dataset_seed)
    probs = uniform_probabilities(categories)
    crops, labels = [], []
    for index in progress_bar(range(num_images), desc="CLIP crops", disable=not show_progress, leave=False):
        rng = stream_rng(seed, key, index)
        pixels, objects = render_image(rng, categories, probs, world=world)
        for obj in objects:
            if obj.mask.sum() < 12:
                continue
            crops.append(_square_crop(pixels, obj.box, context, out))
            labels.append(obj.category_index)
    return np.stack(crops), np.asarray(labels, dtype=np.int64)


def render_scene_pool(
    num_images: int, seed: int, size: int, dataset_seed: int = 0, show_progress: bool = False,
    max_radius: float | None = None, key: int = CLIP_SCENES, world: WorldConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Whole images with exactly one object, resized to ``size``: ((M, size, size, 3) uint8, (M,) int64).

    max_radius: the largest object radius as a fraction of the side (None: the world's own).
    key: the stream id (``streams.CLIP_SCENES`` for training, ``CLIP_HELDOUT_SCENES`` for the test).
    """
    world = WorldConfig() if world is None else world
    radius_range = (world.radius_range[0], world.radius_range[1] if max_radius is None else max_radius)
    categories = world.categories(dataset_seed)
    probs = uniform_probabilities(categories)
    images, labels = [], []
    for index in progress_bar(range(num_images), desc="CLIP scenes", disable=not show_progress, leave=False):
        rng = stream_rng(seed, key, index)
        pixels, objects = render_image(rng, categories, probs, world=replace(world, max_objects=1, radius_range=radius_range))
        resized = Image.fromarray(pixels).resize((size, size), Image.Resampling.BICUBIC)
        images.append(np.asarray(resized))
        labels.append(objects[0].category_index)
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def _normalise(pixels: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) float in [0, 1] -> CLIP-normalised."""
    return normalize_pixels(pixels, CLIP_MEAN, CLIP_STD)


def augment_crops(crops: np.ndarray, out: int, generator: torch.Generator) -> torch.Tensor:
    """Random context (1.1-2.6× box), shift, flip and 90° rotation of stored crops.

    crops: (B, S, S, 3) uint8 stored at context ``CROP_CONTEXT``. Returns (B, 3, out, out) normalised.
    """
    b = crops.shape[0]
    pixels = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0  # (B, 3, S, S)
    context = torch.empty(b).uniform_(1.1, CROP_CONTEXT, generator=generator)
    scale = context / CROP_CONTEXT  # fraction of the stored crop kept
    shift = (torch.rand(b, 2, generator=generator) - 0.5) * 0.3 * scale[:, None]
    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = scale * flip
    theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, (b, 3, out, out), align_corners=False)
    warped = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="border", align_corners=False)
    turns = int(torch.randint(0, 4, (1,), generator=generator))
    warped = torch.rot90(warped, turns, dims=(2, 3))
    return _normalise(warped)


def scene_pixels(scenes: np.ndarray, generator: torch.Generator) -> torch.Tensor:
    """(B, S, S, 3) uint8 scenes -> (B, 3, S, S) normalised, randomly mirrored."""
    pixels = torch.from_numpy(scenes).permute(0, 3, 1, 2).float() / 255.0
    if float(torch.rand(1, generator=generator)) < 0.5:
        pixels = pixels.flip(3)
    return _normalise(pixels)


# ------------------------------------------------------------------------------------------------
# Model


def build_clip_model(config: ClipPretrainConfig, vocab_size: int, seed: int = 0) -> CLIPModel:
    """A CLIPModel with the tiny architecture of ``config``, its init drawn under ``seed``."""
    architecture = clip_config(vocab_size, image_size=config.image_size, patch_size=config.patch_size,
                               vision_width=config.vision_width, vision_layers=config.vision_layers,
                               vision_heads=config.vision_heads, text_width=config.text_width,
                               text_layers=config.text_layers, text_heads=config.text_heads,
                               context_length=config.context_length, projection_dim=config.projection_dim)
    return build_clip(architecture, seed=seed)


def contrastive_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, labels: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE where every pair of the same class is a positive.

    image_emb / text_emb: (B, D) L2-normalised; labels: (B,) class ids; logit_scale: log of the scale.
    """
    logits = logit_scale.exp().clamp(max=100.0) * image_emb @ text_emb.t()  # (B, B)
    same = (labels[:, None] == labels[None, :]).float()
    targets = same / same.sum(1, keepdim=True)
    loss_i = torch.sum(-targets * F.log_softmax(logits, dim=1), dim=1).mean()
    loss_t = torch.sum(-targets * F.log_softmax(logits.t(), dim=1), dim=1).mean()
    return (loss_i + loss_t) / 2


# ------------------------------------------------------------------------------------------------
# Saving and evaluation


@torch.no_grad()
def zero_shot_accuracy(
    vision_language, crops: np.ndarray, labels: np.ndarray, names: list[str], buckets: list[str],
    templates: str = "imagenet", batch_size: int = 256,
) -> tuple[float, dict[str, float]]:
    """Top-1 of classifying crops against all ``names`` with the template ensemble.

    vision_language: a ``VisionLanguage`` adapter; crops: (M, S, S, 3) uint8; labels: (M,) indices into
    names; buckets: the frequency letter of each name. Returns (overall top-1, {bucket: top-1}).
    """
    from regionspot.text.embeddings import class_text_embeddings

    text = class_text_embeddings(vision_language, names, templates=templates, cache_dir=False, show_progress=False)
    predictions = []
    for start in range(0, len(crops), batch_size):
        images = [Image.fromarray(c) for c in crops[start : start + batch_size]]
        predictions.append((vision_language.encode_image(images) @ text.t()).argmax(1))
    predicted = torch.cat(predictions).numpy()
    correct = predicted == labels
    by_bucket = {}
    label_bucket = np.asarray([buckets[i] for i in labels.tolist()])
    for bucket in "fcr":
        chosen = label_bucket == bucket
        if chosen.any():
            by_bucket[bucket] = float(correct[chosen].mean())
    return float(correct.mean()), by_bucket


# ------------------------------------------------------------------------------------------------
# Training


def pretrain_clip(
    out_dir: str | Path, config: ClipPretrainConfig | None = None, show_progress: bool = True, evaluate: bool = True
) -> ClipPretrainResult:
    """Train the tiny CLIP from scratch, save it to ``out_dir`` and measure zero-shot top-1.

    Returns a ``ClipPretrainResult``; ``out_dir/pretrain_metrics.json`` holds the same numbers.
    """
    config = config or ClipPretrainConfig()
    out_dir = Path(out_dir)
    start = time.perf_counter()
    categories = config.world.categories(config.dataset_seed)
    names = [c.name for c in categories]
    buckets = [c.frequency for c in categories]

    tokenizer = save_clip_tokenizer(
        out_dir, caption_corpus(names), vocab_size=config.vocab_size, model_max_length=config.context_length
    )
    crops, crop_labels = render_crop_pool(config.pool_images, config.seed, CLIP_CROPS, config.dataset_seed,
                                          show_progress=show_progress, world=config.world)
    scenes, scene_labels = (
        render_scene_pool(config.pool_scenes, config.seed, config.scene_size, config.dataset_seed, show_progress,
                          config.scene_max_radius, world=config.world)
        if config.scene_every > 0 and config.pool_scenes > 0
        else (None, None)
    )

    model = build_clip_model(config, len(tokenizer), seed=config.seed).train()
    optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay, ("embedding", "logit_scale")), lr=config.lr,
                                  betas=(0.9, 0.98), eps=1e-6)
    generator = torch.Generator().manual_seed(config.seed)
    rng = stream_rng(config.seed, CLIP_BATCHES)

    def step_loss(step: int, progress: float) -> torch.Tensor:
        scene_step = scenes is not None and config.scene_every > 0 and step % config.scene_every == config.scene_every - 1
        if scene_step:
            index = rng.choice(len(scenes), size=min(config.scene_batch_size, len(scenes)), replace=False)
            pixels, labels = scene_pixels(scenes[index], generator), scene_labels[index]
        else:
            index = rng.choice(len(crops), size=min(config.batch_size, len(crops)), replace=False)
            pixels, labels = augment_crops(crops[index], config.image_size, generator), crop_labels[index]
        input_ids, attention = tokenize_captions(tokenizer, sample_captions(names, labels, rng), config.context_length)
        image_emb = model.get_image_features(
            pixel_values=pixels, interpolate_pos_encoding=pixels.shape[-1] != config.image_size
        ).pooler_output
        text_emb = model.get_text_features(input_ids=input_ids, attention_mask=attention).pooler_output
        return contrastive_loss(F.normalize(image_emb, dim=-1), F.normalize(text_emb, dim=-1),
                                torch.from_numpy(labels), model.logit_scale)

    def clamp_scale() -> None:
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100.0))

    losses = train_on_budget("CLIP", config, model, optimizer, step_loss, show_progress, after_step=clamp_scale,
                             postfix=lambda: {"scale": f"{model.logit_scale.exp().item():.1f}"})
    steps_done = len(losses)
    model.eval()
    save_clip_folder(model, tokenizer, out_dir)

    top1, by_bucket, scene_top1 = float("nan"), {}, None
    if evaluate:
        top1, by_bucket, scene_top1 = _heldout_accuracy(out_dir, config, names, buckets, scenes=scenes is not None)
    seconds = time.perf_counter() - start
    first, last = loss_ends(losses)
    result = ClipPretrainResult(
        folder=out_dir, steps=steps_done, seconds=seconds, first_loss=first, last_loss=last,
        zero_shot_top1=top1, zero_shot_by_bucket=by_bucket, size_mb=folder_size_mb(out_dir),
        zero_shot_scene_top1=scene_top1,
    )
    write_pretrain_metrics(out_dir, result, config)
    return result


def _heldout_accuracy(
    folder: Path, config: ClipPretrainConfig, names: list[str], buckets: list[str], scenes: bool
) -> tuple[float, dict[str, float], float | None]:
    """Zero-shot top-1 of the saved model in ``folder`` on held-out crops (overall and per bucket) and,
    when it was trained on ``scenes``, on held-out whole single-object scenes (else None)."""
    from regionspot.backbones.vision_language import load_vision_language

    heldout, heldout_labels = render_crop_pool(
        config.heldout_images, config.seed, CLIP_HELDOUT_CROPS, config.dataset_seed, context=1.5, out=config.image_size,
        world=config.world,
    )
    trained = load_vision_language(str(folder))
    top1, by_bucket = zero_shot_accuracy(trained, heldout, heldout_labels, names, buckets, config.templates_zero_shot)
    scene_top1 = None
    if scenes:  # whole single-object scenes, the image-level task
        scenes_out, scene_out_labels = render_scene_pool(
            config.heldout_images, config.seed, config.scene_size, config.dataset_seed,
            max_radius=config.scene_max_radius, key=CLIP_HELDOUT_SCENES, world=config.world,
        )
        scene_top1, _ = zero_shot_accuracy(
            trained, scenes_out, scene_out_labels, names, buckets, config.templates_zero_shot
        )
    return top1, by_bucket, scene_top1
