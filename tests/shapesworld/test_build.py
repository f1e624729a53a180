"""``regionspot shapesworld build``: the quick smoke build runs every stage and writes the table; the CLI prints it."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from regionspot.cli import app
from regionspot.inference.predictor import RegionSpotPredictor
from regionspot.model import RegionSpot
from regionspot.registry import assets_dir
from regionspot.shapesworld import build
from regionspot.shapesworld.build import BuildConfig, choose_example, run_build

ROWS = ("CLIP w/ box", "CLIP w/ mask", "RegionSpot (depth 3)", "RegionSpot, SAM token only", "RegionSpot, depth 1")


def test_quick_build_runs_every_stage_and_writes_the_table(tmp_path):
    record = run_build(tmp_path, BuildConfig.quick(), install=False, show_progress=False)
    table = record["metrics"]["table"]
    assert set(table) == set(ROWS)
    assert all(0.0 <= row["AP"] <= 1.0 for row in table.values())
    report = (tmp_path / "report.md").read_text()
    assert all(f"| {name} |" in report for name in ROWS)
    seconds = json.loads((tmp_path / "build.json").read_text())["seconds"]
    assert {"data", "clip", "sam", "cache", "head", "eval", "total"} <= set(seconds)
    for name in ("regionspot", "sam_token_only", "depth1"):
        assert (tmp_path / "runs" / name / "final_head.safetensors").is_file()


def test_chosen_example_is_labelled_right_by_the_model(tmp_path):
    shipped = assets_dir() / "shapesworld"
    example = choose_example(tmp_path, shipped / "head.safetensors", shipped / "sam", shipped / "clip", candidates=100)
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
    assert config == BuildConfig.quick() and install is False and resume is False

