"""The backends' accuracy guard on the first CI-subset ShapesWorld val images with the embedded model: every
backend keeps torch fp32's top-1 classes (up to ties) within the guard's logit error, and the table says so."""

from __future__ import annotations

import pytest

from regionspot.evaluation.guard import guard_table
from regionspot.inference.fast import GUARD_TOP1, passes_guard
from regionspot.shapesworld.guard import run_ci_subset_backend_guard

pytest.importorskip("onnxruntime")
BACKENDS = ["onnxruntime", "onnxruntime-int8", "openvino", "openvino-bf16"]


@pytest.fixture(scope="module")
def rows():
    import importlib.util

    from regionspot.testing.onnx_models import exported, forced_isa

    names = [b for b in BACKENDS if "openvino" not in b or importlib.util.find_spec("openvino")]
    if forced_isa():  # OpenVINO cannot build bf16 kernels there (its refusal: tests/inference/test_backends.py)
        names.remove("openvino-bf16")
    rows = run_ci_subset_backend_guard(names, num_images=2, threads=1, onnx_dir=exported(None))
    return {row.path: row for row in rows}


@pytest.mark.parametrize("name", BACKENDS)
def test_each_backend_passes_the_guard(rows, name):
    if name not in rows:
        pytest.skip("openvino is not installed, or cannot build bf16 kernels under a forced ISA")
    row = rows[name]
    assert row.result.regions >= 5
    assert row.result.top1_up_to_ties >= GUARD_TOP1 and passes_guard(row.result)
    assert abs(row.accuracy - row.reference_accuracy) <= 1 / row.result.regions


def test_fp32_backends_are_float_exact_and_lossy_ones_are_not(rows):
    assert rows["onnxruntime"].result.max_abs < 1e-3
    assert rows["onnxruntime-int8"].result.max_abs > rows["onnxruntime"].result.max_abs


def test_guard_table_has_a_row_per_backend(rows):
    lines = guard_table(list(rows.values()))
    accuracy = [cell.strip() for cell in lines[0].split("|")].index("accuracy")
    assert len(lines) == 2 + len(rows) and all(line.split("|")[accuracy].strip() == "pass" for line in lines[2:])
