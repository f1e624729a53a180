"""Pre-train a tiny SAM (transformers ``SamModel``) class-agnostically on ShapesWorld.

The model plays SAM in the ShapesWorld pipeline: given a box or a point on an object it predicts the
object's (visible) mask, whatever its class. Training images are rendered here with uniform category
probabilities on their own stream (``streams.SAM_POOL``; SAM is class-agnostic, so every category may
appear).

Each step encodes a few images once and decodes two prompt sets on the same embeddings: jittered GT
boxes and one random foreground point per object. The loss is BCE + dice on the single-mask low-res
logits (B, N, 1, s/4, s/4) against the area-averaged GT mask, plus an MSE that teaches the IoU head
the IoU of its own mask. Initialisation is SAM-style (``tiny_models.sam_style_init_``): transformers' own
init gives the prompt positional encoding a huge scale.

``pretrain_sam(out_dir, config)`` saves a folder (fp16 safetensors, config dtype float32, SAM processor
config) that ``load_segmenter(out_dir)`` reads offline, and reports the mask mIoU on held-out images or
on a ShapesWorld val split (box and point prompts).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from transformers import SamModel

from regionspot.engine.optim import param_groups
from regionspot.shapesworld.progress import loss_ends, train_on_budget, write_pretrain_metrics
from regionspot.shapesworld.sam_eval import coco_objects, evaluate_miou, heldout_objects, normalise_pixels
from regionspot.shapesworld.streams import SAM_BATCHES, SAM_POOL, stream_rng
from regionspot.shapesworld.tiny_models import build_sam, folder_size_mb, sam_config, save_sam_folder
from regionspot.shapesworld.token_probe import TokenShapeProbe
from regionspot.shapesworld.world import WorldConfig, render_image, uniform_probabilities
from regionspot.utils.progress import progress_bar


@dataclass
class SamPretrainConfig:
    """Architecture and schedule of the tiny SAM.

    image_size: SAM input side (the world's 256² images are used as is); patch_size 16 gives an
    (image_size/16)² embedding and (image_size/4)² low-res masks. vision_*: the ViT encoder; width: the
    neck output, prompt-encoder and mask-decoder width (= the RegionSpot token width).
    steps / images_per_step / prompts_per_image: each step encodes ``images_per_step`` images and
    decodes ``prompts_per_image`` boxes and as many points per image. max_seconds: the cosine schedule
    runs on max(step / steps, elapsed / max_seconds), so a time budget ends training on schedule.
    pos_weight_start / _end: the BCE foreground weight, decayed linearly with the schedule. Objects
    cover ~2% of an image; without a large early weight training sits at "all background" for long.
    shape_loss_weight: weight of an auxiliary shape-name loss on the mask token (``token_probe``); 0 trains
    masks only. It stands in for the shape knowledge a segmenter trained on a billion masks brings.
    """

    image_size: int = 256
    patch_size: int = 16
    vision_width: int = 128
    vision_layers: int = 4
    vision_heads: int = 4
    width: int = 128
    decoder_mlp: int = 512
    decoder_heads: int = 4
    steps: int = 1500
    images_per_step: int = 4
    prompts_per_image: int = 6
    lr: float = 1.5e-3
    weight_decay: float = 0.05
    warmup_steps: int = 50
    box_jitter: float = 0.08
    pos_weight_start: float = 20.0
    pos_weight_end: float = 2.0
    pool_images: int = 600
    heldout_images: int = 60
    seed: int = 4321
    dataset_seed: int = 0
    world: WorldConfig = field(default_factory=WorldConfig)
    max_seconds: float | None = None
    shape_loss_weight: float = 0.0


@dataclass
class SamPretrainResult:
    """What a run produced: the folder, mIoUs and timings."""

    folder: Path
    steps: int
    seconds: float
    first_loss: float
    last_loss: float
    miou_box: float
    miou_point: float
    size_mb: float
    token_shape_accuracy: float = float("nan")


# ------------------------------------------------------------------------------------------------
# Model


def build_sam_model(config: SamPretrainConfig, seed: int = 0) -> SamModel:
    """A ``SamModel`` of the tiny architecture with SAM-style random initialisation."""
    return build_sam(sam_config(image_size=config.image_size, patch_size=config.patch_size,
                                vision_width=config.vision_width, vision_layers=config.vision_layers,
                                vision_heads=config.vision_heads, vision_mlp=4 * config.vision_width,
                                width=config.width, decoder_mlp=config.decoder_mlp,
                                decoder_heads=config.decoder_heads, mask_input_channels=16), seed=seed)


# ------------------------------------------------------------------------------------------------
# Data


@dataclass
class MaskPool:
    """Rendered images with per-object targets.

    images: (M, S, S, 3) uint8 at the SAM input size; boxes: list of (K_i, 4) float32 XYXY at that size;
    masks: list of (K_i, S/4, S/4) uint8 area-averaged masks (0..255); shapes: list of (K_i,) int64 index of
    each object's shape in the world's shape list.
    """

    images: np.ndarray
    boxes: list[np.ndarray]
    masks: list[np.ndarray]
    shapes: list[np.ndarray]


class Prompts(NamedTuple):
    """One step's prompts (B images × k objects), all at the SAM input size.

    boxes (B, k, 4) float32 XYXY; points (B, k, 1, 2) float32 XY; targets (B, k, s, s) float32 in [0, 1];
    shapes (B, k) int64 shape index of each prompted object.
    """

    boxes: torch.Tensor
    points: torch.Tensor
    targets: torch.Tensor
    shapes: torch.Tensor


def _low_res(mask: np.ndarray, side: int) -> np.ndarray:
    """(H, W) bool -> (side, side) uint8 coverage (area average, 0..255)."""
    h, w = mask.shape
    fy, fx = h // side, w // side
    cover = mask[: side * fy, : side * fx].reshape(side, fy, side, fx).mean(axis=(1, 3))
    return np.round(cover * 255).astype(np.uint8)


def render_mask_pool(num_images: int, seed: int, key: int, image_size: int, dataset_seed: int = 0,
                     show_progress: bool = False, world: WorldConfig | None = None) -> MaskPool:
    """Render ``num_images`` world images (uniform categories) with boxes and low-res mask targets.

    key: the stream id (``streams.SAM_POOL`` for training); image ``i`` is drawn from
    ``stream_rng(seed, key, i)``. Images whose objects all cover < 12 pixels are skipped.
    """
    world = WorldConfig() if world is None else world
    categories = world.categories(dataset_seed)
    probs = uniform_probabilities(categories)
    shape_index = {name: i for i, name in enumerate(world.shape_names)}
    images, boxes, masks, shapes = [], [], [], []
    side = image_size // 4
    for index in progress_bar(range(num_images), desc="SAM data", disable=not show_progress, leave=False):
        rng = stream_rng(seed, key, index)
        pixels, objects = render_image(rng, categories, probs, image_size, world)
        kept = [o for o in objects if o.mask.sum() >= 12]
        if not kept:
            continue
        images.append(pixels)
        boxes.append(np.asarray([obj.box for obj in kept], dtype=np.float32))
        masks.append(np.stack([_low_res(o.mask, side) for o in kept]))
        shapes.append(np.asarray([shape_index[categories[o.category_index].shape] for o in kept], dtype=np.int64))
    return MaskPool(np.stack(images), boxes, masks, shapes)


def sample_prompts(pool: MaskPool, image_index: np.ndarray, k: int, jitter: float,
                   rng: np.random.Generator) -> Prompts:
    """Per image ``k`` objects (with replacement): jittered boxes, one foreground point each, targets."""
    size = pool.images.shape[1]
    side = pool.masks[0].shape[-1]
    cell = size / side
    boxes, points, targets, shapes = [], [], [], []
    for i in image_index.tolist():
        chosen = rng.integers(0, len(pool.boxes[i]), size=k)
        shapes.append(pool.shapes[i][chosen])
        box = pool.boxes[i][chosen].copy()  # (k, 4)
        span = np.maximum(box[:, 2:] - box[:, :2], 1.0)
        box += rng.normal(0, jitter, size=box.shape) * np.concatenate([span, span], axis=1)
        box = np.clip(box, 0, size)
        target = pool.masks[i][chosen].astype(np.float32) / 255.0  # (k, s, s)
        point = np.empty((k, 2), dtype=np.float32)
        for j in range(k):
            ys, xs = np.nonzero(target[j] >= 0.99)
            if len(ys) == 0:
                ys, xs = np.nonzero(target[j] == target[j].max())
            pick = rng.integers(len(ys))
            point[j] = (xs[pick] + rng.random()) * cell, (ys[pick] + rng.random()) * cell
        boxes.append(box)
        points.append(point[:, None, :])
        targets.append(target)
    return Prompts(torch.from_numpy(np.stack(boxes)).float(), torch.from_numpy(np.stack(points)).float(),
                   torch.from_numpy(np.stack(targets)).float(), torch.from_numpy(np.stack(shapes)))


# ------------------------------------------------------------------------------------------------
# Loss


def mask_loss(logits: torch.Tensor, target: torch.Tensor, iou_pred: torch.Tensor, pos_weight: float = 4.0) -> torch.Tensor:
    """BCE + dice on low-res logits, plus MSE of the predicted IoU.

    logits: (B, N, s, s) float; target: (B, N, s, s) in [0, 1]; iou_pred: (B, N).
    """
    # Objects cover ~2% of the image: up-weighting the foreground keeps training from stalling at "all
    # background" (where the dice gradient of a small object is tiny).
    bce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=logits.new_tensor(pos_weight))
    prob = logits.sigmoid().flatten(2)
    flat = target.flatten(2)
    dice = 1 - (2 * (prob * flat).sum(-1) + 1) / (prob.sum(-1) + flat.sum(-1) + 1)
    with torch.no_grad():
        pred = (logits > 0).flatten(2)
        truth = flat > 0.5
        iou = (pred & truth).sum(-1) / ((pred | truth).sum(-1)).clamp(min=1)
    return bce + dice.mean() + F.mse_loss(iou_pred, iou.float())


# ------------------------------------------------------------------------------------------------
# Training


def pretrain_sam(
    out_dir: str | Path,
    config: SamPretrainConfig | None = None,
    show_progress: bool = True,
    evaluate: bool = True,
    val_annotations: str | Path | None = None,
    val_image_root: str | Path | None = None,
    val_limit: int | None = 100,
) -> SamPretrainResult:
    """Train the tiny SAM from scratch, save it to ``out_dir`` and measure mask mIoU.

    val_annotations / val_image_root: a COCO split to measure on (e.g. ShapesWorld val, first
    ``val_limit`` images); without them, ``config.heldout_images`` fresh renders are used.
    """
    config = config or SamPretrainConfig()
    out_dir = Path(out_dir)
    start = time.perf_counter()
    pool = render_mask_pool(config.pool_images, config.seed, SAM_POOL, config.image_size, config.dataset_seed,
                            show_progress, world=config.world)
    model = build_sam_model(config, seed=config.seed).train()
    probe = TokenShapeProbe(model, len(config.world.shape_names)) if config.shape_loss_weight > 0 else None
    trained = torch.nn.ModuleList([model] + ([probe.classifier] if probe is not None else []))
    optimizer = torch.optim.AdamW(param_groups(trained, config.weight_decay, ("pos", "embed")), lr=config.lr)
    rng = stream_rng(config.seed, SAM_BATCHES)
    probe_hits: list[float] = []

    def step_loss(step: int, progress: float) -> torch.Tensor:
        index = rng.choice(len(pool.images), size=config.images_per_step, replace=False)
        prompts = sample_prompts(pool, index, config.prompts_per_image, config.box_jitter, rng)
        embedding = model.get_image_embeddings(pixel_values=normalise_pixels(pool.images[index]))
        pos_weight = config.pos_weight_end + (config.pos_weight_start - config.pos_weight_end) * (1 - progress)
        labels = torch.ones(prompts.points.shape[:3], dtype=torch.long)
        loss = embedding.new_zeros(())
        for kwargs in ({"input_boxes": prompts.boxes}, {"input_points": prompts.points, "input_labels": labels}):
            out = model(image_embeddings=embedding, multimask_output=False, **kwargs)
            loss = loss + mask_loss(out.pred_masks[:, :, 0], prompts.targets, out.iou_scores[:, :, 0], pos_weight)
            if probe is not None:
                loss = loss + config.shape_loss_weight * probe.loss(prompts.shapes)
                probe_hits.append(probe.accuracy(prompts.shapes))
        return loss

    losses = train_on_budget("SAM", config, trained, optimizer, step_loss, show_progress)
    steps_done = len(losses)
    model.eval()
    if probe is not None:
        probe.remove()
    save_sam_folder(model, out_dir)

    miou_box = miou_point = float("nan")
    if evaluate:
        if val_annotations is not None:
            objects = coco_objects(val_annotations, val_image_root or Path(val_annotations).parent.parent,
                                   config.image_size, limit=val_limit)
        else:
            objects = heldout_objects(config.heldout_images, config.seed, config.image_size, config.dataset_seed,
                                      world=config.world)
        miou_box, miou_point = evaluate_miou(model, *objects, show_progress=show_progress)
    first, last = loss_ends(losses)
    result = SamPretrainResult(
        folder=out_dir, steps=steps_done, seconds=time.perf_counter() - start, first_loss=first, last_loss=last,
        miou_box=miou_box, miou_point=miou_point, size_mb=folder_size_mb(out_dir),
        token_shape_accuracy=float(np.mean(probe_hits[-100:])) if probe_hits else float("nan"),
    )
    write_pretrain_metrics(out_dir, result, config)
    return result
