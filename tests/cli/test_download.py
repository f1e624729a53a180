"""`regionspot download` and `regionspot models` as a user runs them, against the loopback release server."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from regionspot.cli import app
from regionspot.testing.release_server import make_release, release_catalog, release_server

runner = CliRunner()


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_release(tmp_path_factory.mktemp("release"))


def test_download_then_models_then_errors(release, tmp_path, monkeypatch):
    monkeypatch.setenv("REGIONSPOT_HOME", str(tmp_path / "home"))
    with release_server(release) as server:
        sources = tmp_path / "sources.json"
        sources.write_text(json.dumps(release_catalog(server.url, release).to_dict()))
        before = runner.invoke(app, ["models"])
        assert "BB" in before.output and "not downloaded; get it with `regionspot download BB`" in before.output
        done = runner.invoke(app, ["download", "BB", "--sources", str(sources), "--no-progress"])
        assert done.exit_code == 0, done.output
        assert f"registered BB in {tmp_path / 'home' / 'models' / 'BB'}" in done.output
        assert "sam_vit_b_01ec64.pth: verified (checksum: md5, sha256)" in done.output
        assert "licence of these weights: CC BY-NC" in done.output

        page = runner.invoke(app, ["download", "BL", "--sources", str(sources), "--no-progress"])
        assert page.exit_code == 2
        error = [line for line in page.stderr.splitlines() if line.strip()]
        assert len(error) == 1 and error[0].startswith("error: ") and "--from DIR" in error[0]

        missing = runner.invoke(app, ["download", "BB", "--from", str(tmp_path / "nope"), "--sources", str(sources)])
        assert missing.exit_code == 2 and "no such folder" in missing.stderr
    listed = runner.invoke(app, ["models"])
    row = next(line for line in listed.output.splitlines() if line.startswith("BB "))
    assert f"downloaded in {tmp_path / 'home' / 'models' / 'BB'}" in row
    assert "get it with `regionspot download BL`" in listed.output
