"""Frames streamed from a folder or a video file (PyAV), videos written, and one-line errors for bad inputs."""

import numpy as np
import pytest
from PIL import Image

from regionspot.errors import ImageError, VideoError
from regionspot.video.frames import open_frames, write_video

pytest.importorskip("av")


def _frames(count: int, size=(48, 64)):
    """Frames whose mean brightness encodes their index (robust to lossy coding)."""
    return [Image.fromarray(np.full((*size, 3), 20 + 10 * i, np.uint8)) for i in range(count)]


@pytest.fixture(scope="module")
def video_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vid") / "clip.mp4"
    assert write_video(iter(_frames(12)), path, fps=8) == 12
    return path


def test_video_file_streams_its_frames_in_order(video_file):
    source = open_frames(video_file)
    assert source.count == 12 and source.size == (48, 64) and source.fps == pytest.approx(8)
    frames = source.frames()
    assert not isinstance(frames, list)  # a generator: one decoded frame at a time
    levels = [np.asarray(image, np.float32).mean() for _, image in frames]
    assert len(levels) == 12 and np.allclose(levels, [20 + 10 * i for i in range(12)], atol=3)


def test_video_frames_from_a_start_frame(video_file):
    indices = [index for index, _ in open_frames(video_file).frames(start=9)]
    assert indices == [9, 10, 11]


def test_folder_frames_in_natural_order(tmp_path):
    for i, image in enumerate(_frames(11)):
        image.save(tmp_path / f"f{i}.png")
    source = open_frames(tmp_path)
    assert source.count == 11 and source.size == (48, 64)
    assert [p.name for p in source.files[:3]] == ["f0.png", "f1.png", "f2.png"] and source.files[-1].name == "f10.png"
    first = next(source.frames(start=10))
    assert first[0] == 10 and np.asarray(first[1]).mean() == pytest.approx(120, abs=1)


def test_a_frame_that_does_not_exist_is_one_line(video_file):
    source = open_frames(video_file)
    source.check_frame(11)
    with pytest.raises(VideoError, match="There is no frame 12: .* has 12 frames"):
        source.check_frame(12)


def test_bad_inputs_are_one_line(tmp_path):
    with pytest.raises(VideoError, match="Video not found"):
        open_frames(tmp_path / "missing.mp4")
    (tmp_path / "notes.mp4").write_text("not a video")
    with pytest.raises(VideoError, match="Cannot read .*notes.mp4 as a video"):
        open_frames(tmp_path / "notes.mp4")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VideoError, match="holds no frame images"):
        open_frames(empty)
    _frames(1)[0].save(tmp_path / "one.png")
    with pytest.raises(VideoError, match="is one image"):
        open_frames(tmp_path / "one.png")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "0.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ImageError):
        open_frames(broken)


def test_an_unsupported_codec_is_one_line(tmp_path):
    """An AVI whose codec tag no FFmpeg decoder knows (an MPEG-4 file with its FourCC replaced)."""
    path = tmp_path / "clip.avi"
    write_video(iter(_frames(3)), path, fps=5)
    data = path.read_bytes()
    tag = b"FMP4" if b"FMP4" in data else b"H264"
    assert tag in data
    (tmp_path / "odd.avi").write_bytes(data.replace(tag, b"ZQZQ"))
    with pytest.raises(VideoError, match="codec .*not supported"):
        open_frames(tmp_path / "odd.avi")
