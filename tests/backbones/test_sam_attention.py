"""SAM speed-ups that must not change a bit: the chunked relative-position attention gives transformers' SDPA
result bit for bit (CPU), eager's within float error, for SAM and SAM-HQ, windowed and global layers, one band of
query rows or many; the decoder's token-major inputs give the same tokens, IoU and masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import SamHQModel, SamModel

import regionspot.backbones.sam_attention as sam_attention
from regionspot.backbones.sam_attention import set_sam_attention
from regionspot.shapesworld.tiny_models import sam_hq_config, sam_style_init_
from regionspot.testing.tiny_sam import tiny_sam_config


def _encoder(model_class, seed: int = 0):
    config = tiny_sam_config(image_size=160)  # 10 × 10 tokens
    config.vision_config.window_size = 4  # windows of 4 × 4: the grid is padded to 12 × 12
    config.vision_config.global_attn_indexes = [1]
    if model_class is SamHQModel:
        config = sam_hq_config(config)
    model = sam_style_init_(model_class(config), seed=seed).eval()
    with torch.no_grad():
        for name, parameter in model.vision_encoder.named_parameters():
            if "rel_pos" in name:  # SAM-style init leaves them at zero; the bias must matter here
                parameter.copy_(torch.randn_like(parameter) * 0.5)
    return model


def _embed(model, pixels):
    out = model.get_image_embeddings(pixels)
    return out[0] if isinstance(out, tuple) else out  # SAM-HQ adds its intermediate embeddings


def _classes(model) -> set[str]:
    return {type(m).__name__ for m in model.vision_encoder.modules() if type(m).__name__.endswith("Attention")}


@pytest.mark.parametrize("model_class", [SamModel, SamHQModel])
@pytest.mark.parametrize("chunk_elements", [1 << 26, 500, 1])
def test_chunked_attention_matches_transformers(model_class, chunk_elements, monkeypatch):
    model = _encoder(model_class)
    pixels = torch.randn(2, 3, 160, 160)
    with torch.inference_mode():
        assert _classes(set_sam_attention(model, "eager")) == {f"{model_class.__name__[:-5]}VisionAttention"}
        eager = _embed(model, pixels)
        sdpa_class = sam_attention.chunked_rel_pos_classes()
        plain = next(base for base in sdpa_class if base.__name__.startswith(model_class.__name__[:-5] + "Vision"))
        for module in model.vision_encoder.modules():
            if "VisionAttention" in type(module).__name__:
                module.__class__ = plain
        reference = _embed(model, pixels)
        monkeypatch.setattr(sam_attention, "CHUNK_ELEMENTS", chunk_elements)
        assert _classes(set_sam_attention(model, "sdpa")) == {f"Chunked{plain.__name__}"}
        chunked = _embed(model, pixels)
    if chunk_elements >= 1 << 26:  # one band: the same SDPA call as transformers', so the same arithmetic
        assert torch.equal(chunked, reference)
    else:  # bands of query rows: bit-identical where the kernel blocks by row (AVX-512), not on AVX2 builds
        torch.testing.assert_close(chunked, reference, rtol=1e-5, atol=1e-5,
                                   msg="banded bias may only change the embeddings by float32 rounding")
    torch.testing.assert_close(chunked, eager, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(reference, _without_rel_pos(model, pixels), atol=1e-3)  # the bias is exercised


def _without_rel_pos(model, pixels):
    for module in model.vision_encoder.modules():
        if hasattr(module, "use_rel_pos"):
            module.use_rel_pos = False
    with torch.inference_mode():
        return _embed(model, pixels)


def test_chunks_bound_the_bias(monkeypatch):
    """With a budget of one query row per band, no bias tensor holds more than a row of queries."""
    model = set_sam_attention(_encoder(SamModel), "sdpa")
    monkeypatch.setattr(sam_attention, "CHUNK_ELEMENTS", 1)
    largest = []
    real = torch.nn.functional.scaled_dot_product_attention

    def spy(query, key, value, attn_mask=None, **kwargs):
        largest.append((query.shape[-2], attn_mask.numel() if attn_mask is not None else 0))
        return real(query, key, value, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(sam_attention.F, "scaled_dot_product_attention", spy)
    with torch.inference_mode():
        model.get_image_embeddings(torch.randn(1, 3, 160, 160))
    assert largest and {rows for rows, _ in largest} == {4, 10}  # a window row (4 queries) / a grid row (10)
    assert max(size for _, size in largest) == 2 * 10 * 100  # heads × queries in one row × keys


def test_load_segmenter_uses_chunked_attention(tiny_sam_dir):
    from regionspot.backbones.segmenter import load_segmenter

    segmenter = load_segmenter(tiny_sam_dir)
    assert _classes(segmenter.model) == {"ChunkedSamVisionSdpaAttention"}


@pytest.mark.parametrize("hq", [False, True])
def test_token_major_decoder_inputs_change_nothing(tmp_path, monkeypatch, hq):
    """The decoder pre-hook (one image's embeddings laid out token-major, expanded over the prompts) gives the
    very same tokens, IoU and masks as transformers' own per-prompt copies, for SAM and SAM-HQ."""
    import regionspot.backbones.segmenter as segmenter_module
    from regionspot.testing.tiny_sam import save_tiny_sam, save_tiny_sam_hq

    folder = (save_tiny_sam_hq if hq else save_tiny_sam)(tmp_path / "sam")
    segmenter = segmenter_module.load_segmenter(folder)
    image = Image.fromarray((np.random.default_rng(0).random((90, 120, 3)) * 255).astype(np.uint8))
    boxes = torch.tensor([[5.0, 5.0, 60.0, 50.0], [30.0, 20.0, 110.0, 85.0], [0.0, 0.0, 119.0, 89.0]])
    state = segmenter.encode_image(image)
    calls = []
    real = segmenter_module.one_image_token_major
    monkeypatch.setattr(segmenter_module, "one_image_token_major", lambda *a: calls.append(1) or real(*a))
    fast = segmenter.decode_prompts(state, boxes=boxes)
    assert calls  # the hook ran and rewrote the inputs
    monkeypatch.setattr(segmenter_module, "one_image_token_major", lambda *args: None)
    plain = segmenter.decode_prompts(state, boxes=boxes)
    assert torch.equal(fast.tokens, plain.tokens) and torch.equal(fast.iou, plain.iou)
    assert torch.equal(fast.masks, plain.masks) and plain.masks.any()
