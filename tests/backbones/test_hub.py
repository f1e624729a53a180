"""A hub id that cannot be reached: one line, at once, that names `regionspot download` and `--from`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from regionspot.backbones import hub
from regionspot.backbones.segmenter import load_segmenter
from regionspot.errors import WeightsNotFoundError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:  # bound, never listening: connections are refused
        probe.bind(("127.0.0.1", 0))
        yield probe.getsockname()[1]


@pytest.fixture
def unreachable_hub(monkeypatch, tmp_path, closed_port):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "_UNREACHABLE", {})
    return closed_port


def test_an_unreachable_hub_fails_within_two_seconds(unreachable_hub, tiny_sam_dir):
    load_segmenter(str(tiny_sam_dir))  # transformers' lazy imports happen here, not in the timed call
    start = time.perf_counter()
    with pytest.raises(WeightsNotFoundError) as error:
        load_segmenter("facebook/sam-vit-base")
    assert time.perf_counter() - start < 2.0
    message = str(error.value)
    assert f"the hub http://127.0.0.1:{unreachable_hub} is unreachable" in message and "\n" not in message
    assert "`regionspot download BB|BL|BL@336`" in message and "--from DIR" in message


def test_the_cli_says_it_in_exactly_one_line(unreachable_hub, tmp_path):
    image = tmp_path / "photo.png"
    Image.new("RGB", (64, 48), "white").save(image)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "regionspot.cli", "predict", str(image), "--vocab", "cat,dog", "--boxes",
                          "1,1,20,20", "--sam", "facebook/sam-vit-base", "--device", "cpu", "--out",
                          str(tmp_path / "r.json")], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Cannot load the SAM config"), run.stderr
    assert "regionspot download" in lines[0] and "--from DIR" in lines[0] and "Retrying" not in run.stderr


def test_a_reachable_hub_is_not_reported(monkeypatch):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{listener.getsockname()[1]}")
        monkeypatch.setattr(hub, "_UNREACHABLE", {})
        assert hub.hub_unreachable() is None
