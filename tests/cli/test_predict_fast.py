"""`regionspot predict --fast`: picks the fastest path whose guard passed here, running the guard once."""

import json

from typer.testing import CliRunner

from regionspot.cli import app
from regionspot.inference import fast
from regionspot.inference.fast import GuardResult, candidate_paths, write_verdicts

runner = CliRunner()


def test_fast_uses_recorded_verdicts(tmp_path, monkeypatch):
    monkeypatch.setenv("REGIONSPOT_CACHE", str(tmp_path))
    monkeypatch.setattr(fast, "has_native_bf16", lambda device: False)
    write_verdicts({"int8": GuardResult(20, 0.1, 0.01, 1.0, 1.0)}, "cpu")
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["predict", "--fast", "--device", "cpu", "--out", str(out), "--viz", str(tmp_path / "r.png")])
    assert result.exit_code == 0, result.output
    assert "--fast: int8 path" in result.output
    assert len(json.loads(out.read_text())["regions"]) >= 1


def test_fast_runs_the_guard_once_when_this_machine_has_no_verdicts(tmp_path, monkeypatch):
    import regionspot.shapesworld.guard as guard

    monkeypatch.setenv("REGIONSPOT_CACHE", str(tmp_path))
    calls = []

    def fake_guard(paths, device="cpu", **_kwargs):
        calls.append(list(paths))
        write_verdicts({p: GuardResult(20, 5.0, 1.0, 0.5, 0.5) for p in paths}, device)  # every path fails
        return []

    monkeypatch.setattr(guard, "run_guard", fake_guard)
    args = ["predict", "--fast", "--device", "cpu", "--out", str(tmp_path / "r.json"), "--viz", str(tmp_path / "r.png")]
    first = runner.invoke(app, args)
    second = runner.invoke(app, args)
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    assert calls == [candidate_paths("cpu")[:-1]]
    assert "--fast: fp32 path" in first.output and "--fast: fp32 path" in second.output
