"""Convert an OpenAI CLIP checkpoint (``ViT-L-14.pt``, ``ViT-B-16.pt``, ...) into a transformers folder.

OpenAI's released ``.pt`` files are TorchScript archives; their tensors are read WITHOUT ``torch.jit.load``
and without executing pickled code (``regionspot.backbones.convert.torchscript``) into an OpenAI-layout
state dict. A plain state dict saved with ``torch.save`` is read with ``torch.load(weights_only=True)``.

The architecture (widths, layers, patch size, image size, context length, vocabulary) is inferred from
tensor shapes; attention heads cannot be (OpenAI uses ``width // 64``), so they may be given. The key
mapping to ``CLIPModel`` is strict: any missing or unexpected key raises CheckpointError naming it.

OpenAI's BPE vocabulary cannot be downloaded here: pass ``tokenizer=DIR`` (a folder holding a CLIP
tokenizer) to copy it into the output; without it the model is written and a warning says text needs it.
"""

from __future__ import annotations

import math
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from regionspot.backbones.clip_inputs import save_clip_preprocessor_config
from regionspot.backbones.convert.torch_io import read_weights_only_state_dict
from regionspot.backbones.convert.torchscript import read_torchscript_state_dict, torchscript_prefix
from regionspot.errors import CheckpointError

# Tensors a TorchScript CLIP carries that are not weights (OpenAI's build_model drops the first three;
# attn_mask is the text transformer's causal mask, rebuilt by transformers).
_IGNORED_KEYS = ("input_resolution", "context_length", "vocab_size")
_IGNORED_SUFFIXES = (".attn_mask",)

# Per-block names: OpenAI residual block -> transformers CLIPEncoderLayer (fused qkv handled apart).
_BLOCK_MAP = {
    "attn.out_proj.weight": "self_attn.out_proj.weight",
    "attn.out_proj.bias": "self_attn.out_proj.bias",
    "ln_1.weight": "layer_norm1.weight",
    "ln_1.bias": "layer_norm1.bias",
    "mlp.c_fc.weight": "mlp.fc1.weight",
    "mlp.c_fc.bias": "mlp.fc1.bias",
    "mlp.c_proj.weight": "mlp.fc2.weight",
    "mlp.c_proj.bias": "mlp.fc2.bias",
    "ln_2.weight": "layer_norm2.weight",
    "ln_2.bias": "layer_norm2.bias",
}
_FUSED = ("attn.in_proj_weight", "attn.in_proj_bias")

# Top-level names (no transpose); projections are transposed separately.
_TOP_MAP = {
    "visual.class_embedding": "vision_model.embeddings.class_embedding",
    "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
    "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "visual.ln_pre.weight": "vision_model.pre_layrnorm.weight",
    "visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
    "visual.ln_post.weight": "vision_model.post_layernorm.weight",
    "visual.ln_post.bias": "vision_model.post_layernorm.bias",
    "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
    "positional_embedding": "text_model.embeddings.position_embedding.weight",
    "ln_final.weight": "text_model.final_layer_norm.weight",
    "ln_final.bias": "text_model.final_layer_norm.bias",
    "logit_scale": "logit_scale",
}
_TRANSPOSED = {"visual.proj": "visual_projection.weight", "text_projection": "text_projection.weight"}
_TOWERS = (
    ("visual.transformer.resblocks.", "vision_model.encoder.layers."),
    ("transformer.resblocks.", "text_model.encoder.layers."),
)


# ----------------------------------------------------------------------------------------------------
# Reading checkpoints
# ----------------------------------------------------------------------------------------------------
def load_openai_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """An OpenAI-layout CLIP state dict from a TorchScript archive or a plain ``torch.save`` dict."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"CLIP checkpoint {path} does not exist; pass the path of e.g. ViT-L-14.pt.")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            is_script = torchscript_prefix(archive) is not None
        if is_script:
            return read_torchscript_state_dict(path)
    return read_weights_only_state_dict(path, "an OpenAI CLIP checkpoint (TorchScript .pt or a state dict)", wrapper_keys=("state_dict",))


# ----------------------------------------------------------------------------------------------------
# Architecture and key mapping
# ----------------------------------------------------------------------------------------------------
def _require(state: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in state:
        raise CheckpointError(f"The CLIP checkpoint is missing key {key!r}.")
    return state[key]


def _num_layers(state: Mapping[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    indices = {int(m.group(1)) for key in state if (m := pattern.match(key))}
    if not indices:
        raise CheckpointError(f"The CLIP checkpoint has no transformer blocks under {prefix!r}.")
    return max(indices) + 1


def infer_architecture(
    state: Mapping[str, torch.Tensor], vision_heads: int | None = None, text_heads: int | None = None
) -> dict[str, int]:
    """Widths, depths, patch/image size, context length and vocabulary of an OpenAI ViT CLIP."""
    if any(key.startswith("visual.layer1.") for key in state):
        raise CheckpointError(
            "ResNet CLIP checkpoints are not supported; use a ViT CLIP (ViT-B-16, ViT-L-14)."
        )
    conv = _require(state, "visual.conv1.weight")  # (W, 3, p, p)
    positions = _require(state, "visual.positional_embedding")  # (1 + g*g, W)
    grid = math.isqrt(positions.shape[0] - 1)
    if grid * grid != positions.shape[0] - 1:
        raise CheckpointError(f"visual.positional_embedding has {positions.shape[0]} rows, not 1 + a square.")
    vision_width, patch = conv.shape[0], conv.shape[-1]
    text_width = _require(state, "ln_final.weight").shape[0]
    arch = {
        "vision_width": vision_width,
        "vision_layers": _num_layers(state, "visual.transformer.resblocks."),
        "vision_mlp": _require(state, "visual.transformer.resblocks.0.mlp.c_fc.weight").shape[0],
        "vision_heads": vision_heads or vision_width // 64,
        "patch_size": patch,
        "image_size": grid * patch,
        "embed_dim": _require(state, "text_projection").shape[1],
        "text_width": text_width,
        "text_layers": _num_layers(state, "transformer.resblocks."),
        "text_mlp": _require(state, "transformer.resblocks.0.mlp.c_fc.weight").shape[0],
        "text_heads": text_heads or text_width // 64,
        "context_length": _require(state, "positional_embedding").shape[0],
        "vocab_size": _require(state, "token_embedding.weight").shape[0],
    }
    for tower in ("vision", "text"):
        heads, width = arch[f"{tower}_heads"], arch[f"{tower}_width"]
        if heads < 1 or width % heads:
            raise CheckpointError(
                f"Cannot split {tower} width {width} into {heads} heads; pass {tower}_heads."
            )
    return {k: int(v) for k, v in arch.items()}


def clip_config_from_architecture(
    arch: Mapping[str, int], bos_token_id: int | None = None, eos_token_id: int | None = None
):
    """A transformers CLIPConfig for an inferred architecture (QuickGELU, LayerNorm eps 1e-5).

    Token ids default to OpenAI's layout: the start and end tokens are the last two ids.
    """
    from transformers import CLIPConfig

    vocab = arch["vocab_size"]
    eos = vocab - 1 if eos_token_id is None else eos_token_id
    def tower(prefix: str) -> dict:  # OpenAI CLIP: QuickGELU, LayerNorm eps 1e-5 in both towers
        return dict(hidden_size=arch[f"{prefix}_width"], intermediate_size=arch[f"{prefix}_mlp"],
                    num_hidden_layers=arch[f"{prefix}_layers"], num_attention_heads=arch[f"{prefix}_heads"],
                    hidden_act="quick_gelu", layer_norm_eps=1e-5)

    text = dict(tower("text"), vocab_size=vocab, max_position_embeddings=arch["context_length"],
                bos_token_id=vocab - 2 if bos_token_id is None else bos_token_id, eos_token_id=eos, pad_token_id=eos)
    vision = dict(tower("vision"), image_size=arch["image_size"], patch_size=arch["patch_size"])
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=arch["embed_dim"])


def _expected_openai_keys(arch: Mapping[str, int]) -> list[str]:
    keys = list(_TOP_MAP) + list(_TRANSPOSED)
    for (openai_prefix, _), layers in zip(_TOWERS, (arch["vision_layers"], arch["text_layers"])):
        for i in range(layers):
            keys += [f"{openai_prefix}{i}.{name}" for name in (*_FUSED, *_BLOCK_MAP)]
    return keys


def openai_to_clip_state_dict(
    state: Mapping[str, torch.Tensor], arch: Mapping[str, int], dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """Map an OpenAI-layout state dict to ``CLIPModel`` names, strictly (missing/extra key -> CheckpointError)."""
    expected = _expected_openai_keys(arch)
    present = {k for k in state if k not in _IGNORED_KEYS and not k.endswith(_IGNORED_SUFFIXES)}
    missing = [k for k in expected if k not in present]
    unexpected = sorted(present - set(expected))
    if missing:
        raise CheckpointError(
            f"The CLIP checkpoint is missing key {missing[0]!r}"
            + (f" (and {len(missing) - 1} more)." if len(missing) > 1 else ".")
        )
    if unexpected:
        raise CheckpointError(
            f"The CLIP checkpoint has unexpected key {unexpected[0]!r}"
            + (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else "")
            + "; is it a ViT CLIP in OpenAI's layout?"
        )
    out: dict[str, torch.Tensor] = {}
    for src, dst in _TOP_MAP.items():
        out[dst] = state[src]
    out["logit_scale"] = state["logit_scale"].reshape(())
    for src, dst in _TRANSPOSED.items():
        out[dst] = state[src].t()
    for (openai_prefix, hf_prefix), layers in zip(_TOWERS, (arch["vision_layers"], arch["text_layers"])):
        for i in range(layers):
            src, dst = f"{openai_prefix}{i}.", f"{hf_prefix}{i}."
            for name, target in _BLOCK_MAP.items():
                out[dst + target] = state[src + name]
            for kind, fused in zip(("weight", "bias"), _FUSED):
                q, k, v = state[src + fused].chunk(3, dim=0)  # in_proj rows are [q; k; v]
                out[f"{dst}self_attn.q_proj.{kind}"] = q
                out[f"{dst}self_attn.k_proj.{kind}"] = k
                out[f"{dst}self_attn.v_proj.{kind}"] = v
    return {k: v.detach().to(dtype).contiguous() for k, v in out.items()}


def clip_state_dict_to_openai(hf_state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse mapping: a ``CLIPModel`` state dict in OpenAI's key layout (for tests and export)."""
    state = {k: v for k, v in hf_state_dict.items() if not k.endswith("position_ids")}
    out: dict[str, torch.Tensor] = {}
    for src, dst in _TOP_MAP.items():
        out[src] = state[dst]
    out["logit_scale"] = state["logit_scale"].reshape(())
    for src, dst in _TRANSPOSED.items():
        out[src] = state[dst].t().contiguous()
    inverse_block = {v: k for k, v in _BLOCK_MAP.items()}
    for openai_prefix, hf_prefix in _TOWERS:
        pattern = re.compile(re.escape(hf_prefix) + r"(\d+)\.(.+)$")
        for key, value in state.items():
            match = pattern.match(key)
            if match and match.group(2) in inverse_block:
                out[f"{openai_prefix}{match.group(1)}.{inverse_block[match.group(2)]}"] = value
        layers = {int(m.group(1)) for k in state if (m := pattern.match(k))}
        for i in sorted(layers):
            for kind, fused in zip(("weight", "bias"), _FUSED):
                parts = [state[f"{hf_prefix}{i}.self_attn.{p}_proj.{kind}"] for p in "qkv"]
                out[f"{openai_prefix}{i}.{fused}"] = torch.cat(parts, dim=0)
    return out


# ----------------------------------------------------------------------------------------------------
# The conversion
# ----------------------------------------------------------------------------------------------------
def convert_openai_clip(
    pt_path: str | Path,
    out_dir: str | Path,
    tokenizer: str | Path | None = None,
    vision_heads: int | None = None,
    text_heads: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write a transformers CLIPModel folder (+ preprocessor config, + tokenizer if given) from an OpenAI checkpoint.

    pt_path: OpenAI ``.pt`` (TorchScript archive) or a plain OpenAI-layout state dict.
    out_dir: output folder, loadable with ``load_vision_language(out_dir)``.
    tokenizer: a folder with a CLIP tokenizer to copy; without it text encoding will not work (warned).
    vision_heads / text_heads: attention heads (default: width // 64, OpenAI's rule).
    Returns the output folder.
    """
    from transformers import CLIPModel, CLIPTokenizer

    state = load_openai_checkpoint(pt_path)
    arch = infer_architecture(state, vision_heads=vision_heads, text_heads=text_heads)
    tok = None
    if tokenizer is not None:
        if not Path(tokenizer).is_dir():
            raise CheckpointError(
                f"Tokenizer folder {tokenizer} does not exist; pass a folder holding a CLIP tokenizer."
            )
        try:
            tok = CLIPTokenizer.from_pretrained(str(tokenizer), local_files_only=True)
        except (OSError, ValueError) as error:
            raise CheckpointError(f"No CLIP tokenizer could be read from {tokenizer} ({error}).") from None
        if len(tok) > arch["vocab_size"]:
            raise CheckpointError(
                f"The tokenizer in {tokenizer} has {len(tok)} tokens but the checkpoint only {arch['vocab_size']}; "
                "use the tokenizer that matches this model."
            )
    config = clip_config_from_architecture(
        arch,
        bos_token_id=tok.bos_token_id if tok is not None else None,
        eos_token_id=tok.eos_token_id if tok is not None else None,
    )
    mapped = openai_to_clip_state_dict(state, arch, dtype=dtype)
    model = CLIPModel(config)
    try:
        model.load_state_dict(mapped, strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0] if first else "shape mismatch"
        raise CheckpointError(
            f"The converted CLIP weights do not fit the inferred architecture: {detail}"
        ) from None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.to(dtype).save_pretrained(out_dir)
    size = arch["image_size"]
    save_clip_preprocessor_config(out_dir, size)
    if tok is not None:
        tok.save_pretrained(out_dir)
    else:
        warnings.warn(
            f"Wrote {out_dir} without a tokenizer: image features work, text does not; re-run with "
            "--tokenizer DIR (a folder holding a CLIP tokenizer, e.g. a saved openai/clip-vit-large-patch14).",
            stacklevel=2,
        )
    return out_dir
