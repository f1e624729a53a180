"""A tiny, randomly initialised ``transformers.SamModel`` saved like a hub folder, for tests.

Width 32 and a 128-pixel input (8×8 image embedding), so a full encode + decode runs in milliseconds;
the architecture, the SAM-style initialisation and the folder layout come from
:mod:`regionspot.shapesworld.tiny_models`.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn
from transformers import SamConfig, SamModel

from regionspot.shapesworld.tiny_models import (
    build_sam,
    sam_config,
    sam_hq_config,
    sam_style_init_,
    save_sam_folder,
)

TINY_IMAGE_SIZE = 128
TINY_HIDDEN = 32


def tiny_sam_config(image_size: int = TINY_IMAGE_SIZE, hidden_size: int = TINY_HIDDEN) -> SamConfig:
    """A ``SamConfig`` with every SAM structure at toy width: 2 ViT blocks (the second global), 2 heads.

    image_size: input side in pixels (a multiple of 16); the image embedding is image_size/16 square.
    hidden_size: width of the vision ViT, the neck output, the prompt tokens and the decoder.
    """
    return sam_config(image_size=image_size, patch_size=16, vision_width=hidden_size, vision_layers=2,
                      vision_heads=2, vision_mlp=2 * hidden_size, width=hidden_size, decoder_mlp=2 * hidden_size,
                      decoder_heads=2, mask_input_channels=8)


def build_tiny_sam(seed: int = 0, image_size: int = TINY_IMAGE_SIZE) -> SamModel:
    """A tiny ``SamModel`` in eval mode with SAM-style random weights."""
    return build_sam(tiny_sam_config(image_size=image_size), seed=seed).eval()


def save_tiny_sam(folder: str | Path, seed: int = 0, image_size: int = TINY_IMAGE_SIZE) -> Path:
    """Build a tiny SAM (see :func:`build_tiny_sam`) and save it (fp32) with its processor config.

    The folder loads offline with ``regionspot.backbones.segmenter.load_segmenter(folder)`` and with
    ``SamModel.from_pretrained(folder)``. Returns the folder as a Path.
    """
    return save_sam_folder(build_tiny_sam(seed=seed, image_size=image_size), folder, half=False)


def build_tiny_sam_hq(seed: int = 0, image_size: int = TINY_IMAGE_SIZE) -> nn.Module:
    """A tiny ``SamHQModel`` with the same sizes as :func:`build_tiny_sam` and SAM-style weights."""
    from transformers import SamHQModel

    model = SamHQModel(sam_hq_config(tiny_sam_config(image_size=image_size)))
    return sam_style_init_(model, seed=seed).eval()


def save_tiny_sam_hq(folder: str | Path, seed: int = 0, image_size: int = TINY_IMAGE_SIZE) -> Path:
    """Save :func:`build_tiny_sam_hq` with its processor config; loads with ``load_segmenter(folder)``."""
    return save_sam_folder(build_tiny_sam_hq(seed=seed, image_size=image_size), folder, half=False)
