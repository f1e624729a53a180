"""`regionspot eval` on the command line: its options become ``EvalOptions``, the table is printed, and a bad
value is one line naming the flag the user typed."""

import pytest
from typer.testing import CliRunner

from regionspot.cli import app
from regionspot.cli.options import flag
from regionspot.engine.config import EvalOptions

runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from regionspot.shapesworld.generate import generate_shapesworld
    from regionspot.shapesworld.world import WorldConfig

    info = generate_shapesworld(tmp_path_factory.mktemp("sw"), 0, 2, seed=0, image_size=64, progress=False,
                                world=WorldConfig(max_objects=3, max_distractors=1))
    return info["val_json"], info["image_root"]


def test_eval_prints_the_table_of_the_baselines(tiny_sam_dir, tiny_clip_dir, world, tmp_path):
    args = ["eval", "--data", str(world[0]), "--images", str(world[1]), "--method", "clip-box", "--method", "clip-mask",
            "--sam", str(tiny_sam_dir), "--clip", str(tiny_clip_dir), "--iou-types", "bbox", "--out", str(tmp_path),
            "--device", "cpu", "--templates", "single", "--text-cache-dir", str(tmp_path / "t")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "| CLIP w/ box | GT boxes |" in result.output and "| CLIP w/ mask | GT boxes |" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--batch-size", "0"], "error: --batch-size must be >= 1, got 0."),
    (["--input-resize", "big"], "error: --input-resize must be one of none, shortest-edge, got 'big'."),
    (["--iou-types", "box"], "error: --iou-types must be bbox, segm or bbox,segm; got box."),
    (["--fast-path", "fp8"], "error: --fast-path must be one of"),
    (["--boxes", "nothere.json"], "error: Detections file not found: nothere.json; pass --boxes gt or"),
    (["--method", "regionspot", "--method", "regionspot"], "error: A method is given twice"),
    (["--backend", "onnxruntime", "--method", "clip-box"], "error: --method clip-box (CLIP on crops) runs only with "
                                                           "--backend torch; drop it or use --backend torch."),
    (["--onnx", "graphs"], "error: --onnx names exported graphs for an ONNX backend: add --backend onnxruntime"),
])
def test_a_bad_option_is_one_line_naming_its_flag(world, args, message):
    result = runner.invoke(app, ["eval", "--data", str(world[0]), "--images", str(world[1]), *args])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith(message), result.output


def test_a_missing_annotation_file_names_data(tmp_path):
    result = runner.invoke(app, ["eval", "--data", str(tmp_path / "gt.json"), "--images", str(tmp_path)])
    assert result.exit_code == 2 and f"Annotation file not found: {tmp_path / 'gt.json'}; pass --data" in result.output


def test_every_eval_flag_is_a_field_of_its_options():
    """The Typer parameters are EvalOptions' field names, so EvalOptions(**arguments) builds the options; the
    flags differ from the fields only where cli.options.FLAGS says so."""
    import dataclasses

    import typer.main

    fields = {f.name for f in dataclasses.fields(EvalOptions)}
    params = typer.main.get_command(app).commands["eval"].params
    assert {p.name for p in params} <= fields
    assert all(flag(p.name) in p.opts for p in params)


def test_eval_help_names_the_paper_switch():
    result = runner.invoke(app, ["eval", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "--paper-protocol" in result.output and "--mask-return" in result.output
    assert "--workers" in result.output and "--batch-size" in result.output
