"""Training's online feature maps through the image feeder: the cached maps of the same flip; the very
maps of decoding one image at a time in this process (jitter included, drawn in the same order); a
moved or resized image refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import ImageEnhance, ImageOps

from regionspot.cache.store import CacheError, TokenCache
from regionspot.data.images import load_image
from regionspot.engine.online_maps import online_feature_maps
from regionspot.engine.train import step_generator
from regionspot.testing.tiny_training import tiny_training_env


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return tiny_training_env(tmp_path_factory.mktemp("online"))


def one_at_a_time(vl, cache, items, color_jitter, generator):
    """The maps as training computed them before the feeder: each image decoded, mirrored and jittered in
    turn in this process (the jitter's three draws per image), then one ``feature_map`` of the PIL list."""
    images = []
    for item in items:
        image = load_image(Path(cache.image_root) / item.file_name)
        image = ImageOps.mirror(image) if item.flip else image
        if color_jitter > 0:
            factors = 1.0 + color_jitter * (2 * torch.rand(3, generator=generator) - 1)
            for enhancer, f in zip((ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color), factors):
                image = enhancer(image).enhance(float(f))
        images.append(image)
    return vl.feature_map(images).float()


def test_online_features_match_cached_maps_of_the_same_flip(env):
    cache = TokenCache(env["root"] / "cache")
    items = [cache.get(0, False), cache.get(0, True)]
    online = online_feature_maps(env["vl"], cache, items, 0.0, step_generator(0, 0, 0))
    for row, item in enumerate(items):
        torch.testing.assert_close(online[row], item.feature_map.float(), atol=2e-2, rtol=2e-3)
    assert not torch.allclose(online[0], online[1])


@pytest.mark.parametrize("color_jitter", [0.0, 0.3])
def test_the_feeder_gives_the_one_image_at_a_time_maps_exactly(env, color_jitter):
    cache = TokenCache(env["root"] / "cache")
    items = [cache.get(i, i % 2 == 1) for i in range(5)]
    got = online_feature_maps(env["vl"], cache, items, color_jitter, step_generator(3, 5, 0))
    want = one_at_a_time(env["vl"], cache, items, color_jitter, step_generator(3, 5, 0))
    assert got.shape == (5, env["vl"].num_tokens, want.shape[-1]) and torch.equal(got, want)
    if color_jitter:  # the draws matter: another step's jitter gives other maps
        other = online_feature_maps(env["vl"], cache, items, color_jitter, step_generator(3, 6, 0))
        assert not torch.equal(other, got)


def test_an_image_of_another_size_than_cached_is_refused(env, tmp_path):
    cache = TokenCache(env["root"] / "cache")
    item = cache.get(0, False)
    root = tmp_path / "images"
    (root / item.file_name).parent.mkdir(parents=True)
    load_image(Path(cache.image_root) / item.file_name).resize((item.width + 2, item.height)).save(root / item.file_name)
    cache.image_root = str(root)
    with pytest.raises(CacheError, match="rebuild the cache") as caught:
        online_feature_maps(env["vl"], cache, [item], 0.0, step_generator(0, 0, 0))
    assert "Traceback" not in str(caught.value)
