"""``regionspot predict`` on many images: files, folders, globs, a bad file, resuming, prompts files, COCO."""

import json
import os

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from regionspot.cli import app
from regionspot.inference.results import result_schema
from regionspot.testing.schema_check import check_against_schema

runner = CliRunner()
VOCAB = ["--vocab", "cat,dog,bird"]


def _image(path, seed, size=(70, 50)):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture
def folder(tmp_path):
    """Two good images, a corrupt .png and a text file (not an image suffix: a folder ignores it)."""
    root = tmp_path / "photos"
    _image(root / "a.png", 1)
    _image(root / "b.png", 2, size=(64, 40))
    (root / "broken.png").write_bytes(b"not a png at all")
    (root / "notes.txt").write_text("hello")
    return root


def _run(tiny_model_dir, *args):
    return runner.invoke(app, ["predict", *args, "--head", str(tiny_model_dir / "head.safetensors"), *VOCAB])


def _summary(output):
    return [line for line in output.splitlines() if " images: " in line][-1]


def test_a_folder_writes_each_image_and_skips_a_corrupt_file_in_one_line(tiny_model_dir, folder, tmp_path):
    out = tmp_path / "out"
    result = _run(tiny_model_dir, str(folder), "--boxes", "1,2,30,30", "--out", str(out))
    assert result.exit_code == 1, result.output  # some failed: status 1, the others written
    failed = [line for line in result.output.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1, repr(result.output)
    assert len(failed) == 1 and "broken.png" in failed[0] and "Traceback" not in result.output
    assert "3 images: 2 done, 0 skipped (finished before), 1 failed" in _summary(result.output)
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "a.png", "b.json", "b.png"]
    payload = json.loads((out / "b.json").read_text())
    check_against_schema(payload, result_schema())
    assert payload["image"] == {"path": str(folder / "b.png"), "width": 64, "height": 40}
    assert payload["regions"][0]["prompt"] == {"type": "box", "box_xyxy": [1.0, 2.0, 30.0, 30.0]}
    assert Image.open(out / "b.png").size == (64, 40)


def test_several_files_and_a_quoted_glob_with_clashing_names(tiny_model_dir, tmp_path):
    first, second = _image(tmp_path / "x" / "photo.png", 1), _image(tmp_path / "y" / "photo.png", 2)
    out = tmp_path / "out"
    listed = _run(tiny_model_dir, str(first), str(second), "--boxes", "1,1,20,20", "--out", str(out), "--no-viz")
    assert listed.exit_code == 0, listed.output
    assert sorted(p.name for p in out.iterdir()) == ["x__photo.json", "y__photo.json"]
    assert json.loads((out / "y__photo.json").read_text())["image"]["path"] == str(second)
    globbed = _run(tiny_model_dir, str(tmp_path / "*" / "photo.png"), "--boxes", "1,1,20,20", "--out",
                   str(tmp_path / "out2"), "--no-viz")
    assert globbed.exit_code == 0, globbed.output
    assert sorted(p.name for p in (tmp_path / "out2").iterdir()) == ["x__photo.json", "y__photo.json"]
    nothing = _run(tiny_model_dir, str(tmp_path / "*.jpg"), "--out", str(tmp_path / "o3"))
    assert nothing.exit_code == 2 and "No file matches" in nothing.output


def test_a_rerun_skips_finished_images_without_loading_the_model(tiny_model_dir, folder, tmp_path, monkeypatch):
    import regionspot.cli.predict as predict_cli

    (folder / "broken.png").unlink()
    out = tmp_path / "out"
    args = [str(folder), "--boxes", "1,2,30,30", "--out", str(out)]
    assert _run(tiny_model_dir, *args).exit_code == 0
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    def no_model(options):
        raise AssertionError("the model was loaded although every image was finished")

    monkeypatch.setattr(predict_cli, "load_model", no_model)
    again = _run(tiny_model_dir, *args)
    assert again.exit_code == 0, again.output
    assert "2 images: 0 done, 2 skipped (finished before), 0 failed" in _summary(again.output)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    monkeypatch.undo()
    changed = _run(tiny_model_dir, *args, "--top-k", "2")  # other options: not finished
    assert "2 done, 0 skipped" in _summary(changed.output)
    (out / "a.json").unlink()  # a run killed before a's JSON: only a is redone
    resumed = _run(tiny_model_dir, *args, "--top-k", "2")
    assert "1 done, 1 skipped" in _summary(resumed.output)
    head = tiny_model_dir / "head.safetensors"
    os.utime(head, ns=(head.stat().st_atime_ns, head.stat().st_mtime_ns + 1_000_000))  # a rebuilt head: new work
    assert "2 done, 0 skipped" in _summary(_run(tiny_model_dir, *args, "--top-k", "2").output)


def test_a_prompts_file_gives_each_image_its_own_prompts(tiny_model_dir, folder, tmp_path):
    (folder / "broken.png").unlink()
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"a.png": {"boxes": [[1, 1, 20, 20], [5, 5, 40, 30]]}, "b.png": {"points": [[10, 12]]},
                                   "gone.png": {"boxes": [[1, 1, 2, 2]]}}))
    out = tmp_path / "out"
    result = _run(tiny_model_dir, str(folder), "--prompts", str(prompts), "--out", str(out), "--no-viz")
    assert result.exit_code == 0, result.output
    assert "match no image" in result.output and "gone.png" in result.output
    a, b = (json.loads((out / f"{n}.json").read_text()) for n in "ab")
    assert [r["prompt"]["box_xyxy"] for r in a["regions"]] == [[1, 1, 20, 20], [5, 5, 40, 30]]
    assert b["regions"][0]["prompt"] == {"type": "point", "points": [[10.0, 12.0]], "point_labels": [1]}
    prompts.write_text(json.dumps({"a.png": {"boxes": [[1, 1, 20, 20]]}}))
    missing = _run(tiny_model_dir, str(folder), "--prompts", str(prompts), "--out", str(tmp_path / "o2"))
    assert missing.exit_code == 2 and "1 of 2 images have no entry" in missing.output
    assert not (tmp_path / "o2").exists()  # refused before any work
    prompts.write_text(json.dumps({"a.png": {"boxes": [[30, 1, 20, 20]]}}))
    flipped = _run(tiny_model_dir, str(folder), "--prompts", str(prompts), "--out", str(tmp_path / "o3"))
    assert flipped.exit_code == 2 and "x2 > x1" in flipped.output


def test_coco_format_is_accepted_by_pycocotools(tiny_model_dir, folder, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.mask import decode

    out = tmp_path / "out"
    result = _run(tiny_model_dir, str(folder), "--boxes", "1,2,30,30;3,3,20,25", "--out", str(out),
                  "--format", "coco", "--masks", "--top-k", "2")
    assert result.exit_code == 1 and "results.coco.json" in result.output
    ids = json.loads((out / "image_ids.json").read_text())
    assert ids["categories"] == {"cat": 1, "dog": 2, "bird": 3} and len(ids["images"]) == 3
    gt = COCO()
    gt.dataset = {"images": [{"id": i, "file_name": f, **dict(zip(("width", "height"), Image.open(f).size))}
                             for f, i in ids["images"].items() if not f.endswith("broken.png")],
                  "categories": [{"id": i, "name": n} for n, i in ids["categories"].items()], "annotations": []}
    gt.createIndex()
    detections = gt.loadRes(str(out / "results.coco.json"))
    anns = detections.loadAnns(detections.getAnnIds())
    assert len(anns) == 2 * 2 * 2  # 2 images x 2 regions x top-2 classes
    b_id = ids["images"][str(folder / "b.png")]
    mine = [a for a in anns if a["image_id"] == b_id]
    assert mine[0]["bbox"] == [1, 2, 29, 28] and decode(mine[0]["segmentation"]).shape == (40, 64)
    payload = json.loads((out / "b.json").read_text())
    assert sorted(a["score"] for a in mine) == sorted(t["score"] for r in payload["regions"] for t in r["top_k"])


@pytest.mark.parametrize("args,message", [
    (["--model", "shapesworld", "--head", "x.safetensors"], "not both"),
    (["--out", "r.json", "--boxes", "1,1,5,5"], "must be a folder"),
    (["--viz", "v.png", "--out", "o"], "--viz and --explain"),
    (["--format", "yaml", "--out", "o"], "--format"),
])
def test_bad_many_image_options_are_one_line(folder, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["predict", str(folder), str(folder / "a.png"), *args])
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1 and message in errors[0], result.output
