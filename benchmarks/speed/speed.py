"""One run, one table: how close RegionSpot inference gets to this machine's floor, path by path.

Measures, in one process and one run (so every ratio is side by side):
- the machine: CPU model and flags (AVX-512 BF16 / AMX), threads, measured GEMM peak fp32 and bf16 (probed before and
  after the stages, several shapes, best of repeats; the larger reading is used);
- per stage of a full-size architecture (`--variant`: BL = SAM ViT-B @ 1024² + CLIP ViT-L/14 @ 224; BB, BL@336; random weights
  with SAM-style init, same FLOPs as the real ones): FLOPs counted by ``FlopCounterMode`` (CPU SDPA
  registered), seconds and % of the matching peak, for the plain reference pipeline (straight
  transformers calls, fp32, eager, one decoder call, full-size masks) and each library path
  (``fp32`` default, ``bf16``, ``int8``; see ``regionspot.inference.fast``) and each ONNX backend (the model
  exported once into the work folder; ``speed_backends.py``);
- text encoding (names × 81 templates, cold): reference (padded to 77, input order) vs sorted batches;
- ``regionspot predict`` CLI wall time (text cached) minus the in-process model compute = start-up overhead;
- peak RSS of ``regionspot predict --viz`` with the embedded model on a big image with many boxes.

    nice -n 10 env OMP_WAIT_POLICY=PASSIVE python benchmarks/speed/speed.py --threads 1 --boxes 1,12 \
        --out docs/speed.json

Prints one Markdown table (stdout) and writes the same rows as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_backends import BACKEND_PATHS, backend_rows, export_folders  # noqa: E402
from speed_tools import (  # noqa: E402
    ReferencePipeline,
    best_peak,
    best_time,
    count_flops,
    cpu_flag_line,
    cpu_model,
    gemm_peak_probe,
)


def _boxes(count: int, width: int, height: int, seed: int = 0) -> torch.Tensor:
    """(count, 4) XYXY random boxes inside a width × height image."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        w, h = rng.uniform(0.05, 0.3) * width, rng.uniform(0.05, 0.3) * height
        x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
        out.append([x, y, x + w, y + h])
    return torch.tensor(out, dtype=torch.float32)


def _smooth_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """A cheap-to-encode RGB image with structure (gradients + a few blobs)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([xx / width, yy / height, 0.5 + 0.5 * np.sin(xx / 37 + yy / 53)], -1) * 200
    image += rng.integers(0, 40, size=(1, 1, 3))
    return Image.fromarray(image.astype(np.uint8))


def _stage_rows(model, image, boxes: torch.Tensor, counts: list[int], text, repeats: int) -> dict[str, float]:
    """Seconds per stage of the library path ``model`` is set to."""
    seg, vl = model.segmenter, model.vision_language
    rows = {"sam_encoder": best_time(lambda: seg.encode_image(image), repeats),
            "clip_map": best_time(lambda: vl.feature_map([image]), repeats)}
    state, fmap = seg.encode_image(image), vl.feature_map([image])
    for n in counts:
        part = boxes[:n]
        rows[f"decoder_masks_{n}"] = best_time(lambda p=part: seg.decode_prompts(state, boxes=p), repeats)
        rows[f"decoder_nomask_{n}"] = best_time(lambda p=part: seg.decode_prompts(state, boxes=p, masks="none"), repeats)
        tokens = seg.decode_prompts(state, boxes=part, masks="none").tokens[None]
        rows[f"head_{n}"] = best_time(lambda t=tokens: model(t, fmap, text), repeats)
    return rows


def _reference_rows(model, image, boxes: torch.Tensor, counts: list[int], text, repeats: int) -> dict[str, float]:
    ref = ReferencePipeline(model)
    embeddings, original, resized = ref.encode_image(image)
    rows = {"sam_encoder": best_time(lambda: ref.encode_image(image), repeats),
            "clip_map": best_time(lambda: ref.feature_map(image), repeats)}
    fmap = ref.feature_map(image)
    for n in counts:
        part = boxes[:n]
        rows[f"decoder_masks_{n}"] = best_time(lambda p=part: ref.decode(embeddings, p, original, resized), repeats)
        tokens = ref.decode(embeddings, part, original, resized)[0][None]
        rows[f"head_{n}"] = best_time(lambda t=tokens: model(t, fmap, text), repeats)
    return rows


def _text_seconds(model, prompts: list[str], reference: bool) -> float:
    start = time.perf_counter()
    if reference:
        ReferencePipeline(model).encode_text(prompts)
    else:
        model.vision_language.encode_text(prompts, show_progress=False)
    return time.perf_counter() - start


def _cli_seconds(args, root: Path, image_path: Path, boxes: torch.Tensor, names: list[str], cache: Path,
                 python: str = sys.executable) -> tuple[float, dict]:
    """Wall seconds of a `regionspot predict` (run by ``python``) with text embeddings already cached, and
    its JSON timing."""
    box_arg = ";".join(",".join(f"{v:.1f}" for v in b) for b in boxes.tolist())
    out = cache / "r.json"
    cmd = [python, "-m", "regionspot.cli", "predict", str(image_path), "--vocab", ",".join(names),
           "--boxes", box_arg, "--head", str(root / "head.safetensors"), "--out", str(out),
           "--viz", str(cache / "r.png"), "--device", "cpu"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "REGIONSPOT_CACHE": str(cache), "OMP_NUM_THREADS": str(args.threads)}
    subprocess.run(cmd, check=True, capture_output=True, env=env)  # fills the text cache
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - start, json.loads(out.read_text())["timing_s"]


def _import_seconds(python: str = sys.executable, runs: int = 3) -> float:
    """Median wall seconds of a fresh interpreter importing torch and transformers' SAM and CLIP classes: the
    part of the CLI's start-up that no code of ours runs in."""
    code = "import torch; from transformers import SamModel, CLIPModel"
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([python, "-c", code], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def _peak_rss_gb(args, work: Path) -> float:
    """Peak RSS (GB) of `regionspot predict --viz` with the embedded model on a big image with many boxes."""
    side = int((args.big_mp * 1e6 * 4 / 3) ** 0.5)
    width, height = side, side * 3 // 4
    path = work / f"big_{args.big_mp}mp.jpg"
    if not path.exists():
        _smooth_image(width, height).save(path, quality=90)
    box_arg = ";".join(",".join(f"{v:.0f}" for v in b) for b in _boxes(args.big_boxes, width, height).tolist())
    cmd = [sys.executable, "-m", "regionspot.cli", "predict", str(path), "--boxes", box_arg,
           "--out", str(work / "big.json"), "--viz", str(work / "big.png"), "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "REGIONSPOT_CACHE": str(work / "cache")}
    # Through a small interpreter: a child started straight from this process (vfork + exec) inherits this
    # process's high-water RSS (the BL models, ≈ 5 GB) into its own ru_maxrss.
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    done = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"big-image predict failed: {done.stderr[-2000:]}")
    return int(done.stdout.split()[-1]) / 1e6  # kB → GB


def _has_openvino() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def _gemm_probes() -> dict[str, dict]:
    """This machine's GEMM peak now, fp32 and bf16 (``gemm_peak_probe``: several shapes, best of repeats)."""
    return {"fp32": gemm_peak_probe(torch.float32), "bf16": gemm_peak_probe(torch.bfloat16)}


def _set_peaks(machine: dict) -> None:
    """The peaks the table divides by: the larger of the probes before and after the stages (so the floor is
    never read from a slow moment of the machine), and fp32 on SAM's MLP shape."""
    probes = [machine[key] for key in ("gemm_probe_before", "gemm_probe_after") if key in machine]
    machine["gemm_fp32_gflops"] = best_peak(*(p["fp32"] for p in probes))
    machine["gemm_bf16_gflops"] = best_peak(*(p["bf16"] for p in probes))
    machine["gemm_fp32_sam_mlp_gflops"] = max(p["fp32"]["per_shape"]["4096×768×3072"] for p in probes)


def _save_partial(out: Path | None, report: dict) -> None:
    """Keep what a long run has measured so far (``<out>.partial``), so an interrupted run is not lost."""
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".partial.json").write_text(json.dumps(report, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared, loaded machine)")
    parser.add_argument("--variant", default="BL", choices=("BB", "BL", "BL@336"), help="architecture (random weights)")
    parser.add_argument("--boxes", default="1,12", help="box counts, comma-separated")
    parser.add_argument("--paths", default="reference,fp32,bf16,int8," + ",".join(BACKEND_PATHS),
                        help="torch paths (reference, fp32, bf16, int8, compile) and ONNX backends, comma-separated")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--text-names", type=int, default=4, help="class names (× 81 templates) for text encoding")
    parser.add_argument("--big-mp", type=float, default=12.0, help="megapixels of the peak-RSS image")
    parser.add_argument("--big-boxes", type=int, default=50)
    parser.add_argument("--skip-cli", action="store_true")
    parser.add_argument("--cli-before", default=None,
                        help="another interpreter whose regionspot is the 'before' code (e.g. main's venv python)")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a fresh temporary one)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the rows")
    parser.add_argument("--no-malloc-tuning", action="store_true",
                        help="leave glibc's allocator as it is (the CLI tunes it: regionspot.utils.allocator)")
    args = parser.parse_args()
    args.work = args.work or Path(tempfile.mkdtemp(prefix="regionspot-bench-"))
    from regionspot.utils.allocator import keep_freed_memory

    malloc_tuned = not args.no_malloc_tuning and keep_freed_memory()
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    counts = [int(c) for c in args.boxes.split(",")]
    from predict_speed import build_full_size

    from regionspot.inference.fast import candidate_paths
    from regionspot.model import RegionSpot
    from regionspot.text.templates import get_templates

    machine = {"cpu": cpu_model(), "flags": cpu_flag_line(), "threads": args.threads, "torch": torch.__version__, "variant": args.variant,
               "malloc_tuned": malloc_tuned, "gemm_probe_before": _gemm_probes()}
    _set_peaks(machine)
    root = build_full_size(args.work, args.variant)
    image = _smooth_image(640, 480)
    image_path = args.work / "image.png"
    image.save(image_path)
    boxes = _boxes(max(counts), 640, 480)
    names = [f"class {i}" for i in range(args.text_names)]

    start = time.perf_counter()
    model = RegionSpot.from_pretrained(root / "head.safetensors", device="cpu")
    load_seconds = time.perf_counter() - start
    prompts = [t.format(name) for name in names for t in get_templates(model.config.templates)]
    text = model.text_embeddings(names, cache_dir=False, show_progress=False)
    with torch.inference_mode():
        state, fmap = model.segmenter.encode_image(image), model.vision_language.feature_map([image])
        flops = {"sam_encoder": count_flops(lambda: model.segmenter.encode_image(image)),
                 "clip_map": count_flops(lambda: model.vision_language.feature_map([image])),
                 "text_sorted": count_flops(lambda: model.vision_language.encode_text(prompts, show_progress=False))}
        for n in counts:
            flops[f"decoder_masks_{n}"] = count_flops(lambda n=n: model.segmenter.decode_prompts(state, boxes=boxes[:n]))
            tokens = model.segmenter.decode_prompts(state, boxes=boxes[:n], masks="none").tokens[None]
            flops[f"head_{n}"] = count_flops(lambda t=tokens: model(t, fmap, text))
        flops["text_padded"] = count_flops(lambda: ReferencePipeline(model).encode_text(prompts))  # switches to eager
    model = None
    gc.collect()

    asked = args.paths.split(",")
    wanted = [p for p in asked if p in ("reference", "fp32", "compile") or p in candidate_paths("cpu")]
    backends = [p for p in asked if p in BACKEND_PATHS and (p.startswith("onnxruntime") or _has_openvino())]
    seconds: dict[str, dict[str, float]] = {}
    if backends:  # exported before any timing, so the export's memory is gone when the stages run
        folders = export_folders(root / "head.safetensors", args.work / "home", backends)
    for path in wanted:
        model = RegionSpot.from_pretrained(root / "head.safetensors", device="cpu",
                                           fast_path=None if path == "reference" else path)
        with torch.inference_mode():
            rows = (_reference_rows if path == "reference" else _stage_rows)(model, image, boxes, counts, text, args.repeats)
            rows["text"] = _text_seconds(model, prompts, reference=path == "reference")
        seconds[path] = rows
        model = None
        _save_partial(args.out, {"machine": machine, "flops": flops, "seconds": seconds})
        gc.collect()
        print(f"# {path} done", file=sys.stderr, flush=True)

    for path in backends:
        seconds[path] = backend_rows(path, folders, image, boxes.numpy(), counts, text.numpy(), names, args.threads,
                                     args.repeats)
        _save_partial(args.out, {"machine": machine, "flops": flops, "seconds": seconds})
        gc.collect()
        print(f"# {path} done", file=sys.stderr, flush=True)

    machine["gemm_probe_after"] = _gemm_probes()  # the stages' own run may have found the machine faster or slower
    _set_peaks(machine)
    extra = {"load_seconds": load_seconds}
    if not args.skip_cli:
        cache = Path(tempfile.mkdtemp(prefix="cli-", dir=args.work))
        cli, timing = _cli_seconds(args, root, image_path, boxes[: max(counts)], names, cache)
        fp32 = seconds["fp32"]
        compute = fp32["sam_encoder"] + fp32["clip_map"] + fp32[f"decoder_masks_{max(counts)}"] + fp32[f"head_{max(counts)}"]
        extra.update(cli_seconds=cli, cli_timing=timing, cli_compute_seconds=compute, cli_overhead_seconds=cli - compute)
        extra["import_seconds"] = _import_seconds()
        if args.cli_before:
            before = Path(tempfile.mkdtemp(prefix="cli-before-", dir=args.work))
            cli_b, timing_b = _cli_seconds(args, root, image_path, boxes[: max(counts)], names, before, args.cli_before)
            extra.update(cli_before_seconds=cli_b, cli_before_timing=timing_b, cli_before_overhead_seconds=cli_b - compute)
        extra["peak_rss_gb"] = _peak_rss_gb(args, args.work)
    report = {"machine": machine, "flops": flops, "seconds": seconds, "extra": extra, "boxes": counts,
              "text_prompts": len(prompts), "big_image": {"megapixels": args.big_mp, "boxes": args.big_boxes}}
    from speed_table import markdown

    print(markdown(report))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
