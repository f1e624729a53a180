"""`regionspot predict --fast`: picks the fastest path whose accuracy and speed guard passed here; without verdicts
(or with verdicts recorded before the guard timed the paths) it runs fp32 and says in one line which command to run."""

import json

from typer.testing import CliRunner

from regionspot.cli import app
from regionspot.inference import fast
from regionspot.inference.fast import GUARD_COMMAND, GuardResult, PathSpeed, write_verdicts

runner = CliRunner()


def test_fast_uses_recorded_verdicts(tmp_path, monkeypatch):
    monkeypatch.setenv("REGIONSPOT_CACHE", str(tmp_path))
    monkeypatch.setattr(fast, "has_native_bf16", lambda device: False)
    write_verdicts({"int8": GuardResult(20, 0.1, 0.01, 1.0, 1.0)}, "cpu", speeds={"int8": PathSpeed(0.5, 1.0)})
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["predict", "--fast", "--device", "cpu", "--out", str(out), "--viz", str(tmp_path / "r.png")])
    assert result.exit_code == 0, result.output
    assert "--fast: int8 path" in result.output
    assert len(json.loads(out.read_text())["regions"]) >= 1


def test_fast_without_verdicts_names_the_command_and_runs_fp32(tmp_path, monkeypatch):
    monkeypatch.setenv("REGIONSPOT_CACHE", str(tmp_path))
    args = ["predict", "--fast", "--device", "cpu", "--out", str(tmp_path / "r.json"), "--viz", str(tmp_path / "r.png")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("--fast:")]
    assert "fp32 path" in line and GUARD_COMMAND in line
    assert not fast.verdicts_path().exists()  # predict made no verdicts itself
    assert json.loads((tmp_path / "r.json").read_text())["regions"]


def _fast_line(tmp_path) -> str:
    args = ["predict", "--fast", "--device", "cpu", "--out", str(tmp_path / "r.json"), "--viz", str(tmp_path / "r.png")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("--fast:")]
    return line


def test_a_slow_path_is_not_run_even_when_accurate(tmp_path, monkeypatch):
    """An accurate int8 that timed slower than fp32 here (as on an AVX2-only CPU): --fast runs fp32."""
    monkeypatch.setenv("REGIONSPOT_CACHE", str(tmp_path))
    monkeypatch.setattr(fast, "has_native_bf16", lambda device: False)
    write_verdicts({"int8": GuardResult(20, 0.1, 0.01, 1.0, 1.0)}, "cpu", speeds={"int8": PathSpeed(43.5, 42.2)})
    line = _fast_line(tmp_path)
    assert "fp32 path" in line and "no faster path" in line


def test_verdicts_without_speed_ask_for_a_rerun(tmp_path, monkeypatch):
    """A verdict file from before the speed check: fp32, and one line saying to re-run the guard."""
    monkeypatch.setenv("REGIONSPOT_CACHE", str(tmp_path))
    monkeypatch.setattr(fast, "has_native_bf16", lambda device: False)
    write_verdicts({"int8": GuardResult(20, 0.1, 0.01, 1.0, 1.0)}, "cpu")
    line = _fast_line(tmp_path)
    assert "fp32 path" in line and f"re-run `{GUARD_COMMAND}`" in line
