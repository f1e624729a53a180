"""Each backbone adapter sets its own numerics (``set_numerics``): the modules it names switch, the fingerprint
follows a lossy mode, fp32 comes back bit for bit after bf16, int8 / compile are one-way, bad modes fail clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from regionspot.backbones.numerics import NUMERICS, numerics_suffix, switch_numerics
from regionspot.backbones.segmenter import load_segmenter
from regionspot.backbones.vision_language import load_vision_language
from regionspot.errors import RegionSpotError


def _image():
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8))


def _vision_attention(sam) -> set[str]:
    return {type(m).__name__ for m in sam.vision_encoder.modules() if type(m).__name__.endswith("Attention")}


def test_segmenter_eager_and_bf16_switch_and_come_back(tiny_sam_dir):
    segmenter = load_segmenter(str(tiny_sam_dir))
    base = segmenter.weights_fingerprint
    reference = segmenter.encode_image(_image()).embeddings
    assert segmenter.set_numerics("eager") == "" and segmenter.weights_fingerprint == base
    assert _vision_attention(segmenter.model) == {"SamVisionAttention"}
    assert segmenter.model.config.mask_decoder_config._attn_implementation == "eager"
    torch.testing.assert_close(segmenter.encode_image(_image()).embeddings, reference, rtol=1e-5, atol=1e-5)

    assert segmenter.set_numerics("bf16") == "+bf16" and segmenter.weights_fingerprint == base + "+bf16"
    assert {"forward"} <= set(segmenter.model.vision_encoder.__dict__)  # runs under bf16 autocast
    assert "forward" not in segmenter.model.prompt_encoder.__dict__  # the precision-sensitive part stays fp32
    bf16 = segmenter.encode_image(_image()).embeddings
    assert bf16.dtype == torch.float32 and not torch.equal(bf16, reference)

    assert segmenter.set_numerics("fp32") == "" and segmenter.weights_fingerprint == base
    assert "forward" not in segmenter.model.vision_encoder.__dict__
    assert _vision_attention(segmenter.model) == {"ChunkedSamVisionSdpaAttention"}
    assert torch.equal(segmenter.encode_image(_image()).embeddings, reference)


def test_clip_int8_is_one_way_and_keeps_its_text_apart(tiny_clip_dir):
    clip = load_vision_language(str(tiny_clip_dir))
    base = clip.weights_fingerprint
    assert clip.set_numerics("int8") == "+int8" and clip.weights_fingerprint == base + "+int8"
    assert any("quantized" in type(m).__module__ for m in clip.model.text_model.modules())
    assert clip.set_numerics("int8") == "+int8" and clip.weights_fingerprint == base + "+int8"  # no double suffix
    assert clip.encode_text(["a red star"]).shape == (1, clip.embed_dim)
    with pytest.raises(ValueError, match="cannot be switched"):
        clip.set_numerics("fp32")


def test_segmenter_int8_keeps_the_fp32_fingerprint_with_a_suffix(tiny_sam_dir):
    base = load_segmenter(str(tiny_sam_dir)).weights_fingerprint
    segmenter = load_segmenter(str(tiny_sam_dir))  # fingerprint not computed yet: taken before quantising
    assert segmenter.set_numerics("int8") == "+int8" and segmenter.weights_fingerprint == base + "+int8"
    assert any("quantized" in type(m).__module__ for m in segmenter.model.vision_encoder.modules())
    assert not any("quantized" in type(m).__module__ for m in segmenter.model.mask_decoder.modules())


def test_clip_bf16_wraps_both_towers(tiny_clip_dir):
    clip = load_vision_language(str(tiny_clip_dir))
    reference = clip.feature_map([_image()])
    clip.set_numerics("bf16")
    assert all("forward" in tower.__dict__ for tower in (clip.model.vision_model, clip.model.text_model))
    assert clip.feature_map([_image()]).dtype == torch.float32
    clip.set_numerics("fp32")
    assert torch.equal(clip.feature_map([_image()]), reference) and "+" not in clip.weights_fingerprint


def test_bad_modes_fail_clearly():
    layer = nn.Linear(4, 4)
    with pytest.raises(ValueError, match="Unknown numerics 'fp8'"):
        switch_numerics(layer, "fp8", "fp32", torch.device("cpu"))
    with pytest.raises(RegionSpotError, match="bf16 path runs on CPU or CUDA"):
        switch_numerics(layer, "bf16", "fp32", torch.device("mps"), bf16=(layer,))
    with pytest.raises(RegionSpotError, match="int8 path .* CPU only"):
        switch_numerics(layer, "int8", "fp32", torch.device("cuda"), int8=(layer,))
    assert type(layer) is nn.Linear and "forward" not in layer.__dict__  # nothing changed before the error
    assert [numerics_suffix(m) for m in NUMERICS] == ["", "", "+bf16", "+int8", ""]
