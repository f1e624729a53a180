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
- The speed guard: the guard also times each path against fp32 in the same run (:class:`PathSpeed`);
  :func:`pays_off` asks for ``GUARD_MIN_SPEEDUP`` and a one-off switch that costs less than one image saves.
- Verdicts: guard results for *this machine* (``machine_signature``) kept in a small JSON file, so that
  :func:`choose_fast_path` / :func:`resolve_fast_path` ("auto") pick the fastest path that passed both without
  re-running the guard. Verdicts recorded before the guard timed the paths carry no speed: "not measured", never
  picked (:func:`no_choice_reason` says to re-run the guard).
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
    "GUARD_MIN_SPEEDUP",
    "GuardResult",
    "PathSpeed",
    "candidate_paths",
    "choose_fast_path",
    "compare_logits",
    "machine_signature",
    "no_choice_reason",
    "pays_off",
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
# A path is picked only when it is at least this much faster per image than fp32, timed in the same guard run: a
# lossy path must buy time for its error, and back-to-back timings on a shared machine still differ by a few per
# cent, so a path within that noise of fp32 (int8 on an AVX2-only CPU: 43.5 vs 42.2 s per image) is not "faster".
GUARD_MIN_SPEEDUP = 1.1


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


@dataclass(frozen=True)
class PathSpeed:
    """A path's speed against fp32, timed in one guard run on the same images, interleaved, best of repeats.

    seconds / fp32_seconds: per image (image encoders, prompt decoder without masks, head; text embeddings are
    cached per vocabulary and not timed), the path's and fp32's; switch_seconds: the one-off cost of switching a
    loaded fp32 model to the path (``set_numerics``: int8's quantisation, its import included); model: the model
    timed (a path's speed depends on it: the embedded model's per-image work is small, a full-size one's large).
    """

    seconds: float
    fp32_seconds: float
    switch_seconds: float = 0.0
    model: str = ""

    @property
    def speedup(self) -> float:
        """fp32's seconds per image ÷ the path's (> 1: the path is faster)."""
        return self.fp32_seconds / self.seconds if self.seconds > 0 else 0.0


def pays_off(speed: PathSpeed) -> bool:
    """True when the path is ≥ ``GUARD_MIN_SPEEDUP`` × faster per image than fp32 and its one-off switch costs
    no more than one image saves, so that even a one-image run is not slower than fp32."""
    return speed.speedup >= GUARD_MIN_SPEEDUP and speed.switch_seconds <= speed.fp32_seconds - speed.seconds


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
                   path: Path | None = None, speeds: dict[str, PathSpeed] | None = None) -> Path:
    """Record guard results of this machine (merged with other machines' entries); returns the file.

    Each path's entry: the GuardResult fields, "passed" (accuracy), and where ``speeds`` has it "speed" (the
    PathSpeed fields and "speedup") and "pays_off"; a path without speed is "not measured" and never picked."""
    path = path or verdicts_path()
    data = read_verdicts(path)
    speeds = speeds or {}
    data[machine_signature(device)] = {name: _verdict(result, speeds.get(name)) for name, result in results.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=1))
    temporary.replace(path)
    return path


def _verdict(result: GuardResult, speed: PathSpeed | None) -> dict:
    entry = {**asdict(result), "passed": passes_guard(result)}
    if speed is not None:
        entry["speed"] = {**asdict(speed), "speedup": speed.speedup}
        entry["pays_off"] = pays_off(speed)
    return entry


def _measured(verdicts: dict | None, device: torch.device | str) -> dict[str, dict] | None:
    """This machine's verdicts when at least one has a measured speed, else None (none yet, or only ones recorded
    before the guard timed the paths)."""
    mine = (read_verdicts() if verdicts is None else verdicts).get(machine_signature(device))
    if not mine or not any("speed" in entry for entry in mine.values() if isinstance(entry, dict)):
        return None
    return mine


def choose_fast_path(device: torch.device | str = "cpu", verdicts: dict | None = None) -> str | None:
    """Of ``candidate_paths(device)``, the one with the largest measured speed-up whose recorded guard passed
    on this machine for accuracy *and* speed (:func:`passes_guard`, :func:`pays_off`); "fp32" when none did;
    None when this machine has no verdicts with speed yet (run the guard: :func:`no_choice_reason`).
    "compile" is never a candidate, so a verdict for it is never picked."""
    mine = _measured(verdicts, device)
    if mine is None:
        return None
    fit = [(entry["speed"]["speedup"], path) for path in candidate_paths(device) if path != "fp32"
           for entry in [mine.get(path, {})] if entry.get("passed") and entry.get("pays_off") and "speed" in entry]
    return max(fit)[1] if fit else "fp32"


def no_choice_reason(device: torch.device | str = "cpu", verdicts: dict | None = None) -> str:
    """Why :func:`choose_fast_path` has nothing to choose from on this machine, in one line naming the command."""
    mine = (read_verdicts() if verdicts is None else verdicts).get(machine_signature(device))
    if mine:
        return (f"this machine's fast-path verdicts have no speed measured (recorded by an older guard); re-run "
                f"`{GUARD_COMMAND}`")
    return f"no fast-path verdicts for this machine yet; `{GUARD_COMMAND}` makes them"


def resolve_fast_path(name: str, device: torch.device | str = "cpu") -> str:
    """``name`` itself, or for "auto" the path :func:`choose_fast_path` picks; raises RegionSpotError when
    this machine has no guard verdicts with speed yet."""
    if name != "auto":
        return name
    chosen = choose_fast_path(device)
    if chosen is None:
        reason = no_choice_reason(device)
        raise RegionSpotError(f"{reason[0].upper()}{reason[1:]} (or pass fast_path='bf16' / 'int8' explicitly).")
    return chosen
