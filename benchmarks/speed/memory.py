"""Peak memory (and wall time) of ``regionspot predict --viz`` with the embedded ShapesWorld model on large
images with many boxes, one fresh process per case; optionally the same for another checkout ("before").

Prints a Markdown table. Each case is one ``regionspot predict IMAGE --boxes-json B --out O --viz P`` run;
its peak RSS is the kernel's ``ru_maxrss`` of that child (``os.wait4``). A case that runs past --timeout
or whose RSS passes --rss-cap-gb is ended and reported as such, with the peak it had reached.

    nice -n 15 env OMP_NUM_THREADS=1 python benchmarks/speed/memory.py \\
        --before OLD_VENV/bin/regionspot [--sizes 12,48] [--boxes 50,200]

The images (the bundled ShapesWorld example scaled up, 4:3, PNG) and boxes (seeded, 3–25 % of each side)
are written to --work once. The 48-megapixel image is under PIL's decompression-bomb limit (89.5 MP).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def make_image(work: Path, megapixels: int) -> Path:
    """A 4:3 PNG of about ``megapixels`` million pixels: the bundled example scaled up (cached)."""
    from regionspot.registry import assets_dir

    height = int(round((megapixels * 1e6 * 3 / 4) ** 0.5))
    width = int(round(height * 4 / 3))
    path = work / f"image_{megapixels}mp_{width}x{height}.png"
    if not path.exists():
        example = Image.open(assets_dir() / "shapesworld" / "example.png").convert("RGB")
        example.resize((width, height), Image.Resampling.BILINEAR).save(path, compress_level=1)
    return path


def make_boxes(work: Path, size: tuple[int, int], count: int, seed: int = 0) -> Path:
    """``count`` boxes (XYXY pixels) inside a (width, height) image, sides 3–25 % of the image's."""
    width, height = size
    rng = np.random.default_rng(seed)
    w, h = rng.uniform(0.03, 0.25, count) * width, rng.uniform(0.03, 0.25, count) * height
    x0, y0 = rng.uniform(0, 1, count) * (width - w), rng.uniform(0, 1, count) * (height - h)
    boxes = np.stack([x0, y0, x0 + w, y0 + h], axis=1).round(1).tolist()
    path = work / f"boxes_{width}x{height}_{count}.json"
    path.write_text(json.dumps(boxes))
    return path


def _vm_hwm_kb(pid: int) -> int:
    """The process's peak RSS so far (VmHWM, kB) while it runs; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_case(command: list[str], timeout: float, rss_cap_gb: float, log: Path) -> dict:
    """Run ``command`` in a fresh process; its peak RSS (GB), wall seconds and how it ended."""
    start = time.perf_counter()
    with open(log, "wb") as out:
        pid = os.posix_spawnp(command[0], command, os.environ, file_actions=[
            (os.POSIX_SPAWN_DUP2, out.fileno(), 1), (os.POSIX_SPAWN_DUP2, out.fileno(), 2)])
        ended, peak_kb = None, 0
        while True:
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:
                break
            peak_kb = max(peak_kb, _vm_hwm_kb(pid))
            elapsed = time.perf_counter() - start
            if ended is None and (elapsed > timeout or peak_kb > rss_cap_gb * 1e6):
                ended = f"ended at {elapsed:.0f} s" if elapsed > timeout else f"ended at {rss_cap_gb:g} GB"
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    peak_gb = max(usage.ru_maxrss, peak_kb) / 1e6  # ru_maxrss is in kB on Linux
    outcome = ended or ("ok" if code == 0 else f"exit {code}")
    return {"peak_rss_gb": round(peak_gb, 2), "wall_s": round(wall, 1), "outcome": outcome, "command": " ".join(command)}


def _cell(case: dict | None) -> str:
    if case is None:
        return "— | —"
    note = "" if case["outcome"] == "ok" else f" ({case['outcome']})"
    prefix = "≥ " if case["outcome"].startswith("ended") else ""
    return f"{prefix}{case['peak_rss_gb']:.2f} GB{note} | {case['wall_s']:.0f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="12,48", help="image sizes in megapixels")
    parser.add_argument("--boxes", default="50,200", help="box counts")
    parser.add_argument("--after", default=str(Path(sys.executable).with_name("regionspot")),
                        help="the regionspot command measured as 'after' (default: this environment's)")
    parser.add_argument("--before", default=None, help="another checkout's regionspot command, e.g. main's")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds before an 'after' case is ended")
    parser.add_argument("--before-timeout", type=float, default=420.0, help="seconds before a 'before' case is ended")
    parser.add_argument("--rss-cap-gb", type=float, default=7.0, help="end a case whose RSS passes this")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a fresh temporary one)")
    parser.add_argument("--json", type=Path, default=None, help="also write the measurements here")
    args = parser.parse_args()
    args.work = args.work or Path(tempfile.mkdtemp(prefix="regionspot-bench-"))
    args.work.mkdir(parents=True, exist_ok=True)

    sizes = [int(v) for v in args.sizes.split(",")]
    counts = [int(v) for v in args.boxes.split(",")]
    rows = []
    for megapixels in sizes:
        image = make_image(args.work, megapixels)
        with Image.open(image) as opened:
            size = opened.size
        for count in counts:
            boxes = make_boxes(args.work, size, count)
            row = {"megapixels": megapixels, "size": size, "boxes": count}
            for label, program, timeout in (("before", args.before, args.before_timeout), ("after", args.after, args.timeout)):
                if program is None:
                    continue
                stem = args.work / f"{label}_{megapixels}mp_{count}"
                command = [program, "predict", str(image), "--boxes-json", str(boxes), "--out", f"{stem}.json",
                           "--viz", f"{stem}.png"]
                load = os.getloadavg()[0]
                row[label] = run_case(command, timeout, args.rss_cap_gb, Path(f"{stem}.log"))
                row[label]["load_before"] = round(load, 2)
                row[label]["load_after"] = round(os.getloadavg()[0], 2)
                print(f"{label} {megapixels} MP {count} boxes: {row[label]}", file=sys.stderr, flush=True)
            rows.append(row)

    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; timeouts: before {args.before_timeout:g} s, "
          f"after {args.timeout:g} s; RSS cap {args.rss_cap_gb:g} GB.\n")
    print("| image | boxes | before: peak RSS | before: wall | after: peak RSS | after: wall | load avg (1 min) |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        loads = [f"{row[k]['load_before']:.1f}–{row[k]['load_after']:.1f}" for k in ("before", "after") if k in row]
        width, height = row["size"]
        print(f"| {row['megapixels']} MP ({width}×{height}) | {row['boxes']} | {_cell(row.get('before'))} | "
              f"{_cell(row.get('after'))} | {' / '.join(loads)} |")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
