"""Token-cache extraction on a tiny ShapesWorld with tiny random SAM and CLIP: contents, flips,
resume without recomputation, several ranks writing their own shards."""

from __future__ import annotations

import shutil

import pytest
import torch
from PIL import ImageOps

from regionspot.backbones.segmenter import load_segmenter
from regionspot.backbones.vision_language import load_vision_language
from regionspot.cache.extract import cache_is_complete, extract_cache
from regionspot.cache.store import CacheError, TokenCache
from regionspot.data.coco_json import CocoDetectionDataset
from regionspot.data.transforms import hflip_boxes
from regionspot.shapesworld.generate import generate_shapesworld
from regionspot.testing.tiny_clip import save_tiny_clip
from regionspot.testing.tiny_sam import save_tiny_sam
from regionspot.utils.fingerprint import weights_fingerprint


class CountingSegmenter:
    """Forwards to a segmenter and counts encoded images."""

    def __init__(self, inner):
        self.inner = inner
        self.model_id = inner.model_id
        self.token_dim = inner.token_dim
        self.decoder_layer_norm_eps = inner.decoder_layer_norm_eps
        self.weights_fingerprint = None
        self.encoded = 0

    def encode_image(self, image):
        self.encoded += 1
        return self.inner.encode_image(image)

    def decode_prompts(self, *args, **kwargs):
        return self.inner.decode_prompts(*args, **kwargs)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("extract")
    info = generate_shapesworld(root / "sw", num_train=5, num_val=0, seed=0, image_size=64, progress=False)
    dataset = CocoDetectionDataset(info["train_json"], info["image_root"], dataset_name="shapesworld")
    segmenter = load_segmenter(str(save_tiny_sam(root / "sam")))
    vl = load_vision_language(str(save_tiny_clip(root / "clip")))
    cache_dir = root / "cache"
    stats = extract_cache(dataset, segmenter, cache_dir, vision_language=vl, flip=True, shard_size=2,
                          show_progress=False)
    return {"root": root, "dataset": dataset, "segmenter": segmenter, "vl": vl, "cache": cache_dir, "stats": stats}


def test_cache_holds_segmenter_tokens_of_both_flips(env):
    dataset, segmenter, vl = env["dataset"], env["segmenter"], env["vl"]
    cache = TokenCache(env["cache"])
    stats = env["stats"]
    assert cache.num_images == len([i for i in range(len(dataset)) if len(dataset[i].boxes)])
    assert stats.boxes == cache.num_regions > 0 and stats.bytes_per_box >= segmenter.token_dim * 2 + 16 + 8
    assert cache.category_names == list(dataset.category_names)
    assert cache.manifest["prompt_type"] == "box" and cache.manifest["token_dtype"] == "float16"
    assert len(list((env["cache"] / "shards").glob("*.bin"))) == 3  # 5 images, 2 per shard
    for flip in (False, True):
        item = cache.get(0, flip)
        image = dataset.load_image(0)
        boxes = torch.as_tensor(dataset[0].boxes).float()
        if flip:
            image, boxes = ImageOps.mirror(image), hflip_boxes(boxes, image.width)
        ref = segmenter.decode_prompts(segmenter.encode_image(image), boxes=boxes, masks="none")
        assert item.tokens.dtype == torch.float16
        torch.testing.assert_close(item.tokens.float(), ref.tokens.float(), atol=2e-3, rtol=2e-3)
        torch.testing.assert_close(item.boxes, boxes)
        assert torch.equal(item.labels, torch.as_tensor(dataset[0].labels).long())
        torch.testing.assert_close(item.feature_map.float(), vl.feature_map([image])[0], atol=2e-2, rtol=2e-3)
    # The mirrored variant is a different image: its tokens differ.
    assert not torch.allclose(cache.get(0, False).tokens, cache.get(0, True).tokens)


def test_rerun_skips_finished_shards_and_recomputes_only_missing(env, tmp_path):
    out = tmp_path / "cache"
    shutil.copytree(env["cache"], out)
    before = {p.name: p.read_bytes() for p in (out / "shards").glob("*.bin")}
    victim = sorted((out / "shards").glob("*.bin"))[1]
    victim.unlink()
    victim.with_suffix(".json").unlink()
    counting = CountingSegmenter(env["segmenter"])
    counting.weights_fingerprint = weights_fingerprint(env["segmenter"])
    assert not cache_is_complete(out)
    with pytest.raises(CacheError, match="incomplete"):
        TokenCache(out)
    stats = extract_cache(env["dataset"], counting, out, vision_language=env["vl"], flip=True, shard_size=2,
                          show_progress=False)
    assert stats.skipped_shards == 2 and stats.written_shards == 1
    assert counting.encoded == 2 * 2  # the one missing shard: 2 images x 2 flips
    after = {p.name: p.read_bytes() for p in (out / "shards").glob("*.bin")}
    assert after == before  # deterministic: the recomputed shard is byte-identical
    # Rerunning a complete cache computes nothing.
    counting.encoded = 0
    extract_cache(env["dataset"], counting, out, vision_language=env["vl"], flip=True, shard_size=2, show_progress=False)
    assert counting.encoded == 0


def test_settings_mismatch_is_refused(env, tmp_path):
    out = tmp_path / "cache"
    shutil.copytree(env["cache"], out)
    with pytest.raises(CacheError, match="flip"):
        extract_cache(env["dataset"], env["segmenter"], out, vision_language=env["vl"], flip=False, shard_size=2,
                      show_progress=False)


def test_ranks_write_their_own_shards(env, tmp_path):
    out = tmp_path / "cache"
    for rank in (0, 1):
        extract_cache(env["dataset"], env["segmenter"], out, flip=False, shard_size=2, rank=rank, world_size=2,
                      show_progress=False)
        assert cache_is_complete(out) == (rank == 1)
    names = sorted(p.stem for p in (out / "shards").glob("*.bin"))
    assert {n.split("-")[1] for n in names} == {"r000", "r001"}
    merged, single = TokenCache(out), TokenCache(env["cache"])
    assert merged.num_images == single.num_images and merged.num_regions * 2 == single.num_regions
    for i in range(merged.num_images):
        torch.testing.assert_close(merged.get(i).tokens, single.get(i).tokens)
        assert torch.equal(merged.get(i).labels, single.get(i).labels)
