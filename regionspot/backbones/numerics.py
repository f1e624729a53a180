"""The numerics modes a frozen backbone can run in, and the one routine that switches a backbone's modules.

Each adapter (``SamSegmenter``, ``ClipAdapter``) owns its numerics: its ``set_numerics(mode)`` names which of
its modules run reduced-precision, quantised or compiled, calls :func:`switch_numerics`, keeps its
``weights_fingerprint`` apart on a lossy mode (outputs computed there differ slightly, so caches keyed by the
fingerprint — the text embeddings — must not mix them) and returns that suffix. The modes:

- ``"fp32"`` — the default and most accurate: float32 weights and activations, PyTorch SDPA attention.
- ``"eager"`` — float32 with transformers' eager attention (the plain reference; never faster).
- ``"bf16"`` — the adapter's heavy modules run under ``torch.autocast(bfloat16)``; weights stay float32,
  outputs are cast back to float32. CPU or CUDA.
- ``"int8"`` — the Linear layers of the adapter's heavy modules become dynamic int8 Linear layers (CPU only).
- ``"compile"`` — fp32, the adapter's image tower compiled by ``torch.compile`` (inductor).

Which mode to use on which machine — candidates, the accuracy guard's thresholds and verdicts — is policy:
``regionspot.inference.fast``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from regionspot.errors import RegionSpotError
from regionspot.utils.precision import autocast_forward, quantize_linear_int8, set_attention

__all__ = ["LOSSY_NUMERICS", "NUMERICS", "ONE_WAY_NUMERICS", "numerics_suffix", "switch_numerics"]

NUMERICS = ("fp32", "eager", "bf16", "int8", "compile")
# Modes whose outputs differ from fp32's by more than float error: they get a fingerprint suffix.
LOSSY_NUMERICS = ("bf16", "int8")
# Modes that change modules in a way a later switch cannot take back.
ONE_WAY_NUMERICS = ("int8", "compile")


def numerics_suffix(mode: str) -> str:
    """The weights-fingerprint suffix of outputs computed in ``mode``: "+bf16" / "+int8", else ""."""
    return f"+{mode}" if mode in LOSSY_NUMERICS else ""


def switch_numerics(
    model: nn.Module, mode: str, current: str, device: torch.device, *, bf16: Sequence[nn.Module] = (),
    int8: Sequence[nn.Module] = (), compiled: Sequence[nn.Module] = (),
    attention: Callable[[nn.Module, str], nn.Module] = set_attention,
) -> str:
    """Switch a frozen transformers ``model`` (in place) from numerics ``current`` to ``mode``; returns the
    fingerprint suffix of ``mode`` (:func:`numerics_suffix`).

    bf16 / int8 / compiled: the sub-modules that run under bf16 autocast, become int8, are compiled in that
    mode. Attention follows the mode (eager for "eager", else SDPA), switched by ``attention`` (SAM passes
    ``sam_attention.set_sam_attention``, which also re-classes its vision attention). Switching back from bf16
    takes its autocast off. Raises ValueError for an unknown mode or a switch away from int8 / compile (load
    the model again); RegionSpotError for a mode ``device`` cannot run.
    """
    if mode not in NUMERICS:
        raise ValueError(f"Unknown numerics {mode!r}; choose one of {', '.join(NUMERICS)}.")
    if current in ONE_WAY_NUMERICS and mode != current:
        raise ValueError(f"A backbone switched to {current} cannot be switched to {mode}; load it again.")
    if mode == "bf16" and device.type not in ("cpu", "cuda"):
        raise RegionSpotError(f"The bf16 path runs on CPU or CUDA, not {device.type}.")
    if mode == "int8" and device.type != "cpu":
        raise RegionSpotError(f"The int8 path (dynamic quantisation) runs on CPU only; this model is on {device}.")
    attention(model, "eager" if mode == "eager" else "sdpa")
    for module in bf16:  # autocast_forward(module, None) takes an earlier bf16 wrapper off
        autocast_forward(module, torch.bfloat16 if mode == "bf16" else None, device.type)
    if mode == "int8" and current != "int8":
        for module in int8:
            quantize_linear_int8(module)
    if mode == "compile" and current != "compile":
        for module in compiled:
            module.compile()
    return numerics_suffix(mode)
