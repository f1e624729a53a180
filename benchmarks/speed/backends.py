"""The backends side by side: per-image time of ``predict`` and the accuracy guard, per backend, in one run.

For each backend of ``regionspot.inference.backends`` (torch fp32, the exported graphs under ONNX Runtime fp32
and int8, OpenVINO fp32 and bf16):

1. the guard on ShapesWorld val (the first ``--images`` CI-subset images, every GT box, the embedded model)
   against torch fp32: logit error, top-1 agreement (up to ties), GT top-1 — ``guard_table``;
2. per-image seconds of predict on the embedded example (its image and boxes, vocabulary set once): image
   graphs + prompts + head, masks kept as low-resolution logits, as ``regionspot predict`` runs it;
3. ``--full-size``: the same on a full-size random-weight architecture (``--variant`` BB / BL, SAM ViT-B at
   1024² + CLIP; built by ``predict_speed.build_full_size``, exported once into the work folder) on one
   640×480 image with ``--boxes`` boxes and ``--vocab`` names: per-image seconds and the guard against torch.

The CPU model, flags and thread count are printed with the tables. Exports and int8 copies are kept in
``--work``/home (the model home of this run), so a rerun with the same ``--work`` times only.

    python benchmarks/speed/backends.py --threads 2 --images 8 --full-size --variant BB --boxes 12
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_tools import best_time, cpu_flag_line, cpu_model  # noqa: E402

ALL = "torch,onnxruntime,onnxruntime-int8,openvino,openvino-bf16"


def _time_row(backend, image, boxes, names: list[str], repeats: int) -> tuple[float, object]:
    """(median per-image seconds of set_image + predict, the last result)."""
    backend.set_vocabulary(names)
    out = {}

    def once():
        backend.set_image(image)
        out["result"] = backend.predict(boxes=boxes, top_k=3, return_masks=True)

    return best_time(once, repeats), out["result"]


def _table(title: str, rows: list[tuple[str, float, object]], reference) -> list[str]:
    from regionspot.inference.fast import compare_logits, passes_guard

    lines = [title, "", "| backend | s / image | × torch | max abs Δlogit | top-1 agree up to ties | guard |",
             "|---|---|---|---|---|---|"]
    base = rows[0][1]
    for name, seconds, result in rows:
        r = compare_logits(torch.from_numpy(reference.logits), torch.from_numpy(result.logits))
        lines.append(f"| {name} | {seconds:.3f} | {base / seconds:.2f}× | {r.max_abs:.4f} | "
                     f"{100 * r.top1_up_to_ties:.1f} % | {'pass' if passes_guard(r) else 'FAIL'} |")
    return lines


def _measure(backends: list[str], weights, image, boxes, names, threads: int, repeats: int, log) -> list:
    from regionspot.inference.backends import open_backend

    rows = []
    for name in backends:
        start = time.perf_counter()
        backend = open_backend(name, weights, threads=threads, text_cache_dir=False, log=log)
        log(f"{name}: opened in {time.perf_counter() - start:.1f}s")
        seconds, result = _time_row(backend, image, boxes, names, repeats)
        rows.append((name, seconds, result))
        del backend
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backends", default=ALL, help=f"comma-separated, torch first (default {ALL})")
    parser.add_argument("--images", type=int, default=8, help="CI-subset images of the guard (0: no guard)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--full-size", action="store_true")
    parser.add_argument("--variant", default="BB", choices=("BB", "BL", "BL@336"))
    parser.add_argument("--boxes", type=int, default=12)
    parser.add_argument("--vocab", type=int, default=20)
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a fresh temporary one)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the tables")
    args = parser.parse_args()
    args.work = args.work or Path(tempfile.mkdtemp(prefix="regionspot-bench-"))
    os.environ["REGIONSPOT_HOME"] = str(args.work / "home")  # exports and int8 copies of this run
    torch.set_num_threads(args.threads)
    backends = args.backends.split(",")
    if backends[0] != "torch":
        parser.error("--backends must start with torch (the reference)")

    def log(line: str) -> None:
        print(f"# {line}", file=sys.stderr, flush=True)

    from regionspot.evaluation.guard import guard_table
    from regionspot.registry import assets_dir
    from regionspot.shapesworld.guard import run_ci_subset_backend_guard

    lines = [f"Machine: {cpu_model()}, {os.cpu_count()} CPUs, {args.threads} threads; flags: {cpu_flag_line()}", ""]
    printed = 0
    if args.images:
        rows = run_ci_subset_backend_guard(backends[1:], num_images=args.images, threads=args.threads,
                                           work=args.work / "guard")
        lines += [f"Guard: ShapesWorld val, first {args.images} CI-subset images, all GT boxes, embedded model; "
                  "reference: torch fp32.", "", *guard_table(rows), ""]
    print("\n".join(lines[printed:]), flush=True)
    printed = len(lines)
    example = json.loads((assets_dir() / "shapesworld" / "example.json").read_text())
    vocabulary = [v for v in (assets_dir() / "shapesworld" / "vocabulary.txt").read_text().splitlines() if v]
    measured = _measure(backends, None, assets_dir() / "shapesworld" / example["image"], example["boxes"],
                        vocabulary, args.threads, args.repeats, log)
    lines += _table(f"Embedded model, the bundled example ({len(example['boxes'])} boxes, {len(vocabulary)} names): "
                    f"median of {args.repeats} after a warm-up.", measured, measured[0][2]) + [""]
    print("\n".join(lines[printed:]), flush=True)
    printed = len(lines)
    if args.full_size:
        from predict_speed import build_full_size
        from speed import _boxes, _smooth_image

        root = build_full_size(args.work, args.variant)
        image, boxes = _smooth_image(640, 480), _boxes(args.boxes, 640, 480, seed=1).numpy()
        names = [f"class {i}" for i in range(args.vocab)]
        measured = _measure(backends, root / "head.safetensors", image, boxes, names, args.threads, args.repeats, log)
        lines += _table(f"Full-size {args.variant} (random weights, SAM-style init), one 640×480 image, {args.boxes} "
                        f"boxes, {args.vocab} names: median of {args.repeats} after a warm-up.", measured, measured[0][2])
    print("\n".join(lines[printed:]))
    if args.out is not None:
        args.out.write_text(json.dumps({"lines": lines}, indent=1))


if __name__ == "__main__":
    main()
