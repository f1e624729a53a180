"""The Markdown table of ``benchmarks/speed/speed.py`` from its JSON report (also usable on a saved JSON file).

    python benchmarks/speed/speed_table.py docs/speed.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

_CLIP_NAMES = {"BB": "CLIP ViT-B/16 feature map (224²)", "BL": "CLIP ViT-L/14 feature map (224²)",
               "BL@336": "CLIP ViT-L/14 feature map (336²)"}


def _cell(seconds: float | None, flops: int | None, peak: float, base: float | None) -> str:
    """'1.23 s · 45 % · 2.1×': time, share of the matching GEMM peak, speed-up over the reference."""
    if seconds is None:
        return "—"
    text = f"{seconds:.2f} s"
    if flops:
        text += f" · {100 * flops / seconds / (peak * 1e9):.0f} %"
    if base:
        text += f" · {base / seconds:.2f}×"
    return text


def _probe_lines(machine: dict) -> list[str]:
    """The GEMM probe's two readings (before / after the stages) and which one the peaks above use."""
    if "gemm_probe_before" not in machine:
        return []
    readings = [(when, machine.get(f"gemm_probe_{when}")) for when in ("before", "after")]
    parts = [f"{when} the stages fp32 {probe['fp32']['gflops']:.0f} ({probe['fp32']['shape']}), bf16 "
             f"{probe['bf16']['gflops']:.0f} ({probe['bf16']['shape']})" for when, probe in readings if probe]
    first = machine["gemm_probe_before"]["fp32"]
    return ["", f"GEMM probe (best of {first.get('repeats', 3)} over shapes " + ", ".join(first["per_shape"])
            + "), GFLOP/s: " + "; ".join(parts) + " — the peaks above are the larger reading."]


def markdown(report: dict) -> str:
    """The whole table: machine line, one row per stage, columns = reference and each library path."""
    machine, flops, seconds = report["machine"], report["flops"], report["seconds"]
    paths = list(seconds)
    variant = machine.get("variant", "BL")
    peaks = {p: machine["gemm_bf16_gflops"] if p.endswith("bf16") else machine["gemm_fp32_gflops"] for p in paths}
    lines = [
        f"Variant {variant}. CPU: {machine['cpu']} ({machine['flags']}); torch {machine['torch']}, {machine['threads']} thread(s); "
        f"measured GEMM peak fp32 {machine['gemm_fp32_gflops']:.0f} GFLOP/s, bf16 {machine['gemm_bf16_gflops']:.0f} GFLOP/s"
        + (f"; fp32 on SAM's MLP shape (4096×768 @ 768×3072) {machine['gemm_fp32_sam_mlp_gflops']:.0f} GFLOP/s."
           if "gemm_fp32_sam_mlp_gflops" in machine else "."),
        *_probe_lines(machine),
        "",
        "Cells: median seconds · % of the path's GEMM peak (bf16 peak for the bf16 paths, fp32 peak otherwise; int8 "
        "against fp32) · speed-up over the reference in the same run. Torch paths: fp32 (the default), bf16, int8 "
        "(`--fast`'s candidates); ONNX backends: the exported graphs (`--backend`), whose decoder row with masks "
        "includes making the full-size masks from the low-resolution logits.",
        "",
        "| stage | GFLOP | " + " | ".join(paths) + " |",
        "|---|---|" + "---|" * len(paths),
    ]
    stages = [("sam_encoder", "SAM ViT-B image encoder (1024²)"), ("clip_map", _CLIP_NAMES[variant])]
    for n in report["boxes"]:
        stages += [(f"decoder_masks_{n}", f"SAM decoder, {n} boxes, masks at full size"),
                   (f"decoder_nomask_{n}", f"SAM decoder, {n} boxes, no masks"),
                   (f"head_{n}", f"head, {n} boxes")]
    ref = seconds.get("reference", {})
    for key, label in stages:
        count = flops.get(key) or flops.get(key.replace("nomask", "masks"))
        cells = [_cell(seconds[p].get(key), count if "nomask" not in key else None, peaks[p],
                       ref.get(key.replace("nomask", "masks")) if p != "reference" else None) for p in paths]
        lines.append(f"| {label} | {count / 1e9:.1f} | " + " | ".join(cells) + " |")
    for n in report["boxes"]:
        keys = ("sam_encoder", "clip_map", f"decoder_masks_{n}", f"head_{n}")
        image_flops = sum(flops[k] for k in keys)
        totals = {p: sum(seconds[p][k] for k in keys) for p in paths}
        cells = [_cell(totals[p], image_flops, peaks[p], totals.get("reference") if p != "reference" else None)
                 for p in paths]
        lines.append(f"| **per image, {n} boxes with masks** | {image_flops / 1e9:.0f} | " + " | ".join(cells) + " |")
        floor = image_flops / (machine["gemm_fp32_gflops"] * 1e9)
        lines.append(f"| per image, {n} boxes ÷ its fp32 floor ({floor:.2f} s = FLOP / fp32 peak) | | "
                     + " | ".join(f"{totals[p] / floor:.2f}×" for p in paths) + " |")
    n = max(report["boxes"])
    cells = [_cell(seconds[p]["text"], flops["text_padded" if p == "reference" else "text_sorted"], peaks[p],
                   ref.get("text") if p != "reference" else None) for p in paths]
    lines.append(f"| text, {report['text_prompts']} prompts, cold (reference: padded to 77) | "
                 f"{flops['text_sorted'] / 1e9:.0f} (padded {flops['text_padded'] / 1e9:.0f}) | " + " | ".join(cells) + " |")
    text_floor = flops["text_sorted"] / (machine["gemm_fp32_gflops"] * 1e9)
    lines.append(f"| text ÷ fp32 floor of the sorted batches ({text_floor:.2f} s) | | "
                 + " | ".join(f"{seconds[p]['text'] / text_floor:.2f}×" for p in paths) + " |")
    extra = report.get("extra", {})
    lines += ["", f"In-process model load ({variant}, fp32): {extra.get('load_seconds', float('nan')):.1f} s."]
    if "cli_seconds" in extra:
        lines.append(
            f"`regionspot predict` ({variant}, {n} boxes, --viz, text cached): {extra['cli_seconds']:.1f} s wall; model compute "
            f"in-process {extra['cli_compute_seconds']:.1f} s → **{extra['cli_overhead_seconds']:.1f} s outside the models** "
            f"(the CLI's own split: load {extra['cli_timing']['load']:.1f} s, predict {extra['cli_timing']['predict']:.1f} s).")
        if "import_seconds" in extra:
            lines.append(f"Of that, importing torch + transformers' SAM and CLIP classes alone (`python -c \"import torch; "
                         f"from transformers import SamModel, CLIPModel\"`): {extra['import_seconds']:.1f} s wall.")
        if "cli_before_seconds" in extra:
            lines.append(f"Before (same run, `--cli-before`): {extra['cli_before_seconds']:.1f} s wall → "
                         f"{extra['cli_before_overhead_seconds']:.1f} s outside the models (load "
                         f"{extra['cli_before_timing']['load']:.1f} s, predict {extra['cli_before_timing']['predict']:.1f} s).")
        big = report["big_image"]
        lines.append(f"Peak RSS of `regionspot predict --viz` (embedded model, {big['megapixels']:.0f} MP, "
                     f"{big['boxes']} boxes): **{extra['peak_rss_gb']:.2f} GB**.")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(json.loads(Path(sys.argv[1]).read_text())))
