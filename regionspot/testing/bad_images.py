"""Bad image files for tests of every reader: not an image, truncated, a decompression bomb."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def png_bytes(width: int, height: int, seed: int = 0) -> bytes:
    """A valid RGB PNG of random pixels."""
    pixels = (np.random.default_rng(seed).random((height, width, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def bomb_png_bytes(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width × height pixels (a decompression bomb's shape): the
    header is valid (its CRC too), the pixel data is that of a 1×1 image."""
    data = bytearray(png_bytes(1, 1))
    # layout: 8-byte signature, then the IHDR chunk: length (4), b"IHDR" (4), width (4), height (4), ...
    data[16:24] = struct.pack(">II", width, height)
    header = bytes(data[12:29])  # chunk type + 13 bytes of IHDR data
    data[29:33] = struct.pack(">I", zlib.crc32(header) & 0xFFFFFFFF)
    return bytes(data)


def write_bad_images(folder: str | Path) -> dict[str, Path]:
    """Write {"not_an_image", "truncated", "bomb", "empty"} files into ``folder``; return their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    good = png_bytes(64, 48)
    files = {
        "not_an_image": b"this is a text file, not a picture\n" * 20,
        "truncated": good[: len(good) // 2],
        "bomb": bomb_png_bytes(30000, 30000),
        "empty": b"",
    }
    paths = {}
    for name, content in files.items():
        paths[name] = folder / f"{name}.png"
        paths[name].write_bytes(content)
    return paths
