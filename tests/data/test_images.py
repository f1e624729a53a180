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


def test_bad_files_and_size_limits_are_image_errors(tmp_path):
    from regionspot.testing.bad_images import bomb_png_bytes, png_bytes, write_bad_images

    bad = write_bad_images(tmp_path)
    for name, match in [("not_an_image", "Cannot decode"), ("truncated", "Cannot decode"),
                        ("bomb", "decompression bomb"), ("empty", "Cannot decode")]:
        with pytest.raises(ImageError, match=match):
            load_image(bad[name])
    header_only = tmp_path / "big.png"
    header_only.write_bytes(bomb_png_bytes(5000, 4000))  # 20 MP declared: refused from the header alone
    with pytest.raises(ImageError, match="20.0 megapixels"):
        load_image(header_only, max_pixels=12_000_000)
    wide = tmp_path / "wide.png"
    wide.write_bytes(png_bytes(300, 2))
    with pytest.raises(ImageError, match="at most 256"):
        load_image(wide, max_side=256)
    assert load_image(wide, max_pixels=600, max_side=300).size == (300, 2)
    with pytest.raises(ImageError, match="megapixels"):
        load_image(np.zeros((10, 10, 3), np.uint8), max_pixels=99)
    with pytest.raises(ImageError, match="longest side"):
        load_image(Image.new("RGB", (11, 2)), max_side=10)
