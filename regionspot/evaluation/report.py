"""Evaluation reports: a Markdown table in the paper's columns, JSON, per-category CSV and a bar chart.

Input is one or more rows (e.g. "RegionSpot-BL GT boxes"), each with a box EvalResult and optionally a
mask EvalResult. Numbers in the table are AP × 100 with one decimal; the JSON keeps the EvalResult's
fractions (NaN as null) so it can be compared exactly.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

from regionspot.evaluation.lvis import EvalResult

__all__ = ["write_report", "TABLE_METRICS"]

TABLE_METRICS = ("APr", "APc", "APf", "AP", "AP50", "AP75")
IOU_TYPES = (("bbox", "Box AP"), ("segm", "Mask AP"))
REPORT_FILES = {
    "markdown": "report.md",
    "json": "report.json",
    "csv": "per_category.csv",
    "png": "ap_by_frequency.png",
}


def _fmt(x: float) -> str:
    return "–" if x is None or math.isnan(x) else f"{100 * x:.1f}"


def _proposals(meta: dict, row: str) -> str:
    p = meta.get("proposals", "")
    return str(p.get(row, "")) if isinstance(p, dict) else str(p)


def _skipped_lines(meta: dict) -> list[str]:
    lines = []
    for key, title in (("skipped_images", "Skipped images"), ("failed_images", "Failed images")):
        items = meta.get(key) or []
        if not items:
            continue
        lines += ["", f"## {title} ({len(items)})", ""]
        for item in items:
            if isinstance(item, dict):
                lines.append(f"- {item.get('image_id', '?')}: {item.get('reason', '')}".rstrip(": "))
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                lines.append(f"- {item[0]}: {item[1]}")
            else:
                lines.append(f"- {item}")
    return lines


def _markdown(rows: dict[str, dict[str, EvalResult | None]], meta: dict) -> str:
    lines = [f"# {meta.get('title', 'LVIS evaluation')}", ""]
    info = [
        f"{k}: {v}"
        for k, v in meta.items()
        if k not in ("title", "proposals", "skipped_images", "failed_images") and not isinstance(v, (dict, list))
    ]
    if info:
        lines += [f"- {x}" for x in info] + [""]
    for iou_type, label in IOU_TYPES:
        present = {name: r[iou_type] for name, r in rows.items() if r.get(iou_type) is not None}
        if not present:
            continue
        lines += [f"## {label}", ""]
        lines.append("| Method | Proposals | " + " | ".join(TABLE_METRICS) + " |")
        lines.append("|---|---|" + "---:|" * len(TABLE_METRICS))
        for name, res in present.items():
            cells = [_fmt(getattr(res, m)) for m in TABLE_METRICS]
            lines.append(f"| {name} | {_proposals(meta, name)} | " + " | ".join(cells) + " |")
        first = next(iter(present.values()))
        cap = (
            "fixed AP (10,000 per category)"
            if first.fixed_ap
            else f"max {first.max_dets_per_image} per image"
        )
        lines += ["", f"AP × 100, LVIS federated evaluation ({first.backend}, {cap}).", ""]
    lines += _skipped_lines(meta)
    return "\n".join(lines).rstrip() + "\n"


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return str(x)


def _write_csv(path: Path, rows: dict[str, dict[str, EvalResult | None]]) -> None:
    columns: list[tuple[str, EvalResult]] = []
    for name, r in rows.items():
        for iou_type, _ in IOU_TYPES:
            if r.get(iou_type) is not None:
                columns.append((f"AP[{name}|{iou_type}]", r[iou_type]))
    categories: dict[int, tuple[str, str]] = {}
    per_col: list[dict[int, float]] = []
    for _, res in columns:
        per_col.append({c.category_id: c.ap for c in res.per_category})
        for c in res.per_category:
            categories.setdefault(c.category_id, (c.name, c.frequency))
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["category_id", "name", "frequency", *[h for h, _ in columns]])
        for cid in sorted(categories):
            name, freq = categories[cid]
            aps = [col.get(cid, math.nan) for col in per_col]
            w.writerow([cid, name, freq, *["" if math.isnan(a) else f"{a:.6f}" for a in aps]])


def _write_png(path: Path, rows: dict[str, dict[str, EvalResult | None]], title: str) -> None:
    from regionspot.evaluation.chart import BUCKETS, draw_bar_chart

    series = []
    for name, r in rows.items():
        for iou_type, label in IOU_TYPES:
            if r.get(iou_type) is not None:
                values = [getattr(r[iou_type], bucket) for bucket, _ in BUCKETS]
                series.append((f"{name} ({label.split()[0].lower()})",
                               [0.0 if math.isnan(v) else 100 * v for v in values]))
    draw_bar_chart(path, series, title)


def write_report(
    out_dir: str | os.PathLike,
    results_by_row: dict[str, dict[str, EvalResult | None]],
    meta: dict | None = None,
) -> dict[str, Path]:
    """Write report.md, report.json, per_category.csv and ap_by_frequency.png under ``out_dir``.

    results_by_row: row name (method) -> {"bbox": EvalResult, "segm": EvalResult or None}.
    meta: free-form run information shown in the report; recognised keys: "title", "proposals" (str or
        row -> str, the Proposals column), "skipped_images" / "failed_images" (list of image ids,
        (image_id, reason) pairs or {"image_id", "reason"} dicts), listed at the end of the Markdown.
    Returns {"markdown", "json", "csv", "png"} -> path written.
    """
    meta = dict(meta or {})
    if not results_by_row:
        raise ValueError("results_by_row is empty: pass at least one row with a 'bbox' EvalResult")
    for name, r in results_by_row.items():
        if not isinstance(r, dict) or not any(isinstance(r.get(t), EvalResult) for t, _ in IOU_TYPES):
            raise ValueError(f"row {name!r} must be a dict with a 'bbox' and/or 'segm' EvalResult")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {kind: out / fname for kind, fname in REPORT_FILES.items()}
    paths["markdown"].write_text(_markdown(results_by_row, meta))
    document = {
        "meta": _json_safe(meta),
        "rows": {
            name: {t: (r[t].to_dict() if r.get(t) is not None else None) for t, _ in IOU_TYPES}
            for name, r in results_by_row.items()
        },
    }
    paths["json"].write_text(json.dumps(document, indent=2, allow_nan=False))
    _write_csv(paths["csv"], results_by_row)
    _write_png(paths["png"], results_by_row, str(meta.get("title", "LVIS AP by frequency")))
    return paths
