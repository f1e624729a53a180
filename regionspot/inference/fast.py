"""Fast paths: which numerics to run the frozen backbones in, and the accuracy guard that decides it.

The paths (``FAST_PATHS``) are the backbones' numerics modes (``regionspot.backbones.numerics.NUMERICS``:
fp32, eager, bf16, int8, compile); each backbone adapter sets its own (``set_numerics``) and
``RegionSpot.set_numerics`` / ``RegionSpot.from_pretrained(fast_path=...)`` switches both. This module is the
policy only:

- :func:`candidate_paths` — the paths worth trying on a device (bf16 only where it is native, int8 on CPU);
  ``"compile"`` is never a candidate (the first image pays about a minute of compilation for BL on 2 CPU
  cores; it then runs a few per cent faster, docs/performance.md), nor is ``"eager"`` (never faster).
- The accuracy guard's thresholds: :func:`compare_logits` gives a path's logit error and top-1/top-5
  agreement with fp32 on the same regions; :func:`passes_guard` applies ``GUARD_TOP1`` /
  ``GUARD_MAX_ABS_LOGIT``. The guard itself runs on any labelled COCO set (``regionspot.evaluation.guard``;
  ``GUARD_COMMAND`` runs it on the ShapesWorld CI subset).
- Verdicts: guard results for *this machine* (``machine_signature``) kept in a small JSON file, so that
  :func:`choose_fast_path` / :func:`resolve_fast_path` ("auto") pick the fastest path that passed without
  re-running the guard.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from regionspot.backbones.numerics import NUMERICS
from regionspot.errors import RegionSpotError
from regionspot.utils.precision import cpu_flags, has_native_bf16

__all__ = [
    "FAST_PATHS",
    "GUARD_COMMAND",
    "GUARD_MAX_ABS_LOGIT",
    "GUARD_TOP1",
    "TIE_LOGIT",
    "GuardResult",
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

FAST_PATHS = NUMERICS
# The command that runs the guard on the ShapesWorld CI subset and records this machine's verdicts.
GUARD_COMMAND = "regionspot guard"
# A fast path passes when ≥ 99 % of regions keep their top-1 class and the largest logit error stays small
# against the logits' scale (CLIP's logit scale is 100: cosine × 100).
GUARD_TOP1 = 0.99
GUARD_MAX_ABS_LOGIT = 2.0
# Two classes whose fp32 logits differ by less than this are a tie (their probabilities differ by < 1 %):
# which of them comes first depends on rounding, not on the model. The trained tiny model has such ties (the 4
# of 203 CI-subset regions bf16 reorders have fp32 top-2 margins of 0.0002-0.005), and any change of arithmetic
# can reorder them.
TIE_LOGIT = 0.01


# --------------------------------------------------------------------------------------- choosing
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
            f"No accuracy-guard verdicts for this machine yet: run `{GUARD_COMMAND}` once, or pass "
            "fast_path='bf16' / 'int8' explicitly."
        )
    return chosen
