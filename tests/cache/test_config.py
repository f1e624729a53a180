"""CacheConfig: the one list of the cache's options; each bad value is refused naming its field."""

from __future__ import annotations

import dataclasses

import pytest

from regionspot.cache.config import CacheConfig
from regionspot.errors import CacheError


def test_defaults_build_the_cache_one_image_at_a_time_with_flips(tmp_path):
    config = CacheConfig(out=tmp_path)
    config.validate()
    assert (config.flip, config.batch_size, config.shard_size, config.chunk_size) == (True, 1, 64, 16)
    assert config.workers is None and config.limit is None and config.preprocess == "default"


@pytest.mark.parametrize(("field", "value", "named"), [
    ("batch_size", 0, "`batch_size`"), ("shard_size", -1, "`shard_size`"), ("chunk_size", 1.5, "`chunk_size`"),
    ("workers", -1, "`workers`"), ("limit", 0, "`limit`"), ("dtype", "fp8", "`dtype`"),
    ("preprocess", "other", "`preprocess`"), ("dataset", "missing.json", "`dataset`"), ("images", "missing", "`images`"),
])
def test_a_bad_value_is_refused_naming_its_field(tmp_path, field, value, named):
    config = dataclasses.replace(CacheConfig(out=tmp_path), **{field: value})
    with pytest.raises(CacheError) as caught:
        config.validate()
    assert named in str(caught.value) and str(value) in str(caught.value)
