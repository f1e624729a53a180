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


def test_files_over_the_decompression_bomb_limit_get_one_line_naming_it(tmp_path, monkeypatch):
    import warnings

    from regionspot.data.images import MAX_PIXELS_ENV, decode_pixel_limit, read_image_header
    from regionspot.testing.bad_images import bomb_png_bytes

    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    pil_limit = Image.MAX_IMAGE_PIXELS
    assert decode_pixel_limit() == pil_limit  # PIL's own limit (≈ 89.5 MP) by default
    over, far_over = tmp_path / "over.png", tmp_path / "far.png"
    over.write_bytes(bomb_png_bytes(10000, 10000))  # 100 MP: PIL only warns below 2× its limit, then decodes
    far_over.write_bytes(bomb_png_bytes(30000, 30000))  # 900 MP: PIL raises
    for path, size in [(over, "10000x10000 = 100.0"), (far_over, "30000x30000 = 900.0")]:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no DecompressionBombWarning before our line
            with pytest.raises(ImageError) as error:
                load_image(path)
            assert read_image_header(path)[:2] == tuple(int(v) for v in size.split(" ")[0].split("x"))
        message = str(error.value)
        assert "\n" not in message and path.name in message and size in message
        assert f"{pil_limit / 1e6:.1f} megapixels" in message and "MAX_IMAGE_PIXELS" in message and "decompression bomb" in message
        assert f"{MAX_PIXELS_ENV}=" in message and "--max-megapixels" in message
    # raised: the 100 MP header passes the limit (and then fails to decode: its pixel data is 1x1)
    monkeypatch.setenv(MAX_PIXELS_ENV, "101")
    with pytest.raises(ImageError, match="Cannot decode"):
        load_image(over)
    with pytest.raises(ImageError, match=f"101.0 megapixels.*{MAX_PIXELS_ENV}"):
        load_image(far_over)
    monkeypatch.delenv(MAX_PIXELS_ENV)
    with pytest.raises(ImageError, match="Cannot decode"):
        load_image(over, decode_limit=120_000_000)
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(ImageError, match="positive number of megapixels"):
        load_image(over)
    assert Image.MAX_IMAGE_PIXELS == pil_limit  # PIL's guard is back in place for everyone else
