"""OpenImages CSV -> COCO JSON conversion throughput (boxes/s) and peak memory on a synthetic split.

    python benchmarks/data/openimages_convert.py --out /tmp/oi_synth --boxes 1500000 --images 190000

Writes (once; reused when present) a box CSV in the public v6 layout (13 columns, ~8 boxes per image, 3 %
group-of), the 601-class boxable descriptions and ``<ImageID>.jpg`` files (small real JPEGs of 12 sizes,
so the header reads are real), then runs ``convert_openimages`` in a fresh process and prints rows/s,
wall time, images, the output size and the peak RSS.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[2]
HEADER = "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside\n"

CHILD = r"""
import resource, sys
from regionspot.data.openimages import convert_openimages
r = convert_openimages(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], show_progress=False)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(r.rows, r.boxes, r.images, f"{r.seconds:.2f}", f"{peak / 2**20:.3f}", r.problems.total)
"""


def write_synthetic(folder: Path, boxes: int, images: int, classes: int = 601, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    sizes = [(1024, 768), (768, 1024), (1024, 683), (683, 1024), (1024, 1024), (800, 600), (640, 480), (1024, 576),
             (576, 1024), (1024, 819), (900, 1024), (1024, 640)]
    blobs = []
    for w, h in sizes:
        buffer = io.BytesIO()
        Image.new("RGB", (w, h), (90, 120, 150)).save(buffer, "JPEG", quality=50)
        blobs.append(buffer.getvalue())
    ids = [f"{v:016x}" for v in rng.integers(0, 2**62, images)]
    for k, image_id in enumerate(tqdm(ids, desc="image files")):
        (folder / "images" / f"{image_id}.jpg").write_bytes(blobs[k % len(blobs)])
    mids = [f"/m/{k:05x}" for k in range(classes)]
    (folder / "classes.csv").write_text("LabelName,DisplayName\n" + "".join(f"{m},class {k}\n" for k, m in enumerate(mids)))
    owner = np.sort(rng.integers(0, images, boxes))
    with open(folder / "boxes.csv", "w") as f:
        f.write(HEADER)
        for lo in tqdm(range(0, boxes, 100_000), desc="box rows"):
            n = min(100_000, boxes - lo)
            x0, y0 = rng.uniform(0, 0.7, n), rng.uniform(0, 0.7, n)
            x1, y1 = x0 + rng.uniform(0.02, 0.3, n), y0 + rng.uniform(0.02, 0.3, n)
            cls, group = rng.integers(0, classes, n), rng.random(n) < 0.03
            f.write("".join(
                f"{ids[owner[lo + k]]},xclick,{mids[cls[k]]},1,{x0[k]:.6f},{x1[k]:.6f},{y0[k]:.6f},{y1[k]:.6f},0,0,"
                f"{int(group[k])},0,0\n" for k in range(n)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--boxes", type=int, default=1_500_000)
    parser.add_argument("--images", type=int, default=190_000)
    args = parser.parse_args()
    folder = args.out / f"oi_{args.boxes}_{args.images}"
    if not (folder / "boxes.csv").is_file():
        write_synthetic(folder, args.boxes, args.images)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", CHILD, str(folder / "boxes.csv"), str(folder / "classes.csv"),
                           str(folder / "images"), str(folder / "out.json")], env=env, cwd=folder,
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"child exited {done.returncode}")
    rows, boxes, images, seconds, peak, problems = done.stdout.split()
    csv_mb = (folder / "boxes.csv").stat().st_size / 2**20
    out_mb = (folder / "out.json").stat().st_size / 2**20
    print("| box rows | images | CSV MiB | wall s | rows/s | JSON MiB | peak RSS GiB | skipped |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {int(rows):,} | {int(images):,} | {csv_mb:.0f} | {float(seconds):.1f} | "
          f"{int(rows) / float(seconds):,.0f} | {out_mb:.0f} | {float(peak):.2f} | {problems} |")


if __name__ == "__main__":
    main()
