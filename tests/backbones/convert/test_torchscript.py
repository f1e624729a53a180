"""Reading TorchScript archives without executing code: tensors come back, foreign globals are refused."""

from __future__ import annotations

import io
import os
import pickle
import zipfile

import pytest
import torch

from regionspot.backbones.convert.torchscript import read_torchscript_state_dict, torchscript_prefix
from regionspot.errors import CheckpointError


class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3, 2)
        self.register_buffer("scale", torch.tensor([1.5, -2.0], dtype=torch.float16))


def test_tensors_of_a_scripted_module_come_back_exactly(tmp_path, monkeypatch):
    torch.manual_seed(0)
    module = _Tiny()
    path = tmp_path / "tiny.pt"
    torch.jit.script(module).save(str(path))

    def forbidden(*args, **kwargs):
        raise AssertionError("torch.jit.load must not be called")

    monkeypatch.setattr(torch.jit, "load", forbidden)
    with zipfile.ZipFile(path) as archive:
        assert torchscript_prefix(archive) == "tiny/"
    state = read_torchscript_state_dict(path)
    assert set(state) == {"proj.weight", "proj.bias", "scale"}
    for key, value in module.state_dict().items():
        assert state[key].dtype == value.dtype and torch.equal(state[key], value), key


def test_a_plain_zip_is_not_an_archive(tmp_path):
    path = tmp_path / "plain.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes/readme.txt", "hello")
    with zipfile.ZipFile(path) as archive:
        assert torchscript_prefix(archive) is None
    with pytest.raises(CheckpointError, match="not a TorchScript archive"):
        read_torchscript_state_dict(path)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_archive_with_foreign_globals_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    buffer = io.BytesIO()
    pickle.dump({"visual": _Evil()}, buffer, protocol=2)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", buffer.getvalue())
        archive.writestr("evil/code/__torch__.py", "")
    with pytest.raises(CheckpointError, match="system"):
        read_torchscript_state_dict(path)
