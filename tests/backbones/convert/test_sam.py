"""Official segment-anything checkpoint -> transformers folder: round trip, strictness, key semantics.

The round trip alone would pass with a self-consistent but wrong mapping (e.g. norm1/norm2 swapped
both ways), so the later tests recompute pieces of SAM *from the official-layout tensors* with the
official code's semantics and compare them with the converted transformers modules.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import SamModel

from regionspot.backbones.convert.sam import (
    convert_sam_checkpoint,
    official_to_hf_state_dict,
    sam_config_for,
    sam_state_dict_to_official,
)
from regionspot.backbones.segmenter import load_segmenter
from regionspot.errors import CheckpointError
from regionspot.testing.tiny_sam import build_tiny_sam, save_tiny_sam, tiny_sam_config

BOXES = torch.tensor([[5.0, 8.0, 60.0, 44.0], [20.0, 0.0, 99.0, 59.0], [1.0, 1.0, 12.0, 9.0]])


@pytest.fixture(scope="module")
def official():
    """A tiny SAM written in the official layout: a plain {key: tensor} dict."""
    return sam_state_dict_to_official(build_tiny_sam(seed=3).state_dict())


@pytest.fixture(scope="module")
def converted(tmp_path_factory, official):
    folder = tmp_path_factory.mktemp("convert")
    torch.save(official, folder / "sam_tiny.pth")
    out = convert_sam_checkpoint(folder / "sam_tiny.pth", folder / "hf", config=tiny_sam_config())
    return out, SamModel.from_pretrained(str(out)).eval()


def _write(tmp_path, state_dict, name="sam.pth"):
    path = tmp_path / name
    torch.save(state_dict, path)
    return path


def test_official_layout_keys(official):
    assert "image_encoder.blocks.1.attn.qkv.weight" in official
    assert "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix" in official
    assert "mask_decoder.output_upscaling.3.weight" in official
    assert {f"mask_decoder.iou_prediction_head.layers.{i}.weight" for i in range(3)} <= set(official)
    assert not any(k.startswith(("vision_encoder", "shared_image_embedding")) for k in official)
    assert set(official_to_hf_state_dict(official)) == set(build_tiny_sam().state_dict())


def test_round_trip_tokens_and_masks(tmp_path, converted):
    out, model = converted
    reference = build_tiny_sam(seed=3)
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert json.loads((out / "preprocessor_config.json").read_text())["size"] == {"longest_edge": 128}
    # The converted folder runs the original architecture's decoder eps; compare like with like.
    original = load_segmenter(str(save_tiny_sam(tmp_path / "orig", seed=3)), decoder_layer_norm_eps=1e-5)
    restored = load_segmenter(str(out))
    image = Image.fromarray(np.random.RandomState(1).randint(0, 256, (60, 100, 3), dtype=np.uint8))
    a = original.decode_prompts(original.encode_image(image), boxes=BOXES)
    b = restored.decode_prompts(restored.encode_image(image), boxes=BOXES)
    torch.testing.assert_close(b.tokens, a.tokens, atol=1e-6, rtol=0)
    torch.testing.assert_close(b.iou, a.iou, atol=1e-6, rtol=0)
    assert torch.equal(b.masks, a.masks)


def test_converted_sam_records_original_decoder_eps(converted):
    out, model = converted
    # Original SAM's two-way transformer uses nn.LayerNorm's default eps (1e-5); transformers' default is 1e-6.
    assert json.loads((out / "config.json").read_text())["mask_decoder_config"]["layer_norm_eps"] == 1e-5
    assert model.mask_decoder.transformer.layers[0].layer_norm1.eps == 1e-5
    segmenter = load_segmenter(str(out))
    assert segmenter.decoder_layer_norm_eps == 1e-5
    norms = [m for m in segmenter.model.mask_decoder.transformer.layers.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and all(m.eps == 1e-5 for m in norms)
    assert segmenter.model.mask_decoder.upscale_layer_norm.eps == 1e-6  # LayerNorm2d keeps SAM's own 1e-6
    assert tiny_sam_config().mask_decoder_config.layer_norm_eps == 1e-6  # the caller's config is not changed


def test_missing_extra_and_misshaped_keys(tmp_path, official):
    config = tiny_sam_config()
    missing = dict(official)
    del missing["mask_decoder.iou_prediction_head.layers.2.bias"]
    with pytest.raises(CheckpointError, match=r"Missing key 'mask_decoder\.iou_prediction_head\.layers\.2\.bias'"):
        convert_sam_checkpoint(_write(tmp_path, missing), tmp_path / "out", config=config)
    extra = dict(official, **{"mask_decoder.extra_head.weight": torch.zeros(2)})
    with pytest.raises(CheckpointError, match=r"Unexpected key 'mask_decoder\.extra_head\.weight'"):
        convert_sam_checkpoint(_write(tmp_path, extra), tmp_path / "out", config=config)
    stray = dict(official, **{"image_encoder.blocks.7.norm1.weight": torch.zeros(32)})  # known pattern, no such block
    with pytest.raises(CheckpointError, match=r"Unexpected key 'image_encoder\.blocks\.7\.norm1\.weight'"):
        convert_sam_checkpoint(_write(tmp_path, stray), tmp_path / "out", config=config)
    shaped = dict(official, **{"prompt_encoder.no_mask_embed.weight": torch.zeros(1, 31)})
    with pytest.raises(CheckpointError, match=r"'prompt_encoder\.no_mask_embed\.weight' has shape \(1, 31\)"):
        convert_sam_checkpoint(_write(tmp_path, shaped), tmp_path / "out", config=config)
    with pytest.raises(CheckpointError, match="No released SAM"):  # "auto" on a width-32 encoder
        convert_sam_checkpoint(_write(tmp_path, official), tmp_path / "out")
    with pytest.raises(CheckpointError, match=r"Missing key 'image_encoder\.blocks\.2\..*vit_b"):  # wrong variant
        convert_sam_checkpoint(_write(tmp_path, official), tmp_path / "out", model_type="vit_b")
    assert not (tmp_path / "out").exists()


def test_unreadable_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        convert_sam_checkpoint(tmp_path / "nope.pth", tmp_path / "out")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="weights-only"):
        convert_sam_checkpoint(tmp_path / "garbage.pth", tmp_path / "out")
    with pytest.raises(CheckpointError, match="plain state dict"):
        convert_sam_checkpoint(_write(tmp_path, {"a": 1}), tmp_path / "out")


def test_pixel_stats_go_to_processor_config(tmp_path, official):
    with_stats = dict(official)
    with_stats["pixel_mean"] = torch.tensor([127.5, 127.5, 127.5]).view(3, 1, 1)
    with_stats["pixel_std"] = torch.tensor([51.0, 51.0, 51.0]).view(3, 1, 1)
    out = convert_sam_checkpoint(_write(tmp_path, with_stats), tmp_path / "out", config=tiny_sam_config())
    processor = json.loads((out / "preprocessor_config.json").read_text())
    assert processor["image_mean"] == pytest.approx([0.5] * 3)
    assert processor["image_std"] == pytest.approx([0.2] * 3)


def test_released_vit_b_layout_on_meta():
    """Shapes the real sam_vit_b_01ec64.pth is known to have, through our config + inverse mapping."""
    with torch.device("meta"):
        model = SamModel(sam_config_for("vit_b"))
    shapes = {k: tuple(v.shape) for k, v in sam_state_dict_to_official(model.state_dict()).items()}
    assert shapes["image_encoder.patch_embed.proj.weight"] == (768, 3, 16, 16)
    assert shapes["image_encoder.pos_embed"] == (1, 64, 64, 768)
    assert shapes["image_encoder.blocks.0.attn.rel_pos_h"] == (27, 64)  # windowed (14)
    assert shapes["image_encoder.blocks.2.attn.rel_pos_h"] == (127, 64)  # global (64)
    assert shapes["image_encoder.blocks.11.attn.qkv.weight"] == (2304, 768)
    assert shapes["image_encoder.neck.0.weight"] == (256, 768, 1, 1)
    assert shapes["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"] == (2, 128)
    assert shapes["prompt_encoder.mask_downscaling.6.weight"] == (256, 16, 1, 1)
    assert shapes["mask_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight"] == (128, 256)
    assert shapes["mask_decoder.output_upscaling.3.weight"] == (64, 32, 2, 2)
    assert shapes["mask_decoder.output_hypernetworks_mlps.3.layers.2.weight"] == (32, 256)
    assert shapes["mask_decoder.iou_prediction_head.layers.2.weight"] == (4, 256)
    assert "image_encoder.blocks.12.norm1.weight" not in shapes


# ---------------------------------------------------------------- official-semantics references
def _linear(x, sd, prefix):
    return F.linear(x, sd[prefix + ".weight"], sd.get(prefix + ".bias"))


def _ln(x, sd, prefix, eps=1e-6):
    return F.layer_norm(x, x.shape[-1:], sd[prefix + ".weight"], sd[prefix + ".bias"], eps)


def _ln2d(x, sd, prefix, eps=1e-6):  # official LayerNorm2d over channels of (B, C, H, W)
    return _ln(x.permute(0, 2, 3, 1), sd, prefix, eps).permute(0, 3, 1, 2)


def _official_mlp(x, sd, prefix, depth):
    for i in range(depth):
        x = _linear(x, sd, f"{prefix}.layers.{i}")
        x = F.relu(x) if i < depth - 1 else x
    return x


def _official_attention(q, k, v, sd, prefix, heads):
    q, k, v = _linear(q, sd, prefix + ".q_proj"), _linear(k, sd, prefix + ".k_proj"), _linear(v, sd, prefix + ".v_proj")
    b, nq, c = q.shape

    def split(t):  # (B, N, C) -> (B, heads, N, C/heads)
        return t.reshape(b, t.shape[1], heads, c // heads).transpose(1, 2)

    attn = (split(q) @ split(k).transpose(-1, -2)) / math.sqrt(c // heads)
    out = (attn.softmax(-1) @ split(v)).transpose(1, 2).reshape(b, nq, c)
    return _linear(out, sd, prefix + ".out_proj")


@torch.no_grad()
def test_box_embedding_uses_gaussian_matrix_and_corner_embeddings(official, converted):
    _, model = converted
    gaussian = official["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"]
    assert torch.equal(model.shared_image_embedding.positional_embedding, gaussian)
    assert torch.equal(model.prompt_encoder.shared_embedding.positional_embedding, gaussian)
    coords = ((BOXES + 0.5) / 128).reshape(-1, 2, 2)  # official: pixels of the 128 input -> [0, 1]
    projected = 2 * math.pi * ((2 * coords - 1) @ gaussian)
    expected = torch.cat([projected.sin(), projected.cos()], dim=-1)
    expected[:, 0] += official["prompt_encoder.point_embeddings.2.weight"][0]
    expected[:, 1] += official["prompt_encoder.point_embeddings.3.weight"][0]
    sparse, dense = model.prompt_encoder(None, None, BOXES[None], None)
    torch.testing.assert_close(sparse[0], expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(dense[0, :, 0, 0], official["prompt_encoder.no_mask_embed.weight"][0])


@torch.no_grad()
def test_heads_necks_and_convs_follow_official_semantics(official, converted):
    _, model = converted
    sd = official
    torch.manual_seed(0)
    tokens = torch.randn(5, 32)
    torch.testing.assert_close(
        model.mask_decoder.iou_prediction_head(tokens), _official_mlp(tokens, sd, "mask_decoder.iou_prediction_head", 3)
    )
    for j in (0, 3):
        torch.testing.assert_close(
            model.mask_decoder.output_hypernetworks_mlps[j](tokens),
            _official_mlp(tokens, sd, f"mask_decoder.output_hypernetworks_mlps.{j}", 3),
        )
    # image encoder neck: Sequential(conv1x1, LayerNorm2d, conv3x3, LayerNorm2d) on (B, C, H, W)
    features = torch.randn(1, 8, 8, 32)
    x = F.conv2d(features.permute(0, 3, 1, 2), sd["image_encoder.neck.0.weight"])
    x = F.conv2d(_ln2d(x, sd, "image_encoder.neck.1"), sd["image_encoder.neck.2.weight"], padding=1)
    torch.testing.assert_close(model.vision_encoder.neck(features), _ln2d(x, sd, "image_encoder.neck.3"))
    # decoder output_upscaling: Sequential(convT, LayerNorm2d, GELU, convT, GELU)
    embedding = torch.randn(2, 32, 8, 8)
    up = F.conv_transpose2d(embedding, sd["mask_decoder.output_upscaling.0.weight"], sd["mask_decoder.output_upscaling.0.bias"], stride=2)
    up = F.gelu(_ln2d(up, sd, "mask_decoder.output_upscaling.1"))
    up = F.gelu(F.conv_transpose2d(up, sd["mask_decoder.output_upscaling.3.weight"], sd["mask_decoder.output_upscaling.3.bias"], stride=2))
    decoder = model.mask_decoder
    ours = decoder.activation(decoder.upscale_layer_norm(decoder.upscale_conv1(embedding)))
    torch.testing.assert_close(decoder.activation(decoder.upscale_conv2(ours)), up)
    # prompt encoder mask_downscaling: conv, LN2d, GELU, conv, LN2d, GELU, conv
    mask = torch.randn(1, 1, 32, 32)
    m = "prompt_encoder.mask_downscaling"
    y = F.gelu(_ln2d(F.conv2d(mask, sd[f"{m}.0.weight"], sd[f"{m}.0.bias"], stride=2), sd, f"{m}.1"))
    y = F.gelu(_ln2d(F.conv2d(y, sd[f"{m}.3.weight"], sd[f"{m}.3.bias"], stride=2), sd, f"{m}.4"))
    y = F.conv2d(y, sd[f"{m}.6.weight"], sd[f"{m}.6.bias"])
    torch.testing.assert_close(model.prompt_encoder.mask_embed(mask), y)


@torch.no_grad()
def test_vit_block_follows_official_fused_qkv_and_rel_pos(official, converted):
    """Block 1 of the tiny encoder is global with decomposed relative positions (official Block/Attention)."""
    _, model = converted
    sd, p, heads = official, "image_encoder.blocks.1", 2
    torch.manual_seed(1)
    x = torch.randn(1, 8, 8, 32)
    b, h, w, c = x.shape
    hd = c // heads
    y = _ln(x, sd, p + ".norm1")
    qkv = _linear(y, sd, p + ".attn.qkv").reshape(b, h * w, 3, heads, hd).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.reshape(3, b * heads, h * w, hd).unbind(0)  # fused weight rows: [q | k | v], heads inside
    attn = (q * hd**-0.5) @ k.transpose(-2, -1)
    offsets = torch.arange(h)[:, None] - torch.arange(h)[None, :] + (h - 1)
    rel_h = torch.einsum("bhwc,hkc->bhwk", q.reshape(-1, h, w, hd), sd[p + ".attn.rel_pos_h"][offsets])
    rel_w = torch.einsum("bhwc,wkc->bhwk", q.reshape(-1, h, w, hd), sd[p + ".attn.rel_pos_w"][offsets])
    attn = (attn.view(-1, h, w, h, w) + rel_h[..., None] + rel_w[:, :, :, None, :]).view(-1, h * w, h * w)
    out = (attn.softmax(-1) @ v).view(b, heads, h, w, hd).permute(0, 2, 3, 1, 4).reshape(b, h, w, c)
    x1 = x + _linear(out, sd, p + ".attn.proj")
    mlp = _linear(F.gelu(_linear(_ln(x1, sd, p + ".norm2"), sd, p + ".mlp.lin1")), sd, p + ".mlp.lin2")
    torch.testing.assert_close(model.vision_encoder.layers[1](x), x1 + mlp, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_two_way_block_follows_official_norm_order(official, converted):
    """Layer 1 of the two-way transformer (with positional terms), written from the official block."""
    _, model = converted
    sd, p, heads = official, "mask_decoder.transformer.layers.1", 2
    torch.manual_seed(2)
    queries, keys = torch.randn(1, 7, 32), torch.randn(1, 64, 32)
    query_pe, key_pe = torch.randn(1, 7, 32), torch.randn(1, 64, 32)
    eps = 1e-5  # the official block's nn.LayerNorm(embedding_dim) default
    q = queries + query_pe
    queries_ref = _ln(queries + _official_attention(q, q, queries, sd, p + ".self_attn", heads), sd, p + ".norm1", eps)
    q, k = queries_ref + query_pe, keys + key_pe
    queries_ref = _ln(queries_ref + _official_attention(q, k, keys, sd, p + ".cross_attn_token_to_image", heads), sd, p + ".norm2", eps)
    mlp = _linear(F.relu(_linear(queries_ref, sd, p + ".mlp.lin1")), sd, p + ".mlp.lin2")
    queries_ref = _ln(queries_ref + mlp, sd, p + ".norm3", eps)
    q, k = queries_ref + query_pe, keys + key_pe
    keys_ref = _ln(keys + _official_attention(k, q, queries_ref, sd, p + ".cross_attn_image_to_token", heads), sd, p + ".norm4", eps)
    layer = model.mask_decoder.transformer.layers[1]
    out_q, out_k, _ = layer(
        queries=queries[None],
        keys=keys[None],
        query_point_embedding=query_pe[None],
        key_point_embedding=key_pe[None],
        attention_similarity=None,
    )
    torch.testing.assert_close(out_q[0], queries_ref, atol=2e-6, rtol=0)
    torch.testing.assert_close(out_k[0], keys_ref, atol=2e-6, rtol=0)
