"""A tiny, randomly initialised ``transformers.SamModel`` saved like a hub folder, for tests.

The tiny model keeps every SAM structure (windowed + global ViT blocks with relative positions, the
prompt encoder, a 2-layer two-way transformer, 4 mask tokens) but uses width 32 and a 128-pixel input
(8×8 image embedding). ``SamModel`` and its image processor accept an ``image_size`` other than 1024 as
long as the prompt encoder's ``image_size`` / ``image_embedding_size`` agree with the vision config, so
the tiny model runs a full encode + decode in milliseconds.

Initialisation is SAM-style (PyTorch module defaults, as the official code builds its modules), not
transformers' ``_init_weights``: the latter draws the prompt positional-encoding matrix with std
``hidden_size / 2`` (384 at full size), which makes the sin/cos box encodings pure noise and hides
precision bugs. Parameters that the official code zero-initialises (absolute and relative positional
embeddings) get small random values here, so that a wrong key mapping changes the outputs.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import SamConfig, SamMaskDecoderConfig, SamModel, SamPromptEncoderConfig, SamVisionConfig

from regionspot.backbones.convert.sam import save_sam_processor_config

TINY_IMAGE_SIZE = 128
TINY_HIDDEN = 32


def tiny_sam_config(image_size: int = TINY_IMAGE_SIZE, hidden_size: int = TINY_HIDDEN) -> SamConfig:
    """A ``SamConfig`` with every SAM structure at toy width.

    image_size: input side in pixels (a multiple of 16); the image embedding is image_size/16 square.
    hidden_size: width of the vision ViT, the neck output, the prompt tokens and the decoder.
    """
    patch = 16
    grid = image_size // patch
    vision = SamVisionConfig(
        hidden_size=hidden_size,
        output_channels=hidden_size,
        num_hidden_layers=2,
        num_attention_heads=2,
        mlp_dim=2 * hidden_size,
        image_size=image_size,
        patch_size=patch,
        window_size=max(grid // 2, 1),
        global_attn_indexes=[1],
        num_pos_feats=hidden_size // 2,
    )
    prompt = SamPromptEncoderConfig(
        hidden_size=hidden_size,
        image_size=image_size,
        patch_size=patch,
        image_embedding_size=grid,
        mask_input_channels=8,
    )
    decoder = SamMaskDecoderConfig(
        hidden_size=hidden_size,
        mlp_dim=2 * hidden_size,
        num_attention_heads=2,
        num_hidden_layers=2,
        iou_head_hidden_dim=hidden_size,
    )
    return SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)


@torch.no_grad()
def sam_style_init_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Re-initialise a SAM-family model in place as the official code would, deterministically.

    Linear/conv/embedding/layer-norm layers get their PyTorch defaults; the prompt positional-encoding
    matrix gets N(0, 1) (official scale 1.0); positional embeddings get N(0, 0.02).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d, nn.Embedding)):
                module.reset_parameters()
            elif isinstance(module, nn.LayerNorm):
                # non-trivial affine so a swapped norm is visible in tests
                module.weight.normal_(1.0, 0.1)
                module.bias.normal_(0.0, 0.1)
        for name, parameter in model.named_parameters():
            if name.endswith("positional_embedding"):
                parameter.normal_(0.0, 1.0)
            elif name.endswith(("pos_embed", "rel_pos_h", "rel_pos_w")):
                parameter.normal_(0.0, 0.02)
        _tie_positional_embedding(model)
    return model


def _tie_positional_embedding(model: nn.Module) -> None:
    # The prompt encoder's copy is tied to the image-wide one in SamModel; keep them equal either way.
    shared = getattr(model, "shared_image_embedding", None)
    prompt = getattr(getattr(model, "prompt_encoder", None), "shared_embedding", None)
    if shared is not None and prompt is not None:
        prompt.positional_embedding.data.copy_(shared.positional_embedding.data)


def build_tiny_sam(seed: int = 0, image_size: int = TINY_IMAGE_SIZE) -> SamModel:
    """A tiny ``SamModel`` in eval mode with SAM-style random weights (see module docstring)."""
    model = SamModel(tiny_sam_config(image_size=image_size))
    sam_style_init_(model, seed=seed)
    return model.eval()


def save_tiny_sam(folder: str | Path, seed: int = 0, image_size: int = TINY_IMAGE_SIZE) -> Path:
    """Build a tiny SAM (see :func:`build_tiny_sam`) and save it with its processor config.

    The folder loads offline with ``regionspot.backbones.segmenter.load_segmenter(folder)`` and with
    ``SamModel.from_pretrained(folder)``. Returns the folder as a Path.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = build_tiny_sam(seed=seed, image_size=image_size)
    model.save_pretrained(str(folder))
    save_sam_processor_config(folder, image_size=image_size)
    return folder


def build_tiny_sam_hq(seed: int = 0, image_size: int = TINY_IMAGE_SIZE) -> nn.Module:
    """A tiny ``SamHQModel`` with the same sizes as :func:`build_tiny_sam` and SAM-style weights."""
    from transformers import (
        SamHQConfig,
        SamHQMaskDecoderConfig,
        SamHQModel,
        SamHQPromptEncoderConfig,
        SamHQVisionConfig,
    )

    base = tiny_sam_config(image_size=image_size)

    def fields(sub_config) -> dict:
        return {k: v for k, v in sub_config.to_dict().items() if k not in ("model_type", "transformers_version")}

    config = SamHQConfig(
        vision_config=SamHQVisionConfig(**fields(base.vision_config)),
        prompt_encoder_config=SamHQPromptEncoderConfig(**fields(base.prompt_encoder_config)),
        mask_decoder_config=SamHQMaskDecoderConfig(**fields(base.mask_decoder_config), vit_dim=base.vision_config.hidden_size),
    )
    model = SamHQModel(config)
    sam_style_init_(model, seed=seed)
    return model.eval()


def save_tiny_sam_hq(folder: str | Path, seed: int = 0, image_size: int = TINY_IMAGE_SIZE) -> Path:
    """Save :func:`build_tiny_sam_hq` with its processor config; loads with ``load_segmenter(folder)``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    build_tiny_sam_hq(seed=seed, image_size=image_size).save_pretrained(str(folder))
    save_sam_processor_config(folder, image_size=image_size)
    return folder
