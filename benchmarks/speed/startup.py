"""The command line's start-up: `--help`, a command's `--help`, argument errors, and the model commands —
`predict` on the bundled example and `eval` on a 4-image ShapesWorld set, each with torch and with ONNX Runtime on
the exported graphs, embedded model — split into imports, model load, model compute, AP scoring and the rest.

Every run is a fresh interpreter running the CLI as `python -m regionspot.cli` does, through a small driver
that reports whether torch / transformers were imported and stamps the model load
(``RegionSpot.from_pretrained``; the ONNX backend's sessions, ``OnnxBackend``; for an ONNX backend's evaluation,
opening its graphs), the model compute (the predictor's or the ONNX backend's ``set_image``, ``set_vocabulary``,
``predict`` / ``predict_everything``; the evaluation's ``predict_images`` / ``predict_images_onnx``) and the
evaluation's AP scoring (``merge_and_evaluate``). Per case: the best wall and CPU seconds (user + system: less sensitive to other
load on the machine) of ``--repeats`` runs, the best "outside model compute" (a run's wall minus its
compute; the imports made inside the compute, e.g. a library imported on first use, count as outside), and one more run under ``-X importtime`` split into imports (its top-level entries, wherever they
ran; taken out of the windows they ran in) + load + compute + scoring + the rest (interpreter start and exit,
argument parsing, checks, reading images, writing results). ``-X importtime`` slows imports a little.

    python benchmarks/speed/startup.py --repeats 5 [--root OTHER_CHECKOUT] [--python OTHER_VENV/bin/python]

``--root`` runs another checkout's code (PYTHONPATH) for a before/after table. Text embeddings are cached in
a fresh ``$REGIONSPOT_CACHE`` (and ``$REGIONSPOT_HOME`` in it) by a first, untimed run of each model command,
which also exports the ONNX graphs into that model home for the ONNX Runtime case.
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
import builtins, importlib.abc, importlib.machinery, json, os, sys, time

def mark(event):
    os.write(2, (MARK + json.dumps(event) + "\n").encode())

windows, depth, importing = [], [0], [0.0, False]  # importing: seconds spent importing in this window, inside one
_import = builtins.__import__

def timed_import(*args, **kwargs):
    # The time a window spends in import statements (the lazy imports of the code it runs), outermost only.
    if not depth[0] or importing[1]:
        return _import(*args, **kwargs)
    importing[1], start = True, time.perf_counter()
    try:
        return _import(*args, **kwargs)
    finally:
        importing[0] += time.perf_counter() - start
        importing[1] = False

builtins.__import__ = timed_import

def timed(kind, func):
    def wrapper(*args, **kwargs):
        if depth[0]:  # inside another window (predict_everything calls predict)
            return func(*args, **kwargs)
        depth[0] += 1
        importing[0] = 0.0
        mark({"start": kind})
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            windows.append((kind, time.perf_counter() - start, importing[0]))
            mark({"end": kind})
            depth[0] -= 1
    return wrapper

def patch_model(module):
    load = module.RegionSpot.from_pretrained.__func__
    module.RegionSpot.from_pretrained = classmethod(timed("load", load))

def patch_predictor(module):
    for name in ("set_image", "set_vocabulary", "predict", "predict_everything"):
        setattr(module.RegionSpotPredictor, name, timed("compute", getattr(module.RegionSpotPredictor, name)))

def patch_eval_loop(module):
    module.predict_images = timed("compute", module.predict_images)

def patch_evaluate(module):
    module.merge_and_evaluate = timed("scoring", module.merge_and_evaluate)

def patch_eval_onnx(module):
    module.open_eval_backend = timed("load", module.open_eval_backend)
    module.predict_images_onnx = timed("compute", module.predict_images_onnx)


def patch_backends(module):
    cls = module.OnnxBackend
    cls.__init__ = timed("load", cls.__init__)
    for name in ("set_image", "set_vocabulary", "predict"):
        setattr(cls, name, timed("compute", getattr(cls, name)))

class Stamp(importlib.abc.MetaPathFinder):
    # Patches the timed classes as their modules are first imported, so that imports happen where the CLI does them.
    patches = {"regionspot.model": patch_model, "regionspot.inference.predictor": patch_predictor,
               "regionspot.engine.eval_loop": patch_eval_loop, "regionspot.engine.evaluate": patch_evaluate,
               "regionspot.engine.eval_onnx": patch_eval_onnx, "regionspot.inference.backends": patch_backends}

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
            "REGIONSPOT_PROGRESS": "off", "REGIONSPOT_HOME": str(cache / "home")}


WINDOWS = ("load", "compute", "scoring")


def run_once(python: str, args: list[str], env: dict, cwd: Path, stamp: bool, importtime: bool) -> dict:
    """One fresh interpreter running the CLI through the driver: wall and CPU seconds (interpreter start and
    exit included), the seconds of each window without the top-level imports inside it, all top-level imports
    (with ``importtime``), the exit status and which heavy modules were imported."""
    command = [python, *(["-X", "importtime"] if importtime else []), "-c", _DRIVER, *(["--stamp"] if stamp else []), *args]
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = child.stderr.read()  # until the child exits (stdout goes nowhere: no pipe to fill)
    _, _, usage = os.wait4(child.pid, 0)
    child.returncode, wall = 0, time.perf_counter() - start  # reaped here, with its resource usage
    child.stderr.close()
    imports = dict.fromkeys(("all", *WINDOWS), 0.0)
    window, report = None, None
    for line in stderr.splitlines():
        if line.startswith(MARK):
            event = json.loads(line[len(MARK):])
            window = event.get("start") if "end" not in event else None
            report = event if "windows" in event else report
        elif line.startswith("import time:") and line.count("|") == 2:
            _, cumulative, name = line.split("|")
            if cumulative.strip().isdigit() and name.startswith(" ") and not name.startswith("  "):  # top level
                imports["all"] += int(cumulative) / 1e6
                if window:
                    imports[window] += int(cumulative) / 1e6
    if report is None:
        raise RuntimeError(f"the driver did not finish: {stderr[-2000:]}")
    spent = {kind: sum(s for k, s, _ in report["windows"] if k == kind) - imports[kind] for kind in WINDOWS}
    # the model compute without the imports its code makes on first use (measured in every run, -X importtime or not)
    compute = sum(s - i for k, s, i in report["windows"] if k == "compute")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "imports": imports["all"], **spent,
            "net_compute": compute, "status": report["status"], **report["modules"]}


def cases(work: Path) -> list[tuple[str, list[str], bool]]:
    """(name, CLI arguments, whether it runs a model) of each case; outputs go to ``work``."""
    world = work / "world"
    return [
        ("`regionspot --help`", ["--help"], False),
        ("`regionspot predict --help`", ["predict", "--help"], False),
        ("`regionspot eval --help`", ["eval", "--help"], False),
        ("argument error: `eval` without `--data`", ["eval"], False),
        ("argument error: `predict --bogus`", ["predict", "--bogus"], False),
        ("`predict`, bundled example, `--viz`", ["predict", "--out", str(work / "r.json"), "--viz", str(work / "r.png"),
                                                 "--device", "cpu"], True),
        ("`predict --backend onnxruntime`, bundled example, `--viz`", [
            "predict", "--backend", "onnxruntime", "--out", str(work / "o.json"), "--viz", str(work / "o.png")], True),
        ("`eval`, 4 ShapesWorld images, GT boxes, bbox + segm", [
            "eval", "--data", str(world / "annotations" / "val.json"), "--images", str(world),
            "--out", str(work / "eval"), "--overwrite", "--device", "cpu"], True),
        ("`eval --backend onnxruntime`, the same", [
            "eval", "--data", str(world / "annotations" / "val.json"), "--images", str(world),
            "--out", str(work / "eval-onnx"), "--overwrite", "--backend", "onnxruntime", "--onnx", str(work / "model-onnx"),
            "--text-cache-dir", str(work / "cache" / "onnx-text")], True),
    ]


def measure(python: str, root: Path, repeats: int, work: Path) -> list[dict]:
    """Per case: the best wall, CPU and wall-minus-compute of ``repeats`` runs, and one -X importtime run's
    split (its wall = imports + load + compute + scoring + the rest)."""
    env = _env(root, work / "cache")
    subprocess.run([python, "-m", "regionspot.cli", "shapesworld", "generate", "--out", str(work / "world"),
                    "--train", "0", "--val", "4"], env=env, cwd=work, check=True, capture_output=True)
    subprocess.run([python, "-m", "regionspot.cli", "export", "onnx", "--out", str(work / "model-onnx")], env=env,
                   cwd=work, check=True, capture_output=True)
    rows = []
    for name, args, model in cases(work):
        if model:  # fills the text cache (and exports the ONNX graphs into the model home once)
            warm = subprocess.run([python, "-m", "regionspot.cli", *args], env=env, cwd=work, capture_output=True)
            if warm.returncode != 0:  # a case this checkout does not have (e.g. an earlier version's)
                print(f"  {name}: fails here (exit {warm.returncode}), skipped", file=sys.stderr)
                continue
        runs = [run_once(python, args, env, work, model, importtime=False) for _ in range(repeats)]
        split = run_once(python, args, env, work, model, importtime=True)
        split["rest"] = split["wall"] - split["imports"] - sum(split[k] for k in WINDOWS)
        rows.append({"case": name, "model": model, "wall": min(r["wall"] for r in runs), "cpu": min(r["cpu"] for r in runs),
                     "outside": min(r["wall"] - r["net_compute"] for r in runs), "status": split["status"],
                     **{m: split[m] for m in ("torch", "transformers", "numpy")},
                     "split": {k: split[k] for k in ("wall", "imports", *WINDOWS, "rest")}})
        print(f"  {name}: {rows[-1]['wall']:.2f} s", file=sys.stderr)
    return rows


def table(rows: list[dict], title: str) -> list[str]:
    lines = [f"**{title}**", "",
             "| case | wall (best) | CPU (best) | torch imported | outside model compute (best wall − compute) "
             "| one -X importtime run: wall = imports + model load + model compute + AP scoring + rest |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        split = r["split"]
        heavy = ("yes" if r["torch"] else "no") + (" (+ transformers)" if r["transformers"] else "")
        parts = (" + ".join(f"{split[k]:.2f}" for k in ("imports", *WINDOWS, "rest")) if r["model"]
                 else f"imports {split['imports']:.2f} + rest {split['rest']:.2f}")
        outside = f"**{r['outside']:.2f} s**" if r["model"] else "—"
        lines.append(f"| {r['case']} | **{r['wall']:.2f} s** | {r['cpu']:.2f} s | {heavy} | {outside} | "
                     f"{split['wall']:.2f} = {parts} s |")
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
