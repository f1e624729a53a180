"""Convert an official segment-anything checkpoint (``sam_vit_b_01ec64.pth`` ...) to a transformers folder.

The official file is a plain state dict (``image_encoder.*``, ``prompt_encoder.*``, ``mask_decoder.*``);
transformers ships no offline converter, so the key mapping lives here. Both directions share one
table (:data:`_KEY_TABLE`), plus one rule for the MLP heads, whose layer list ``layers.{0..n-1}`` becomes
``proj_in`` / ``layers.{0..n-3}`` / ``proj_out``. Loading is strict: every source key must be used, every
target parameter filled, every shape equal, else :class:`CheckpointError` names the key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from transformers import SamConfig, SamMaskDecoderConfig, SamModel, SamPromptEncoderConfig, SamVisionConfig

from regionspot.backbones.constants import IMAGENET_MEAN, IMAGENET_STD
from regionspot.backbones.convert.torch_io import read_weights_only_state_dict
from regionspot.backbones.segmenter import ORIGINAL_DECODER_EPS
from regionspot.errors import CheckpointError
from regionspot.utils.progress import progress_bar

__all__ = [
    "SAM_VARIANTS",
    "convert_sam_checkpoint",
    "official_to_hf_state_dict",
    "sam_config_for",
    "sam_state_dict_to_official",
    "save_sam_processor_config",
]

# (hidden, depth, heads, global attention block indexes) of the released image encoders
SAM_VARIANTS: dict[str, tuple[int, int, int, tuple[int, ...]]] = {
    "vit_b": (768, 12, 12, (2, 5, 8, 11)),
    "vit_l": (1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": (1280, 32, 16, (7, 15, 23, 31)),
}
_OFFICIAL_PIXEL_MEAN = (123.675, 116.28, 103.53)
_OFFICIAL_PIXEL_STD = (58.395, 57.12, 57.375)

_PLACEHOLDERS = {
    "i": r"\d+",
    "p": r"weight|bias",
    "n": r"[1-4]",
    "l": r"lin[12]",
    "a": r"self_attn|cross_attn_token_to_image|cross_attn_image_to_token",
    "q": r"q_proj|k_proj|v_proj|out_proj",
}

# (official key template, transformers key template); {x} placeholders are carried across unchanged.
_KEY_TABLE: list[tuple[str, str]] = [
    # image encoder
    ("image_encoder.patch_embed.proj.{p}", "vision_encoder.patch_embed.projection.{p}"),
    ("image_encoder.pos_embed", "vision_encoder.pos_embed"),
    ("image_encoder.blocks.{i}.norm1.{p}", "vision_encoder.layers.{i}.layer_norm1.{p}"),
    ("image_encoder.blocks.{i}.norm2.{p}", "vision_encoder.layers.{i}.layer_norm2.{p}"),
    ("image_encoder.blocks.{i}.attn.qkv.{p}", "vision_encoder.layers.{i}.attn.qkv.{p}"),
    ("image_encoder.blocks.{i}.attn.proj.{p}", "vision_encoder.layers.{i}.attn.proj.{p}"),
    ("image_encoder.blocks.{i}.attn.rel_pos_h", "vision_encoder.layers.{i}.attn.rel_pos_h"),
    ("image_encoder.blocks.{i}.attn.rel_pos_w", "vision_encoder.layers.{i}.attn.rel_pos_w"),
    ("image_encoder.blocks.{i}.mlp.{l}.{p}", "vision_encoder.layers.{i}.mlp.{l}.{p}"),
    ("image_encoder.neck.0.weight", "vision_encoder.neck.conv1.weight"),
    ("image_encoder.neck.1.{p}", "vision_encoder.neck.layer_norm1.{p}"),
    ("image_encoder.neck.2.weight", "vision_encoder.neck.conv2.weight"),
    ("image_encoder.neck.3.{p}", "vision_encoder.neck.layer_norm2.{p}"),
    # prompt encoder
    ("prompt_encoder.pe_layer.positional_encoding_gaussian_matrix", "shared_image_embedding.positional_embedding"),
    ("prompt_encoder.point_embeddings.{i}.weight", "prompt_encoder.point_embed.{i}.weight"),
    ("prompt_encoder.not_a_point_embed.weight", "prompt_encoder.not_a_point_embed.weight"),
    ("prompt_encoder.no_mask_embed.weight", "prompt_encoder.no_mask_embed.weight"),
    ("prompt_encoder.mask_downscaling.0.{p}", "prompt_encoder.mask_embed.conv1.{p}"),
    ("prompt_encoder.mask_downscaling.1.{p}", "prompt_encoder.mask_embed.layer_norm1.{p}"),
    ("prompt_encoder.mask_downscaling.3.{p}", "prompt_encoder.mask_embed.conv2.{p}"),
    ("prompt_encoder.mask_downscaling.4.{p}", "prompt_encoder.mask_embed.layer_norm2.{p}"),
    ("prompt_encoder.mask_downscaling.6.{p}", "prompt_encoder.mask_embed.conv3.{p}"),
    # mask decoder
    ("mask_decoder.iou_token.weight", "mask_decoder.iou_token.weight"),
    ("mask_decoder.mask_tokens.weight", "mask_decoder.mask_tokens.weight"),
    ("mask_decoder.transformer.layers.{i}.{a}.{q}.{p}", "mask_decoder.transformer.layers.{i}.{a}.{q}.{p}"),
    ("mask_decoder.transformer.layers.{i}.norm{n}.{p}", "mask_decoder.transformer.layers.{i}.layer_norm{n}.{p}"),
    ("mask_decoder.transformer.layers.{i}.mlp.{l}.{p}", "mask_decoder.transformer.layers.{i}.mlp.{l}.{p}"),
    (
        "mask_decoder.transformer.final_attn_token_to_image.{q}.{p}",
        "mask_decoder.transformer.final_attn_token_to_image.{q}.{p}",
    ),
    ("mask_decoder.transformer.norm_final_attn.{p}", "mask_decoder.transformer.layer_norm_final_attn.{p}"),
    ("mask_decoder.output_upscaling.0.{p}", "mask_decoder.upscale_conv1.{p}"),
    ("mask_decoder.output_upscaling.1.{p}", "mask_decoder.upscale_layer_norm.{p}"),
    ("mask_decoder.output_upscaling.3.{p}", "mask_decoder.upscale_conv2.{p}"),
]
# transformers keeps a tied copy of the gaussian matrix inside its prompt encoder
_TIED_COPY = "prompt_encoder.shared_embedding.positional_embedding"
_TIED_SOURCE = "shared_image_embedding.positional_embedding"
_OPTIONAL_OFFICIAL = ("pixel_mean", "pixel_std")  # non-persistent in the official code; some forks save them

_MLP_OFFICIAL = re.compile(r"^mask_decoder\.(iou_prediction_head|output_hypernetworks_mlps\.\d+)\.layers\.(\d+)\.(weight|bias)$")
_MLP_HF = re.compile(
    r"^mask_decoder\.(iou_prediction_head|output_hypernetworks_mlps\.\d+)\.(proj_in|proj_out|layers\.(\d+))\.(weight|bias)$"
)


def _compile(template: str) -> tuple[re.Pattern, str]:
    pattern = re.escape(template)
    for name, regex in _PLACEHOLDERS.items():
        pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>{regex})")
    return re.compile("^" + pattern + "$"), template


_FORWARD = [(_compile(src)[0], dst) for src, dst in _KEY_TABLE]
_BACKWARD = [(_compile(dst)[0], src) for src, dst in _KEY_TABLE]


def _rename(key: str, rules: list[tuple[re.Pattern, str]]) -> str | None:
    for pattern, template in rules:
        match = pattern.match(key)
        if match:
            return template.format(**match.groupdict())
    return None


def _mlp_depths(keys, pattern: re.Pattern, index_of) -> dict[str, int]:
    """Number of Linear layers of each MLP head (prefix -> depth) found among ``keys``."""
    layers: dict[str, set] = {}
    for key in keys:
        match = pattern.match(key)
        if match:
            layers.setdefault(match.group(1), set()).add(index_of(match))
    return {prefix: len(found) for prefix, found in layers.items()}


def official_to_hf_state_dict(
    state_dict: Mapping[str, torch.Tensor], sources: dict[str, str] | None = None
) -> dict[str, torch.Tensor]:
    """Rename an official SAM state dict to transformers ``SamModel`` keys (tensors are shared, not copied).

    Raises CheckpointError naming the first key that no rule knows. ``pixel_mean``/``pixel_std`` are
    dropped (they go to the processor config instead). ``sources``, when given, receives
    transformers key -> official key.
    """
    depths = _mlp_depths(state_dict, _MLP_OFFICIAL, lambda m: int(m.group(2)))
    converted: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        if key in _OPTIONAL_OFFICIAL:
            continue
        mlp = _MLP_OFFICIAL.match(key)
        if mlp:
            prefix, index, kind = mlp.group(1), int(mlp.group(2)), mlp.group(3)
            last = depths[prefix] - 1
            name = "proj_in" if index == 0 else "proj_out" if index == last else f"layers.{index - 1}"
            target = f"mask_decoder.{prefix}.{name}.{kind}"
        else:
            target = _rename(key, _FORWARD)
        if target is None:
            raise CheckpointError(
                f"Unexpected key {key!r} in the SAM checkpoint; is this an official segment-anything (SAM 1) .pth?"
            )
        converted[target] = tensor
        if sources is not None:
            sources[target] = key
        if target == _TIED_SOURCE:
            converted[_TIED_COPY] = tensor
            if sources is not None:
                sources[_TIED_COPY] = key
    return converted


def _official_names(hf_keys) -> dict[str, str | None]:
    """transformers key -> official key (None when there is none) for a complete set of keys."""
    keys = list(hf_keys)

    def hidden_index(match: re.Match) -> int:
        return -1 if match.group(3) is None else int(match.group(3))

    # entries per head: -1 (proj_in/proj_out) plus one per hidden layer -> depth = entries - 1 + 2
    entries = _mlp_depths(keys, _MLP_HF, hidden_index)
    names: dict[str, str | None] = {}
    for key in keys:
        source = _TIED_SOURCE if key == _TIED_COPY else key
        mlp = _MLP_HF.match(source)
        if mlp:
            prefix, name, kind = mlp.group(1), mlp.group(2), mlp.group(4)
            depth = entries[prefix] + 1
            index = 0 if name == "proj_in" else depth - 1 if name == "proj_out" else int(mlp.group(3)) + 1
            names[key] = f"mask_decoder.{prefix}.layers.{index}.{kind}"
        else:
            names[key] = _rename(source, _BACKWARD)
    return names


def sam_state_dict_to_official(hf_state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`official_to_hf_state_dict`: transformers ``SamModel`` keys -> official keys.

    The tied copy of the positional-encoding matrix inside transformers' prompt encoder is dropped.
    Raises CheckpointError for a key with no official counterpart.
    """
    names = _official_names(hf_state_dict)
    official: dict[str, torch.Tensor] = {}
    for key, tensor in hf_state_dict.items():
        if key == _TIED_COPY:
            continue
        if names[key] is None:
            raise CheckpointError(f"Key {key!r} has no official segment-anything counterpart.")
        official[names[key]] = tensor
    return official


def sam_config_for(model_type: str, state_dict: Mapping[str, torch.Tensor] | None = None) -> SamConfig:
    """The ``SamConfig`` of a released SAM image encoder ("vit_b", "vit_l", "vit_h", or "auto").

    "auto" reads the encoder width from ``state_dict["image_encoder.patch_embed.proj.weight"]``.
    """
    if model_type == "auto":
        if state_dict is None or "image_encoder.patch_embed.proj.weight" not in state_dict:
            raise CheckpointError(
                "Cannot infer the SAM variant: image_encoder.patch_embed.proj.weight is missing; pass model_type."
            )
        width = int(state_dict["image_encoder.patch_embed.proj.weight"].shape[0])
        found = [name for name, spec in SAM_VARIANTS.items() if spec[0] == width]
        if not found:
            raise CheckpointError(f"No released SAM has an encoder width of {width}; pass model_type or a config.")
        model_type = found[0]
    if model_type not in SAM_VARIANTS:
        raise CheckpointError(f"Unknown SAM model_type {model_type!r}; use one of {sorted(SAM_VARIANTS)} or 'auto'.")
    hidden, depth, heads, global_indexes = SAM_VARIANTS[model_type]
    vision = SamVisionConfig(
        hidden_size=hidden,
        num_hidden_layers=depth,
        num_attention_heads=heads,
        global_attn_indexes=list(global_indexes),
        mlp_dim=4 * hidden,
    )
    # The original two-way transformer's LayerNorms use nn.LayerNorm's default eps (transformers says 1e-6).
    decoder = SamMaskDecoderConfig(layer_norm_eps=ORIGINAL_DECODER_EPS)
    return SamConfig(vision_config=vision, prompt_encoder_config=SamPromptEncoderConfig(), mask_decoder_config=decoder)


def save_sam_processor_config(
    folder: str | Path,
    image_size: int = 1024,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> None:
    """Write transformers' SAM image-processor config (preprocessor_config.json) into ``folder``.

    image_size: longest side after resize and side of the padded square; mean/std on the 0..1 scale.
    """
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    mask_side = image_size // 4
    processor = SamImageProcessorPil(
        size={"longest_edge": image_size},
        pad_size={"height": image_size, "width": image_size},
        mask_size={"longest_edge": mask_side},
        mask_pad_size={"height": mask_side, "width": mask_side},
        image_mean=list(mean),
        image_std=list(std),
    )
    processor.save_pretrained(str(folder))


def _read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"SAM checkpoint {path} not found; pass the path of e.g. sam_vit_b_01ec64.pth.")
    return read_weights_only_state_dict(path, "an official SAM .pth (e.g. sam_vit_b_01ec64.pth)", wrapper_keys=("model",))


def _pixel_stats(state_dict: Mapping[str, torch.Tensor], key: str, default: tuple[float, ...]) -> tuple[float, ...]:
    if key not in state_dict:
        return tuple(v / 255.0 for v in default)
    values = state_dict[key].flatten().tolist()
    if len(values) != 3:
        raise CheckpointError(f"{key} must hold 3 values (RGB), got {len(values)}.")
    return tuple(v / 255.0 for v in values)


def convert_sam_checkpoint(
    pth_path: str | Path,
    out_dir: str | Path,
    model_type: str = "auto",
    config: SamConfig | None = None,
) -> Path:
    """Convert an official segment-anything ``.pth`` to a transformers SamModel folder.

    pth_path: e.g. sam_vit_b_01ec64.pth (plain state dict), read with ``weights_only=True``.
    out_dir: folder to write (model.safetensors, config.json, preprocessor_config.json).
    model_type: "vit_b", "vit_l", "vit_h" or "auto" (from the encoder width); ignored when ``config``
        is given (used for non-standard sizes, e.g. the tiny test model).
    The written config runs the mask decoder's two-way transformer with the original eps 1e-5.
    Returns out_dir. Raises CheckpointError naming a missing, unexpected or mis-shaped key.
    """
    pth_path, out_dir = Path(pth_path), Path(out_dir)
    official = _read_checkpoint(pth_path)
    variant = "given-config" if config is not None else model_type
    if config is not None:
        config = SamConfig.from_dict(config.to_dict())  # a copy: the eps below must not leak to the caller
        config.mask_decoder_config.layer_norm_eps = ORIGINAL_DECODER_EPS
    else:
        config = sam_config_for(model_type, official)
    sources: dict[str, str] = {}
    converted = official_to_hf_state_dict(official, sources)

    with torch.device("meta"):
        model = SamModel(config)
    expected = model.state_dict()
    expected_names = _official_names(expected)
    missing = [key for key in expected if key not in converted]
    if missing:
        raise CheckpointError(
            f"Missing key {expected_names[missing[0]] or missing[0]!r} in {pth_path.name} ({len(missing)} missing); "
            f"is it a complete {variant} SAM checkpoint?"
        )
    unexpected = [key for key in converted if key not in expected]
    if unexpected:
        raise CheckpointError(
            f"Unexpected key {sources[unexpected[0]]!r} in {pth_path.name} for this SAM config "
            f"({len(unexpected)} unexpected); check model_type."
        )
    for key in progress_bar(expected, desc="checking SAM weights", leave=False, disable=len(expected) < 500):
        if tuple(converted[key].shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"Key {sources[key]!r} has shape {tuple(converted[key].shape)} but the "
                f"{variant} SAM expects {tuple(expected[key].shape)}; check model_type."
            )
    model.load_state_dict({k: v.float().contiguous() for k, v in converted.items()}, strict=True, assign=True)
    # assign=True replaced the tied parameters one by one; tie them again
    model.prompt_encoder.shared_embedding.positional_embedding = model.shared_image_embedding.positional_embedding
    model.eval()

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    save_sam_processor_config(
        out_dir,
        image_size=int(config.vision_config.image_size),
        mean=_pixel_stats(official, "pixel_mean", _OFFICIAL_PIXEL_MEAN),
        std=_pixel_stats(official, "pixel_std", _OFFICIAL_PIXEL_STD),
    )
    return out_dir
