"""Attention maps (the paper's Figure 4): where in the CLIP feature map each region looked.

The head's cross-attention weights come from the very forward that scored the regions
(``RegionSpotPredictor.predict(..., return_attention=True)`` → ``RegionResult.attention``, shape
(N, L, heads, T)). Here they become pictures: one layer (default the last) or the mean of all layers,
averaged over heads, the class token dropped, the g×g patch grid upsampled bilinearly to the image and
drawn over it.

Frames: the vision-language model sees the whole image resized to a square (no crop), so patch (i, j) of
the g×g grid covers rows [i·H/g, (i+1)·H/g) and columns [j·W/g, (j+1)·W/g) of the original H×W image.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from regionspot.errors import RegionSpotError
from regionspot.inference.results import RegionResult


def attention_grid(attention: np.ndarray, layer: int | None = -1) -> np.ndarray:
    """(N, L, heads, T) weights → (N, g, g) float32 patch maps, averaged over heads.

    layer: which decoder layer (default the last; negative counts from the end), or None for the mean
        over layers. Token 0 (the class token) is dropped; T - 1 must be a square g².
    """
    attention = np.asarray(attention, dtype=np.float32)
    if attention.ndim != 4:
        raise ValueError(f"attention must be (N, layers, heads, T); got shape {attention.shape}.")
    n, layers, _heads, tokens = attention.shape
    if layer is None:
        per_layer = attention.mean(1)  # (N, heads, T)
    elif -layers <= layer < layers:
        per_layer = attention[:, layer]
    else:
        raise ValueError(f"The head has {layers} layers; pick a layer in {-layers}..{layers - 1} or all of them.")
    side = math.isqrt(tokens - 1)
    if side * side != tokens - 1:
        raise ValueError(f"{tokens} attended tokens are not a class token plus a square patch grid.")
    return per_layer.mean(1)[:, 1:].reshape(n, side, side)  # (N, g, g)


def upsample(grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(g, g) → (H, W) float32, bilinear over the whole image (the square CLIP input stretched back)."""
    tensor = torch.from_numpy(np.ascontiguousarray(grid, dtype=np.float32))[None, None]
    return F.interpolate(tensor, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def heat_colours(values: np.ndarray) -> np.ndarray:
    """(H, W) values in [0, 1] → (H, W, 3) uint8 with matplotlib's "inferno" colour map."""
    from matplotlib import colormaps

    return (colormaps["inferno"](np.clip(values, 0.0, 1.0))[..., :3] * 255).astype(np.uint8)


def caption_font(size: int) -> ImageFont.ImageFont:
    """PIL's default font at ``size`` pixels (its fixed small bitmap font on Pillow < 10.1)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def draw_attention(
    image: Image.Image, heatmap: np.ndarray, box=None, caption: str | None = None, alpha: float = 0.6
) -> Image.Image:
    """Blend a heat map over ``image``.

    heatmap: (H, W) at the image's size, any non-negative scale (shown min-to-max).
    box: optional XYXY in original-image pixels, drawn in white; caption: drawn in its top-left corner.
    """
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    if heatmap.shape != base.shape[:2]:
        raise ValueError(f"heatmap {heatmap.shape} does not match the image {base.shape[:2]} (H, W).")
    low, high = float(heatmap.min()), float(heatmap.max())
    scaled = (heatmap - low) / (high - low) if high > low else np.zeros_like(heatmap)
    blended = (1 - alpha) * base + alpha * heat_colours(scaled).astype(np.float32)
    out = Image.fromarray(blended.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    width = max(1, round(max(out.size) / 256))
    if box is not None:
        draw.rectangle([float(v) for v in box], outline=(255, 255, 255), width=width)
    if caption:
        font = caption_font(max(13, round(max(out.size) / 24)))  # 13 px on a 256-pixel panel, 43 px on 1024
        left, top, right, bottom = draw.textbbox((0, 0), caption, font=font)
        draw.rectangle([0, 0, right - left + 4, bottom - top + 4], fill=(255, 255, 255))
        draw.text((2 - left, 2 - top), caption, fill=(0, 0, 0), font=font)
    return out


def attention_maps(result: RegionResult, layer: int | None = -1) -> np.ndarray:
    """(N, H, W) float32: each region's attention at the original image size (see :func:`attention_grid`)."""
    if result.attention is None:
        raise RegionSpotError("This result holds no attention; predict with return_attention=True.")
    grids = attention_grid(result.attention, layer)
    return np.stack([upsample(g, result.image_size) for g in grids]) if len(grids) else np.zeros((0, *result.image_size), np.float32)


def panel_caption(result: RegionResult, region: int, layer: int | None = -1) -> str:
    """The caption of one attention panel: "#0 red heart 0.18 (last layer)".

    The number is the region's top-1 confidence (``RegionResult.display_scores``), formatted as the CLI's
    stdout and the pictures show it, so a region reads the same everywhere. layer: -1 (the last), a layer
    index from 0, or None (the mean over layers).
    """
    name = "last layer" if layer == -1 else "all layers" if layer is None else f"layer {layer + 1}"
    return f"#{region} {result.labels[region]} {result.display_scores[region]:.2f} ({name})"


def explain_figure(
    image: Image.Image, result: RegionResult, regions: list[int] | None = None, per_layer: bool = False,
    max_regions: int = 6, max_side: int | None = 1024,
) -> Image.Image:
    """A grid of panels: one row per region, one column (last layer) or one per layer (``per_layer``).

    regions: indices into ``result`` (default: the first ``max_regions``). Each panel shows the region's
    box and its top-1 label and confidence (:func:`panel_caption`).
    max_side: each panel is the image scaled down (PIL bilinear) to at most this many pixels on its longest
        side (None: full size). The attention is a patch grid of a few dozen cells a side, so more pixels
        show nothing more, and full-size panels of a 48-megapixel photo would take gigabytes.
    """
    if result.attention is None:
        raise RegionSpotError("This result holds no attention; predict with return_attention=True.")
    regions = list(range(min(len(result), max_regions))) if regions is None else list(regions)
    bad = [i for i in regions if not 0 <= i < len(result)]
    if bad or not regions:
        raise RegionSpotError(f"Pick regions among 0..{len(result) - 1}; got {bad or regions}.")
    layers = list(range(result.attention.shape[1])) if per_layer else [-1]
    shrink = 1.0 if max_side is None else min(1.0, max_side / max(image.size))
    if shrink < 1.0:
        image = image.resize((max(1, round(image.width * shrink)), max(1, round(image.height * shrink))),
                             resample=Image.Resampling.BILINEAR)
    to_panel = np.array([image.width, image.height] * 2, np.float32) / np.array(result.image_size[::-1] * 2, np.float32)
    panels = []
    for i in regions:
        row = []
        for layer in layers:
            heat = upsample(attention_grid(result.attention[i : i + 1], layer)[0], (image.height, image.width))
            row.append(draw_attention(image, heat, result.boxes[i] * to_panel, panel_caption(result, i, layer)))
        panels.append(row)
    width, height = image.size
    sheet = Image.new("RGB", (width * len(layers), height * len(panels)), (255, 255, 255))
    for r, row in enumerate(panels):
        for c, panel in enumerate(row):
            sheet.paste(panel, (c * width, r * height))
    return sheet
