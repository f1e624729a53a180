"""The ShapesWorld table: GT-box evaluation of the CLIP baselines and a build's heads, and its Markdown.

Every number is box AP (and mask AP from SAM) with ground-truth boxes on ShapesWorld val, from
``evaluate_dataset`` on CPU; rows are {title: {"APr", "APc", "APf", "AP"[, "mask AP"]}} as fractions and
the Markdown shows them × 100.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def evaluate_methods(annotations: Path, image_root: Path, out: Path, methods: tuple[str, ...], head: Path | None,
                     sam: Path, clip: Path, limit: int | None, text_cache: Path, show_progress: bool,
                     iou_types: tuple[str, ...] = ("bbox", "segm")) -> Any:
    """One GT-box evaluation of ``methods`` on CPU into ``out`` (started afresh); the ``EvalSummary``.

    head: the head file for "regionspot" (None for the CLIP baselines alone); sam / clip: backbone folders.
    """
    from regionspot.engine.config import EvalOptions
    from regionspot.engine.evaluate import evaluate_dataset, load_parts

    segmenter, vision_language, model = load_parts(methods, None if head is None else str(head), str(sam), str(clip),
                                                   device="cpu")
    options = EvalOptions(methods=methods, iou_types=iou_types, limit=limit, text_cache_dir=str(text_cache),
                          overwrite=True)
    return evaluate_dataset(annotations, image_root, out, segmenter=segmenter, vision_language=vision_language,
                            model=model, options=options, show_progress=show_progress)


def table_rows(summary: Any, names: dict[str, str]) -> dict[str, dict[str, float]]:
    """{row title: {"APr", "APc", "APf", "AP"[, "mask AP"]}} (fractions) of the methods ``names`` maps to titles.

    summary: an ``EvalSummary`` (or None: no rows).
    """
    from regionspot.engine.evaluate import ROW_NAMES

    rows = {}
    for key, title in names.items():
        result = summary.results.get(ROW_NAMES.get(key, key)) if summary is not None else None
        if not result:
            continue
        box = result.get("bbox")
        mask = result.get("segm")
        row = {m: getattr(box, m) for m in ("APr", "APc", "APf", "AP")} if box is not None else {}
        if mask is not None:
            row["mask AP"] = mask.AP
        rows[title] = row
    return rows


def _fmt(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def table_markdown(rows: dict[str, dict[str, float]], title: str) -> str:
    """The Markdown table: box AP by frequency bucket (+ mask AP), × 100."""
    lines = [f"### {title}", "", "| Method | APr | APc | APf | AP | mask AP |", "|---|---:|---:|---:|---:|---:|"]
    for name, row in rows.items():
        cells = [_fmt(row.get(m)) for m in ("APr", "APc", "APf", "AP", "mask AP")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def evaluate_rows(out: Path, limit: int | None = None, show_progress: bool = True) -> dict[str, dict[str, float]]:
    """Evaluate the CLIP baselines and the three heads of the build in ``out`` on its val split.

    limit: evaluate only the first ``limit`` val images. Returns the table rows (see ``table_rows``).
    """
    data_dir = out / "data"
    val_json = data_dir / "annotations" / "val.json"
    rows: dict[str, dict[str, float]] = {}
    summary = evaluate_methods(val_json, data_dir, out / "eval" / "clip", ("clip-box", "clip-mask"), None,
                               out / "sam", out / "clip", limit, out / "text_cache", show_progress)
    rows.update(table_rows(summary, {"clip-box": "CLIP w/ box", "clip-mask": "CLIP w/ mask"}))
    for name, title in (("regionspot", "RegionSpot (depth 3)"), ("sam_token_only", "RegionSpot, SAM token only"),
                        ("depth1", "RegionSpot, depth 1")):
        head = out / "runs" / name / "final_head.safetensors"
        summary = evaluate_methods(val_json, data_dir, out / "eval" / name, ("regionspot",), head, out / "sam",
                                   out / "clip", limit, out / "text_cache", show_progress)
        rows.update(table_rows(summary, {"regionspot": title}))
    return rows


def report_markdown(record: dict[str, Any]) -> str:
    """The build report: the AP table, backbone metrics and stage timings."""
    metrics = record["metrics"]
    text = table_markdown(metrics.get("table", {}), "ShapesWorld val, GT boxes (box AP × 100; mask AP from SAM)")
    clip = metrics.get("clip", {})
    sam = metrics.get("sam", {})
    if clip:
        buckets = ", ".join(f"{k}: {100 * v:.1f}" for k, v in clip.get("zero_shot_by_bucket", {}).items())
        classes = sum(metrics.get("data", {}).get("buckets", {}).values()) or "all"
        text += (f"\nTiny CLIP zero-shot top-1 on held-out crops ({classes} classes, template ensemble): "
                 f"{100 * clip['zero_shot_top1']:.1f}% ({buckets}); {clip['steps']} steps.\n")
    if sam:
        text += (f"\nTiny SAM val mask mIoU: box {100 * sam['miou_box']:.1f}, point {100 * sam['miou_point']:.1f}; "
                 f"{sam['steps']} steps.\n")
    calibration = metrics.get("calibrate", {})
    if calibration:
        text += (f"\nDisplay temperature {calibration['temperature']:.3f} (fitted on {calibration['regions']} val "
                 f"regions): mean top-1 confidence {100 * calibration['mean_confidence_before']:.1f}% → "
                 f"{100 * calibration['mean_confidence_after']:.1f}% at top-1 accuracy {100 * calibration['top1']:.1f}%.\n")
    seconds = {k: v for k, v in record["seconds"].items() if isinstance(v, (int, float))}
    text += "\nStage times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()) + "\n"
    return text
