"""`regionspot track` and `regionspot shapesworld clip`: a run on a ShapesWorld clip with the embedded model, and the
one-line errors (unreadable file, unsupported codec, a prompt on a frame that does not exist, empty vocabulary)."""

import json

import pytest
from typer.testing import CliRunner

from regionspot.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    out = tmp_path_factory.mktemp("clip") / "clip"
    result = runner.invoke(app, ["shapesworld", "clip", "--out", str(out), "--frames", "5", "--objects", "2", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "regionspot track" in result.output
    return out, json.loads((out / "clip.json").read_text())


def test_track_a_clip_writes_frames_tracks_and_the_overlay_video(clip, tmp_path):
    pytest.importorskip("av")
    folder, spec = clip
    out = tmp_path / "run"
    result = runner.invoke(app, ["track", str(folder / "frames"), "--boxes", spec["boxes_option"], "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "track 0:" in result.output and "track 1:" in result.output
    assert sorted(p.name for p in (out / "frames").iterdir()) == [f"{i:06d}.json" for i in range(5)]
    tracks = json.loads((out / "tracks.json").read_text())
    assert tracks["schema"] == "regionspot.tracks/1" and len(tracks["tracks"]) == 2
    assert (out / "overlay.mp4").is_file()
    again = runner.invoke(app, ["track", str(folder / "frames"), "--boxes", spec["boxes_option"], "--output", str(out)])
    assert again.exit_code == 0 and "complete already" in again.output
    other = runner.invoke(app, ["track", str(folder / "frames"), "--boxes", spec["boxes_option"], "--output", str(out),
                                "--vocab", "red circle,blue square"])
    assert other.exit_code == 2 and "holds a run with other options" in other.output and "--restart" in other.output


def _error(args):
    result = runner.invoke(app, ["track", *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_one_line_errors(clip, tmp_path):
    folder, spec = clip
    boxes = ["--boxes", spec["boxes_option"], "--output", str(tmp_path / "o")]
    (tmp_path / "notes.mp4").write_text("no video")
    assert "as a video" in _error([str(tmp_path / "notes.mp4"), *boxes])
    assert "There is no frame 9" in _error([str(folder / "frames"), "--frame", "9", *boxes])
    assert "names no class" in _error([str(folder / "frames"), "--vocab", " , ", *boxes])
    assert "boxes" in _error([str(folder / "frames"), "--output", str(tmp_path / "o")])
    assert "outside the 256x256 frame" in _error([str(folder / "frames"), "--points", "300,20", "--output", str(tmp_path / "o")])
    assert "--video-model" in _error([str(folder / "frames"), "--tracker", "video", *boxes])


def test_an_unsupported_codec_is_one_line(tmp_path, clip):
    pytest.importorskip("av")
    from PIL import Image

    from regionspot.video.frames import write_video

    folder, spec = clip
    write_video((Image.open(p) for p in sorted((folder / "frames").glob("*.png"))), tmp_path / "c.avi", fps=5)
    data = (tmp_path / "c.avi").read_bytes()
    tag = b"FMP4" if b"FMP4" in data else b"H264"
    (tmp_path / "odd.avi").write_bytes(data.replace(tag, b"ZQZQ"))
    assert "not supported" in _error([str(tmp_path / "odd.avi"), "--boxes", spec["boxes_option"]])
