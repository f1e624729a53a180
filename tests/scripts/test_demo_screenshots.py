"""The README's demo screenshots show the model that ships: docs/demo_screenshots.json, written by
scripts/demo_screenshots.py beside the pictures, must match the embedded model and the pictures."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RERUN = "the demo screenshots are stale; regenerate them: python scripts/demo_screenshots.py"


def load_script():
    spec = importlib.util.spec_from_file_location("demo_screenshots", ROOT / "scripts" / "demo_screenshots.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script():
    return load_script()


@pytest.fixture(scope="module")
def record(script):
    path = script.DOCS / script.RECORD
    assert path.is_file(), f"{path} is missing; {RERUN}"
    return json.loads(path.read_text())


def test_the_screenshots_show_the_shipped_model(script, record):
    now = script.shipped_model()  # loads the embedded model: a few seconds
    recorded = {key: record.get(key) for key in now}
    assert recorded == now, f"{RERUN} (recorded {recorded}, shipped {now})"


def test_the_screenshots_are_the_recorded_files(script, record):
    assert sorted(record["files"]) == sorted(script.SHOTS)
    for name, digest in record["files"].items():
        path = script.DOCS / name
        assert path.is_file() and script.sha256(path) == digest, f"{name} differs from the recorded one; {RERUN}"


def test_a_changed_model_is_caught(script, record, monkeypatch):
    """The check can fail: another head (one tensor changed) gives another fingerprint."""
    import torch

    from regionspot.model import RegionSpot

    original = RegionSpot.from_pretrained

    def changed(*args, **kwargs):
        model = original(*args, **kwargs)
        with torch.no_grad():
            next(model.head.parameters()).view(-1)[0] += 1.0
        return model

    monkeypatch.setattr(RegionSpot, "from_pretrained", changed)
    now = script.shipped_model()
    assert now["weights_fingerprint"]["head"] != record["weights_fingerprint"]["head"]
    assert now["weights_fingerprint"]["segmenter"] == record["weights_fingerprint"]["segmenter"]
