"""LVIS-vocabulary text encoding, cold, against its fp32 floor: one table.

Encodes every ``--every``-th LVIS v1 class name × the model's 81 templates with the full-size CLIP text tower of
a variant (random weights, ``predict_speed.build_full_size``) on each path, counts the FLOPs the sorted-length
batches really run (``FlopCounterMode``), measures the fp32 GEMM peak in the same run, and extrapolates the
seconds to all 1203 names (97,443 prompts). The tokenizer is the project's small BPE (the real CLIP vocabulary is
not downloadable here), so token counts — and the FLOPs with them — differ from real CLIP's; the ratio to the
floor is what carries over.

    python benchmarks/speed/text_speed.py --threads 2 --every 20 --paths fp32,bf16,int8
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_tools import count_flops, gemm_peak  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--every", type=int, default=20, help="take every N-th LVIS name")
    parser.add_argument("--variant", default="BL", choices=("BB", "BL", "BL@336"))
    parser.add_argument("--paths", default="fp32,bf16,int8")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a fresh temporary one)")
    args = parser.parse_args()
    args.work = args.work or Path(tempfile.mkdtemp(prefix="regionspot-bench-"))
    from predict_speed import build_full_size

    from regionspot.inference.fast import candidate_paths
    from regionspot.model import RegionSpot
    from regionspot.text.presets import preset_vocabulary
    from regionspot.text.templates import get_templates
    from regionspot.utils.allocator import keep_freed_memory

    keep_freed_memory()
    torch.set_num_threads(args.threads)
    lvis = preset_vocabulary("lvis")
    names = lvis[:: args.every]
    root = build_full_size(args.work, args.variant)
    peak = gemm_peak(torch.float32)
    rows, flops = [], None
    for path in [p for p in args.paths.split(",") if p == "fp32" or p in candidate_paths("cpu")]:
        model = RegionSpot.from_pretrained(root / "head.safetensors", device="cpu", fast_path=path)
        prompts = [t.format(name) for name in names for t in get_templates(model.config.templates)]
        with torch.inference_mode():
            if flops is None:  # the same batches on every path
                flops = count_flops(lambda m=model, p=prompts: m.vision_language.encode_text(p, show_progress=False))
            start = time.perf_counter()
            model.vision_language.encode_text(prompts, show_progress=False)
            seconds = time.perf_counter() - start
        floor = flops / (peak * 1e9)
        rows.append((path, len(prompts), flops, seconds, floor))
        print(f"# {path} done", file=sys.stderr, flush=True)
    print(f"{args.variant} text tower, every {args.every}-th LVIS name ({len(names)} of {len(lvis)}) × 81 templates, "
          f"{args.threads} thread(s), measured fp32 GEMM peak {peak:.0f} GFLOP/s.\n")
    print("| path | prompts | GFLOP (sorted batches) | seconds | ÷ fp32 floor | all 1203 names (extrapolated) |")
    print("|---|---|---|---|---|---|")
    for path, count, flops, seconds, floor in rows:
        whole = seconds * len(lvis) / len(names)
        print(f"| {path} | {count} | {flops / 1e9:.0f} | {seconds:.1f} s | {seconds / floor:.2f}× | "
              f"{whole / 60:.1f} min |")


if __name__ == "__main__":
    main()
