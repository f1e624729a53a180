"""How a run into a folder starts (plan_run) and what --restart deletes (clear_run), on hand-made folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from regionspot.engine.checkpointing import RUN_OUTPUTS, clear_run, config_differences, plan_run
from regionspot.errors import RegionSpotError

CONFIG = {"lr": 0.002, "max_iters": 40, "output_dir": "a", "log_every": 1, "model": {"head": {"depth": 1}}}


def _run(folder: Path, step: int | None, final: bool = False, config: dict = CONFIG) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    if step is not None:
        ckpt = folder / "checkpoints" / f"step_{step:08d}"
        ckpt.mkdir(parents=True)
        (ckpt / "state.json").write_text(json.dumps({"step": step, "sampler": [{}]}))
        (folder / "checkpoints" / "latest.json").write_text(json.dumps({"step": step, "path": ckpt.name}))
    if final:
        (folder / "final_head.safetensors").write_bytes(b"head")
    return folder


def test_new_folders_and_runs_killed_before_their_first_checkpoint_start_at_zero(tmp_path):
    assert plan_run(tmp_path / "new", CONFIG, 40).checkpoint is None
    other = _run(tmp_path / "early", None, config={**CONFIG, "lr": 1.0})  # nothing to keep: no refusal
    assert plan_run(other, CONFIG, 40).step == 0


def test_a_run_resumes_from_its_latest_checkpoint_and_a_finished_one_is_left_alone(tmp_path):
    run = _run(tmp_path / "run", 15)
    plan = plan_run(run, {**CONFIG, "output_dir": "moved", "log_every": 5}, 40)  # free keys may change
    assert (plan.checkpoint, plan.step, plan.finished) == (run / "checkpoints" / "step_00000015", 15, None)
    done = _run(tmp_path / "done", 40, final=True)
    assert plan_run(done, CONFIG, 40).finished == done / "final_head.safetensors"
    assert plan_run(done, CONFIG, 60).checkpoint == done / "checkpoints" / "step_00000040"  # more steps: trains on
    with pytest.raises(RegionSpotError, match="past max_iters=30"):
        plan_run(done, CONFIG, 30)


@pytest.mark.parametrize("change, named", [({"lr": 0.001}, "lr: 0.002 there, 0.001 now"),
                                           ({"model": {"head": {"depth": 2}}}, "model.head.depth: 1 there, 2 now")])
def test_another_config_is_refused_in_one_line_naming_restart(tmp_path, change, named):
    run = _run(tmp_path / "run", 15)
    with pytest.raises(RegionSpotError, match="--restart") as caught:
        plan_run(run, {**CONFIG, **change}, 40)
    assert named in str(caught.value) and "\n" not in str(caught.value)
    assert plan_run(run, {**CONFIG, **change}, 40, restart=True).checkpoint is None


def test_resume_false_refuses_a_folder_that_holds_a_run(tmp_path):
    with pytest.raises(RegionSpotError, match="--restart"):
        plan_run(_run(tmp_path / "run", 5), CONFIG, 40, resume=False)


def test_clear_run_deletes_only_what_a_run_writes(tmp_path):
    run = _run(tmp_path / "run", 5, final=True)
    (run / "metrics.csv").write_text("step\n")
    (run / "tensorboard").mkdir()
    (run / "notes.txt").write_text("mine")
    clear_run(run)
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "notes.txt"]
    assert not any((run / name).exists() for name in RUN_OUTPUTS)


def test_config_differences_reads_values_as_yaml_does():
    assert config_differences(CONFIG, {**CONFIG, "betas": (0.9, 0.999)}) == ["betas: None there, [0.9, 0.999] now"]
    assert config_differences({**CONFIG, "betas": [0.9, 0.999]}, {**CONFIG, "betas": (0.9, 0.999)}) == []
    assert config_differences(None, CONFIG) == ["no config.yaml"]
