"""Token-cache extraction throughput: images/s, boxes/s and bytes per box, one table.

    # the embedded ShapesWorld models (tiny SAM + tiny CLIP) on generated ShapesWorld train images, CPU:
    python benchmarks/data/cache_throughput.py --images 64 --flip --clip
    # two code trees side by side (each run in its own process with PYTHONPATH=TREE), ratio to the first:
    python benchmarks/data/cache_throughput.py --images 64 --flip --clip --code ../old-checkout --code .
    # a GPU, batched and fed by worker processes (options the code tree does not have are left out):
    python benchmarks/data/cache_throughput.py --device cuda --images 512 --flip --clip --batch-size 1 16 --workers 4
    # full-size random SAM-B on 1024² random images (the per-image encoder cost of the real cache):
    python benchmarks/data/cache_throughput.py --encoder full --images 2 --boxes 20

``--encoder shapesworld`` (default) uses the embedded, really trained ShapesWorld models and the first
``--images`` images of a ShapesWorld train split generated with a fixed seed, so every run and every code
tree sees the same images. ``--encoder full`` is random-weight SAM-B (ViT-B, ~1 TFLOP per image);
``--encoder tiny`` keeps SAM-B's prompt encoder and mask decoder (the per-box cost and the bytes per box of
the real cache) with a 2-block, 64-wide image encoder. Each row is one extraction into a fresh folder after
a 4-image warm-up, in a child process of its own; ``--repeats`` rounds run every row once each (so a load
change on a shared machine hits all rows alike) and the table reports each row's fastest. The wall time excludes model
loading; images/s counts dataset images (a mirrored copy is not counted again).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "speed"))
from speed_tools import cpu_model  # noqa: E402


class SyntheticDataset:
    """``n`` random square images with ``boxes`` random boxes each (the CocoDetectionDataset surface)."""

    def __init__(self, root: Path, n: int, boxes: int, size: int = 1024) -> None:
        from PIL import Image

        rng = np.random.default_rng(0)
        self.image_root, self.name, self.category_names = root, "synthetic", ["a", "b"]
        self._records = []
        for i in range(n):
            path = root / f"{i}.png"
            if not path.is_file():
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
            xy = rng.uniform(0, size * 0.7, (boxes, 2))
            wh = rng.uniform(16, size * 0.3, (boxes, 2))
            self._records.append(SimpleNamespace(
                path=path, image_id=i, width=size, height=size,
                boxes=np.concatenate([xy, xy + wh], 1).astype(np.float32), labels=np.zeros(boxes, np.int64)))

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, i: int):
        return self._records[i]

    def load_image(self, i: int):
        from PIL import Image

        return Image.open(self._records[i].path).convert("RGB")


# --------------------------------------------------------------------------- the child: one code tree


def _backbones(job: dict):
    import torch

    from regionspot.backbones.segmenter import load_segmenter
    from regionspot.backbones.vision_language import load_vision_language

    device = job["device"]
    if job["encoder"] == "shapesworld":
        from regionspot.registry import resolve_backbone

        seg = load_segmenter(resolve_backbone("shapesworld", "segmenter"), device=device)
        vl = load_vision_language(resolve_backbone("shapesworld", "vision_language"), device=device) if job["clip"] else None
        return seg, vl
    from transformers import SamConfig, SamModel

    torch.manual_seed(0)
    config = SamConfig()  # sam-vit-base size, random weights
    if job["encoder"] == "tiny":
        config = SamConfig(vision_config={"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                                          "mlp_dim": 128, "global_attn_indexes": [1], "output_channels": 256})
    folder = Path(job["work"]) / f"sam-{job['encoder']}"
    if not folder.is_dir():
        SamModel(config).save_pretrained(folder)
    return load_segmenter(str(folder), device=device), None


def _dataset(job: dict):
    if job["encoder"] == "shapesworld":
        from regionspot.data.coco_json import CocoDetectionDataset

        return CocoDetectionDataset(job["annotations"], job["image_root"], dataset_name="shapesworld-train")
    return SyntheticDataset(Path(job["image_root"]), job["images"], job["boxes"])


def _extract(dataset, seg, vl, out: Path, job: dict, limit: int):
    """One extraction with the options this code tree has (a CacheConfig, or the older keywords)."""
    from regionspot.cache import extract as extract_lib

    wanted = {"flip": job["flip"], "shard_size": 64, "chunk_size": job["chunk_size"], "limit": limit,
              "batch_size": job["batch_size"], "workers": job["workers"]}
    params = inspect.signature(extract_lib.extract_cache).parameters
    if "config" in params:
        from regionspot.cache.config import CacheConfig

        known = set(CacheConfig.__dataclass_fields__)
        config = CacheConfig(out=out, **{k: v for k, v in wanted.items() if k in known and v is not None})
        used = {k: v for k, v in wanted.items() if k in known}
        stats = extract_lib.extract_cache(dataset, seg, config, vision_language=vl, rank=0, world_size=1,
                                          show_progress=False)
    else:
        used = {k: v for k, v in wanted.items() if k in params}
        stats = extract_lib.extract_cache(dataset, seg, out, vision_language=vl, rank=0, world_size=1,
                                          show_progress=False, **{k: v for k, v in used.items() if v is not None})
    return stats, used


def child(job: dict) -> dict:
    import torch

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    seg, vl = _backbones(job)
    dataset = _dataset(job)
    work = Path(tempfile.mkdtemp(dir=job["work"]))
    _extract(dataset, seg, vl, work / "warmup", job, limit=min(4, job["images"]))
    runs = []
    for k in range(job["repeats"]):
        if job["device"].startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        stats, used = _extract(dataset, seg, vl, work / f"run{k}", job, limit=job["images"])
        if job["device"].startswith("cuda"):
            torch.cuda.synchronize()
        runs.append((time.perf_counter() - t0, stats))
    wall, stats = min(runs, key=lambda r: r[0])
    return {"images": stats.images, "boxes": stats.boxes, "wall": wall, "walls": [r[0] for r in runs],
            "bytes_per_box": stats.bytes_per_box, "options": {k: v for k, v in used.items() if k != "limit"},
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name() if job["device"].startswith("cuda") else ""}


# --------------------------------------------------------------------------- the parent: data, rows, table


def _generate(args, work: Path) -> dict:
    """The images every row uses: ShapesWorld train (fixed seed), or random 1024² images."""
    if args.encoder == "shapesworld":
        from regionspot.shapesworld.generate import generate_shapesworld

        info = generate_shapesworld(work / "shapesworld", num_train=args.images, num_val=0, seed=0, progress=False)
        return {"annotations": str(info["train_json"]), "image_root": str(info["image_root"])}
    (work / "img").mkdir(exist_ok=True)
    SyntheticDataset(work / "img", args.images, args.boxes)
    return {"annotations": "", "image_root": str(work / "img")}


def _run_row(code: Path, job: dict) -> dict:
    # the code tree first; whatever PYTHONPATH held (e.g. packages installed to a folder) after it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(code), os.environ.get("PYTHONPATH", "")) if p)}
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"the run with code {code} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--boxes", type=int, default=20, help="boxes per image (--encoder full/tiny)")
    parser.add_argument("--chunk-size", type=int, default=16)
    parser.add_argument("--encoder", choices=["shapesworld", "full", "tiny"], default="shapesworld")
    parser.add_argument("--flip", action="store_true", help="also cache the mirrored image, as training caches do")
    parser.add_argument("--clip", action="store_true", help="also cache the CLIP feature maps (--encoder shapesworld)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[None],
                        help="images per encoder call (rows; left out for code without the option)")
    parser.add_argument("--workers", type=int, nargs="+", default=[None], help="decoding worker processes (rows)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--code", type=Path, action="append", default=None,
                        help="code tree to run (repeatable; default: the regionspot this script imports)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a new temporary one)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    codes = args.code or [Path(__import__("regionspot").__file__).resolve().parents[1]]
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        data = _generate(args, work)
        jobs = []
        for code in codes:
            feeds = (code / "regionspot" / "cache" / "config.py").is_file()  # code with batch_size / workers
            for batch_size in args.batch_size if feeds else [None]:
                for workers in args.workers if feeds else [None]:
                    jobs.append((code, {**data, "encoder": args.encoder, "images": args.images, "boxes": args.boxes,
                                        "chunk_size": args.chunk_size, "flip": args.flip, "clip": args.clip,
                                        "device": args.device, "batch_size": batch_size, "workers": workers,
                                        "threads": args.threads, "repeats": 1, "work": str(work)}))
        # Rounds: every row once per round, so that a load change on a shared machine hits all rows alike.
        runs = [[_run_row(code.resolve(), job) for code, job in jobs] for _ in range(args.repeats)]
        rows = [(code, min((r[k] for r in runs), key=lambda row: row["wall"])) for k, (code, _) in enumerate(jobs)]
    first = rows[0][1]
    print(f"CPU: {cpu_model()} ({os.cpu_count()} CPUs); device: {args.device} {first['gpu']}; torch {first['torch']}, "
          f"{first['torch_threads']} threads; encoder: {args.encoder}; flip: {args.flip}; clip: {args.clip}; "
          f"fastest of {args.repeats}")
    print("| code | options | images | boxes (incl. mirrored) | wall s | images/s | boxes/s | bytes/box | × first row |")
    print("|---|---|---|---|---|---|---|---|---|")
    base = first["images"] / first["wall"]
    for code, row in rows:
        rate = row["images"] / row["wall"]
        options = ", ".join(f"{k}={v}" for k, v in row["options"].items() if v is not None) or "defaults"
        print(f"| {code} | {options} | {row['images']} | {row['boxes']} | {row['wall']:.2f} | {rate:.2f} | "
              f"{row['boxes'] / row['wall']:.1f} | {row['bytes_per_box']:.0f} | {rate / base:.2f} |")


if __name__ == "__main__":
    main()
