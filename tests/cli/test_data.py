"""`regionspot data convert openimages` and `regionspot data check` as a user runs them: output, exit status."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from regionspot.cli import app
from regionspot.testing.public_formats import make_objects365, make_openimages

runner = CliRunner()


def test_convert_openimages_then_check(tmp_path):
    files = make_openimages(tmp_path / "oi")
    out = tmp_path / "oi.json"
    result = runner.invoke(app, ["data", "convert", "openimages", "--boxes", str(files.boxes_csv), "--classes",
                                 str(files.classes_csv), "--images", str(files.images_dir), "--out", str(out),
                                 "--image-list", str(files.image_list), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: 4 images" in result.output and "(1 group-of boxes: crowd)" in result.output
    assert "| missing image | 1 |" in result.output and "| box of an image not in the image list | 2 |" in result.output
    checked = runner.invoke(app, ["data", "check", str(out), "--images", str(files.images_dir), "--strict",
                                  "--json", str(tmp_path / "report.json")])
    assert checked.exit_code == 0, checked.output
    assert "problems: none" in checked.output
    assert json.loads((tmp_path / "report.json").read_text())["totals"]["images"] == 4


def test_check_exits_nonzero_only_when_strict(tmp_path):
    path, root = make_objects365(tmp_path, version=2)
    doc = json.loads(path.read_text())
    doc["annotations"][0]["category_id"] = 999
    doc["images"][1]["width"] += 1
    path.write_text(json.dumps(doc))
    lenient = runner.invoke(app, ["data", "check", str(path), "--images", str(root)])
    assert lenient.exit_code == 0, lenient.output
    assert "| unknown category | 1 |" in lenient.output and "| image size differs from the file | 1 |" in lenient.output
    assert "image paths: from-patch" in lenient.output
    strict = runner.invoke(app, ["data", "check", str(path), "--images", str(root), "--strict"])
    assert strict.exit_code == 1 and "2 problems found" in strict.output
    missing = runner.invoke(app, ["data", "check", str(tmp_path / "nope.json"), "--images", str(root)])
    assert missing.exit_code == 2 and "error: Annotation file not found" in missing.output
    bad = runner.invoke(app, ["data", "convert", "openimages", "--boxes", str(path), "--classes", str(path),
                              "--images", str(root), "--out", str(tmp_path / "x.json")])
    assert bad.exit_code == 2 and "error:" in bad.output and "Traceback" not in bad.output
