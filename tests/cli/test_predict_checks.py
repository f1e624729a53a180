"""`regionspot predict`: every bad input is one error line (exit 2) before any model loads, and the embedded
ShapesWorld model's notes appear exactly when it is asked about things it cannot know."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from regionspot.cli import app, checks
from regionspot.errors import RegionSpotError
from regionspot.model import RegionSpot
from regionspot.shapesworld.likeness import calibration_renders, pink_noise_image

runner = CliRunner()
LOADED = "a model was loaded"


@pytest.fixture(autouse=True)
def no_model(monkeypatch):
    """Loading a model fails the test: a run that reaches it ends in this AssertionError."""
    def refuse(*args, **kwargs):
        raise AssertionError(LOADED)

    monkeypatch.setattr(RegionSpot, "from_pretrained", classmethod(refuse))


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "photo.png"
    pink_noise_image(np.random.default_rng(0), 64).resize((70, 50)).save(path)
    return path


@pytest.fixture(scope="module")
def render(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "render.png"
    calibration_renders(1)[0][1].save(path)
    return path


def run(tmp_path, *args):
    return runner.invoke(app, ["predict", *map(str, args), "--out", str(tmp_path / "o.json"), "--viz", str(tmp_path / "o.png")])


def error_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and LOADED not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def reached_model(result) -> bool:
    return isinstance(result.exception, AssertionError) and LOADED in str(result.exception)


BAD = [
    (["IMG", "--vocab", "a ; b", "--boxes", "1,1,5,5"], "separated by commas, not ';'; write --vocab 'a,b'"),
    (["IMG", "--vocab", "a,,b", "--boxes", "1,1,5,5"], "name 2 is empty"),
    (["IMG", "--vocab", "cat,dog,cat", "--boxes", "1,1,5,5"], "Duplicate class names"),
    (["IMG", "--vocab", " , ", "--boxes", "1,1,5,5"], "names no class"),
    (["IMG", "--vocab", "a", "--boxes", "10,20,30,40 50,60,70,80"], "Separate boxes with ';': '10,20,30,40; 50,60,70,80'"),
    (["IMG", "--vocab", "a", "--boxes", "10 20 30"], "box '10 20 30' has 3 numbers"),
    (["IMG", "--vocab", "a", "--boxes", "1,2,x,4"], "'x' is not a number"),
    (["IMG", "--vocab", "a", "--boxes", "nan,1,5,5"], "NaN"),
    (["IMG", "--vocab", "a", "--boxes", "30,20,10,5; 5,5,10,10"], "add --box-format xywh"),
    (["IMG", "--vocab", "a", "--boxes", "5,5,5,9"], "box 1 '5,5,5,9' has x2 <= x1"),
    (["IMG", "--vocab", "a", "--boxes", "5,5,0,9", "--box-format", "xywh"], "zero or negative width or height"),
    (["IMG", "--vocab", "a", "--boxes", "1,1,5,5", "--box-format", "xy"], "--box-format xy: use xyxy"),
    (["IMG", "--vocab", "a", "--boxes", "100,100,120,120"], "lies outside the 70x50 image"),
    (["IMG", "--vocab", "a", "--points", "500,5"], "point 1 [500, 5] lies outside"),
    (["IMG", "--vocab", "a", "--boxes", " ; "], "holds no box"),
    (["MISSING.png", "--vocab", "a", "--boxes", "1,1,5,5"], "Image not found"),
    (["CORRUPT.png", "--vocab", "a", "--boxes", "1,1,5,5"], "is it a valid image file"),
    (["FOLDER", "--vocab", "a", "--boxes", "1,1,5,5"], "with many images the pictures go to OUT/<name>.png"),
    (["IMG", "--vocab", "a", "--boxes", "1,1,5,5", "--device", "gpu"], "unknown device"),
    (["IMG", "--vocab", "a", "--boxes", "1,1,5,5", "--top-k", "0"], "--top-k must be a positive number"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a[1:]) for a, _ in BAD])
def test_bad_input_is_one_line_before_any_model(photo, tmp_path, args, message):
    (tmp_path / "CORRUPT.png").write_bytes(b"not a png at all")
    args = [str(photo) if a == "IMG" else str(tmp_path) if a == "FOLDER" else str(tmp_path / a) if a.endswith(".png") else a for a in args]
    assert message in error_line(run(tmp_path, *args))
    assert not (tmp_path / "o.json").exists()


def test_an_inverted_box_in_a_json_file_names_the_file(photo, tmp_path):
    (tmp_path / "b.json").write_text(json.dumps([[30, 20, 10, 5]]))
    line = error_line(run(tmp_path, photo, "--vocab", "a", "--boxes-json", tmp_path / "b.json"))
    assert "b.json: box 1" in line and "--box-format xywh" in line


def test_an_output_folder_or_unwritable_place_is_refused(photo, tmp_path):
    (tmp_path / "taken.json").mkdir()  # an --out ending in .json names one image's result file
    line = error_line(runner.invoke(app, ["predict", str(photo), "--vocab", "a", "--boxes", "1,1,5,5",
                                          "--out", str(tmp_path / "taken.json")]))
    assert "is a folder" in line
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = error_line(runner.invoke(app, ["predict", str(photo), "--vocab", "a", "--boxes", "1,1,5,5",
                                          "--out", str(blocker / "sub" / "o.json")]))
    assert line.startswith(f"error: Cannot write {blocker / 'sub' / 'o.json'}")


@pytest.mark.parametrize("boxes,box_format", [("10 20 30 40", "xyxy"), ("10 20 30 40; 1,2,9,9", "xyxy"),
                                              ("10,20,30,20", "xywh"), ("10, 20, 30, 40\n1 2 9 9", "xyxy")])
def test_good_boxes_reach_the_model(photo, tmp_path, boxes, box_format):
    assert reached_model(run(tmp_path, photo, "--vocab", "a", "--boxes", boxes, "--box-format", box_format))


def test_cuda_without_a_cuda_build_is_one_line(photo, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    line = error_line(run(tmp_path, photo, "--vocab", "a", "--boxes", "1,1,5,5", "--device", "cuda"))
    assert line == (f"error: --device cuda: this torch build has no CUDA (torch {torch.__version__}); use --device cpu "
                    "or install a CUDA build of torch (see README Install).")


def test_device_availability_and_index(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RegionSpotError, match="sees no CUDA GPU"):
        checks.check_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert checks.check_device("cuda:0") == "cuda:0" and checks.check_device("cuda") == "cuda"
    with pytest.raises(RegionSpotError, match=r"has 1 CUDA GPU \(cuda:0\)"):
        checks.check_device("cuda:1")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(RegionSpotError, match="MPS is not available"):
        checks.check_device("mps")
    assert checks.check_device("cpu") == "cpu" and checks.check_device(None) is None


@pytest.mark.parametrize("command", ["serve", "eval"])
def test_serve_and_eval_check_the_device_first(tmp_path, command):
    extra = ["--data", str(tmp_path / "none.json"), "--images", str(tmp_path)] if command == "eval" else []
    line = error_line(runner.invoke(app, [command, "--device", "cuda:x", *extra]))
    assert "unknown device" in line


# --- the embedded model's notes ------------------------------------------------------------------
def notes(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("note:")]


def test_embedded_model_notes_names_and_an_unlike_image_once_each(photo, tmp_path):
    result = run(tmp_path, photo, "--vocab", "bear,zebra,red star", "--boxes", "1,1,30,30")
    assert reached_model(result)  # the notes come before the model loads
    found = notes(result)
    assert len(found) == 2, result.output
    assert "knows only 64 shape names" in found[0] and "'bear', 'zebra' are not among them" in found[0]
    assert "does not look like ShapesWorld" in found[1]
    assert all("regionspot download BL" in n and "--model BL" in n for n in found)


def test_no_notes_for_shapesworld_names_on_a_render(render, tmp_path):
    result = run(tmp_path, render, "--vocab", "red star, Blue  Circle", "--boxes", "1,1,30,30")
    assert reached_model(result) and notes(result) == []


def test_no_embedded_notes_with_another_model(photo, tmp_path):
    result = run(tmp_path, photo, "--vocab", "bear", "--boxes", "1,1,30,30", "--head", "my_head.safetensors")
    assert reached_model(result) and notes(result) == []


def test_names_note_on_the_bundled_example_but_no_image_note(tmp_path):
    result = run(tmp_path, "--vocab-preset", "coco")
    assert reached_model(result)
    assert len(notes(result)) == 1 and "'person', 'bicycle', 'car' and 77 more are not among them" in notes(result)[0]


def test_no_prompts_on_your_own_image_notes_everything_mode(render, tmp_path):
    result = run(tmp_path, render)
    assert reached_model(result) and notes(result) == [f"note: {checks.EVERYTHING_NOTE}"]
    assert notes(run(tmp_path, render, "--everything")) == []
    assert notes(run(tmp_path)) == []  # the bundled example has its boxes
