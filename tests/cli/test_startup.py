"""The command line answers help and argument errors, and predicts with the ONNX Runtime backend (JSON, masks,
pictures; one image or a folder), without importing torch or transformers.

Each case runs `python -m regionspot.cli ...` (through runpy, as `-m` does) in a fresh interpreter; an atexit
hook prints which of torch / transformers were ever imported (``regionspot.testing.isolated``). Timings are
not asserted here: they are measured by benchmarks/speed/startup.py (docs/performance.md, "Start-up").
"""

from __future__ import annotations

import json

import pytest
import typer.main

from regionspot.cli import app
from regionspot.registry import assets_dir
from regionspot.testing.isolated import imported, run_cli, run_isolated


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


@pytest.fixture(scope="module")
def onnx_folder():
    pytest.importorskip("onnxruntime")
    from regionspot.testing.onnx_models import exported

    return exported(None)  # exported here, with torch, before the command runs


def test_onnx_backend_predicts_one_image_without_torch_or_transformers(onnx_folder, tmp_path):
    """The bundled example's boxes: JSON with masks and the picture, written by a process that never imported
    torch or transformers."""
    out, viz = tmp_path / "result.json", tmp_path / "result.png"
    done = run_cli("predict", "--backend", "onnxruntime", "--onnx", str(onnx_folder), "--masks", "--out", str(out),
                   "--viz", str(viz), timeout=300)
    assert done.returncode == 0, done.stderr
    assert imported(done) == "IMPORTED []", f"predict --backend onnxruntime imported {imported(done)}"
    example = json.loads((assets_dir() / "shapesworld" / "example.json").read_text())
    regions = json.loads(out.read_text())["regions"]
    assert len(regions) == len(example["boxes"]) and all(region["mask"]["counts"] for region in regions)
    assert viz.stat().st_size > 1000


def test_onnx_backend_predicts_a_folder_without_torch_or_transformers(onnx_folder, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a.png", "b.png"):
        (images / name).write_bytes((assets_dir() / "shapesworld" / "example.png").read_bytes())
    out = tmp_path / "predictions"
    done = run_cli("predict", str(images), "--boxes", "119,89,181,150; 92,47,146,97", "--vocab-preset", "shapesworld",
                   "--backend", "onnxruntime", "--onnx", str(onnx_folder), "--out", str(out), "--format", "coco",
                   timeout=300)
    assert done.returncode == 0, done.stderr
    assert imported(done) == "IMPORTED []", f"predict DIR --backend onnxruntime imported {imported(done)}"
    assert {p.name for p in out.iterdir()} >= {"a.json", "a.png", "b.json", "b.png", "results.coco.json"}
    regions = json.loads((out / "a.json").read_text())["regions"]
    assert [r["prompt"]["box_xyxy"] for r in regions] == [[119, 89, 181, 150], [92, 47, 146, 97]]
    assert all(r["label"] for r in regions)
