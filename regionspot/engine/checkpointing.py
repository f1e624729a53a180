"""Training checkpoints: ``RUN/checkpoints/step_XXXXXXXX/`` folders, written atomically, and ``latest.json``.

Each folder holds ``head.safetensors`` in the head-checkpoint format (so ``RegionSpot.from_pretrained`` reads
it, and reads a whole run folder through ``latest.json``), ``optim.pt`` (optimizer, scheduler, RNG) and
``state.json`` (step, sampler states). Resuming restores all three exactly.

A rerun into the same run folder resumes by default (:func:`plan_run`): from the latest checkpoint when the
run's ``config.yaml`` says the same as the new config (up to :data:`RERUN_FREE_KEYS`), not at all when the
run has finished; a folder of another config is refused. Only ``restart`` (:func:`clear_run`) starts over.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file
from torch import nn

from regionspot.checkpoint import save_head_checkpoint
from regionspot.config import RegionSpotConfig
from regionspot.errors import CheckpointError, RegionSpotError
from regionspot.utils.io import fsync_folder_files, write_json_atomic


def save_training_checkpoint(
    run_dir: Path,
    step: int,
    head: nn.Module,
    model_config: RegionSpotConfig,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    sampler_states: list[dict[str, Any]],
    keep: int,
) -> Path:
    """Write ``run_dir/checkpoints/step_XXXXXXXX`` atomically (temp folder, fsync, rename), then ``latest``.

    Holds the head in the head-checkpoint format ``RegionSpot.from_pretrained`` reads (``head.safetensors``:
    weights + ``model_config`` + step), optimizer + scheduler + RNG state in its own file (``optim.pt``,
    tensors and plain types only: loads with weights_only=True) and the step and per-rank sampler states
    (``state.json``).
    """
    ckpt_root = run_dir / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step_{step:08d}"
    tmp = ckpt_root / f".step_{step:08d}.tmp{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_head_checkpoint(tmp / "head.safetensors", head, model_config, meta={"step": step})
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state()},
        tmp / "optim.pt",
    )
    (tmp / "state.json").write_text(json.dumps({"step": step, "sampler": sampler_states}))
    fsync_folder_files(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    write_json_atomic(ckpt_root / "latest.json", {"step": step, "path": final.name})
    done = sorted(p for p in ckpt_root.glob("step_*") if p.is_dir())
    for old in done[:-keep] if keep > 0 else []:
        shutil.rmtree(old)
    return final


def find_checkpoint(run_dir: Path, resume: bool | Path) -> Path | None:
    """The checkpoint folder to resume from: ``latest`` of the run for True, the given folder for a path."""
    if resume is False or resume is None:
        return None
    if resume is True:
        latest = run_dir / "checkpoints" / "latest.json"
        if not latest.is_file():
            return None
        return run_dir / "checkpoints" / json.loads(latest.read_text())["path"]
    path = Path(resume)
    if not (path / "state.json").is_file():
        raise CheckpointError(f"{path} is not a training checkpoint folder (no state.json); pass a checkpoints/step_* folder.")
    return path


def load_training_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """(head state dict, optim.pt contents, state.json contents) of a checkpoint folder (the head's tensors
    are read without its metadata, so folders written before the head format was used resume too)."""
    try:
        head_state = load_file(str(path / "head.safetensors"))
        optim = torch.load(path / "optim.pt", map_location="cpu", weights_only=True)
        state = json.loads((path / "state.json").read_text())
    except (OSError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"Cannot read training checkpoint {path} ({e}); resume from an older one.") from e
    return head_state, optim, state


# Config keys that do not change what a run computes up to its last step: a rerun may change them.
# (``max_iters``: the schedule does not depend on it, so a finished run given more steps trains on.)
RERUN_FREE_KEYS = frozenset({"output_dir", "max_iters", "log_every", "checkpoint_every", "keep_checkpoints",
                             "text_cache_dir", "verify_cache", "cpu"})
# Keys added to the training config later, with the value a run folder's older config.yaml (without them) meant.
ADDED_KEYS = {"negatives_per_image": None, "vocabulary_drop": 0.0, "model.trained_with_negatives": False}
# What a run writes into its folder (config.yaml is rewritten by every run).
RUN_OUTPUTS = ("checkpoints", "final_head.safetensors", "metrics.csv", "tensorboard")


@dataclass
class RunPlan:
    """What a run into a folder does. checkpoint: resume from it (None: start at step 0); step: its step;
    finished: the final head of a run that is already done (nothing to train)."""

    checkpoint: Path | None = None
    step: int = 0
    finished: Path | None = None


def plan_run(run_dir: Path, config: dict[str, Any], max_iters: int, resume: bool | Path = True,
             restart: bool = False) -> RunPlan:
    """Decide how a run of ``config`` (``TrainConfig.to_dict()``) into ``run_dir`` starts; writes nothing.

    resume=True (the default): continue from the folder's latest checkpoint, or report the run finished
    (final head written, latest step >= ``max_iters``). A folder holding checkpoints or a final head made
    with another config (keys outside :data:`RERUN_FREE_KEYS`), or past ``max_iters``, raises a
    RegionSpotError naming ``--restart``. resume=False: the folder must hold no run. resume=PATH: continue
    from that checkpoint folder, whatever the run folder holds. restart=True: start at step 0 (the caller
    clears the folder with :func:`clear_run`).
    """
    if restart:
        if isinstance(resume, Path):
            raise RegionSpotError("--restart starts the run over; it cannot be combined with --resume-from.")
        return RunPlan()
    if isinstance(resume, (str, Path)) and not isinstance(resume, bool):
        path = find_checkpoint(run_dir, Path(resume))
        return RunPlan(checkpoint=path, step=_checkpoint_step(path))
    latest = find_checkpoint(run_dir, True)
    final = run_dir / "final_head.safetensors"
    if latest is None and not final.is_file():
        return RunPlan()  # nothing to keep: a new folder, or a run killed before its first checkpoint
    where = f"{run_dir} holds a training run"
    if not resume:
        raise RegionSpotError(f"{where}; resume it, add --restart to start it over, or choose another --out.")
    changed = config_differences(_saved_config(run_dir), config)
    if changed:
        raise RegionSpotError(f"{where} made with another config ({changed[0]}); add --restart to start it over, "
                              "or choose another --out.")
    step = _checkpoint_step(latest) if latest is not None else max_iters
    if final.is_file() and (latest is None or step == max_iters):
        return RunPlan(step=step, finished=final)
    if step > max_iters:
        raise RegionSpotError(f"{where} already at step {step}, past max_iters={max_iters}; raise max_iters, add "
                              "--restart to start it over, or choose another --out.")
    return RunPlan(checkpoint=latest, step=step)


def clear_run(run_dir: Path) -> None:
    """Delete what a run wrote into ``run_dir`` (:data:`RUN_OUTPUTS`); other files in the folder stay."""
    for name in RUN_OUTPUTS:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def config_differences(saved: dict[str, Any] | None, wanted: dict[str, Any]) -> list[str]:
    """``"key: saved -> wanted"`` for each dotted key outside :data:`RERUN_FREE_KEYS` that differs
    (compared as YAML reads them back); ``["no config.yaml"]`` when there is no saved config."""
    if saved is None:
        return ["no config.yaml"]
    wanted = yaml.safe_load(yaml.safe_dump(wanted))
    a, b = {**ADDED_KEYS, **_flatten(saved)}, {**ADDED_KEYS, **_flatten(wanted)}
    return [f"{key}: {a.get(key)!r} there, {b.get(key)!r} now" for key in sorted(set(a) | set(b))
            if key.split(".")[0] not in RERUN_FREE_KEYS and a.get(key) != b.get(key)]


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _saved_config(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "config.yaml"
    try:
        saved = yaml.safe_load(path.read_text()) if path.is_file() else None
    except (OSError, yaml.YAMLError):
        return None
    return saved if isinstance(saved, dict) else None


def _checkpoint_step(path: Path) -> int:
    try:
        return int(json.loads((path / "state.json").read_text())["step"])
    except (OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"Cannot read training checkpoint {path} ({e}); resume from an older one.") from e
