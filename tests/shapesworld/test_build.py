"""``regionspot shapesworld build``: the quick smoke build runs every stage and writes the table; the CLI prints it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from regionspot.cli import app
from regionspot.errors import RegionSpotError
from regionspot.inference.predictor import RegionSpotPredictor
from regionspot.model import RegionSpot
from regionspot.registry import assets_dir
from regionspot.shapesworld import build
from regionspot.shapesworld.build import BuildConfig, run_build
from regionspot.shapesworld.ship import choose_example
from regionspot.shapesworld.world import WorldConfig

ROWS = ("CLIP w/ box", "CLIP w/ mask", "RegionSpot (depth 3)", "RegionSpot, SAM token only", "RegionSpot, depth 1")


@pytest.fixture(scope="module")
def quick_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("quick")
    return out, run_build(out, BuildConfig.quick(), install=False, show_progress=False)


def test_quick_build_runs_every_stage_and_writes_the_table(quick_build):
    tmp_path, record = quick_build
    table = record["metrics"]["table"]
    assert set(table) == set(ROWS)
    assert all(0.0 <= row["AP"] <= 1.0 for row in table.values())
    report = (tmp_path / "report.md").read_text()
    assert all(f"| {name} |" in report for name in ROWS)
    seconds = json.loads((tmp_path / "build.json").read_text())["seconds"]
    assert {"data", "clip", "sam", "cache", "head", "calibrate", "eval", "total"} <= set(seconds)
    assert record["metrics"]["calibrate"]["temperature"] > 0
    for name in ("regionspot", "sam_token_only", "depth1"):
        assert (tmp_path / "runs" / name / "final_head.safetensors").is_file()


def test_chosen_example_is_labelled_right_by_the_model(tmp_path):
    shipped = assets_dir() / "shapesworld"
    world = WorldConfig(**json.loads((shipped / "metrics.json").read_text())["ci_subset"]["world"])
    example = choose_example(tmp_path, shipped / "head.safetensors", shipped / "sam", shipped / "clip", candidates=100,
                             world=world, with_unknown=False)  # the rejection showcase: tests/shapesworld/test_ship.py
    assert example is not None
    predictor = RegionSpotPredictor(RegionSpot.from_pretrained(None, device="cpu"))
    predictor.set_image(example["file"])
    predictor.set_vocabulary([n for n in (shipped / "vocabulary.txt").read_text().splitlines() if n])
    assert list(predictor.predict(boxes=example["boxes"], top_k=1, return_masks=False).labels) == example["labels"]


def test_cli_build_chooses_the_config_and_prints_the_report(tmp_path, monkeypatch):
    calls = []

    def fake_run_build(out, config, install=False, show_progress=True, stop_after=None, resume=False):
        calls.append((config, install, resume))
        (out / "report.md").write_text("| RegionSpot (depth 3) | 1.0 |")
        return {"metrics": {}}

    monkeypatch.setattr(build, "run_build", fake_run_build)
    result = CliRunner().invoke(app, ["shapesworld", "build", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "| RegionSpot (depth 3) | 1.0 |" in result.output
    config, install, resume = calls[0]
    assert config == BuildConfig.quick() and install is False and resume is True
    CliRunner().invoke(app, ["shapesworld", "build", "--quick", "--fresh", "--out", str(tmp_path)])
    assert calls[1][2] is False
    CliRunner().invoke(app, ["shapesworld", "build", "--quick", "--sam-shape-loss", "0.5", "--out", str(tmp_path)])
    assert calls[2][0].sam.shape_loss_weight == 0.5 and BuildConfig.full("v2").sam.shape_loss_weight == 0.0
    bad = CliRunner().invoke(app, ["shapesworld", "build", "--sam-shape-loss", "-1", "--out", str(tmp_path)])
    assert bad.exit_code != 0 and "must be >= 0" in bad.output and len(calls) == 3



BUILD_SCRIPT = """
import sys
from regionspot.shapesworld.build import BuildConfig, run_build
run_build(sys.argv[1], BuildConfig.quick(), install=False, show_progress=False)
"""


def test_build_killed_mid_stage_resumes_and_gives_the_same_result(tmp_path, quick_build):
    reference, record = quick_build
    out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-c", BUILD_SCRIPT, str(out)], env={**os.environ, "PYTHONHASHSEED": "0"})
    try:
        deadline = time.monotonic() + 600
        while not (out / "stages" / "sam.json").is_file():  # kill while the cache stage runs
            assert process.poll() is None and time.monotonic() < deadline, "the build ended before it could be killed"
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not (out / "stages" / "eval.json").is_file()

    resumed = run_build(out, BuildConfig.quick(), install=False, show_progress=False)
    assert resumed["metrics"]["table"] == record["metrics"]["table"]
    assert resumed["metrics"]["calibrate"] == record["metrics"]["calibrate"]
    for name in ("regionspot", "sam_token_only", "depth1"):
        ours = load_file(out / "runs" / name / "final_head.safetensors")
        theirs = load_file(reference / "runs" / name / "final_head.safetensors")
        assert ours.keys() == theirs.keys() and all((ours[k] == theirs[k]).all() for k in ours), name
    for backbone in ("clip", "sam"):  # finished before the kill: kept, not retrained
        assert resumed["seconds"][backbone] == json.loads((out / "stages" / f"{backbone}.json").read_text())["seconds"]
    with pytest.raises(RegionSpotError, match="--fresh"):
        run_build(out, BuildConfig.quick("v1"), install=False, show_progress=False)


def test_reused_backbones_are_copied_with_their_figures_and_the_cli_flag_points_at_the_installed_ones(tmp_path,
                                                                                                       monkeypatch):
    from dataclasses import replace

    shipped = assets_dir() / "shapesworld"
    stages = build._Build(tmp_path, replace(BuildConfig.quick(), backbones_from=str(shipped)), show_progress=False)
    clip, sam = stages.stage_clip(), stages.stage_sam()
    assert (tmp_path / "clip" / "model.safetensors").read_bytes() == (shipped / "clip" / "model.safetensors").read_bytes()
    assert (tmp_path / "sam" / "config.json").is_file()
    recorded = json.loads((shipped / "metrics.json").read_text())
    assert clip["zero_shot_top1"] == recorded["clip_zero_shot_top1"] and sam["miou_box"] == recorded["sam_miou"]["miou_box"]
    empty = build._Build(tmp_path / "b", replace(BuildConfig.quick(), backbones_from=str(tmp_path / "none")), False)
    with pytest.raises(RegionSpotError, match="holds no model"):
        empty.stage_clip()
    calls = []
    monkeypatch.setattr(build, "run_build", lambda out, config, **_: calls.append(config) or {"metrics": {}})
    result = CliRunner().invoke(app, ["shapesworld", "build", "--reuse-backbones", "--out", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert calls[0].backbones_from == str(shipped) and calls[0].clip == BuildConfig.full().clip
    assert (calls[0].negatives_per_image, calls[0].vocabulary_drop) == (0, 0.0)  # the shipped recipe has none
    CliRunner().invoke(app, ["shapesworld", "build", "--negatives-per-image", "8", "--vocabulary-drop", "0.25",
                             "--out", str(tmp_path / "d")])
    assert (calls[1].negatives_per_image, calls[1].vocabulary_drop, calls[1].backbones_from) == (8, 0.25, None)
