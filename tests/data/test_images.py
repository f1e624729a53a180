import numpy as np
import pytest
from PIL import Image

from regionspot.data.images import load_image
from regionspot.errors import ImageError


def test_modes_become_rgb(tmp_path):
    base = (np.arange(12 * 10 * 3) % 251).astype(np.uint8).reshape(12, 10, 3)
    rgb = Image.fromarray(base)
    for image in [rgb.convert("RGBA"), rgb.convert("L"), rgb.convert("P"), rgb.convert("CMYK"), rgb.convert("I;16")]:
        out = load_image(image)
        assert out.mode == "RGB" and out.size == (10, 12)
    sixteen = (np.arange(120, dtype=np.uint16).reshape(12, 10) * 500)
    out = np.asarray(load_image(sixteen))
    assert out.shape == (12, 10, 3) and out.max() == round(119 * 500 / 65535 * 255)
    assert np.asarray(load_image(base)).tolist() == base.tolist()
    assert np.asarray(load_image(base.astype(np.float32) / 255.0)).max() == base.max()


def test_transparent_pixels_composite_on_white():
    rgba = np.zeros((4, 4, 4), np.uint8)
    out = np.asarray(load_image(rgba))
    assert (out == 255).all()


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (20, 10), (255, 0, 0))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = tmp_path / "rot.jpg"
    image.save(path, exif=exif)
    assert load_image(path).size == (10, 20)


def test_bad_inputs_give_clear_errors(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "missing.png")
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(ImageError, match="Cannot decode"):
        load_image(corrupt)
    with pytest.raises(ImageError, match="shape"):
        load_image(np.zeros((2, 3, 4, 5), np.uint8))
    with pytest.raises(ImageError, match="NaN"):
        load_image(np.full((3, 3, 3), np.nan, np.float32))
    with pytest.raises(ImageError, match="Unsupported"):
        load_image(42)
