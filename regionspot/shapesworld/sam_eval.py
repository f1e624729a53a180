"""Mask mIoU of a tiny SAM: on fresh world renders or on a COCO split (e.g. ShapesWorld val), with box
prompts and with one interior point per object, at the SAM input size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from regionspot.backbones.constants import IMAGENET_MEAN, IMAGENET_STD
from regionspot.data.coco_json import CocoDetectionDataset
from regionspot.data.transforms import normalize_pixels
from regionspot.shapesworld.streams import SAM_HELDOUT, stream_rng
from regionspot.shapesworld.world import WorldConfig, render_image, uniform_probabilities
from regionspot.utils.progress import progress_bar


def normalise_pixels(images: np.ndarray) -> torch.Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float32 normalised with SAM's mean/std."""
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return normalize_pixels(pixels, IMAGENET_MEAN, IMAGENET_STD)


def _iou(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool x2 -> (N,) IoU."""
    inter = (pred & truth).flatten(1).sum(1).float()
    union = (pred | truth).flatten(1).sum(1).float().clamp(min=1)
    return inter / union


@torch.no_grad()
def evaluate_miou(model, images: list[np.ndarray], boxes: list[np.ndarray], masks: list[np.ndarray],
                  seed: int = 0, show_progress: bool = False) -> tuple[float, float]:
    """Mask mIoU with GT-box prompts and with one interior point per object, at full resolution.

    images: (S, S, 3) uint8 at the model's input size; boxes: (K, 4) XYXY; masks: (K, S, S) bool.
    Low-res logits are upsampled bilinearly to S and thresholded at 0 (as SAM post-processing does).
    Returns (mIoU box, mIoU point) over all objects.
    """
    model.eval()
    rng = np.random.default_rng(seed)
    size = int(model.config.vision_config.image_size)
    box_ious, point_ious = [], []
    for image, box, mask in progress_bar(list(zip(images, boxes, masks)), desc="SAM mIoU", disable=not show_progress,
                                 leave=False):
        embedding = model.get_image_embeddings(pixel_values=normalise_pixels(image[None]))
        truth = torch.from_numpy(mask)
        points = np.empty((len(mask), 1, 2), dtype=np.float32)
        for j in range(len(mask)):
            ys, xs = np.nonzero(mask[j])
            pick = rng.integers(len(ys))
            points[j, 0] = xs[pick] + 0.5, ys[pick] + 0.5
        for kind, kwargs in (
            ("box", {"input_boxes": torch.from_numpy(box).float()[None]}),
            ("point", {"input_points": torch.from_numpy(points)[None],
                       "input_labels": torch.ones(1, len(mask), 1, dtype=torch.long)}),
        ):
            out = model(image_embeddings=embedding, multimask_output=False, **kwargs)
            low = out.pred_masks[0, :, 0]  # (K, s, s)
            full = F.interpolate(low[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0] > 0
            (box_ious if kind == "box" else point_ious).append(_iou(full, truth))
    return float(torch.cat(box_ious).mean()), float(torch.cat(point_ious).mean())


def heldout_objects(num_images: int, seed: int, image_size: int, dataset_seed: int = 0,
                    world: WorldConfig | None = None):
    """Fresh renders for evaluation: (images, boxes, masks) lists as ``evaluate_miou`` takes them."""
    world = WorldConfig() if world is None else world
    categories = world.categories(dataset_seed)
    probs = uniform_probabilities(categories)
    images, boxes, masks = [], [], []
    for index in range(num_images):
        pixels, objects = render_image(stream_rng(seed, SAM_HELDOUT, index), categories, probs, image_size, world)
        kept = [o.mask for o in objects if o.mask.sum() >= 12]
        if not kept:
            continue
        images.append(pixels)
        stacked = np.stack(kept)
        object_boxes = []
        for m in kept:
            ys, xs = np.nonzero(m)
            object_boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        boxes.append(np.asarray(object_boxes, dtype=np.float32))
        masks.append(stacked)
    return images, boxes, masks


def coco_objects(annotation_file: str | Path, image_root: str | Path, image_size: int, limit: int | None = None):
    """(images, boxes, masks) of a COCO-format split (e.g. ShapesWorld val) as ``evaluate_miou`` takes them.

    The first ``limit`` images of the file (by id) that have annotations, read with
    :class:`CocoDetectionDataset`. Each image is resized (bilinear) so its longer side is ``image_size``
    and placed at the top-left of a black canvas: images (S, S, 3) uint8; boxes (K, 4) float32 XYXY and
    masks (K, S, S) bool (nearest-resized), both in canvas pixels.
    """
    dataset = CocoDetectionDataset(annotation_file, image_root)
    images, boxes, masks = [], [], []
    for index in range(len(dataset))[:limit]:
        record = dataset[index]
        if len(record) == 0:
            continue
        image = dataset.load_image(index)
        scale = image_size / max(image.size)
        if scale != 1:
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR)
        canvas = np.zeros((image_size, image_size, 3), dtype=np.uint8)
        canvas[: image.height, : image.width] = np.asarray(image)
        object_masks = np.zeros((len(record), image_size, image_size), dtype=bool)
        for j, m in enumerate(dataset.load_masks(index)):
            if scale != 1:
                m = np.asarray(Image.fromarray(m).resize((image.width, image.height), Image.Resampling.NEAREST))
            object_masks[j, : m.shape[0], : m.shape[1]] = m
        images.append(canvas)
        boxes.append((record.boxes.astype(np.float64) * scale).astype(np.float32))
        masks.append(object_masks)
    return images, boxes, masks
