"""``regionspot cache`` through the command line: its flags build CacheConfig; a bad value's message names
the flag the user typed."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from regionspot.cli import app

runner = CliRunner()


@pytest.mark.parametrize(("args", "flag"), [
    (["--batch-size", "0"], "--batch-size must be"), (["--workers", "-1"], "--workers must be"),
    (["--dtype", "fp8"], "--dtype must be"), (["--preprocess", "other"], "--preprocess must be"),
])
def test_bad_values_name_their_flags(tmp_path, args, flag):
    annotations = tmp_path / "a.json"
    annotations.write_text("{}")
    result = runner.invoke(app, ["cache", "--dataset", str(annotations), "--images", str(tmp_path),
                                 "--out", str(tmp_path / "cache"), *args])
    assert result.exit_code == 2 and result.output.count("error:") == 1, result.output
    assert flag in result.output and "`" not in result.output


def test_a_missing_annotation_file_names_the_flag(tmp_path):
    result = runner.invoke(app, ["cache", "--dataset", str(tmp_path / "none.json"), "--images", str(tmp_path),
                                 "--out", str(tmp_path / "cache")])
    assert result.exit_code == 2 and "--dataset" in result.output and "none.json" in result.output
