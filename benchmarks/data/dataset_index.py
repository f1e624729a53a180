"""Dataset index time and peak memory on a V3Det-sized synthetic annotation file.

    python benchmarks/data/dataset_index.py --out /tmp/v3det_synth
    python benchmarks/data/dataset_index.py --out /tmp/v3det_synth --code /path/to/other/checkout   # "before"

Writes (once; reused when present) a COCO-format file shaped like V3Det v1 train: 184,000 images with
nested paths ``Images/a<category>/<name>.jpg``, 1,750,000 boxes, 13,204 categories with a description
each. Then builds ``CocoDetectionDataset`` on it in a fresh process (the code of ``--code``, default this
checkout) and prints a table row: wall seconds and the process's peak RSS (the interpreter and imports
included; their share is printed on its own line).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import resource, sys, time
from regionspot.data.coco_json import CocoDetectionDataset
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
ds = CocoDetectionDataset(sys.argv[1], sys.argv[2], dataset_name="v3det")
seconds = time.perf_counter() - t0
record = ds[len(ds) // 2]
boxes = sum(len(ds[i]) for i in range(0, len(ds), 1000))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{len(ds)} {ds.num_classes} {seconds:.2f} {base / 2**20:.3f} {peak / 2**20:.3f} {record.path}")
"""


def write_synthetic(path: Path, images: int, boxes: int, categories: int, seed: int = 0) -> None:
    """A V3Det-shaped COCO file, written in chunks (never all in memory)."""
    rng = np.random.default_rng(seed)
    widths = rng.integers(320, 1600, images)
    heights = rng.integers(240, 1200, images)
    owner = np.sort(rng.integers(0, images, boxes))  # image position of each box
    cats = rng.integers(1, categories + 1, boxes)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write('{"info": {"description": "synthetic V3Det-sized file"}, "categories": [')
        f.write(",".join(json.dumps({"id": c, "name": f"category {c:05d}", "novel": False,
                                     "cat_info": f"a thing of kind {c} seen in everyday scenes, described in one line"})
                         for c in range(1, categories + 1)))
        f.write('], "images": [')
        for lo in tqdm(range(0, images, 50_000), desc="images", unit_scale=50_000):
            hi = min(lo + 50_000, images)
            f.write(("," if lo else "") + ",".join(
                f'{{"id": {i + 1}, "file_name": "Images/a{i % 13204:08d}/{i:012x}.jpg", '
                f'"height": {int(heights[i])}, "width": {int(widths[i])}}}' for i in range(lo, hi)))
        f.write('], "annotations": [')
        for lo in tqdm(range(0, boxes, 200_000), desc="annotations", unit_scale=200_000):
            hi = min(lo + 200_000, boxes)
            img = owner[lo:hi]
            w, h = widths[img], heights[img]
            x0, y0 = rng.uniform(0, 0.8, hi - lo) * w, rng.uniform(0, 0.8, hi - lo) * h
            bw, bh = rng.uniform(0.05, 0.2, hi - lo) * w, rng.uniform(0.05, 0.2, hi - lo) * h
            f.write(("," if lo else "") + ",".join(
                f'{{"id": {lo + k + 1}, "image_id": {int(img[k]) + 1}, "category_id": {int(cats[lo + k])}, '
                f'"bbox": [{x0[k]:.2f}, {y0[k]:.2f}, {bw[k]:.2f}, {bh[k]:.2f}], "area": {bw[k] * bh[k]:.2f}, "iscrowd": 0}}'
                for k in range(hi - lo)))
        f.write("]}")
    tmp.rename(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the synthetic file")
    parser.add_argument("--images", type=int, default=184_000)
    parser.add_argument("--boxes", type=int, default=1_750_000)
    parser.add_argument("--categories", type=int, default=13_204)
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose regionspot is measured")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"v3det_synthetic_{args.images}_{args.boxes}_{args.categories}.json"
    if not path.is_file():
        write_synthetic(path, args.images, args.boxes, args.categories)
    (args.out / "images").mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(args.code.resolve()))
    # cwd: `python -c` puts the working folder first on sys.path, ahead of PYTHONPATH.
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), str(args.out / "images")], env=env, cwd=args.out,
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"child exited {done.returncode}")
    n, v, seconds, base, peak, example = done.stdout.split(maxsplit=5)
    print(f"file: {path} ({path.stat().st_size / 2**20:.0f} MiB); code: {args.code}")
    print(f"interpreter + imports before indexing: {float(base):.2f} GiB peak RSS")
    print("| images | categories | index s | peak RSS GiB |")
    print("|---:|---:|---:|---:|")
    print(f"| {n} | {v} | {float(seconds):.1f} | {float(peak):.2f} |")
    print(f"example path: {example.strip()}")


if __name__ == "__main__":
    main()
