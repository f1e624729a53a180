"""Video frames, streamed: a folder of images or a video file read one frame at a time, and videos written.

A video file is decoded with PyAV (``av``, the ``[video]`` extra: FFmpeg's libraries bundled in its wheels),
one frame at a time, so memory does not grow with the video's length. A folder holds one image per frame,
taken in natural name order (``frame2.png`` before ``frame10.png``). Every problem — a missing path, a file
that is no video, a codec this FFmpeg build cannot decode, an empty folder — is one :class:`VideoError` line.

Frame indices count from 0; sizes are (height, width) in pixels.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from regionspot.data.images import load_image, read_image_header, shown_size
from regionspot.errors import VideoError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
DEFAULT_FPS = 10.0  # a frame folder's rate when none is given (the overlay video's)


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _av():
    try:
        import av
    except ImportError as error:  # the [video] extra
        raise VideoError("Reading a video file needs PyAV: pip install 'regionspot[video]' (or pass a folder of "
                         "frame images).") from error
    return av


@dataclass
class FrameSource:
    """Where frames come from. path: the folder or video file; files: a folder's frame images in order (None for
    a video); count: the number of frames (None when a video's container does not say); size: (height, width)
    of the frames; fps: frames per second (a folder: ``DEFAULT_FPS``)."""

    path: Path
    files: list[Path] | None
    count: int | None
    size: tuple[int, int]
    fps: float

    def frames(self, start: int = 0) -> Iterator[tuple[int, Image.Image]]:
        """(index, RGB image) of frames ``start``, ``start`` + 1, ... to the end, decoded one at a time. A video's
        frames before ``start`` are decoded and dropped (no seeking: a decoder's keyframe seek is not exact)."""
        if self.files is not None:
            for index in range(start, len(self.files)):
                yield index, load_image(self.files[index])
            return
        av = _av()
        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for index, frame in enumerate(container.decode(stream)):
                    if index >= start:
                        yield index, frame.to_image().convert("RGB")
        except av.error.FFmpegError as error:
            raise VideoError(f"Cannot decode {self.path} ({error.__class__.__name__}: {error.strerror}); the file "
                             "may be damaged.") from error

    def check_frame(self, index: int) -> None:
        """Raise VideoError when frame ``index`` is not in the video (when its length is known)."""
        if index < 0 or (self.count is not None and index >= self.count):
            known = f"{self.count} frames (0..{self.count - 1})" if self.count else "no frames"
            raise VideoError(f"There is no frame {index}: {self.path} has {known}; pick a frame in that range.")


def open_frames(path: str | Path, fps: float | None = None) -> FrameSource:
    """The frames of ``path``: a folder of images or a video file, checked (the first frame's size read, a
    video's first frame decoded); fps overrides the rate (needed for nothing but the overlay video).
    Raises VideoError with a one-line fix."""
    path = Path(path)
    if not path.exists():
        raise VideoError(f"Video not found: {path}; check the path.")
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()), key=_natural_key)
        if not files:
            raise VideoError(f"{path} holds no frame images ({', '.join(sorted(IMAGE_SUFFIXES))}); pass a folder of "
                             "frames or a video file.")
        width, height = shown_size(*read_image_header(files[0]))  # an unreadable first frame: one ImageError line
        return FrameSource(path, files, len(files), (height, width), fps or DEFAULT_FPS)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise VideoError(f"{path} is one image; pass a video file or a folder of frame images.")
    return _probe_video(path, fps)


def _probe_video(path: Path, fps: float | None) -> FrameSource:
    av = _av()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path} has no video stream; pass a video file or a folder of frame images.")
            stream = container.streams.video[0]
            if stream.codec_context is None:
                tag = getattr(stream, "codec_tag", "") or "unknown"
                raise VideoError(f"Cannot decode {path}: its video codec ({tag}) is not supported by this FFmpeg build; "
                                 "convert it (e.g. to H.264) or extract its frames into a folder.")
            first = next(container.decode(stream), None)
            if first is None:
                raise VideoError(f"{path} has no decodable frame; the file may be empty or damaged.")
            rate = float(stream.average_rate) if stream.average_rate else DEFAULT_FPS
            count = int(stream.frames) or None
            return FrameSource(path, None, count, (first.height, first.width), fps or rate)
    except av.error.FFmpegError as error:
        if isinstance(error, av.error.DecoderNotFoundError):
            raise VideoError(f"Cannot decode {path}: its video codec is not supported by this FFmpeg build; convert it "
                             "(e.g. to H.264) or extract its frames into a folder.") from error
        raise VideoError(f"Cannot read {path} as a video ({error.strerror}); is it a video file?") from error


def video_encoder() -> str:
    """The codec overlay videos are written with: H.264 (libx264) when this FFmpeg build has it, else MPEG-4 Part 2."""
    av = _av()
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def write_video(frames: Iterable[Image.Image], path: str | Path, fps: float) -> int:
    """Encode ``frames`` (RGB images of one size, streamed) into the video file ``path`` (.mp4, .mkv, ...),
    written to ``path`` + ".part" and renamed when complete. Odd sides are cropped by one pixel (yuv420p).
    Returns the number of frames written."""
    from fractions import Fraction

    av = _av()
    path = Path(path)
    part = path.with_name(path.name + ".part")
    written = 0
    with av.open(str(part), "w", format=_container_format(path)) as container:
        stream = None
        for image in frames:
            if stream is None:
                stream = container.add_stream(video_encoder(), rate=Fraction(fps).limit_denominator(1000))
                stream.width, stream.height = image.width - image.width % 2, image.height - image.height % 2
                stream.pix_fmt = "yuv420p"
            if image.size != (stream.width, stream.height):
                image = image.crop((0, 0, stream.width, stream.height))
            for packet in stream.encode(av.VideoFrame.from_image(image.convert("RGB"))):
                container.mux(packet)
            written += 1
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    part.replace(path)
    return written


def _container_format(path: Path) -> str | None:
    return {".mp4": "mp4", ".mkv": "matroska", ".avi": "avi", ".mov": "mov"}.get(path.suffix.lower())
