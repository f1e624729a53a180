"""``regionspot train`` through the command line: a rerun resumes (after kill -9 too) and ends with the weights
of an uninterrupted run; a finished run is left alone; ``--restart`` starts over; another recipe is refused;
progress in a redirected log is plain lines; ``--dry-run`` writes nothing outside a temporary folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from typer.testing import CliRunner

from regionspot.checkpoint import load_head_checkpoint
from regionspot.cli import app
from regionspot.testing.tiny_training import tiny_training_env

runner = CliRunner()
STEPS = 40
# The same command as a program, with each step slowed down (timing only: the numbers are untouched), so a
# kill -9 lands in the middle of the run.
SLOW_TRAIN = ("import time, regionspot.engine.train as t; step = t.run_step; "
              "t.run_step = lambda *a, **k: (time.sleep(0.1), step(*a, **k))[1]; "
              "from regionspot.cli import main; main()")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    """A tiny recipe (tiny random backbones, a 12-image ShapesWorld cache, 40 steps, a checkpoint every 5)."""
    env = tiny_training_env(tmp_path_factory.mktemp("cli_train"))
    root, vl = env["root"], env["vl"]
    data = {
        "model": {"segmenter": env["sam"], "vision_language": env["clip"], "image_size": vl.image_size, "templates": ["a {}."],
                  "head": {"token_dim": env["token_dim"], "feature_dim": vl.feature_dim, "embed_dim": vl.embed_dim,
                           "depth": 1, "num_heads": 2, "ffn_dim": 64, "dropout": 0.1}},
        "datasets": [{"cache": str(root / "cache")}],
        "output_dir": str(root / "default_run"), "batch_size": 4, "lr": 2e-3, "max_iters": STEPS, "warmup_iters": 5,
        "lr_steps": [20], "mixed_precision": "no", "cpu": True, "checkpoint_every": 5, "log_every": 1,
    }
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """HOME and the user caches point into an empty temporary folder."""
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder / ".cache"))
    monkeypatch.delenv("REGIONSPOT_CACHE", raising=False)
    monkeypatch.delenv("REGIONSPOT_PROGRESS", raising=False)
    return folder


def _train(recipe: Path, out: Path, *args: str):
    return runner.invoke(app, ["train", "--config", str(recipe), "--out", str(out), *args])


def _ok(result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def _latest_step(out: Path) -> int:
    try:
        return int(json.loads((out / "checkpoints" / "latest.json").read_text())["step"])
    except (OSError, ValueError, KeyError):
        return 0


def test_killed_run_resumes_on_the_same_command_and_ends_with_the_uninterrupted_weights(recipe, home, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-c", SLOW_TRAIN, "train", "--config", str(recipe), "--out", str(out)]
    with open(tmp_path / "stdout.log", "w") as stdout, open(tmp_path / "stderr.log", "w") as stderr:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=dict(os.environ))
        deadline = time.monotonic() + 300
        while _latest_step(out) < 10 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        process.kill()  # SIGKILL: no cleanup of any kind
        process.wait()
    assert process.returncode == -9, (tmp_path / "stderr.log").read_text()[-2000:]
    killed_at = _latest_step(out)
    assert 10 <= killed_at < STEPS and not (out / "final_head.safetensors").exists()
    assert "starting at step 0 of 40" in (tmp_path / "stdout.log").read_text()
    log = (tmp_path / "stderr.log").read_text()
    progress = [line for line in log.splitlines() if line.startswith("train:")]
    assert "\r" not in log and 1 <= len(progress) <= 12, log[-2000:]  # a redirected log gets plain lines

    resumed = _ok(_train(recipe, out))  # the same command again
    latest = out / "checkpoints" / f"step_{killed_at:08d}"
    assert f"resuming from step {killed_at} of 40 ({latest})" in resumed and "trained 40 steps" in resumed
    reference = tmp_path / "reference"
    assert "starting at step 0 of 40" in _ok(_train(recipe, reference, "--resume"))  # --resume is still accepted
    a, b = load_file(str(out / "final_head.safetensors")), load_file(str(reference / "final_head.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit-identical
    steps = [int(line.split(",")[0]) for line in (out / "metrics.csv").read_text().splitlines()[1:]]
    assert steps[-1] == STEPS and steps[steps.index(killed_at) + 1] == killed_at + 1

    # Finished: the same command again trains nothing and says where the head is.
    before = (out / "final_head.safetensors").read_bytes()
    again = _ok(_train(recipe, out))
    assert f"is finished (step 40 of 40); its head is {out / 'final_head.safetensors'}" in again
    assert "trained" not in again and (out / "final_head.safetensors").read_bytes() == before

    # Another recipe in the same folder: one line naming --restart, nothing touched.
    refused = _train(recipe, out, "lr=1e-3")
    assert refused.exit_code == 2 and refused.output.count("\n") == 1, refused.output
    assert "another config (lr: 0.002 there, 0.001 now)" in refused.output and "--restart" in refused.output
    assert (out / "final_head.safetensors").read_bytes() == before

    # --restart starts over (here with fewer steps: max_iters may change between reruns).
    restarted = _ok(_train(recipe, out, "--restart", "lr=1e-3", "max_iters=6"))
    assert "restarting at step 0 of 6" in restarted and "trained 6 steps" in restarted
    assert sorted(p.name for p in (out / "checkpoints").glob("step_*")) == ["step_00000005", "step_00000006"]
    assert load_head_checkpoint(out / "final_head.safetensors")[2]["steps"] == 6


def test_a_finished_run_given_more_steps_trains_on(recipe, home, tmp_path):
    out = tmp_path / "run"
    _ok(_train(recipe, out, "max_iters=10"))
    more = _ok(_train(recipe, out, "max_iters=15"))
    assert "resuming from step 10 of 15" in more and "trained 15 steps" in more
    assert load_head_checkpoint(out / "final_head.safetensors")[2]["steps"] == 15
    past = _train(recipe, out, "max_iters=12")
    assert "already at step 15, past max_iters=12" in past.output and past.exit_code == 2


def test_restart_and_resume_from_do_not_mix(recipe, home, tmp_path):
    result = _train(recipe, tmp_path / "run", "--restart", "--resume-from", str(tmp_path))
    assert result.exit_code == 2 and "cannot be combined with --resume-from" in result.output


def test_dry_run_writes_nothing_outside_a_temporary_folder(recipe, home, tmp_path):
    out = tmp_path / "run"
    report = _ok(_train(recipe, out, "--dry-run", "--dry-run-steps", "1"))
    assert "dry run ok: 1 steps" in report and "nothing written" in report
    assert not out.exists()
    assert not any(home.rglob("*")), sorted(home.rglob("*"))  # no text-embedding cache in HOME
