"""Code run in a fresh interpreter that reports, at exit, which of torch and transformers were ever imported: how
the tests check that the command line's help, argument errors and ONNX backends, and the torch-free runtime's
example script, never import them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers")
_REPORT = (
    "import atexit, runpy, sys\n"
    "def report():\n"
    f"    print('IMPORTED', sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))\n"
    "atexit.register(report)\n"
)


def run_isolated(body: str, timeout: float = 120, cwd: str | Path | None = ROOT) -> subprocess.CompletedProcess:
    """``body`` (Python source; ``runpy`` and ``sys`` are imported) after the atexit report hook, in a fresh
    interpreter running this checkout; its last stdout line is the report (:func:`imported`)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "300"}  # messages on one line
    return subprocess.run([sys.executable, "-c", _REPORT + body], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=cwd)


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``regionspot ARGS`` (as ``python -m regionspot.cli``) in a fresh interpreter with the report hook."""
    return run_isolated(f"sys.argv = ['regionspot', *{list(args)!r}]\nrunpy.run_module('regionspot.cli', run_name='__main__')\n",
                        timeout=timeout)


def imported(done: subprocess.CompletedProcess) -> str:
    """The report line: "IMPORTED []" when neither torch nor transformers was imported, else those imported."""
    return done.stdout.strip().splitlines()[-1]
