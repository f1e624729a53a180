"""Shard writer/reader round trip, verification of truncated/corrupt shards, incomplete caches."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from regionspot.cache.extract import plan_shards
from regionspot.cache.store import (
    CACHE_FORMAT_VERSION,
    CacheError,
    ShardWriter,
    TokenCache,
    write_json_atomic,
)


def _build(tmp_path, with_maps=True):
    plan = plan_shards(3, world_size=1, shard_size=2)
    manifest = {
        "format_version": CACHE_FORMAT_VERSION,
        "segmenter": "tiny",
        "token_dim": 8,
        "vision_language": {"id": "clip", "image_size": 32} if with_maps else None,
        "flip": True,
        "dataset_name": "toy",
        "category_names": ["a", "b", "c"],
        "image_root": str(tmp_path),
        "shards": plan,
    }
    write_json_atomic(tmp_path / "manifest.json", manifest)
    g = torch.Generator().manual_seed(0)
    expected = {}
    for shard in plan:
        w = ShardWriter(tmp_path, shard["name"], token_dim=8)
        for pos in range(shard["start"], shard["stop"]):
            for flip in (False, True):
                n = pos + 1
                tokens = torch.randn(n, 8, generator=g)
                boxes = torch.rand(n, 4, generator=g) * 10
                labels = torch.randint(0, 3, (n,), generator=g)
                fmap = torch.randn(5, 4, generator=g) if with_maps else None
                w.add(image_index=pos, image_id=100 + pos, file_name=f"{pos}.png", width=20, height=10, flip=flip,
                      tokens=tokens, boxes=boxes, labels=labels, feature_map=fmap)
                expected[(pos, flip)] = (tokens, boxes, labels, fmap)
        w.finalize()
    return plan, expected


def test_round_trip(tmp_path):
    plan, expected = _build(tmp_path)
    assert len(plan) == 2
    cache = TokenCache(tmp_path)
    assert cache.num_images == 3 and cache.has_flip and cache.has_feature_maps
    assert cache.num_regions == 2 * (1 + 2 + 3)
    for (pos, flip), (tokens, boxes, labels, fmap) in expected.items():
        item = cache.get(pos, flip)
        assert item.tokens.dtype == torch.float16 and item.tokens.shape == (pos + 1, 8)
        torch.testing.assert_close(item.tokens.float(), tokens.half().float())
        torch.testing.assert_close(item.boxes, boxes)
        assert torch.equal(item.labels, labels)
        torch.testing.assert_close(item.feature_map.float(), fmap.half().float())
        assert item.flip == flip and item.image_id == 100 + pos and item.file_name == f"{pos}.png"
        assert (item.width, item.height) == (20, 10)
    # One file per shard (+ its index), never one per image.
    assert len(list((tmp_path / "shards").glob("*.bin"))) == 2


def test_truncated_shard_is_reported(tmp_path):
    _build(tmp_path)
    shard = sorted((tmp_path / "shards").glob("*.bin"))[1]
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(CacheError, match=shard.name):
        TokenCache(tmp_path)


def test_corrupt_shard_is_reported(tmp_path):
    _build(tmp_path)
    shard = sorted((tmp_path / "shards").glob("*.bin"))[0]
    data = bytearray(shard.read_bytes())
    data[10] ^= 0xFF  # same size, different content
    shard.write_bytes(bytes(data))
    with pytest.raises(CacheError, match=f"{shard.name}.*sha256"):
        TokenCache(tmp_path)
    TokenCache(tmp_path, verify="size")  # size-only verification cannot see it; that is the documented trade-off


def test_incomplete_cache_is_reported(tmp_path):
    _build(tmp_path)
    meta = sorted((tmp_path / "shards").glob("*.json"))[1]
    meta.unlink()
    with pytest.raises(CacheError, match="incomplete.*" + meta.name):
        TokenCache(tmp_path)


def test_missing_cache_and_bad_version(tmp_path):
    with pytest.raises(CacheError, match="regionspot cache"):
        TokenCache(tmp_path / "nothing")
    _build(tmp_path, with_maps=False)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert TokenCache(tmp_path).get(0).feature_map is None
    manifest["format_version"] = 999
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CacheError, match="rebuild"):
        TokenCache(tmp_path)


def test_plan_is_deterministic_and_covers_everything():
    plan = plan_shards(10, world_size=3, shard_size=2)
    covered = sorted(i for s in plan for i in range(s["start"], s["stop"]))
    assert covered == list(range(10))
    assert plan == plan_shards(10, world_size=3, shard_size=2)
    assert {s["rank"] for s in plan} == {0, 1, 2}
    assert all(s["stop"] - s["start"] <= 2 for s in plan)
    assert len({s["name"] for s in plan}) == len(plan)
    assert np.all(np.diff([s["start"] for s in plan]) > 0)
