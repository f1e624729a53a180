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


def forced_isa() -> bool:
    """Whether oneDNN is held below the CPU's own instruction set (``ONEDNN_MAX_CPU_ISA``, as the test suite's
    forced-AVX2 pass sets it): OpenVINO plans its bf16 kernels from the CPU's flags and cannot build them then."""
    import os

    return bool(os.environ.get("ONEDNN_MAX_CPU_ISA"))
