"""The tiny-CLIP pre-training: tokenizer round trip, a falling contrastive loss, an offline-loadable folder."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from regionspot.backbones.vision_language import load_vision_language
from regionspot.registry import assets_dir
from regionspot.shapesworld import captions, streams
from regionspot.shapesworld import pretrain_clip as pc
from regionspot.text.tokenizer import build_clip_tokenizer

NAMES = ["red star", "blue circle", "green square", "yellow ring"]


def test_augmented_crops_are_normalised_and_sized():
    crops = np.random.default_rng(0).integers(0, 255, size=(5, pc.CROP_STORE, pc.CROP_STORE, 3), dtype=np.uint8)
    pixels = pc.augment_crops(crops, 32, torch.Generator().manual_seed(0))
    assert pixels.shape == (5, 3, 32, 32) and torch.isfinite(pixels).all()
    assert pixels.min() < -1 and pixels.max() > 1  # CLIP normalisation applied


def test_contrastive_loss_treats_same_class_as_positives():
    emb = F.normalize(torch.randn(4, 8), dim=-1)
    labels = torch.tensor([0, 0, 1, 2])
    scale = torch.tensor(np.log(10.0))
    aligned = pc.contrastive_loss(emb, emb, labels, scale)
    shuffled = pc.contrastive_loss(emb, emb[[2, 3, 0, 1]], labels, scale)
    assert aligned < shuffled


def test_contrastive_training_steps_reduce_the_loss():
    config = pc.ClipPretrainConfig(image_size=32, patch_size=8, vision_width=32, vision_layers=1, vision_heads=2,
                                   text_width=32, text_layers=1, text_heads=2, projection_dim=16)
    tokenizer = build_clip_tokenizer(captions.caption_corpus(NAMES), vocab_size=600)
    torch.manual_seed(0)
    model = pc.build_clip_model(config, len(tokenizer))
    generator = torch.Generator().manual_seed(0)
    crops = np.random.default_rng(0).integers(0, 255, size=(8, pc.CROP_STORE, pc.CROP_STORE, 3), dtype=np.uint8)
    labels = np.arange(8) % len(NAMES)
    pixels = pc.augment_crops(crops, 32, generator)
    ids, mask = captions.tokenize_captions(tokenizer, [NAMES[i] for i in labels], 32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        image = F.normalize(model.get_image_features(pixel_values=pixels).pooler_output, dim=-1)
        text = F.normalize(model.get_text_features(input_ids=ids, attention_mask=mask).pooler_output, dim=-1)
        loss = pc.contrastive_loss(image, text, torch.from_numpy(labels), model.logit_scale)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]


def test_pretrain_clip_writes_an_offline_folder(tmp_path):
    config = pc.ClipPretrainConfig(image_size=32, scene_size=48, patch_size=8, vision_width=32, vision_layers=1,
                                   vision_heads=2, text_width=32, text_layers=1, text_heads=2, projection_dim=16,
                                   vocab_size=600, steps=4, warmup_steps=1, batch_size=16, scene_every=2,
                                   scene_batch_size=4, pool_images=6, pool_scenes=4, heldout_images=3,
                                   templates_zero_shot="single")
    result = pc.pretrain_clip(tmp_path / "clip", config, show_progress=False)
    assert result.steps == 4 and np.isfinite(result.first_loss) and np.isfinite(result.last_loss)
    assert 0.0 <= result.zero_shot_top1 <= 1.0 and set(result.zero_shot_by_bucket) <= {"f", "c", "r"}
    vl = load_vision_language(str(tmp_path / "clip"))
    assert vl.dtype == torch.float32  # fp16 on disk, upcast on load
    assert vl.encode_text(["a red star"]).shape == (1, 16)
    assert (tmp_path / "clip" / "pretrain_metrics.json").is_file()


SHIPPED = assets_dir() / "shapesworld"


def test_shipped_clip_loads_offline_and_knows_the_vocabulary():
    vl = load_vision_language(str(SHIPPED / "clip"))
    names = (SHIPPED / "vocabulary.txt").read_text().split("\n")
    names = [n for n in names if n]
    assert len(names) == 64 and "red star" in names
    assert vl.dtype == torch.float32 and vl.logit_scale > 1.0
    text = vl.encode_text(["a photo of a red star.", "a photo of a blue circle."])
    assert text.shape == (2, vl.embed_dim) and float(text[0] @ text[1]) < 0.99


def test_scene_pool_streams_and_object_sizes_differ():
    small, small_labels = pc.render_scene_pool(4, 0, 64, max_radius=0.1)
    large, _ = pc.render_scene_pool(4, 0, 64, max_radius=0.4)
    held_out, _ = pc.render_scene_pool(4, 0, 64, max_radius=0.1, key=streams.CLIP_HELDOUT_SCENES)
    assert small.shape == (4, 64, 64, 3) and small_labels.shape == (4,)
    assert not np.array_equal(small, large) and not np.array_equal(small, held_out)
