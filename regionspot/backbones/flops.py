"""FLOPs of the frozen backbones at full size, counted by torch's ``FlopCounterMode`` on the meta device (shapes
only: no weights, no memory, seconds), and the table of the named variants' backbones that ``regionspot models``
prints.

FLOPs are multiply-adds × 2 of matmuls, convolutions and attention (torch's counter; its CPU SDPA kernels are
taught to it here). The segmenter's encoder runs at its input size (SAM: 1024², SAM 3: 1008²); its decoder is
counted per box: prompt encoder + mask decoder with the mask branch (``decode_prompts(masks="full")`` minus the
final resize), from 12 boxes / 12. The vision-language tower runs once per image at its input size.
:data:`BACKBONE_FLOPS` caches those counts (recomputed by ``benchmarks/speed/variants.py``; a test recomputes
entries with :func:`segmenter_flops`).
"""

from __future__ import annotations

import torch

__all__ = ["BACKBONE_FLOPS", "backbone_config", "backbone_flops", "count_flops", "segmenter_flops", "vision_tower_flops"]

# hub id -> (image encoder FLOPs per image, decoder FLOPs per box) for segmenters, (tower FLOPs per image, 0) for
# vision-language models: :func:`backbone_flops` of each (torch 2.13, transformers 5.24).
BACKBONE_FLOPS: dict[str, tuple[int, int]] = {
    "facebook/sam-vit-base": (972_077_334_528, 3_622_780_586),
    "facebook/sam2.1-hiera-tiny": (292_678_007_808, 3_655_877_290),
    "facebook/sam2.1-hiera-small": (360_414_723_072, 3_655_877_290),
    "openai/clip-vit-base-patch16": (35_126_120_448, 0),
    "openai/clip-vit-large-patch14": (162_023_964_672, 0),
    "openai/clip-vit-large-patch14-336": (381_918_216_192, 0),
    "google/siglip2-large-patch16-256": (162_559_688_704, 0),
}


def backbone_config(model_id: str):
    """The transformers config of a backbone in :data:`BACKBONE_FLOPS`, built offline from its released sizes
    (the hub configs' architecture fields)."""
    from transformers import (
        CLIPVisionConfig,
        Sam2Config,
        Sam2HieraDetConfig,
        Sam2VisionConfig,
        SamConfig,
        SiglipVisionConfig,
    )

    from regionspot.backbones.convert.sam2 import HIERA_SIZES

    if model_id == "facebook/sam-vit-base":
        return SamConfig()
    if model_id.startswith("facebook/sam2.1-hiera-"):
        name = "hiera_" + model_id.rsplit("-", 1)[1]
        (width, blocks), settings = next((k, v) for k, v in HIERA_SIZES.items() if v["name"] == name)
        dims = [width * 2**i for i in range(4)]
        hiera = Sam2HieraDetConfig(hidden_size=width, embed_dim_per_stage=dims, blocks_per_stage=list(blocks),
                                   **{k: v for k, v in settings.items() if k != "name"})
        return Sam2Config(vision_config=Sam2VisionConfig(backbone_config=hiera, backbone_channel_list=dims[::-1]))
    if model_id == "openai/clip-vit-base-patch16":
        return CLIPVisionConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                                patch_size=16, image_size=224)
    if model_id.startswith("openai/clip-vit-large-patch14"):
        return CLIPVisionConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                                patch_size=14, image_size=336 if model_id.endswith("-336") else 224)
    if model_id == "google/siglip2-large-patch16-256":
        return SiglipVisionConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                                  patch_size=16, image_size=256)
    raise ValueError(f"No offline config for {model_id!r}.")


def backbone_flops(model_id: str) -> tuple[int, int]:
    """Count a backbone's FLOPs (the :data:`BACKBONE_FLOPS` entry) from :func:`backbone_config`."""
    config = backbone_config(model_id)
    if config.model_type.endswith("_vision_model"):
        return vision_tower_flops(config), 0
    return segmenter_flops(config)


def _register_cpu_sdpa() -> None:
    """Teach the FLOP counter the CPU SDPA kernels (it knows the CUDA ones), once per process."""
    from torch.utils.flop_counter import flop_registry, register_flop_formula, sdpa_flop_count

    aten = torch.ops.aten
    targets = [aten._scaled_dot_product_flash_attention_for_cpu]
    fused = getattr(aten, "_scaled_dot_product_fused_attention_overrideable", None)
    if fused is not None:
        targets.append(fused)
    targets = [t for t in targets if t not in flop_registry]
    if targets:
        register_flop_formula(targets)(lambda q, k, v, *args, out_shape=None, **kwargs: sdpa_flop_count(q, k, v))


def count_flops(fn) -> int:
    """Total FLOPs (multiply-add = 2) that ``fn()`` runs, counted by ``FlopCounterMode``."""
    from torch.utils.flop_counter import FlopCounterMode

    _register_cpu_sdpa()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return int(counter.get_total_flops())


def segmenter_flops(config, boxes: int = 12) -> tuple[int, int]:
    """(image-encoder FLOPs per image, decoder FLOPs per box) of a SAM / SAM 2-family model built from ``config``
    (a transformers ``SamConfig`` / ``Sam2Config`` / ``Sam3TrackerConfig``) on the meta device."""
    import transformers

    name = {"sam": "SamModel", "sam_hq": "SamHQModel", "sam2": "Sam2Model", "edgetam": "EdgeTamModel",
            "sam3_tracker": "Sam3TrackerModel"}[config.model_type]
    with torch.device("meta"):
        model = getattr(transformers, name)(config).eval().requires_grad_(False)
        side = int(config.prompt_encoder_config.image_size)
        pixels = torch.empty(1, 3, side, side)
        embeddings = model.get_image_embeddings(pixels)
        prompts = torch.empty(1, boxes, 4)
    encoder = count_flops(lambda: model.get_image_embeddings(pixels))
    decoder = count_flops(lambda: model(image_embeddings=embeddings, input_boxes=prompts, multimask_output=False))
    return encoder, decoder // boxes


def vision_tower_flops(config) -> int:
    """FLOPs per image of a vision-language model's vision tower (a CLIP / SigLIP vision config) at its
    ``image_size``, on the meta device."""
    import transformers

    name = {"clip_vision_model": "CLIPVisionModel", "siglip_vision_model": "SiglipVisionModel"}[config.model_type]
    with torch.device("meta"):
        model = getattr(transformers, name)(config).eval().requires_grad_(False)
        pixels = torch.empty(1, 3, config.image_size, config.image_size)
    return count_flops(lambda: model(pixel_values=pixels))
