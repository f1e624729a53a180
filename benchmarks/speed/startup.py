"""The command line's start-up: `--help`, a command's `--help`, an argument error, and `predict` on the bundled
example split into imports / model load / model compute / the rest.

Each case runs `python -m regionspot.cli ...` in fresh processes: its wall time is the best of ``--repeats``
plain runs (interpreter start included). One more run of each goes through a small driver under
``-X importtime``: it says whether torch or transformers were imported, and for `predict` it stamps the
model load (``RegionSpot.from_pretrained``) and the model compute (the predictor's ``set_image``,
``set_vocabulary``, ``predict`` / ``predict_everything``); the imports are the top-level ``-X importtime``
entries, wherever they ran, and are taken out of the load and compute windows. "Outside model compute" is
the plain wall time minus that compute. ``-X importtime`` slows imports a little, so the split's total is
longer than the plain wall time.

    python benchmarks/speed/startup.py --repeats 5 [--python OTHER_CHECKOUT_VENV/bin/python --root OTHER_CHECKOUT]

``--root`` runs another checkout's code (PYTHONPATH) for a before/after table; text embeddings are cached in
a fresh ``$REGIONSPOT_CACHE`` by a first, untimed `predict`.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_tools import cpu_flag_line, cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MARK = "@@startup "
# Runs the CLI in-process with argv, stamps the windows and reports which heavy modules were imported.
_DRIVER = r"""
import importlib.abc, importlib.machinery, json, os, sys, time

def mark(event):
    os.write(2, (MARK + json.dumps(event) + "\n").encode())

windows, depth = [], [0]

def timed(kind, func):
    def wrapper(*args, **kwargs):
        if depth[0]:  # inside another window (predict_everything calls predict)
            return func(*args, **kwargs)
        depth[0] += 1
        mark({"start": kind})
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            windows.append((kind, time.perf_counter() - start))
            mark({"end": kind})
            depth[0] -= 1
    return wrapper

def patch_model(module):
    load = module.RegionSpot.from_pretrained.__func__
    module.RegionSpot.from_pretrained = classmethod(timed("load", load))

def patch_predictor(module):
    for name in ("set_image", "set_vocabulary", "predict", "predict_everything"):
        setattr(module.RegionSpotPredictor, name, timed("compute", getattr(module.RegionSpotPredictor, name)))

class Stamp(importlib.abc.MetaPathFinder):
    # Patches the timed classes as their modules are first imported, so that imports happen where the CLI does them.
    patches = {"regionspot.model": patch_model, "regionspot.inference.predictor": patch_predictor}

    def find_spec(self, name, path, target=None):
        if name not in self.patches:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        execute, patch = spec.loader.exec_module, self.patches[name]
        def exec_module(module):
            execute(module)
            patch(module)
        spec.loader.exec_module = exec_module
        return spec

stamp = sys.argv[1] == "--stamp"
if stamp:
    sys.meta_path.insert(0, Stamp())
sys.argv = ["regionspot", *sys.argv[1 + stamp:]]
status = 0
try:
    from regionspot.cli import main
    main()
except SystemExit as exit_:
    status = exit_.code
mark({"windows": windows, "status": status,
      "modules": {m: m in sys.modules for m in ("torch", "transformers", "numpy")}})
""".replace("MARK", repr(MARK))


def _env(root: Path, cache: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(root), "REGIONSPOT_CACHE": str(cache), "HF_HUB_OFFLINE": "1",
            "REGIONSPOT_PROGRESS": "off"}


def wall_seconds(python: str, args: list[str], env: dict, cwd: Path, repeats: int) -> tuple[float, float]:
    """Best wall seconds and best CPU seconds (user + system; less sensitive to other load on the machine) of
    ``repeats`` fresh `python -m regionspot.cli ARGS`, interpreter start and exit included."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        child = subprocess.Popen([python, "-m", "regionspot.cli", *args], env=env, cwd=cwd,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, _, usage = os.wait4(child.pid, 0)
        wall, cpu = min(wall, time.perf_counter() - start), min(cpu, usage.ru_utime + usage.ru_stime)
    return wall, cpu


def split_run(python: str, args: list[str], env: dict, cwd: Path, stamp: bool) -> dict:
    """One driver run under -X importtime: total wall, imports (top-level entries), the load and compute windows
    without the imports inside them, the rest, and which heavy modules were imported."""
    start = time.perf_counter()
    run = subprocess.run([python, "-X", "importtime", "-c", _DRIVER, *(["--stamp"] if stamp else []), *args], env=env, cwd=cwd,
                         capture_output=True, text=True)
    total = time.perf_counter() - start
    imports = {"all": 0.0, "load": 0.0, "compute": 0.0}
    window, report = None, None
    for line in run.stderr.splitlines():
        if line.startswith(MARK):
            event = json.loads(line[len(MARK):])
            window = event.get("start") if "end" not in event else None
            report = event if "windows" in event else report
        elif line.startswith("import time:") and line.count("|") == 2:
            _, cumulative, name = line.split("|")
            if cumulative.strip().isdigit() and name.startswith(" ") and not name.startswith("  "):  # top level
                seconds = int(cumulative) / 1e6
                imports["all"] += seconds
                if window:
                    imports[window] += seconds
    if report is None:
        raise RuntimeError(f"the driver did not finish: {run.stderr[-2000:]}")
    spent = {kind: sum(s for k, s in report["windows"] if k == kind) for kind in ("load", "compute")}
    load, compute = spent["load"] - imports["load"], spent["compute"] - imports["compute"]
    return {"total": total, "imports": imports["all"], "load": load, "compute": compute,
            "rest": total - imports["all"] - load - compute, "status": report["status"], "windows": report["windows"],
            **report["modules"]}


def cases(work: Path) -> list[tuple[str, list[str]]]:
    return [
        ("`regionspot --help`", ["--help"]),
        ("`regionspot predict --help`", ["predict", "--help"]),
        ("`regionspot eval --help`", ["eval", "--help"]),
        ("argument error: `eval` without `--data`", ["eval"]),
        ("argument error: `predict --bogus`", ["predict", "--bogus"]),
        ("`predict` bundled example (`--viz`)", ["predict", "--out", str(work / "r.json"), "--viz", str(work / "r.png"),
                                                 "--device", "cpu"]),
    ]


def measure(python: str, root: Path, repeats: int, work: Path) -> list[dict]:
    env = _env(root, work / "cache")
    predict = cases(work)[-1][1]
    subprocess.run([python, "-m", "regionspot.cli", *predict], env=env, cwd=work, check=True, capture_output=True)
    rows = []
    for name, args in cases(work):
        split = split_run(python, args, env, work, stamp=args == predict)
        wall, cpu = wall_seconds(python, args, env, work, repeats)
        row = {"case": name, "wall": wall, "cpu": cpu, **split}
        rows.append(row)
        print(f"  {name}: {row['wall']:.2f} s", file=sys.stderr)
    return rows


def table(rows: list[dict], title: str) -> list[str]:
    lines = [f"**{title}**", "",
             "| case | wall (best) | CPU (best) | torch imported | split (-X importtime): imports | model load "
             "| model compute | rest | outside model compute (wall − compute) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        model = r["load"] > 0 or r["compute"] > 0
        torch = "yes" if r["torch"] else "no"
        if r["transformers"]:
            torch += " (+ transformers)"
        extra = (f"{r['load']:.2f} s | {r['compute']:.2f} s | {r['rest']:.2f} s | **{r['wall'] - r['compute']:.2f} s**"
                 if model else "— | — | — | —")
        lines.append(f"| {r['case']} | **{r['wall']:.2f} s** | {r['cpu']:.2f} s | {torch} | {r['imports']:.2f} s | {extra} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="plain runs per case; the best is kept")
    parser.add_argument("--python", default=sys.executable, help="the interpreter to run (default: this one)")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose code runs (PYTHONPATH)")
    parser.add_argument("--work", type=Path, default=None, help="folder for outputs and the text cache")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="regionspot-startup-"))
    work.mkdir(parents=True, exist_ok=True)
    machine = (f"{cpu_model()}, {os.cpu_count()} CPUs ({cpu_flag_line()}); torch threads: "
               f"{os.environ.get('OMP_NUM_THREADS', 'default')}")
    rows = measure(args.python, args.root.resolve(), args.repeats, work)
    print("\n".join([f"Machine: {machine}", "", *table(rows, f"{args.root.resolve()}, best of {args.repeats}")]))
    if args.out:
        args.out.write_text(json.dumps({"machine": machine, "root": str(args.root), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
