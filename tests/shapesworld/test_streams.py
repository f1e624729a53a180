"""The random-stream table: ids are distinct, complete, used through one helper and unchanged."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

import regionspot.shapesworld
from regionspot.shapesworld import streams
from regionspot.shapesworld.world import render_image, shapesworld_categories, uniform_probabilities

# sha256 (first 16 hex digits) of image 0 of each stream under seed 0 at 64 px (pixels + visible masks),
# recorded before the streams got their table. A change here changes every image drawn from that stream.
GOLDEN = {
    "TRAIN_SPLIT": "747fe0e32997898f",
    "VAL_SPLIT": "c3f41af5264c3c3e",
    "CLIP_CROPS": "0045e1b7f6641ce6",
    "CLIP_SCENES": "cbce88885f92f298",
    "CLIP_HELDOUT_CROPS": "27fb3a09493a882b",
    "CLIP_HELDOUT_SCENES": "3bd6cbc68291af20",
    "EXAMPLE_CANDIDATES": "54eb5e6017402281",
    "SAM_POOL": "5e48f0834a2c7db5",
    "SAM_HELDOUT": "2140e567c1048c66",
}
GOLDEN_BUCKETS = "fd6e64cb9f3f681b"  # the f/c/r letters of the 144 categories of seed 0, in id order


def test_stream_ids_are_unique_and_the_table_is_complete():
    ids = list(streams.STREAMS.values())
    assert len(ids) == len(set(ids))
    constants = {name: value for name, value in vars(streams).items() if name.isupper() and isinstance(value, int)}
    assert constants == streams.STREAMS
    assert set(streams.SPLIT_STREAMS.values()) <= set(ids)


def test_keyed_generators_are_made_only_by_the_streams_module():
    package = Path(regionspot.shapesworld.__file__).parent
    for path in package.glob("*.py"):
        if path.name != "streams.py":
            assert not re.search(r"default_rng\(\s*\[", path.read_text()), path.name


def test_stream_rng_is_default_rng_of_the_key_list():
    a = streams.stream_rng(3, streams.SAM_POOL, 7).random(4)
    np.testing.assert_array_equal(a, np.random.default_rng([3, streams.SAM_POOL, 7]).random(4))


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_every_stream_draws_the_images_it_always_drew(name):
    categories = shapesworld_categories(0)
    rng = streams.stream_rng(0, streams.STREAMS[name], 0)
    pixels, objects = render_image(rng, categories, uniform_probabilities(categories), image_size=64)
    digest = hashlib.sha256(pixels.tobytes() + b"".join(o.mask.tobytes() for o in objects)).hexdigest()[:16]
    assert digest == GOLDEN[name]


def test_category_buckets_are_unchanged():
    letters = "".join(c.frequency for c in shapesworld_categories(0))
    assert hashlib.sha256(letters.encode()).hexdigest()[:16] == GOLDEN_BUCKETS
