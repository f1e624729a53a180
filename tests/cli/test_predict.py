"""`regionspot predict` on one image: JSON and picture, files of names and boxes, one-line errors, everything mode."""

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from regionspot.cli import app, parse_numbers
from regionspot.errors import PromptError

runner = CliRunner()


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    rng = np.random.default_rng(1)
    path = tmp_path_factory.mktemp("img") / "photo.png"
    Image.fromarray((rng.random((50, 70, 3)) * 255).astype(np.uint8)).save(path)
    return path


def model_args(model_dir):
    return ["--head", str(model_dir / "head.safetensors")]


def test_predict_writes_json_and_png(tiny_model_dir, image_path, tmp_path):
    out, viz = tmp_path / "r.json", tmp_path / "r.png"
    result = runner.invoke(app, ["predict", str(image_path), "--vocab", "cat,dog,bird", "--boxes",
                                 "1,2,30,40;10,10,69,49", "--out", str(out), "--viz", str(viz),
                                 *model_args(tiny_model_dir)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert len(data["regions"]) == 2 and data["regions"][0]["label"] in {"cat", "dog", "bird"}
    picture = Image.open(viz)
    assert picture.size == (70, 50)
    assert np.abs(np.asarray(picture, np.int16) - np.asarray(Image.open(image_path), np.int16)).sum() > 0


def test_vocab_file_and_boxes_json(tiny_model_dir, image_path, tmp_path):
    (tmp_path / "v.txt").write_text("cat\n# comment\ndog\n")
    (tmp_path / "b.json").write_text(json.dumps([{"bbox": [1, 2, 20, 20]}]))
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["predict", str(image_path), "--vocab-file", str(tmp_path / "v.txt"),
                                 "--boxes-json", str(tmp_path / "b.json"), "--out", str(out), "--viz", str(tmp_path / "v.png"),
                                 *model_args(tiny_model_dir)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["regions"][0]["box_xyxy"] == [1, 2, 21, 22]


@pytest.mark.parametrize("args,message", [
    (["MISSING.png", "--vocab", "a", "--boxes", "1,1,5,5"], "Image not found"),
    (["IMG", "--vocab", "a,a", "--boxes", "1,1,5,5"], "uplicate"),
    (["IMG", "--vocab", "", "--boxes", "1,1,5,5"], ""),
    (["IMG", "--vocab", "a", "--boxes", "1,1,5"], "4"),
    (["IMG", "--vocab", "a", "--boxes", "nan,1,5,5"], ""),
    (["IMG", "--vocab", "a", "--boxes", "5,5,5,9"], ""),
])
def test_bad_input_is_one_line_and_nonzero(tiny_model_dir, image_path, tmp_path, args, message):
    args = [str(image_path) if a == "IMG" else str(tmp_path / a) if a == "MISSING.png" else a for a in args]
    result = runner.invoke(app, ["predict", *args, "--out", str(tmp_path / "o.json"), "--viz", str(tmp_path / "o.png"),
                                 *model_args(tiny_model_dir)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and message in error_lines[0]
    assert not (tmp_path / "o.json").exists()


def test_an_image_over_the_pixel_limit_is_one_line_that_says_how_to_raise_it(tiny_model_dir, tmp_path):
    from regionspot.testing.bad_images import bomb_png_bytes

    big = tmp_path / "big.png"
    big.write_bytes(bomb_png_bytes(10000, 10000))  # a tiny file whose header declares 100 megapixels
    args = ["predict", str(big), "--vocab", "a", "--boxes", "1,1,5,5", "--out", str(tmp_path / "o.json"), *model_args(tiny_model_dir)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output and "Warning" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "100.0 megapixels" in error_lines[0] and "89.5 megapixels" in error_lines[0]
    assert "--max-megapixels 100" in error_lines[0] and "REGIONSPOT_MAX_MEGAPIXELS=100" in error_lines[0]
    raised = runner.invoke(app, [*args, "--max-megapixels", "100"])  # past the limit, then its 1x1 pixel data fails
    assert raised.exit_code == 2 and "Cannot decode" in raised.output and "megapixels" not in raised.output


def test_wrong_checkpoint_is_one_line(tmp_path, image_path):
    bad = tmp_path / "head.safetensors"
    bad.write_bytes(b"garbage")
    result = runner.invoke(app, ["predict", str(image_path), "--vocab", "a", "--boxes", "1,1,5,5", "--head", str(bad)])
    assert result.exit_code == 2 and "safetensors" in result.output and "Traceback" not in result.output


def test_parse_numbers():
    assert parse_numbers("1,2,3,4; 5,6,7,8", 4, "box") == [[1, 2, 3, 4], [5, 6, 7, 8]]
    with pytest.raises(PromptError):
        parse_numbers("1,2,x,4", 4, "box")


def test_without_prompts_a_random_model_says_it_found_nothing(tiny_model_dir, image_path, tmp_path):
    out = tmp_path / "auto.json"
    result = runner.invoke(app, ["predict", str(image_path), "--vocab", "cat,dog", "--grid", "4", "--out", str(out),
                                 "--viz", str(tmp_path / "auto.png"), *model_args(tiny_model_dir)])
    assert result.exit_code == 0, result.output
    # a random tiny SAM predicts negative mask IoUs, which the proposals drop: an empty result, said plainly
    assert "No regions were proposed" in result.output and json.loads(out.read_text())["regions"] == []


def test_bundled_example_without_boxes_recognises_everything_and_explains(tmp_path):
    """The embedded model on its own example, no prompts: regions are proposed and labelled, and the
    attention maps are drawn (a newcomer's first try)."""
    from regionspot.registry import assets_dir

    example = assets_dir() / "shapesworld" / "example.png"
    out, explain = tmp_path / "all.json", tmp_path / "explain.png"
    result = runner.invoke(app, ["predict", str(example), "--grid", "8", "--max-regions", "12", "--out", str(out),
                                 "--viz", str(tmp_path / "all.png"), "--explain", str(explain),
                                 "--explain-regions", "2", "--explain-per-layer"])
    assert result.exit_code == 0, result.output
    regions = json.loads(out.read_text())["regions"]
    assert 1 <= len(regions) <= 12 and "regions proposed" in result.output
    with Image.open(explain) as figure:  # 2 regions x 3 layers of 256 px panels
        assert figure.size == (3 * 256, 2 * 256)
    with_boxes = runner.invoke(app, ["predict", "--everything", "--boxes", "1,1,5,5"])
    assert with_boxes.exit_code == 2 and "--everything" in with_boxes.output


def test_reject_marks_regions_unknown_and_no_reject_labels_every_region(tmp_path):
    """The embedded head carries a calibrated rejection rule: with --reject (the default) each region says whether
    it is known, by that rule; --no-reject leaves the fields out. A box on empty background is the test region."""
    from regionspot.checkpoint import read_head_config
    from regionspot.registry import assets_dir

    rule = read_head_config(assets_dir() / "shapesworld" / "head.safetensors").rejection
    boxes = "0,0,20,20; 30,30,90,90"
    on, off = tmp_path / "on.json", tmp_path / "off.json"
    result = runner.invoke(app, ["predict", "--boxes", boxes, "--out", str(on), "--no-viz"])
    assert result.exit_code == 0, result.output
    plain = runner.invoke(app, ["predict", "--boxes", boxes, "--out", str(off), "--no-viz", "--no-reject"])
    assert plain.exit_code == 0, plain.output
    data, without = json.loads(on.read_text()), json.loads(off.read_text())
    assert data["rejection"] == {"score": rule.score, "threshold": rule.threshold}
    for region in data["regions"]:
        assert region["known"] == (region["rejection_score"] >= round(rule.threshold, 4) - 1e-4)
    assert "rejection" not in without and all("known" not in r for r in without["regions"])
    assert [r["label"] for r in data["regions"]] == [r["label"] for r in without["regions"]]  # labels unchanged
    unknown = [r for r in data["regions"] if not r["known"]]
    assert len(result.output.split("unknown  (best: ")) - 1 == len(unknown)
    assert "--no-reject" in runner.invoke(app, ["predict", "--help"]).output
