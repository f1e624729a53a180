"""The "looks like ShapesWorld" test: every render is like, photos and natural textures are not."""

from __future__ import annotations

import matplotlib.cbook
import numpy as np
from PIL import Image

from regionspot.shapesworld.likeness import (
    MAX_PALETTE,
    MAX_TEXTURE,
    calibration_renders,
    looks_like_shapesworld,
    measure_likeness,
    pink_noise_image,
)


def test_every_render_of_both_worlds_and_splits_is_like():
    renders = calibration_renders(15)  # 15 x (v1, v2) x (train, val)
    assert len(renders) == 60
    unlike = [(name, measure_likeness(image)) for name, image in renders if not looks_like_shapesworld(image)]
    assert not unlike


def test_a_photo_and_its_crops_are_unlike():
    photo = Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    w, h = photo.size
    for image in (photo, photo.crop((0, 0, w * 3 // 4, h * 3 // 4)), photo.crop((w // 4, h // 4, w, h)),
                  photo.resize((256, 256))):
        likeness = measure_likeness(image)
        assert not likeness.like, likeness
        assert "many colours" in likeness.describe() or "fine texture" in likeness.describe()


def test_natural_textures_and_noise_are_unlike():
    rng = np.random.default_rng(1)
    for _ in range(5):
        assert not looks_like_shapesworld(pink_noise_image(rng, 128))
    assert not looks_like_shapesworld(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)))


def test_a_plain_image_is_like_and_small_or_odd_images_work():
    assert measure_likeness(Image.new("RGB", (300, 200), (90, 120, 200))) .like
    for size in ((1, 1), (5, 300), (3000, 7)):
        likeness = measure_likeness(Image.new("L", size, 128))
        assert likeness.palette >= 1 and likeness.texture == 0.0


def test_limits_sit_above_what_renders_show():
    values = [measure_likeness(image) for _, image in calibration_renders(10)]
    assert max(v.palette for v in values) < MAX_PALETTE and max(v.texture for v in values) < MAX_TEXTURE
