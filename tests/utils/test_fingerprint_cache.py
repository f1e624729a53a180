import os

import pytest
from torch import nn

from regionspot.utils import fingerprint_cache
from regionspot.utils.fingerprint import weights_fingerprint
from regionspot.utils.fingerprint_cache import cached_weights_fingerprint, weight_files


@pytest.fixture()
def weights(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x" * 10)
    (tmp_path / "config.json").write_text("{}")
    return tmp_path


def test_cached_fingerprint_equals_the_computed_one_and_is_reused(weights, tmp_path, monkeypatch):
    model, store = nn.Linear(3, 2), tmp_path / "store.json"
    files = weight_files(weights)
    assert [p.name for p in files] == ["model.safetensors"]
    first = cached_weights_fingerprint(model, files, store)
    assert first == weights_fingerprint(model)

    def fail(_model):
        raise AssertionError("recomputed")

    monkeypatch.setattr(fingerprint_cache, "weights_fingerprint", fail)
    assert cached_weights_fingerprint(model, files, store) == first


def test_a_touched_file_or_no_files_recomputes(weights, tmp_path, monkeypatch):
    model, store = nn.Linear(3, 2), tmp_path / "store.json"
    files = weight_files(weights)
    cached_weights_fingerprint(model, files, store)
    calls = []
    monkeypatch.setattr(fingerprint_cache, "weights_fingerprint", lambda m: calls.append(1) or "recomputed")
    stat = files[0].stat()
    os.utime(files[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert cached_weights_fingerprint(model, files, store) == "recomputed"
    assert cached_weights_fingerprint(model, [], store) == "recomputed" and len(calls) == 2
    assert weight_files(tmp_path / "missing") == []
