"""The command line answers help and argument errors without importing torch or transformers.

Each case runs `python -m regionspot.cli ...` (through runpy, as `-m` does) in a fresh interpreter; an atexit
hook prints which of torch / transformers were ever imported. Timings are not asserted here: they are
measured by benchmarks/speed/startup.py (docs/performance.md, "Start-up").
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from regionspot.cli import app

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers")
_REPORT = (
    "import atexit, runpy, sys\n"
    "def report():\n"
    f"    print('IMPORTED', sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))\n"
    "atexit.register(report)\n"
)


def run_isolated(body: str) -> subprocess.CompletedProcess:
    """``body`` after the atexit report hook, in a fresh interpreter running this checkout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "300"}  # messages on one line
    return subprocess.run([sys.executable, "-c", _REPORT + body], capture_output=True, text=True, env=env, timeout=120,
                          cwd=ROOT)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return run_isolated(f"sys.argv = ['regionspot', *{list(args)!r}]\nrunpy.run_module('regionspot.cli', run_name='__main__')\n")


def imported(done: subprocess.CompletedProcess) -> str:
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("args,status,says", [
    (["--help"], 0, "Usage: regionspot"),
    (["predict", "--help"], 0, "--vocab"),
    (["--version"], 0, "regionspot "),
    (["eval"], 2, "Missing option '--data'"),  # a required option missing
    (["predict", "--bogus"], 2, "No such option"),  # a flag that does not exist
    (["predict", "--top-k", "many"], 2, "Invalid value for '--top-k'"),  # a value of the wrong type
    (["no-such-command"], 2, "No such command"),
])
def test_help_and_argument_errors_import_neither_torch_nor_transformers(args, status, says):
    done = run_cli(*args)
    assert done.returncode == status, done.stderr
    assert says in done.stdout + done.stderr
    assert imported(done) == "IMPORTED []", f"regionspot {' '.join(args)} imported {imported(done)}"


def _command_paths(group=None, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and sub-command of the CLI, as the words that name it."""
    group = group or typer.main.get_command(app)
    paths = []
    for name, command in group.commands.items():
        paths.append((*prefix, name))
        if hasattr(command, "commands"):
            paths.extend(_command_paths(command, (*prefix, name)))
    return paths


def test_every_command_help_imports_neither_torch_nor_transformers():
    """Each command's --help in one fresh interpreter (the commands' modules are all imported by any of them)."""
    paths = _command_paths()
    assert {("predict",), ("eval",), ("guard",), ("convert",)} <= set(paths)
    body = (
        "from typer.testing import CliRunner\n"
        "from regionspot.cli import app\n"
        "runner = CliRunner()\n"
        f"for words in {paths!r}:\n"
        "    result = runner.invoke(app, [*words, '--help'])\n"
        "    assert result.exit_code == 0 and 'Usage:' in result.output, (words, result.output)\n"
    )
    done = run_isolated(body)
    assert done.returncode == 0, done.stderr
    assert imported(done) == "IMPORTED []", f"a command's --help imported {imported(done)}"


def test_the_check_sees_an_import():
    """The report is not vacuous: a body that imports torch is reported."""
    assert imported(run_isolated("import torch\n")) == "IMPORTED ['torch']"
