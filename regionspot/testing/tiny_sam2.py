"""Tiny, randomly initialised SAM 2-family models (``Sam2Model``, ``Sam3TrackerModel``, ``EdgeTamModel``) for tests.

Every structure of the real configs at toy width: a 4-stage Hiera (SAM 2.1), a 2-layer windowed ViT with a
global layer (SAM 3), the FPN neck with three levels, the SAM 2 prompt encoder and mask decoder (object-score,
IoU and 4 mask tokens, ``dynamic_multimask_via_stability`` on as in the released configs). Inputs 128 px
(SAM 3: 112 = 8 patches of 14), so the image embedding is 8 × 8 and the low-res masks 32 × 32.

EdgeTAM's backbone is timm's RepViT (``TimmWrapperModel``); timm is not a dependency, so
:func:`build_tiny_edgetam` builds the model with a tiny convolutional stand-in that returns the same four
feature maps (strides 4–32) the neck reads; everything after the backbone is EdgeTAM's own code.
"""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import torch
from torch import nn

from regionspot.backbones.constants import IMAGENET_MEAN, IMAGENET_STD
from regionspot.backbones.convert.sam2 import save_sam2_processor_config

TINY_SAM2_SIZE = 128
TINY_SAM3_SIZE = 112
TINY_WIDTH = 32
_DECODER = dict(hidden_size=TINY_WIDTH, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=TINY_WIDTH)
_FEATURE_SIZES = [[32, 32], [16, 16], [8, 8]]


def _prompt_encoder(image_size: int, patch_size: int) -> dict:
    return dict(hidden_size=TINY_WIDTH, image_size=image_size, patch_size=patch_size, mask_input_channels=8)


def tiny_sam2_config():
    """A ``Sam2Config``: Hiera with stages of width 8/16/32/64 (1, 1, 2, 1 blocks), FPN width 32, 128-px input."""
    from transformers import Sam2Config

    hiera = dict(model_type="sam2_hiera_det_model", hidden_size=8, num_attention_heads=1, blocks_per_stage=[1, 1, 2, 1],
                 embed_dim_per_stage=[8, 16, 32, 64], num_attention_heads_per_stage=[1, 1, 2, 2],
                 window_size_per_stage=[4, 4, 4, 2], global_attention_blocks=[3], image_size=[128, 128],
                 window_positional_embedding_background_size=[4, 4])
    vision = dict(backbone_config=hiera, backbone_channel_list=[64, 32, 16, 8], backbone_feature_sizes=_FEATURE_SIZES,
                  fpn_hidden_size=TINY_WIDTH)
    return Sam2Config(vision_config=vision, prompt_encoder_config=_prompt_encoder(TINY_SAM2_SIZE, 16),
                      mask_decoder_config=dict(_DECODER))


def tiny_sam3_tracker_config():
    """A ``Sam3TrackerConfig``: a 2-layer ViT (patch 14, window 4, layer 1 global), FPN width 32, 112-px input."""
    from transformers import Sam3TrackerConfig

    vit = dict(model_type="sam3_vit_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
               num_attention_heads=2, image_size=TINY_SAM3_SIZE, patch_size=14, window_size=4, global_attn_indexes=[1],
               pretrain_image_size=56)
    vision = dict(backbone_config=vit, fpn_hidden_size=TINY_WIDTH, backbone_feature_sizes=_FEATURE_SIZES)
    return Sam3TrackerConfig(vision_config=vision, prompt_encoder_config=_prompt_encoder(TINY_SAM3_SIZE, 14),
                             mask_decoder_config=dict(_DECODER))


def _seeded(model: nn.Module, seed: int) -> nn.Module:
    """Seeded random weights: N(0, 0.2) (LayerNorms near the identity), so that tiny masks vary with the
    prompt; the same model on every machine. The positional-encoding matrix is shared as in real checkpoints."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if "norm" in name:
                parameter.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * noise)
            else:
                parameter.copy_(0.2 * noise)
        # one Gaussian matrix for prompts and the image-wide encoding, as in the released checkpoints
        model.shared_image_embedding.positional_embedding.copy_(model.prompt_encoder.shared_embedding.positional_embedding)
    return model.requires_grad_(False).eval()


def build_tiny_sam2(seed: int = 0) -> nn.Module:
    """A tiny ``Sam2Model`` in eval mode with seeded random weights."""
    from transformers import Sam2Model

    return _seeded(Sam2Model(tiny_sam2_config()), seed)


def build_tiny_sam3_tracker(seed: int = 0) -> nn.Module:
    """A tiny ``Sam3TrackerModel`` in eval mode with seeded random weights."""
    from transformers import Sam3TrackerModel

    return _seeded(Sam3TrackerModel(tiny_sam3_tracker_config()), seed)


class _TinyBackbone(nn.Module):
    """Stands in for timm's RepViT: four feature maps (B, C_i, S/4/2^i, S/4/2^i) as ``last_hidden_state``."""

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, channels[0], 4, stride=4)
        self.stages = nn.ModuleList(nn.Conv2d(a, b, 2, stride=2) for a, b in zip(channels, channels[1:]))

    def forward(self, pixel_values: torch.Tensor, **_kwargs):
        from transformers.modeling_outputs import BaseModelOutput

        maps = [self.stem(pixel_values)]
        for stage in self.stages:
            maps.append(stage(maps[-1]))
        return BaseModelOutput(last_hidden_state=maps, hidden_states=None)


def build_tiny_edgetam(seed: int = 0) -> nn.Module:
    """A tiny ``EdgeTamModel`` (128-px input) whose timm backbone is a convolutional stand-in (module docstring)."""
    from transformers import EdgeTamConfig, EdgeTamModel
    from transformers.models.edgetam import modeling_edgetam

    channels = [8, 16, 32, 64]
    # a config of another backbone type stands in for timm's (whose config class needs timm too)
    vision = dict(backbone_config=dict(model_type="resnet", hidden_sizes=channels, depths=[1, 1, 1, 1], embedding_size=8),
                  backbone_channel_list=channels[::-1], backbone_feature_sizes=_FEATURE_SIZES, fpn_hidden_size=TINY_WIDTH)
    config = EdgeTamConfig(vision_config=vision, prompt_encoder_config=_prompt_encoder(TINY_SAM2_SIZE, 16),
                           mask_decoder_config=dict(_DECODER))
    real = modeling_edgetam.AutoModel.from_config

    def from_config(sub_config, *args, **kwargs):
        if getattr(sub_config, "model_type", "") == "resnet":
            return _TinyBackbone(channels)
        return real(sub_config, *args, **kwargs)

    with mock.patch.object(modeling_edgetam.AutoModel, "from_config", side_effect=from_config):
        model = EdgeTamModel(config)
    return _seeded(model, seed)


def save_tiny_sam2_family(model: nn.Module, folder: str | Path) -> Path:
    """Save a tiny SAM 2-family model and a SAM 2-style ``preprocessor_config.json`` (square resize, its mean/std).

    The folder loads offline with ``load_segmenter(folder)`` (EdgeTAM needs timm). Returns the folder.
    """
    folder = Path(folder)
    model.save_pretrained(str(folder))
    side = int(model.config.prompt_encoder_config.image_size)
    sam3 = model.config.model_type.startswith("sam3")
    stats = ((0.5,) * 3, (0.5,) * 3) if sam3 else (IMAGENET_MEAN, IMAGENET_STD)
    save_sam2_processor_config(folder, image_size=side, mean=stats[0], std=stats[1])
    return folder
