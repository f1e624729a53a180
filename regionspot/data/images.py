"""Reading images from what users have: a path, a PIL image, or a numpy array.

Every entry point (predictor, CLI, datasets, cache) goes through :func:`load_image`, so EXIF
orientation and odd modes (RGBA, L, P, CMYK, 16-bit, float) are handled once.

Image files larger than :func:`decode_pixel_limit` — PIL's decompression-bomb limit
``PIL.Image.MAX_IMAGE_PIXELS`` (≈ 89.5 megapixels) unless ``$REGIONSPOT_MAX_MEGAPIXELS`` says otherwise —
are refused from their header with one line that names the limit and how to raise it (PIL itself would
warn between 1× and 2× its limit and decode anyway, and raise above).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from regionspot.errors import ImageError

ImageLike = str | Path | Image.Image | np.ndarray


def _array_to_pil(array: np.ndarray) -> Image.Image:
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
        raise ImageError(
            f"Expected an HxW or HxWxC (C in 1, 3, 4) image array, got shape {array.shape}; pass HWC uint8 RGB."
        )
    if array.dtype == np.uint16:
        array = (array.astype(np.float32) / 65535.0 * 255.0).round().astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageError("The image array contains NaN or inf; pass finite values in [0, 1] or [0, 255].")
        scale = 255.0 if array.max() <= 1.0 else 1.0
        array = np.clip(array * scale, 0, 255).round().astype(np.uint8)
    elif array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return _to_rgb(Image.fromarray(np.ascontiguousarray(array)))


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        gray = np.clip(array / peak * 255.0, 0, 255).round().astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def check_image_size(width: int, height: int, max_pixels: int | None = None, max_side: int | None = None) -> None:
    """Raise ImageError when a width × height image is larger than the limits (None: no limit)."""
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(
            f"The image is {width}x{height} = {width * height / 1e6:.1f} megapixels, more than the "
            f"{max_pixels / 1e6:.1f} allowed here; downscale it first."
        )
    if max_side is not None and max(width, height) > max_side:
        raise ImageError(f"The image is {width}x{height}; its longest side may be at most {max_side} pixels here.")


MAX_PIXELS_ENV = "REGIONSPOT_MAX_MEGAPIXELS"
_PIL_LIMIT = threading.Lock()  # guards the moment PIL's own bomb check is lifted (see _open_file)


def _limit(pil_limit: int | None) -> int | None:
    value = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not value:
        return pil_limit
    try:
        megapixels = float(value)
    except ValueError:
        megapixels = math.nan
    if not megapixels > 0 or math.isinf(megapixels):
        raise ImageError(f"{MAX_PIXELS_ENV} must be a positive number of megapixels, e.g. 150; got {value!r}.")
    return int(megapixels * 1e6)


def decode_pixel_limit() -> int | None:
    """The most pixels an image file may have to be decoded: ``$REGIONSPOT_MAX_MEGAPIXELS`` × 10⁶ when
    set, else PIL's decompression-bomb limit ``PIL.Image.MAX_IMAGE_PIXELS`` (None: no limit)."""
    with _PIL_LIMIT:
        pil_limit = Image.MAX_IMAGE_PIXELS
    return _limit(pil_limit)


@contextmanager
def _open_file(path: Path) -> Iterator[tuple[Image.Image, int | None]]:
    """``Image.open(path)`` with PIL's own decompression-bomb warning/error lifted, and PIL's limit: a
    caller that decodes checks :func:`decode_pixel_limit` instead, with a message that says how to raise it.

    PIL reads its limit from a module global when it opens a file; it is lifted for that call only, under
    a lock, so that concurrent loads (the evaluation's prefetch threads) never see each other's change.
    """
    with _PIL_LIMIT:
        pil_limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            opened = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = pil_limit
    with opened:
        yield opened, pil_limit


def check_decodable(name: str, width: int, height: int, limit: int | None, origin: str | None = None) -> None:
    """Raise ImageError (one line: the size, the limit, how to raise it) when a width × height image file
    has more pixels than ``limit`` (None: no limit). origin: where the limit comes from (default: the
    environment variable when set, else PIL's decompression-bomb guard)."""
    if limit is None or width * height <= limit:
        return
    megapixels = width * height / 1e6
    if origin is None:
        origin = (f"the limit {MAX_PIXELS_ENV} sets" if os.environ.get(MAX_PIXELS_ENV, "").strip()
                  else "PIL's guard against decompression bombs, PIL.Image.MAX_IMAGE_PIXELS")
    raise ImageError(
        f"{name} is {width}x{height} = {megapixels:.1f} megapixels, more than {limit / 1e6:.1f} megapixels "
        f"({origin}); if you trust the file, raise the limit: {MAX_PIXELS_ENV}={math.ceil(megapixels)} "
        f"(regionspot predict: --max-megapixels {math.ceil(megapixels)})."
    )


def load_image(
    source: ImageLike, max_pixels: int | None = None, max_side: int | None = None, decode_limit: int | None = None
) -> Image.Image:
    """Return an RGB PIL image with EXIF orientation applied.

    source: a file path, a PIL image (any mode), or a numpy array HxW / HxWxC (uint8, uint16 or float).
    max_pixels / max_side: refuse larger images (a file's size is read from its header, before decoding).
    decode_limit: refuse a file with more pixels (None: :func:`decode_pixel_limit`, PIL's
    decompression-bomb limit by default); it may be above PIL's. Images already in memory (PIL, numpy)
    are not checked against it: they are decoded already.
    Raises ImageError with a one-line fix for a missing, corrupt, unsupported or too large image.
    """
    if isinstance(source, np.ndarray):
        if source.ndim >= 2:
            check_image_size(source.shape[1], source.shape[0], max_pixels, max_side)
        image = _array_to_pil(source)
    elif isinstance(source, Image.Image):
        check_image_size(*source.size, max_pixels, max_side)
        image = ImageOps.exif_transpose(source) or source
        image = _to_rgb(image)
    elif isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise ImageError(f"Image not found: {path}; check the path.")
        if path.is_dir():
            raise ImageError(f"{path} is a folder; pass an image file (JPEG, PNG, ...).")
        try:
            with _open_file(path) as (opened, pil_limit):
                if decode_limit is None:
                    check_decodable(path.name, *opened.size, _limit(pil_limit))
                else:
                    check_decodable(path.name, *opened.size, decode_limit, "the limit asked for")
                check_image_size(*opened.size, max_pixels, max_side)
                opened.load()
                image = ImageOps.exif_transpose(opened) or opened
                image = _to_rgb(image)
                image.load()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            raise ImageError(f"Cannot decode image {path} ({error.__class__.__name__}); is it a valid image file?") from error
    else:
        raise ImageError(f"Unsupported image type {type(source).__name__}; pass a path, PIL image or HWC uint8 array.")
    if image.width < 1 or image.height < 1:
        raise ImageError("The image is empty (0 pixels); pass a real image.")
    return image


EXIF_ORIENTATION_TAG = 0x0112
_SWAPS_SIDES = (5, 6, 7, 8)  # EXIF orientations that turn the image by 90 degrees


def read_image_header(path: str | Path) -> tuple[int, int, int]:
    """(width, height, exif_orientation) of an image file from its header, without decoding the pixels.

    width/height are the stored pixel matrix's; :func:`load_image` returns the image with the EXIF
    orientation (1..8, 1 = as stored) applied, which swaps the sides for 5..8 (see :func:`shown_size`).
    Raises ImageError naming the file when it is missing or not a readable image.
    """
    path = Path(path)
    try:
        with _open_file(path) as (opened, _pil_limit):
            width, height = opened.size
            orientation = 1
            # A JPEG's EXIF block is read with its header: without one there is nothing to parse.
            if opened.format != "JPEG" or opened.info.get("exif"):
                try:
                    orientation = int(opened.getexif().get(EXIF_ORIENTATION_TAG, 1))
                except (OSError, SyntaxError, ValueError, TypeError):
                    orientation = 1  # a damaged EXIF block: load_image's exif_transpose ignores it too
    except FileNotFoundError:
        raise ImageError(f"Image not found: {path}; check the path.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"Cannot read the header of {path} ({error.__class__.__name__}); is it a valid image file?") from None
    return width, height, orientation if 1 <= orientation <= 8 else 1


def shown_size(width: int, height: int, orientation: int) -> tuple[int, int]:
    """(width, height) of a stored ``width`` x ``height`` image once its EXIF orientation is applied."""
    return (height, width) if orientation in _SWAPS_SIDES else (width, height)


MISSING, UNREADABLE = "missing image", "unreadable image"


def probe_images(paths: list[Path], decode: bool = False) -> list[tuple[int, int, int] | str]:
    """For each path, ``(width, height, exif_orientation)`` from its header (see :func:`read_image_header`)
    or the problem: ``MISSING`` or ``UNREADABLE``. decode: also decode the pixels (finds truncated files)."""
    out: list[tuple[int, int, int] | str] = []
    for path in paths:
        try:
            header = read_image_header(path)
            if decode:
                load_image(path)
            out.append(header)
        except ImageError:
            out.append(MISSING if not Path(path).exists() else UNREADABLE)
    return out


def probe_images_in(pool: Executor | None, workers: int, paths: list[Path], decode: bool = False) -> list[tuple[int, int, int] | str]:
    """:func:`probe_images` split into one slice per worker of ``pool`` (a process pool: PIL's header
    parsing holds the GIL); in this process when ``pool`` is None. Results in the order of ``paths``."""
    if pool is None or len(paths) < 2 * workers:
        return probe_images(paths, decode)
    step = -(-len(paths) // workers)
    parts = pool.map(probe_images, [paths[k : k + step] for k in range(0, len(paths), step)], [decode] * workers)
    return [result for part in parts for result in part]
