"""Exported ONNX model folders for the tests, made once per process: the embedded ShapesWorld model and any
model folder (e.g. the tiny random one of ``tests/conftest.py``)."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from regionspot.export.onnx import export_onnx
from regionspot.model import RegionSpot


@functools.cache
def exported(model: str | None = None) -> Path:
    """A folder with ``model`` (None: the embedded ShapesWorld model; else a model folder or head) exported to ONNX."""
    out = Path(tempfile.mkdtemp(prefix="regionspot_onnx_")) / "model-onnx"
    export_onnx(RegionSpot.from_pretrained(model, device="cpu"), out)
    return out
