"""Training checkpoints: ``RUN/checkpoints/step_XXXXXXXX/`` folders, written atomically, and ``latest.json``.

Each folder holds ``head.safetensors`` in the head-checkpoint format (so ``RegionSpot.from_pretrained`` reads
it, and reads a whole run folder through ``latest.json``), ``optim.pt`` (optimizer, scheduler, RNG) and
``state.json`` (step, sampler states). Resuming restores all three exactly.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from regionspot.checkpoint import save_head_checkpoint
from regionspot.config import RegionSpotConfig
from regionspot.errors import CheckpointError
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
