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


def test_guard_backend_records_what_backend_auto_reads(tmp_path, monkeypatch):
    from regionspot.inference import backend_choice

    monkeypatch.setenv("REGIONSPOT_CACHE", str(tmp_path))
    result = runner.invoke(app, ["guard", "--num-images", "2", "--backend", "onnxruntime"])
    assert result.exit_code == 0, result.output
    (header,) = [line for line in result.output.splitlines() if line.startswith("| path |")]
    assert header.rstrip().endswith("| --backend auto may pick |")
    (row,) = [line for line in result.output.splitlines() if line.startswith("| onnxruntime |")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[8] == "pass" and cells[10].endswith("×")  # fp32 graphs: float error only; timed against torch
    (machine,) = json.loads(backend_choice.backend_verdicts_path().read_text()).values()
    verdict = machine["shapesworld"]["onnxruntime"]
    assert verdict["passed"] is True and verdict["torch_seconds"] > 0 and verdict["seconds"] > 0
    assert verdict["pays_off"] == (cells[12] == "yes")


def test_guard_backend_refusals_are_one_line():
    for args, words in ((["--backend", "torch"], "reference itself"), (["--backend", "onnxruntime", "--path", "bf16"],
                        "one kind per run"), (["--backend", "cuda-magic"], "--backend must be one of")):
        result = runner.invoke(app, ["guard", *args])
        assert result.exit_code == 2, result.output
        assert result.output.strip().splitlines()[-1].startswith("error:") and words in result.output
