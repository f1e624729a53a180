"""The tiny SAM and CLIP of ShapesWorld: architectures, SAM-style init, an offline tokenizer, fp16 folders.

Both the pre-trained models of the build (``pretrain_sam`` / ``pretrain_clip``) and the random models of
the tests (``regionspot.testing``) are built here, so they share one config builder per family, one
initialisation and one way of saving a folder that the loaders read offline.

The SAM configs keep every SAM structure (windowed + global ViT blocks with relative positions, the
prompt encoder, a 2-layer two-way transformer, 4 mask tokens) at toy width. ``SamModel`` and its image
processor accept an ``image_size`` other than 1024 as long as the prompt encoder's ``image_size`` /
``image_embedding_size`` agree with the vision config.

Initialisation of SAM is SAM-style (PyTorch module defaults, as the official code builds its modules), not
transformers' ``_init_weights``: the latter draws the prompt positional-encoding matrix with std
``hidden_size / 2`` (384 at full size), which makes the sin/cos box encodings pure noise and hides
precision bugs. Parameters that the official code zero-initialises (absolute and relative positional
embeddings) get small random values here, so that a wrong key mapping changes the outputs.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from torch import nn
from transformers import (
    CLIPConfig,
    CLIPModel,
    CLIPTokenizer,
    SamConfig,
    SamMaskDecoderConfig,
    SamModel,
    SamPromptEncoderConfig,
    SamVisionConfig,
)

from regionspot.backbones.clip_inputs import save_clip_preprocessor_config
from regionspot.backbones.convert.sam import save_sam_processor_config
from regionspot.text.templates import CLIP_IMAGENET_TEMPLATES
from regionspot.text.tokenizer import EOS, train_bpe

TINY_WORDS: tuple[str, ...] = (
    # colours and shapes (ShapesWorld-style tests)
    "red green blue yellow black white orange purple pink brown gray grey cyan magenta",
    "circle square triangle star rectangle ellipse hexagon cross ring diamond shape",
    # a few everyday objects
    "cat dog person car bus bicycle tree house chair table cup bottle background object thing",
    # prompt words
    "a an the photo of in scene this is there one picture image",
) + CLIP_IMAGENET_TEMPLATES


# ------------------------------------------------------------------------------------------------
# CLIP


def tiny_clip_tokenizer() -> CLIPTokenizer:
    """A CLIPTokenizer over a small offline BPE trained on ``TINY_WORDS`` (special tokens: the last two ids).

    Words outside the list fall back to single characters, so any text tokenizes.
    """
    # Repeat the list so every word is frequent enough to be merged into one token.
    vocab, merges = train_bpe([" ".join(TINY_WORDS)] * 5, vocab_size=2000, min_frequency=1)
    return CLIPTokenizer(vocab=vocab, merges=merges, pad_token=EOS, unk_token=EOS)


def clip_config(
    vocab_size: int,
    *,
    image_size: int,
    patch_size: int,
    vision_width: int,
    vision_layers: int,
    vision_heads: int,
    text_width: int,
    text_layers: int,
    text_heads: int,
    context_length: int,
    projection_dim: int,
    mlp_ratio: int = 4,
) -> CLIPConfig:
    """A CLIPConfig with quick-GELU towers; the tokenizer's two special tokens are the last two ids.

    image_size / patch_size: native vision input side and patch side in pixels. *_width / *_layers /
    *_heads: the two transformer towers (MLP width ``mlp_ratio × width``). context_length: text positions.
    """
    text = dict(
        vocab_size=vocab_size,
        hidden_size=text_width,
        intermediate_size=text_width * mlp_ratio,
        num_hidden_layers=text_layers,
        num_attention_heads=text_heads,
        max_position_embeddings=context_length,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        hidden_act="quick_gelu",
    )
    vision = dict(
        hidden_size=vision_width,
        intermediate_size=vision_width * mlp_ratio,
        num_hidden_layers=vision_layers,
        num_attention_heads=vision_heads,
        image_size=image_size,
        patch_size=patch_size,
        hidden_act="quick_gelu",
    )
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)


def build_clip(config: CLIPConfig, seed: int = 0) -> CLIPModel:
    """A ``CLIPModel`` with transformers' init drawn under ``seed``; the global torch RNG is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CLIPModel(config)


# ------------------------------------------------------------------------------------------------
# SAM


def sam_config(
    *,
    image_size: int,
    patch_size: int,
    vision_width: int,
    vision_layers: int,
    vision_heads: int,
    vision_mlp: int,
    width: int,
    decoder_mlp: int,
    decoder_heads: int,
    mask_input_channels: int,
) -> SamConfig:
    """A ``SamConfig`` with every SAM structure at the given sizes.

    image_size: input side in pixels (a multiple of ``patch_size``); the image embedding is
    (image_size / patch_size)² and the low-res masks (image_size / 4)². vision_*: the ViT encoder (the last
    of every two blocks is global, the others windowed). width: the neck output, prompt-encoder and
    mask-decoder width (= the token width RegionSpot reads). decoder_*: the two-way transformer.
    """
    grid = image_size // patch_size
    frame = {"image_size": image_size, "patch_size": patch_size}  # the encoder and the prompts must agree
    vision = SamVisionConfig(
        hidden_size=vision_width,
        output_channels=width,
        num_hidden_layers=vision_layers,
        num_attention_heads=vision_heads,
        mlp_dim=vision_mlp,
        window_size=max(grid // 2, 1),
        global_attn_indexes=list(range(vision_layers - 1, 0, -2))[::-1] or [0],
        num_pos_feats=width // 2,
        **frame,
    )
    prompt = SamPromptEncoderConfig(hidden_size=width, image_embedding_size=grid,
                                    mask_input_channels=mask_input_channels, **frame)
    decoder = SamMaskDecoderConfig(
        hidden_size=width,
        mlp_dim=decoder_mlp,
        num_attention_heads=decoder_heads,
        num_hidden_layers=2,
        iou_head_hidden_dim=width,
    )
    return SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)


def sam_hq_config(base: SamConfig):
    """The ``SamHQConfig`` with the sizes of ``base`` (the HQ decoder reads the ViT at its width)."""
    from transformers import SamHQConfig, SamHQMaskDecoderConfig, SamHQPromptEncoderConfig, SamHQVisionConfig

    def fields(sub_config) -> dict:
        return {k: v for k, v in sub_config.to_dict().items() if k not in ("model_type", "transformers_version")}

    return SamHQConfig(
        vision_config=SamHQVisionConfig(**fields(base.vision_config)),
        prompt_encoder_config=SamHQPromptEncoderConfig(**fields(base.prompt_encoder_config)),
        mask_decoder_config=SamHQMaskDecoderConfig(**fields(base.mask_decoder_config),
                                                   vit_dim=base.vision_config.hidden_size),
    )


@torch.no_grad()
def sam_style_init_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Re-initialise a SAM-family model in place as the official code would, deterministically.

    Linear/conv/embedding/layer-norm layers get their PyTorch defaults; the prompt positional-encoding
    matrix gets N(0, 1) (official scale 1.0); positional embeddings get N(0, 0.02). The global torch RNG
    is left untouched.
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


def build_sam(config: SamConfig, seed: int = 0) -> SamModel:
    """A ``SamModel`` of ``config`` with SAM-style random weights drawn under ``seed``."""
    return sam_style_init_(SamModel(config), seed=seed)


# ------------------------------------------------------------------------------------------------
# Folders


def save_model_folder(model: nn.Module, folder: str | Path, half: bool = True) -> Path:
    """``model.save_pretrained(folder)`` as safetensors, optionally as fp16, with config dtype float32.

    half: store the weights as fp16 (``model`` itself is not changed). The config (and each sub-config)
    says ``dtype: float32`` either way, so loaders upcast to float32.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    to_save = copy.deepcopy(model).to(torch.float16) if half else model
    to_save.save_pretrained(str(folder), safe_serialization=True)
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    config["dtype"] = "float32"
    for sub in config.values():
        if isinstance(sub, dict) and "dtype" in sub:
            sub["dtype"] = "float32"
    config_path.write_text(json.dumps(config, indent=2))
    return folder


def save_sam_folder(model: nn.Module, folder: str | Path, half: bool = True) -> Path:
    """Write a SAM-family ``model`` and its processor config; ``load_segmenter(folder)`` reads it offline."""
    folder = save_model_folder(model, folder, half=half)
    save_sam_processor_config(folder, int(model.config.vision_config.image_size))
    return folder


def save_clip_folder(model: CLIPModel, tokenizer, folder: str | Path, half: bool = True) -> Path:
    """Write ``model`` + ``tokenizer`` + preprocessor config; ``load_vision_language(folder)`` reads it offline."""
    folder = save_model_folder(model, folder, half=half)
    tokenizer.save_pretrained(str(folder))
    save_clip_preprocessor_config(folder, int(model.config.vision_config.image_size))
    return folder


def folder_size_mb(folder: str | Path) -> float:
    """Total size of the files under ``folder`` in MB (10⁶ bytes)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 1e6
