"""The accuracy guard on a ShapesWorld val subset with the embedded (trained) models: every fast path must
keep ≥ 99 % of the fp32 path's top-1 classes (on this subset: all of them)."""

import pytest

from regionspot.inference.fast import GUARD_TOP1, passes_guard, read_verdicts
from regionspot.shapesworld.guard import run_ci_subset_guard


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    import os

    os.environ["REGIONSPOT_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    try:
        return {row.path: row for row in run_ci_subset_guard(["eager", "bf16", "int8", "compile"], num_images=3)}
    finally:
        del os.environ["REGIONSPOT_CACHE"]


@pytest.mark.parametrize("path", ["eager", "bf16", "int8", "compile"])
def test_fast_path_top1_agrees_with_fp32(rows, path):
    row = rows[path]
    assert row.result.regions >= 10
    assert row.result.top1_up_to_ties >= GUARD_TOP1 and passes_guard(row.result)
    assert row.result.top1 >= GUARD_TOP1  # on these 3 images no tie is reordered either
    assert abs(row.accuracy - row.reference_accuracy) <= 1 / row.result.regions


def test_eager_is_float_exact_and_reduced_precision_is_not(rows):
    assert rows["eager"].result.max_abs < 1e-3
    assert rows["bf16"].result.max_abs > rows["eager"].result.max_abs


def test_guard_records_verdicts(tmp_path, monkeypatch):
    monkeypatch.setenv("REGIONSPOT_CACHE", str(tmp_path))
    run_ci_subset_guard(["eager"], num_images=1)
    (verdicts,) = read_verdicts().values()
    assert set(verdicts) == {"eager"} and verdicts["eager"]["passed"] is True
