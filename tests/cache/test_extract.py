"""Token-cache extraction on a tiny ShapesWorld with tiny random SAM and CLIP: contents, flips, the
batched and worker-fed paths against one image at a time, a bad image, resume without recomputation,
several ranks writing their own shards."""

from __future__ import annotations

import shutil

import pytest
import torch
from PIL import ImageOps

from regionspot.backbones.segmenter import load_segmenter
from regionspot.backbones.vision_language import load_vision_language
from regionspot.cache.config import CacheConfig
from regionspot.cache.extract import cache_is_complete, extract_cache
from regionspot.cache.store import CacheError, TokenCache, shard_is_finished
from regionspot.data.coco_json import CocoDetectionDataset
from regionspot.data.transforms import hflip_boxes
from regionspot.shapesworld.generate import generate_shapesworld
from regionspot.testing.tiny_clip import save_tiny_clip
from regionspot.testing.tiny_sam import save_tiny_sam
from regionspot.utils.fingerprint import weights_fingerprint


class CountingSegmenter:
    """Forwards to a segmenter and counts encoder calls and encoded images."""

    def __init__(self, inner):
        self.inner = inner
        self.model_id = inner.model_id
        self.token_dim = inner.token_dim
        self.decoder_layer_norm_eps = inner.decoder_layer_norm_eps
        self.device = inner.device
        self.weights_fingerprint = None
        self.encoded = 0
        self.calls = []

    def input_preprocessor(self):
        return self.inner.input_preprocessor()

    def encode_batch(self, batch):
        self.encoded += len(batch)
        self.calls.append(len(batch))
        return self.inner.encode_batch(batch)

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
    stats = extract_cache(dataset, segmenter, CacheConfig(out=cache_dir, flip=True, shard_size=2), vision_language=vl,
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
    config = CacheConfig(out=out, flip=True, shard_size=2)
    stats = extract_cache(env["dataset"], counting, config, vision_language=env["vl"], show_progress=False)
    assert stats.skipped_shards == 2 and stats.written_shards == 1
    assert counting.encoded == 2 * 2  # the one missing shard: 2 images x 2 flips
    after = {p.name: p.read_bytes() for p in (out / "shards").glob("*.bin")}
    assert after == before  # deterministic: the recomputed shard is byte-identical
    # Rerunning a complete cache computes nothing.
    counting.encoded = 0
    extract_cache(env["dataset"], counting, config, vision_language=env["vl"], show_progress=False)
    assert counting.encoded == 0


def test_settings_mismatch_is_refused(env, tmp_path):
    out = tmp_path / "cache"
    shutil.copytree(env["cache"], out)
    with pytest.raises(CacheError, match="flip"):
        extract_cache(env["dataset"], env["segmenter"], CacheConfig(out=out, flip=False, shard_size=2),
                      vision_language=env["vl"], show_progress=False)


def test_ranks_write_their_own_shards(env, tmp_path):
    out = tmp_path / "cache"
    for rank in (0, 1):
        extract_cache(env["dataset"], env["segmenter"], CacheConfig(out=out, flip=False, shard_size=2), rank=rank,
                      world_size=2, show_progress=False)
        assert cache_is_complete(out) == (rank == 1)
    names = sorted(p.stem for p in (out / "shards").glob("*.bin"))
    assert {n.split("-")[1] for n in names} == {"r000", "r001"}
    merged, single = TokenCache(out), TokenCache(env["cache"])
    assert merged.num_images == single.num_images and merged.num_regions * 2 == single.num_regions
    for i in range(merged.num_images):
        torch.testing.assert_close(merged.get(i).tokens, single.get(i).tokens)
        assert torch.equal(merged.get(i).labels, single.get(i).labels)


def one_at_a_time(dataset, segmenter, vl, index):
    """Each variant (original, mirrored) of image ``index`` as extraction computed it before the feeder: one
    ``encode_image`` and one ``feature_map([image])`` per variant, in this process. [(tokens, boxes, map)]."""
    image, boxes = dataset.load_image(index), torch.as_tensor(dataset[index].boxes).float()
    out = []
    for flipped in (False, True):
        img = ImageOps.mirror(image) if flipped else image
        b = hflip_boxes(boxes, image.width) if flipped else boxes
        tokens = segmenter.decode_prompts(segmenter.encode_image(img), boxes=b, masks="none", chunk_size=16).tokens
        out.append((tokens.half(), b, vl.feature_map([img])[0].half()))
    return out


@pytest.mark.parametrize(("batch_size", "workers"), [(1, 0), (1, 2), (4, 0), (3, 2)])
def test_batched_and_worker_fed_extraction_gives_the_one_image_at_a_time_tokens(env, tmp_path, batch_size, workers):
    """One image at a time (batch_size 1): the very tokens and maps, threads or worker processes; batched:
    the same up to float rounding of the batched encoders (exact on most CPUs)."""
    dataset, counting = env["dataset"], CountingSegmenter(env["segmenter"])
    config = CacheConfig(out=tmp_path / "cache", flip=True, shard_size=2, batch_size=batch_size, workers=workers)
    stats = extract_cache(dataset, counting, config, vision_language=env["vl"], show_progress=False)
    cache = TokenCache(tmp_path / "cache")
    assert stats.images == cache.num_images == len(dataset) and counting.encoded == 2 * len(dataset)
    # an image and its mirrored copy are prepared together: calls of batch_size variants, rounded down to pairs
    assert max(counting.calls) == (1 if batch_size == 1 else 2 * (batch_size // 2))
    for i in range(cache.num_images):
        for flipped, (tokens, boxes, fmap) in zip((False, True), one_at_a_time(dataset, env["segmenter"], env["vl"], i)):
            item = cache.get(i, flipped)
            if batch_size == 1:
                assert torch.equal(item.tokens, tokens) and torch.equal(item.feature_map, fmap)
            else:
                torch.testing.assert_close(item.tokens, tokens, atol=2e-3, rtol=2e-3)
                torch.testing.assert_close(item.feature_map, fmap, atol=2e-3, rtol=2e-3)
            torch.testing.assert_close(item.boxes, boxes)
    if batch_size == 1:  # the same computation: the very shard files of the default run
        for path in sorted((env["cache"] / "shards").glob("*.bin")):
            assert (tmp_path / "cache" / "shards" / path.name).read_bytes() == path.read_bytes()


class WrongSizeAt:
    """A dataset whose image ``bad`` is not the size its annotation says."""

    def __init__(self, inner, bad):
        self.inner, self.bad = inner, bad
        self.name, self.category_names, self.image_root = inner.name, inner.category_names, inner.image_root

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, index):
        return self.inner[index]

    def load_image(self, index):
        image = self.inner.load_image(index)
        return image.resize((image.width + 1, image.height)) if index == self.bad else image


@pytest.mark.parametrize("workers", [0, 1])
def test_a_wrong_size_image_stops_extraction_after_the_images_before_it(env, tmp_path, workers):
    """Batches of 3 images ([0, 1, 2], [3, 4]) across shards of 2: the error names the image, and the
    shard before the bad image's is finished, as one image at a time would leave it."""
    dataset = WrongSizeAt(env["dataset"], 3)
    config = CacheConfig(out=tmp_path / "cache", flip=True, shard_size=2, batch_size=6, workers=workers)
    with pytest.raises(CacheError, match=r"annotation says .*fix the annotation file") as caught:
        extract_cache(dataset, env["segmenter"], config, show_progress=False)
    assert dataset[3].path.name in str(caught.value) and "Traceback" not in str(caught.value)
    assert shard_is_finished(tmp_path / "cache", "w001-r000-00000")
    assert not shard_is_finished(tmp_path / "cache", "w001-r000-00001")


def test_negatives_are_stored_once_beside_the_labelled_tokens_and_overlap_no_object(env, tmp_path):
    from regionspot.data.transforms import box_iou

    dataset, segmenter = env["dataset"], env["segmenter"]
    out = tmp_path / "cache"
    config = CacheConfig(out=out, flip=True, shard_size=2, negatives_per_image=3, negative_max_iou=0.2)
    stats = extract_cache(dataset, segmenter, config, show_progress=False)
    cache, plain = TokenCache(out), TokenCache(env["cache"])
    assert cache.manifest["negatives"] == {"per_image": 3, "max_iou": 0.2, "source": "random"}
    assert plain.manifest["negatives"] is None and plain.num_negatives == 0 and plain.get(0).negative_tokens is None
    assert cache.num_regions == plain.num_regions and stats.boxes == plain.num_regions
    assert cache.num_negatives == stats.negatives > 0
    for i in range(cache.num_images):
        item, ref = cache.get(i), plain.get(i)
        # The labelled tokens are exactly those of a cache without negatives.
        assert torch.equal(item.tokens, ref.tokens) and torch.equal(item.labels, ref.labels)
        assert item.negative_tokens.shape == (len(item.negative_boxes), segmenter.token_dim)
        assert (box_iou(item.negative_boxes, item.boxes) < 0.2).all()
        mirrored = cache.get(i, True)
        torch.testing.assert_close(mirrored.negative_boxes, hflip_boxes(item.negative_boxes, item.width))
    item = cache.get(0)
    image = dataset.load_image(0)
    ref = segmenter.decode_prompts(segmenter.encode_image(image), boxes=item.negative_boxes, masks="none")
    torch.testing.assert_close(item.negative_tokens.float(), ref.tokens.float(), atol=2e-3, rtol=2e-3)
    # A cache made with other negatives is not resumed into.
    with pytest.raises(CacheError, match="negatives"):
        extract_cache(dataset, segmenter, CacheConfig(out=out, flip=True, shard_size=2), show_progress=False)
