"""Fast paths: options that trade a little numerical accuracy for speed, each guarded against fp32.

Paths (``FAST_PATHS``), applied in place to a loaded :class:`~regionspot.model.RegionSpot` by
:func:`apply_fast_path`:

- ``"fp32"`` — the default and most accurate: float32 weights and activations, PyTorch SDPA attention
  (transformers' default; mathematically the same attention as eager).
- ``"eager"`` — float32 with transformers' eager attention (the plain reference; never faster).
- ``"bf16"`` — the SAM image encoder, SAM mask decoder and the CLIP vision/text towers run under
  ``torch.autocast(bfloat16)``; weights stay float32, outputs are cast back to float32; the SAM prompt
  encoder (its random-Fourier positional encoding is precision-sensitive) and the head stay float32.
  Only worth it where bf16 is native: GPUs, CPUs with AMX-BF16 / AVX-512 BF16.
- ``"int8"`` — the Linear layers of the SAM image encoder and of the CLIP vision/text towers become
  dynamic int8 Linear layers (CPU only); the decoder and head stay float32.
- ``"compile"`` — fp32, with the SAM image encoder and the CLIP vision tower compiled by ``torch.compile``
  (inductor). The first image pays the compilation (about a minute for BL on 2 CPU cores); it then runs a few
  per cent faster (docs/performance.md), so it is for long evaluations, not one picture, and ``"auto"`` /
  ``--fast`` never pick it. The text tower is not compiled: its batches change length.

The accuracy guard compares a path's logits with the fp32 path's on the same regions:
:func:`compare_logits` gives the logit error and top-1/top-5 agreement; :func:`passes_guard` applies the
thresholds. Guard verdicts for *this machine* (``machine_signature``) are kept in a small JSON file so
that ``choose_fast_path`` can pick the fastest path that passed without re-running the guard; the
guard runner itself (ShapesWorld val, the embedded model) is ``regionspot.shapesworld.guard``.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from regionspot.errors import RegionSpotError
from regionspot.utils.precision import (
    autocast_forward,
    cpu_flags,
    has_native_bf16,
    quantize_linear_int8,
    set_attention,
)

__all__ = [
    "FAST_PATHS",
    "GUARD_MAX_ABS_LOGIT",
    "GUARD_TOP1",
    "TIE_LOGIT",
    "GuardResult",
    "apply_fast_path",
    "candidate_paths",
    "choose_fast_path",
    "compare_logits",
    "machine_signature",
    "passes_guard",
    "read_verdicts",
    "resolve_fast_path",
    "verdicts_path",
    "write_verdicts",
]

FAST_PATHS = ("fp32", "eager", "bf16", "int8", "compile")
# A fast path passes when ≥ 99 % of regions keep their top-1 class and the largest logit error stays small
# against the logits' scale (CLIP's logit scale is 100: cosine × 100).
GUARD_TOP1 = 0.99
GUARD_MAX_ABS_LOGIT = 2.0
# Two classes whose fp32 logits differ by less than this are a tie (their probabilities differ by < 1 %):
# which of them comes first depends on rounding, not on the model. The trained tiny model has such ties (the 4
# of 203 CI-subset regions bf16 reorders have fp32 top-2 margins of 0.0002-0.005), and any change of arithmetic
# can reorder them.
TIE_LOGIT = 0.01


# --------------------------------------------------------------------------------------- applying
def apply_fast_path(model, path: str):
    """Switch a loaded RegionSpot (in place; also returned) to ``path`` — one of ``FAST_PATHS``.

    A model is switched once, from its loaded (fp32) state; ``int8`` cannot be undone. Raises
    RegionSpotError for an unknown path or a path the model's device cannot run.
    """
    if path not in FAST_PATHS:
        raise RegionSpotError(f"Unknown fast path {path!r}; choose one of {', '.join(FAST_PATHS)} (or 'auto').")
    sam = model.segmenter.model
    clip = model.vision_language.model
    device = model.segmenter.device
    set_attention(sam, "eager" if path == "eager" else "sdpa")
    set_attention(clip, "eager" if path == "eager" else "sdpa")
    if path == "bf16":
        if device.type not in ("cpu", "cuda"):
            raise RegionSpotError(f"The bf16 path runs on CPU or CUDA, not {device.type}.")
        for module in (sam.vision_encoder, sam.mask_decoder, sam.mask_decoder.iou_prediction_head,
                       clip.vision_model, clip.text_model):
            autocast_forward(module, torch.bfloat16, device.type)
    elif path == "int8":
        if device.type != "cpu":
            raise RegionSpotError(f"The int8 path (dynamic quantisation) runs on CPU only; this model is on {device}.")
        for module in (sam.vision_encoder, clip.vision_model, clip.text_model):
            quantize_linear_int8(module)
    elif path == "compile":
        for module in (sam.vision_encoder, clip.vision_model):
            module.compile()
    if path in ("bf16", "int8") and isinstance(getattr(model.vision_language, "weights_fingerprint", None), str):
        # text embeddings computed on this path differ slightly: keep them apart in the on-disk cache
        model.vision_language.weights_fingerprint += f"+{path}"
    model.fast_path = path
    return model


def candidate_paths(device: torch.device | str = "cpu") -> list[str]:
    """The fast paths worth trying on ``device``, fastest expected first; "fp32" always last.

    bf16 only where it is native (else emulated bf16 is slower than fp32); int8 only on CPU.
    """
    device = torch.device(device)
    paths = []
    if has_native_bf16(device):
        paths.append("bf16")
    if device.type == "cpu":
        paths.append("int8")
    return paths + ["fp32"]


# --------------------------------------------------------------------------------------- guard
@dataclass(frozen=True)
class GuardResult:
    """Agreement of a path's logits with the fp32 logits on the same regions.

    regions: number of regions compared; max_abs / mean_abs: logit error (logit units, scale 100);
    top1: fraction of regions whose top-1 class is the same; top5: mean overlap of the top-5 sets;
    top1_up_to_ties: fraction of regions whose top-1 class under the path is also fp32's top-1 up to a tie —
    its fp32 logit within ``TIE_LOGIT`` of fp32's largest (None: not computed).
    """

    regions: int
    max_abs: float
    mean_abs: float
    top1: float
    top5: float
    top1_up_to_ties: float | None = None


def compare_logits(reference: torch.Tensor, logits: torch.Tensor, k: int = 5) -> GuardResult:
    """reference, logits: (N, V) float for the same N regions and V classes → GuardResult."""
    if reference.shape != logits.shape:
        raise ValueError(f"Shapes differ: {tuple(reference.shape)} vs {tuple(logits.shape)}.")
    if reference.numel() == 0:
        return GuardResult(0, 0.0, 0.0, 1.0, 1.0)
    reference, logits = reference.float(), logits.float()
    error = (reference - logits).abs()
    top1 = (reference.argmax(-1) == logits.argmax(-1)).float().mean()
    k = min(k, reference.shape[-1])
    ref_top = reference.topk(k, dim=-1).indices  # (N, k)
    top = logits.topk(k, dim=-1).indices  # (N, k)
    overlap = (ref_top[:, :, None] == top[:, None, :]).any(-1).float().mean()
    chosen = reference.gather(-1, logits.argmax(-1, keepdim=True))[:, 0]  # fp32's logit of the path's top-1
    tied = (chosen >= reference.max(-1).values - TIE_LOGIT).float().mean()
    return GuardResult(int(reference.shape[0]), float(error.max()), float(error.mean()), float(top1), float(overlap),
                       float(tied))


def passes_guard(result: GuardResult) -> bool:
    """True when top-1 agreement up to ties (plain top-1 agreement where that was not computed) ≥ GUARD_TOP1
    and the largest logit error ≤ GUARD_MAX_ABS_LOGIT."""
    top1 = result.top1 if result.top1_up_to_ties is None else result.top1_up_to_ties
    return result.regions > 0 and top1 >= GUARD_TOP1 and result.max_abs <= GUARD_MAX_ABS_LOGIT


def machine_signature(device: torch.device | str = "cpu") -> str:
    """What a guard verdict depends on: torch version, device kind, CPU model and bf16/AMX flags."""
    device = torch.device(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    flags = ",".join(sorted(cpu_flags())) if device.type == "cpu" else ""
    return f"torch {torch.__version__} | {device.type} | {name} | {flags}"


def verdicts_path() -> Path:
    """``$REGIONSPOT_CACHE/fast_guard.json`` when that variable is set, else ``~/.cache/regionspot/...``."""
    root = os.environ.get("REGIONSPOT_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "regionspot") / "fast_guard.json"


def read_verdicts(path: Path | None = None) -> dict[str, dict[str, dict]]:
    """{machine signature: {path name: GuardResult fields + "passed"}}; empty when the file is absent."""
    path = path or verdicts_path()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_verdicts(results: dict[str, GuardResult], device: torch.device | str = "cpu",
                   path: Path | None = None) -> Path:
    """Record guard results of this machine (merged with other machines' entries); returns the file."""
    path = path or verdicts_path()
    data = read_verdicts(path)
    data[machine_signature(device)] = {
        name: {**asdict(result), "passed": passes_guard(result)} for name, result in results.items()
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=1))
    temporary.replace(path)
    return path


def choose_fast_path(device: torch.device | str = "cpu", verdicts: dict | None = None) -> str | None:
    """The first of ``candidate_paths(device)`` whose recorded guard passed on this machine; "fp32" when none
    did; None when this machine has no verdicts yet (run the guard first)."""
    verdicts = read_verdicts() if verdicts is None else verdicts
    mine = verdicts.get(machine_signature(device))
    if not mine:
        return None
    for path in candidate_paths(device):
        if path == "fp32" or mine.get(path, {}).get("passed"):
            return path
    return "fp32"


def resolve_fast_path(name: str, device: torch.device | str = "cpu") -> str:
    """``name`` itself, or for "auto" the path :func:`choose_fast_path` picks; raises RegionSpotError when
    this machine has no guard verdicts yet."""
    if name != "auto":
        return name
    chosen = choose_fast_path(device)
    if chosen is None:
        raise RegionSpotError(
            "No accuracy-guard verdicts for this machine yet: run `regionspot predict --fast` once (it runs the "
            "guard) or `python benchmarks/speed/accuracy_guard.py`, or pass fast_path='bf16' / 'int8' explicitly."
        )
    return chosen
