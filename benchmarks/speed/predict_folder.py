"""Images per minute: ``regionspot predict`` on a folder (one model load) against one call per image.

Makes ``--images`` ShapesWorld val images (the embedded model's world), a prompts file with each image's
ground-truth boxes, then times, each as a fresh ``python -m regionspot.cli`` process with the embedded model:

1. the folder: ``regionspot predict DIR --prompts prompts.json --out OUT`` (JSON + picture per image);
2. the same command again: every image finished, all skipped;
3. separate calls, ``regionspot predict IMAGE --boxes ... --out X.json --viz X.png``, on the first
   ``--separate`` images, extrapolated to all ``--images`` when fewer (the table says so).

    OMP_NUM_THREADS=2 python benchmarks/speed/predict_folder.py --images 100 --separate 20
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_images(root: Path, count: int) -> tuple[Path, Path]:
    """``count`` ShapesWorld val images under root/val and root/prompts.json ({file name: {"boxes": GT}})."""
    from regionspot.shapesworld.generate import generate_shapesworld
    from regionspot.shapesworld.world import world_preset

    info = generate_shapesworld(root, 0, count, seed=0, world=world_preset("v2"), progress=False)
    data = json.loads(Path(info["val_json"]).read_text())
    names = {image["id"]: Path(image["file_name"]).name for image in data["images"]}
    table: dict[str, dict] = {name: {"boxes": []} for name in names.values()}
    for ann in data["annotations"]:
        x, y, w, h = ann["bbox"]
        table[names[ann["image_id"]]]["boxes"].append([x, y, x + w, y + h])
    prompts = root / "prompts.json"
    prompts.write_text(json.dumps(table))
    folder = Path(info["image_root"]) / "val"
    return folder, prompts


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "regionspot.cli", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed: regionspot {' '.join(args)}\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--separate", type=int, default=20, help="separate calls timed (extrapolated to --images)")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as scratch:
        root = args.work or Path(scratch)
        folder, prompts = make_images(root / "sw", args.images)
        images = sorted(folder.glob("*.png"))
        out = root / "out"
        folder_s = timed(["predict", str(folder), "--prompts", str(prompts), "--out", str(out)])
        rerun_s = timed(["predict", str(folder), "--prompts", str(prompts), "--out", str(out)])
        table = json.loads(prompts.read_text())
        separate = images[: min(args.separate, len(images))]
        separate_s = 0.0
        for i, image in enumerate(separate):
            boxes = ";".join(",".join(f"{v:g}" for v in box) for box in table[image.name]["boxes"])
            separate_s += timed(["predict", str(image), "--boxes", boxes, "--out", str(root / f"one{i}.json"),
                                 "--viz", str(root / f"one{i}.png")])
        per_call = separate_s / len(separate)
        done = len(list(out.glob("*.json")))
    note = "" if len(separate) == len(images) else f" ({len(separate)} calls timed: {separate_s:.1f} s; × {len(images)}/{len(separate)})"
    print(f"regionspot predict, embedded model, {len(images)} ShapesWorld images 256x256 with their GT boxes "
          f"(JSON + picture each), {os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print()
    print("| run | images | wall s | images / min |")
    print("|---|---|---|---|")
    print(f"| one call on the folder | {done} | {folder_s:.1f} | {60 * done / folder_s:.0f} |")
    print(f"| the same call again (all finished, skipped) | {done} | {rerun_s:.1f} | — |")
    print(f"| one call per image{note} | {len(images)} | {per_call * len(images):.1f} | {60 / per_call:.1f} |")
    print()
    print(f"speed-up of the folder call: {per_call * len(images) / folder_s:.1f}x")


if __name__ == "__main__":
    main()
