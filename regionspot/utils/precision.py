"""Generic switches for running frozen modules faster: CPU feature probe, autocast wrapping, the
transformers attention implementation, int8 dynamic quantisation of Linear layers.

Each function changes one ``nn.Module`` in place and leaves its ``state_dict`` keys alone except
:func:`quantize_linear_int8` (which replaces Linear modules, so it is for inference only). Which modules of a
backbone get which switch is the backbone adapter's business (``set_numerics`` in ``regionspot.backbones``;
SAM's own attention classes in ``backbones/sam_attention.py``); which path to use on which hardware, and the
accuracy guard, is ``regionspot.inference.fast``.
"""

from __future__ import annotations

import functools
import platform
import warnings

import torch
from torch import nn

from regionspot.utils.cpu import cpu_flags

__all__ = [
    "autocast_forward",
    "cpu_flags",
    "has_native_bf16",
    "quantize_linear_int8",
    "set_attention",
]

_AUTOCAST_MARK = "_regionspot_autocast"
def has_native_bf16(device: torch.device | str = "cpu") -> bool:
    """True where bf16 matrix products run in hardware: a CUDA GPU with bf16 support, or an x86 CPU with
    AMX-BF16 or AVX-512 BF16 (elsewhere torch emulates bf16 on CPU, slower than fp32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return platform.machine() in ("x86_64", "AMD64") and bool({"amx_bf16", "avx512_bf16"} & cpu_flags())
    return False


def _cast_floats(value, dtype: torch.dtype):
    """Cast every floating tensor in a (nested) output to ``dtype``; ModelOutput dicts are cast in place."""
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, tuple):
        return type(value)(_cast_floats(v, dtype) for v in value) if not hasattr(value, "_fields") else value
    if isinstance(value, list):
        return [_cast_floats(v, dtype) for v in value]
    if isinstance(value, dict):  # transformers ModelOutput is an OrderedDict
        for key in list(value.keys()):
            value[key] = _cast_floats(value[key], dtype)
        return value
    return value


def autocast_forward(module: nn.Module, dtype: torch.dtype | None, device_type: str | None = None) -> nn.Module:
    """Run ``module.forward`` under ``torch.autocast(dtype)`` and cast its floating outputs back to float32.

    Weights stay float32 (autocast casts per op), so accuracy-critical ops torch keeps in float32 stay
    there. ``dtype=None`` removes a wrapper added earlier. Returns ``module`` (changed in place).
    """
    if _AUTOCAST_MARK in module.__dict__:  # unwrap first: wrappers never stack
        previous = module.__dict__.pop(_AUTOCAST_MARK)  # the instance-level forward before wrapping, or None
        del module.__dict__["forward"]
        if previous is not None:
            module.__dict__["forward"] = previous
    if dtype is None:
        return module
    inner = module.forward
    kind = device_type or next((p.device.type for p in module.parameters()), "cpu")

    @functools.wraps(inner)
    def forward(*args, **kwargs):
        with torch.autocast(kind, dtype=dtype):
            output = inner(*args, **kwargs)
        return _cast_floats(output, torch.float32)

    module.__dict__[_AUTOCAST_MARK] = module.__dict__.get("forward")
    module.__dict__["forward"] = forward
    return module


def set_attention(module: nn.Module, implementation: str) -> nn.Module:
    """Switch a transformers model (SAM, SAM-HQ, CLIP, SigLIP) to ``"eager"`` or ``"sdpa"`` attention in place:
    every attention layer that looks the implementation up in its config at call time follows it. (SAM's
    vision attention picks its class at construction: ``backbones.sam_attention.set_sam_attention``.)
    """
    if implementation not in ("eager", "sdpa"):
        raise ValueError(f"implementation must be 'eager' or 'sdpa', got {implementation!r}.")
    for sub in module.modules():
        config = getattr(sub, "config", None)
        if config is not None and hasattr(config, "_attn_implementation"):
            config._attn_implementation = implementation
            for name in ("vision_config", "text_config", "mask_decoder_config", "prompt_encoder_config"):
                child = getattr(config, name, None)
                if child is not None and hasattr(child, "_attn_implementation"):
                    child._attn_implementation = implementation
    return module


def quantize_linear_int8(module: nn.Module) -> nn.Module:
    """Replace every ``nn.Linear`` in ``module`` by torch's dynamic int8 Linear (weights int8 per
    tensor, activations quantised per batch at run time). CPU only; in place; inference only.

    torch 2.13 marks its quantised tensor types deprecated (to move to torchao); that warning is silenced
    here, and the accuracy guard / tests fail loudly the day the API goes."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*(deprecated|torchao)")
        return quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8, inplace=True)
