"""Report files are written and parse back to the EvalResult numbers."""

from __future__ import annotations

import csv
import json
import math

import pytest
from PIL import Image

from regionspot.evaluation.lvis import METRIC_NAMES, CategoryAP, EvalResult
from regionspot.evaluation.report import write_report


def _result(iou_type: str, base: float) -> EvalResult:
    cats = [
        CategoryAP(1, "apple", "f", base),
        CategoryAP(2, "boat", "c", base / 2),
        CategoryAP(3, "cassette", "r", math.nan),
    ]
    values = {name: base + 0.01 * i for i, name in enumerate(METRIC_NAMES)}
    values["APl"] = math.nan
    return EvalResult(
        iou_type=iou_type,
        backend="faster_coco_eval",
        per_category=cats,
        num_images=4,
        num_detections=9,
        **values,
    )


@pytest.fixture()
def rows():
    return {
        "RegionSpot-BL": {"bbox": _result("bbox", 0.2345), "segm": _result("segm", 0.1234)},
        "CLIP crop": {"bbox": _result("bbox", 0.05), "segm": None},
    }


def test_report_files_written_and_parseable(tmp_path, rows):
    meta = {
        "title": "LVIS val (tiny)",
        "proposals": {"RegionSpot-BL": "GT", "CLIP crop": "GT"},
        "skipped_images": [(17, "unreadable PNG")],
        "failed_images": [{"image_id": 23, "reason": "out of memory"}],
    }
    paths = write_report(tmp_path / "out", rows, meta)
    assert set(paths) == {"markdown", "json", "csv", "png"} and all(p.exists() for p in paths.values())

    md = paths["markdown"].read_text()
    assert "| Method | Proposals | APr | APc | APf | AP | AP50 | AP75 |" in md
    bl = rows["RegionSpot-BL"]["bbox"]
    expected_cells = [f"{100 * getattr(bl, m):.1f}" for m in ("APr", "APc", "APf", "AP", "AP50", "AP75")]
    assert "| RegionSpot-BL | GT | " + " | ".join(expected_cells) + " |" in md
    assert "## Mask AP" in md and md.count("| CLIP crop |") == 1  # no mask row for CLIP crop
    assert "17: unreadable PNG" in md and "23: out of memory" in md

    doc = json.loads(paths["json"].read_text())
    for name, by_type in rows.items():
        for iou_type, res in by_type.items():
            got = doc["rows"][name][iou_type]
            if res is None:
                assert got is None
                continue
            for metric, value in res.metrics().items():
                assert (got[metric] is None) if math.isnan(value) else got[metric] == value
            assert [c["ap"] for c in got["per_category"]] == [
                None if math.isnan(c.ap) else c.ap for c in res.per_category
            ]
    assert doc["meta"]["title"] == "LVIS val (tiny)"

    with open(paths["csv"]) as f:
        table = list(csv.DictReader(f))
    assert [int(r["category_id"]) for r in table] == [1, 2, 3]
    assert table[0]["name"] == "apple" and table[2]["frequency"] == "r"
    assert float(table[0]["AP[RegionSpot-BL|bbox]"]) == pytest.approx(0.2345)
    assert float(table[1]["AP[RegionSpot-BL|segm]"]) == pytest.approx(0.1234 / 2)
    assert table[2]["AP[CLIP crop|bbox]"] == ""  # NaN: no ground truth
    assert "AP[CLIP crop|segm]" not in table[0]

    with Image.open(paths["png"]) as im:
        im.load()
        assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100


def test_report_rejects_empty_rows(tmp_path):
    with pytest.raises(ValueError, match="EvalResult"):
        write_report(tmp_path, {"x": {"bbox": None}}, {})
