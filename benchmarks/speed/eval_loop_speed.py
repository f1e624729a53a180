"""End-to-end ``regionspot eval`` seconds per image for ``--batch-size`` × ``--workers`` settings, on the
first ShapesWorld CI-subset val images with the embedded model (what CI can run on a CPU).

Each setting runs the real CLI in a fresh process (``--overwrite``, warm text cache, box + mask AP), the
settings interleaved over ``--repeats`` rounds so that a changing machine load hits them alike; the
median is kept. Two figures per setting: the CLI's wall time per image (start-up, model load and AP
included) and the prediction loop's own seconds per image (``this_run`` in ``report.json``).

    python benchmarks/speed/eval_loop_speed.py --images 60 --settings 1x0,4x0,1x2,4x2 --repeats 2
    # also the code before (a source tree: git archive main regionspot | tar -x -C /tmp/before):
    python benchmarks/speed/eval_loop_speed.py --before /tmp/before

Prints a Markdown table with both figures and the loop's speed-up over the first setting.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_cli(data: Path, images: Path, out: Path, cache: Path, batch_size: int, workers: int | None,
            device: str, source: Path | None = None) -> tuple[float, dict]:
    """(wall seconds, report.json) of one ``regionspot eval`` process; ``source``: run that regionspot
    source tree instead of the installed one (its CLI may predate ``--workers``: None leaves it out)."""
    command = [sys.executable, "-m", "regionspot.cli", "eval", "--data", str(data), "--images", str(images),
               "--out", str(out), "--batch-size", str(batch_size), "--device", device,
               "--text-cache-dir", str(cache), "--overwrite"]
    if workers is not None:
        command += ["--workers", str(workers)]
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(source), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True, env=env, cwd=out.parent)
    wall = time.perf_counter() - start
    return wall, json.loads((out / "report.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=60, help="CI-subset val images")
    parser.add_argument("--settings", default="1x0,4x0,1x2,4x2", help="BATCHxWORKERS, comma-separated")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a fresh temporary one)")
    parser.add_argument("--before", type=Path, default=None,
                        help="a regionspot source tree to time too, at --batch-size 4 (e.g. main's code)")
    args = parser.parse_args()
    args.work = args.work or Path(tempfile.mkdtemp(prefix="regionspot-bench-"))
    from regionspot.registry import assets_dir
    from regionspot.shapesworld.generate import generate_shapesworld

    settings: list[tuple] = [tuple(int(v) for v in s.split("x")) for s in args.settings.split(",")]
    if args.before is not None:
        settings.append((4, None))
    subset = json.loads((assets_dir() / "shapesworld" / "metrics.json").read_text())["ci_subset"]
    info = generate_shapesworld(args.work / "data", 0, args.images, seed=int(subset["seed"]), progress=False)
    data, images, cache = Path(info["val_json"]), Path(info["image_root"]), args.work / "text_cache"
    run_cli(data, images, args.work / "warm", cache, 1, 0, args.device)  # fills the text cache
    walls: dict[tuple, list[float]] = {s: [] for s in settings}
    loops: dict[tuple, list[float]] = {s: [] for s in settings}
    aps: dict[tuple, list[dict]] = {s: [] for s in settings}
    load = [os.getloadavg()[0]]
    for _ in range(args.repeats):
        for batch_size, workers in settings:
            source = args.before if workers is None else None
            wall, report = run_cli(data, images, args.work / f"b{batch_size}w{workers}", cache, batch_size, workers,
                                   args.device, source)
            run = report["meta"]["this_run"]
            walls[batch_size, workers].append(wall / run["scored"])
            loops[batch_size, workers].append(run.get("seconds", run["scored"] / run["images_per_second"]) / run["scored"])
            aps[batch_size, workers].append({(row, t): r["AP"] for row, by_type in report["rows"].items()
                                             for t, r in by_type.items() if r is not None})
            load.append(os.getloadavg()[0])
            print(f"# {batch_size}x{workers}: {wall:.1f} s wall, loop {loops[batch_size, workers][-1]:.3f} s/image",
                  file=sys.stderr, flush=True)
    base = statistics.median(loops[settings[0]])
    print(f"\n## `regionspot eval`, embedded ShapesWorld model, {args.images} CI-subset val images, box + mask AP, "
          f"device {args.device}; median of {args.repeats}; load average {min(load):.1f}–{max(load):.1f} "
          f"on {os.cpu_count()} CPUs\n")
    print("| --batch-size | --workers | CLI wall s / image | loop s / image | loop speed-up | max abs ΔAP vs the first |")
    print("|---:|---:|---:|---:|---:|---:|")
    first = aps[settings[0]][0]
    for setting in settings:
        loop = statistics.median(loops[setting])
        delta = max(abs(run[key] - first[key]) for run in aps[setting] for key in first)
        name = f"{setting[1]}" if setting[1] is not None else f"before ({args.before})"
        print(f"| {setting[0]} | {name} | {statistics.median(walls[setting]):.3f} | {loop:.3f} | "
              f"{base / loop:.2f}× | {delta:.1e} |")


if __name__ == "__main__":
    main()
