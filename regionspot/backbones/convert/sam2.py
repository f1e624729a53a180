"""Convert an official SAM 2 / SAM 2.1 checkpoint (``sam2.1_hiera_tiny.pt`` ...) to a transformers ``Sam2Model`` folder.

The official file is ``torch.save({"model": state_dict})`` in the facebookresearch/sam2 layout: the Hiera trunk
and FPN neck under ``image_encoder.trunk`` / ``image_encoder.neck``, ``sam_prompt_encoder.*``,
``sam_mask_decoder.*``, ``no_mem_embed``, and the video-only modules (``memory_attention``, ``memory_encoder``,
object pointers, ...). It is read with ``torch.load(weights_only=True)`` (no pickled code runs). The image model
keeps the first four; the video-only keys are dropped (:data:`VIDEO_ONLY_PREFIXES`).

Key mapping (:func:`official_to_hf_key`): a table of renames, the one rule for MLPs (``layers.{0..n-1}`` →
``proj_in`` / ``layers.{0..n-3}`` / ``proj_out``), the four point embeddings stacked into one table, and the
prompt encoder's Gaussian matrix copied to the model's ``shared_image_embedding``. The Hiera size comes from the
weights (trunk width and blocks per stage → :data:`HIERA_SIZES`) unless a config is given. Loading is strict:
a missing, unexpected or mis-shaped key is one :class:`CheckpointError` naming it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from regionspot.backbones.constants import IMAGENET_MEAN, IMAGENET_STD
from regionspot.backbones.convert.torch_io import read_weights_only_state_dict
from regionspot.errors import CheckpointError

__all__ = [
    "HIERA_SIZES",
    "VIDEO_ONLY_PREFIXES",
    "convert_sam2_checkpoint",
    "official_to_hf_key",
    "official_to_hf_state_dict",
    "sam2_config_for",
    "save_sam2_processor_config",
]

# Hiera sizes of the released SAM 2 / 2.1 checkpoints: (trunk width, blocks per stage) -> its HieraDet settings.
HIERA_SIZES: dict[tuple[int, tuple[int, ...]], dict] = {
    (96, (1, 2, 7, 2)): {"name": "hiera_tiny", "global_attention_blocks": [5, 7, 9]},
    (96, (1, 2, 11, 2)): {"name": "hiera_small", "global_attention_blocks": [7, 10, 13]},
    (112, (2, 3, 16, 3)): {"name": "hiera_base_plus", "global_attention_blocks": [12, 16, 20],
                           "num_attention_heads_per_stage": [2, 4, 8, 16], "window_positional_embedding_background_size": [14, 14]},
    (144, (2, 6, 36, 4)): {"name": "hiera_large", "global_attention_blocks": [23, 33, 43],
                           "num_attention_heads_per_stage": [2, 4, 8, 16], "window_size_per_stage": [8, 4, 16, 8]},
}
VIDEO_ONLY_PREFIXES = ("memory_attention.", "memory_encoder.", "maskmem_tpos_enc", "no_mem_pos_enc", "no_obj_ptr",
                       "obj_ptr_proj.", "obj_ptr_tpos_proj.", "mask_downsample.", "no_obj_embed_spatial")
_WHAT = "an official SAM 2 / 2.1 checkpoint (e.g. sam2.1_hiera_tiny.pt)"

# (official prefix or infix, transformers replacement), applied in order to the whole key.
_RENAMES: list[tuple[str, str]] = [
    ("image_encoder.trunk.", "vision_encoder.backbone."),
    ("image_encoder.neck.", "vision_encoder.neck."),
    ("sam_prompt_encoder.", "prompt_encoder."),
    ("sam_mask_decoder.", "mask_decoder."),
    ("patch_embed.proj.", "patch_embed.projection."),
    ("pe_layer.positional_encoding_gaussian_matrix", "shared_embedding.positional_embedding"),
    ("mask_downscaling.0.", "mask_embed.conv1."),
    ("mask_downscaling.1.", "mask_embed.layer_norm1."),
    ("mask_downscaling.3.", "mask_embed.conv2."),
    ("mask_downscaling.4.", "mask_embed.layer_norm2."),
    ("mask_downscaling.6.", "mask_embed.conv3."),
    ("output_upscaling.0.", "upscale_conv1."),
    ("output_upscaling.1.", "upscale_layer_norm."),
    ("output_upscaling.3.", "upscale_conv2."),
    ("norm_final_attn.", "layer_norm_final_attn."),
    (".out_proj.", ".o_proj."),
    ("no_mem_embed", "no_memory_embedding"),
]
_BLOCK_NORM = re.compile(r"\.norm([1-4])\.")  # Hiera blocks and two-way transformer layers
_NECK_CONV = re.compile(r"^vision_encoder\.neck\.convs\.(\d+)\.conv\.")
_MLP = re.compile(r"^(?P<head>.+?(?:mlp|iou_prediction_head|pred_obj_score_head|output_hypernetworks_mlps\.\d+))"
                  r"\.layers\.(?P<i>\d+)\.(?P<p>weight|bias)$")
_POINT = re.compile(r"^sam_prompt_encoder\.point_embeddings\.(\d+)\.weight$")
_GAUSSIAN = "prompt_encoder.shared_embedding.positional_embedding"


def official_to_hf_key(key: str, mlp_depths: Mapping[str, int]) -> str:
    """The transformers ``Sam2Model`` key of an official image-model key. mlp_depths: official MLP prefix ->
    its number of Linear layers (from :func:`_mlp_depths`)."""
    mlp = _MLP.match(key)
    if mlp:
        index, last = int(mlp["i"]), mlp_depths[mlp["head"]] - 1
        name = "proj_in" if index == 0 else "proj_out" if index == last else f"layers.{index - 1}"
        key = f"{mlp['head']}.{name}.{mlp['p']}"
    for old, new in _RENAMES:
        key = key.replace(old, new)
    key = _BLOCK_NORM.sub(r".layer_norm\1.", key)
    return _NECK_CONV.sub(r"vision_encoder.neck.convs.\1.", key)


def _mlp_depths(keys) -> dict[str, int]:
    depths: dict[str, int] = {}
    for key in keys:
        match = _MLP.match(key)
        if match:
            depths[match["head"]] = max(depths.get(match["head"], 0), int(match["i"]) + 1)
    return depths


def official_to_hf_state_dict(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Rename an official SAM 2 state dict to ``Sam2Model`` keys (video-only keys dropped).

    Returns (converted state dict, transformers key -> official key, for messages).
    """
    depths = _mlp_depths(state_dict)
    converted: dict[str, torch.Tensor] = {}
    sources: dict[str, str] = {}
    points: dict[int, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        if key.startswith(VIDEO_ONLY_PREFIXES):
            continue
        point = _POINT.match(key)
        if point:
            points[int(point.group(1))] = tensor
            continue
        target = official_to_hf_key(key, depths)
        converted[target], sources[target] = tensor, key
    if points:
        converted["prompt_encoder.point_embed.weight"] = torch.cat([points[i] for i in sorted(points)])
        sources["prompt_encoder.point_embed.weight"] = "sam_prompt_encoder.point_embeddings.*.weight"
    if _GAUSSIAN in converted:  # the image-wide positional encoding uses the prompt encoder's matrix
        converted["shared_image_embedding.positional_embedding"] = converted[_GAUSSIAN]
        sources["shared_image_embedding.positional_embedding"] = sources[_GAUSSIAN]
    return converted, sources


def sam2_config_for(state_dict: Mapping[str, torch.Tensor], path: str | Path = "checkpoint"):
    """The ``Sam2Config`` of a released Hiera size, read from the trunk's width and blocks per stage."""
    from transformers import Sam2Config, Sam2HieraDetConfig, Sam2VisionConfig

    patch = state_dict.get("image_encoder.trunk.patch_embed.proj.weight")
    if patch is None:
        raise CheckpointError(f"{path} has no image_encoder.trunk.patch_embed.proj.weight; is it {_WHAT}?")
    blocks = sorted({int(m.group(1)) for k in state_dict if (m := re.match(r"image_encoder\.trunk\.blocks\.(\d+)\.", k))})
    starts = [i for i in blocks if f"image_encoder.trunk.blocks.{i}.proj.weight" in state_dict]  # stage changes
    edges = [0, *starts, len(blocks)]
    per_stage = tuple(b - a for a, b in zip(edges, edges[1:]))
    width = int(patch.shape[0])
    size = HIERA_SIZES.get((width, per_stage))
    if size is None:
        raise CheckpointError(
            f"{path} has a Hiera trunk of width {width} with {list(per_stage)} blocks per stage, not a released "
            "SAM 2 size (tiny, small, base_plus, large); pass its transformers config as `config`."
        )
    settings = {k: v for k, v in size.items() if k != "name"}
    dims = [width * 2**i for i in range(4)]
    hiera = Sam2HieraDetConfig(hidden_size=width, embed_dim_per_stage=dims, blocks_per_stage=list(per_stage), **settings)
    return Sam2Config(vision_config=Sam2VisionConfig(backbone_config=hiera, backbone_channel_list=dims[::-1]))


def save_sam2_processor_config(folder: str | Path, image_size: int = 1024, mean: tuple = IMAGENET_MEAN,
                               std: tuple = IMAGENET_STD) -> Path:
    """Write a SAM 2 image-processor ``preprocessor_config.json`` (the whole image resized to image_size²,
    bilinear, rescale 1/255, mean/std on the 0..1 scale) into ``folder``; returns its path."""
    processor = {
        "image_processor_type": "Sam2ImageProcessorFast", "processor_class": "Sam2Processor",
        "do_resize": True, "size": {"height": image_size, "width": image_size}, "resample": 2,
        "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
        "image_mean": list(mean), "image_std": list(std), "do_convert_rgb": True,
        "mask_size": {"height": image_size // 4, "width": image_size // 4},
    }
    path = Path(folder) / "preprocessor_config.json"
    path.write_text(json.dumps(processor, indent=2))
    return path


def convert_sam2_checkpoint(pt_path: str | Path, out_dir: str | Path, config=None) -> Path:
    """Convert an official SAM 2 / 2.1 ``.pt`` to a transformers ``Sam2Model`` folder usable with ``--sam``.

    pt_path: e.g. sam2.1_hiera_tiny.pt, read with ``weights_only=True``. out_dir: folder to write
    (model.safetensors, config.json, preprocessor_config.json). config: a ``Sam2Config`` (or a config.json
    path) for a size that is not a released one; None reads the released size from the weights.
    Returns out_dir. Raises CheckpointError for an unreadable file or a missing, unexpected or mis-shaped key.
    """
    from transformers import Sam2Config, Sam2Model

    pt_path, out_dir = Path(pt_path), Path(out_dir)
    if not pt_path.is_file():
        raise CheckpointError(f"SAM 2 checkpoint {pt_path} not found; pass the path of e.g. sam2.1_hiera_tiny.pt.")
    official = read_weights_only_state_dict(pt_path, _WHAT, wrapper_keys=("model",))
    if isinstance(config, (str, Path)):
        try:
            config = Sam2Config.from_pretrained(str(config))
        except (OSError, ValueError) as error:
            raise CheckpointError(f"Cannot read the SAM 2 config {config} ({str(error).splitlines()[0][:160]}); pass a "
                                  "transformers config.json or its folder as `config`.") from None
    config = config if config is not None else sam2_config_for(official, pt_path.name)
    converted, sources = official_to_hf_state_dict(official)
    with torch.device("meta"):
        model = Sam2Model(config)
    expected = model.state_dict()
    missing = [key for key in expected if key not in converted]
    if missing:
        raise CheckpointError(f"{pt_path.name} lacks the weights of {missing[0]!r} ({len(missing)} missing); is it {_WHAT}?")
    unexpected = [key for key in converted if key not in expected]
    if unexpected:
        raise CheckpointError(f"Unexpected key {sources[unexpected[0]]!r} in {pt_path.name} ({len(unexpected)} unexpected); "
                              f"is it {_WHAT}?")
    for key, tensor in expected.items():
        if tuple(converted[key].shape) != tuple(tensor.shape):
            raise CheckpointError(f"Key {sources[key]!r} of {pt_path.name} has shape {tuple(converted[key].shape)}, the "
                                  f"model expects {tuple(tensor.shape)}; is the config the checkpoint's size?")
    model.load_state_dict({k: v.float().contiguous().clone() for k, v in converted.items()}, strict=True, assign=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval().save_pretrained(str(out_dir))
    save_sam2_processor_config(out_dir, image_size=int(config.prompt_encoder_config.image_size))
    return out_dir
