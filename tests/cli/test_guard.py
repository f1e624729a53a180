"""`regionspot guard`: the command `predict --fast` names; it prints the guard table and records the verdicts
that `predict --fast` then uses."""

import json

from typer.testing import CliRunner

from regionspot.cli import app
from regionspot.inference import fast

runner = CliRunner()


def test_guard_records_the_verdicts_predict_fast_reads(tmp_path, monkeypatch):
    monkeypatch.setenv("REGIONSPOT_CACHE", str(tmp_path))
    result = runner.invoke(app, ["guard", "--num-images", "2", "--path", "eager"])
    assert result.exit_code == 0, result.output
    (header,) = [line for line in result.output.splitlines() if line.startswith("| path |")]
    assert "| accuracy | ms / image (path / fp32) | speed-up | speed | --fast may pick |" in header
    (row,) = [line for line in result.output.splitlines() if line.startswith("| eager |")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[8] == "pass"  # eager is fp32 arithmetic with another attention kernel
    assert cells[10].endswith("×") and cells[12] == "no"  # timed; never a --fast candidate
    recorded = json.loads(fast.verdicts_path().read_text())
    (verdicts,) = recorded.values()
    assert verdicts["eager"]["passed"] is True and verdicts["eager"]["speed"]["fp32_seconds"] > 0
    assert fast.GUARD_COMMAND == "regionspot guard"


def test_guard_refuses_half_a_dataset_in_one_line(tmp_path):
    result = runner.invoke(app, ["guard", "--data", str(tmp_path / "val.json")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("error:") and "--images" in result.output
