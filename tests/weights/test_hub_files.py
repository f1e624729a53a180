"""Hub repositories file by file: the listing's checksums, which files a transformers folder needs."""

from __future__ import annotations

import pytest

from regionspot.errors import DownloadError
from regionspot.testing.release_server import LoopbackServer
from regionspot.weights.hub_files import HubFile, download_files, list_files, model_files
from regionspot.weights.sources import HubRepo


def _file(path: str) -> HubFile:
    return HubFile(path, 1, None, None)


def test_one_weights_format_per_folder_and_no_other_frameworks():
    names = ["config.json", "model.safetensors", "pytorch_model.bin", "tf_model.h5", "flax_model.msgpack", "README.md",
             ".gitattributes", "merges.txt", "vocab.json", "sam/config.json", "sam/pytorch_model.bin", "onnx/model.onnx"]
    kept = [f.path for f in model_files([_file(n) for n in names])]
    assert kept == ["config.json", "model.safetensors", "merges.txt", "vocab.json", "sam/config.json", "sam/pytorch_model.bin"]


def test_files_are_checked_against_the_published_checksums(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "config.json").write_text('{"a": 1}')
    (repo / "model.safetensors").write_bytes(b"\0" * 1000)
    with LoopbackServer(repos={"org/m": repo}) as server:
        source = HubRepo("org/m", endpoint=f"{server.url}/hub")
        commit, files = list_files(source)
        assert {f.path: bool(f.sha256) for f in files} == {"config.json": False, "model.safetensors": True}
        download_files(source, commit, files, tmp_path / "out", progress=False)
        assert (tmp_path / "out" / "config.json").read_text() == '{"a": 1}'
        (repo / "config.json").write_text('{"a": 2}')  # the served file no longer matches its listing
        stale = [HubFile("config.json", 8, None, files[0].git_sha1)]
        with pytest.raises(DownloadError, match=r"Checksum mismatch for org/m/config.json: git-sha1"):
            download_files(source, commit, stale, tmp_path / "again", progress=False)
        with pytest.raises(DownloadError, match=r"has no model 'org/none' at revision 'main' \(HTTP 404\)"):
            list_files(HubRepo("org/none", endpoint=f"{server.url}/hub"))
