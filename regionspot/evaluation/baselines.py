"""The CLIP crop baselines of the paper's Table 1: CLIP on the box crop and on the SAM-mask crop.

Both score a region by CLIP's own image-text similarity, with no trained part:

- ``clip-box``: the box is cut out of the image (a plain crop: no context margin, no padding to a
  square) and fed to CLIP like a whole image, i.e. resized to S×S without a centre crop
  (``VisionLanguage.encode_image`` → ``preprocess_images``), so a long thin box is stretched. This is
  the plain crop the paper's baseline and RegionCLIP's use; padding to square would change the numbers.
- ``clip-mask``: the same crop, with every pixel outside the region's SAM mask (decoded from the same
  box prompt) set to the model's mean colour (CLIP: RGB ≈ (123, 117, 104)). After normalisation those
  pixels are 0, i.e. "no signal", which disturbs CLIP less than black (black is a strong, far-from-mean
  input) and keeps the crop's aspect.

logits = logit_scale · cos(crop embedding, text embedding), shape (N, V); the caller applies the same
softmax and top-(box, class) selection as for RegionSpot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from regionspot.backbones.base import VisionLanguage
from regionspot.errors import PromptError
from regionspot.masks.base import RegionMasks, as_region_masks
from regionspot.modeling.scoring import region_text_logits

__all__ = ["BASELINES", "crop_box", "region_crops", "mean_fill_colour", "crop_logits", "baseline_logits"]

BASELINES = ("clip-box", "clip-mask")


def _pixel_box(box: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """XYXY float box → integer pixel box inside the image, rounded outwards, at least 1×1."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise PromptError(f"box {list(box)} has a non-finite coordinate; drop it from the boxes.")
    left = min(max(int(math.floor(x1)), 0), width - 1)
    top = min(max(int(math.floor(y1)), 0), height - 1)
    right = max(min(int(math.ceil(x2)), width), left + 1)
    bottom = max(min(int(math.ceil(y2)), height), top + 1)
    return left, top, right, bottom


def crop_box(image: Image.Image, box: Sequence[float]) -> Image.Image:
    """The plain crop of one XYXY box (original-image pixels), clipped to the image, at least 1×1."""
    return image.crop(_pixel_box(box, image.width, image.height))


def mean_fill_colour(vision_language: VisionLanguage) -> tuple[int, int, int]:
    """RGB 0..255 of the model's normalisation mean (CLIP's when the adapter does not say)."""
    from regionspot.backbones.constants import CLIP_MEAN

    mean = vision_language.mean or CLIP_MEAN
    return tuple(int(round(float(m) * 255)) for m in mean)  # type: ignore[return-value]


def region_crops(
    image: Image.Image,
    boxes: torch.Tensor | np.ndarray,
    masks: RegionMasks | torch.Tensor | np.ndarray | None = None,
    fill: tuple[int, int, int] = (0, 0, 0),
) -> list[Image.Image]:
    """One RGB crop per box.

    image: RGB PIL image, width W, height H.
    boxes: (N, 4) float, XYXY, original-image pixels.
    masks: None for box crops, or (N, H, W) bool at the original size (an array or ``RegionMasks``, read
        one box window at a time): pixels outside a box's mask are set to ``fill`` before cropping.
    """
    box_array = boxes.detach().cpu().numpy() if isinstance(boxes, torch.Tensor) else np.asarray(boxes)
    box_array = box_array.reshape(-1, 4)
    if masks is None:
        return [crop_box(image, box) for box in box_array]
    region_masks = as_region_masks(masks)
    if region_masks.shape != (len(box_array), image.height, image.width):
        raise ValueError(
            f"masks must be (N, H, W) = ({len(box_array)}, {image.height}, {image.width}), got {region_masks.shape}"
        )
    pixels = np.asarray(image.convert("RGB"))
    colour = np.asarray(fill, dtype=pixels.dtype)
    crops = []
    for i, box in enumerate(box_array):
        left, top, right, bottom = _pixel_box(box, image.width, image.height)
        patch = pixels[top:bottom, left:right].copy()  # (h, w, 3) uint8
        patch[~region_masks.window(i, top, bottom, left, right)] = colour
        crops.append(Image.fromarray(patch))
    return crops


@torch.no_grad()
def crop_logits(
    vision_language: VisionLanguage, crops: Sequence[Image.Image], text: torch.Tensor, batch_size: int = 64
) -> torch.Tensor:
    """(N, V) float32 logits = logit_scale · cos(CLIP(crop), text) for N crops against text (V, D) L2-normalised
    (``modeling.scoring.region_text_logits``, as RegionSpot's regions are scored)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not crops:
        return torch.zeros(0, text.shape[0])
    scale = float(vision_language.logit_scale)
    parts = []
    for start in range(0, len(crops), batch_size):
        embeddings = vision_language.encode_image(list(crops[start : start + batch_size]))  # (b, D)
        parts.append(region_text_logits(embeddings.to(text.device), text, scale))  # (b, V)
    return torch.cat(parts)


def baseline_logits(
    method: str,
    vision_language: VisionLanguage,
    image: Image.Image,
    boxes: torch.Tensor | np.ndarray,
    text: torch.Tensor,
    masks: RegionMasks | torch.Tensor | np.ndarray | None = None,
    batch_size: int = 64,
) -> torch.Tensor:
    """(N, V) float32 logits of ``method`` ("clip-box" or "clip-mask") for the boxes (N, 4) XYXY of ``image``.

    clip-mask needs ``masks`` (N, H, W) bool from the segmenter with the same box prompts.
    """
    if method == "clip-box":
        crops = region_crops(image, boxes)
    elif method == "clip-mask":
        if masks is None:
            raise ValueError("clip-mask needs the segmenter's masks of the boxes (masks=...).")
        crops = region_crops(image, boxes, masks, fill=mean_fill_colour(vision_language))
    else:
        raise ValueError(f"unknown baseline {method!r}; choose one of {BASELINES}")
    return crop_logits(vision_language, crops, text, batch_size)
