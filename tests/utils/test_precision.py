import pytest
import torch
from torch import nn

from regionspot.utils.precision import (
    autocast_forward,
    cpu_flags,
    has_native_bf16,
    quantize_linear_int8,
    set_attention,
)


def test_autocast_forward_runs_in_bf16_returns_float32_and_unwraps():
    torch.manual_seed(0)
    layer = nn.Linear(16, 8)
    x = torch.randn(4, 16)
    reference = layer(x)
    autocast_forward(layer, torch.bfloat16, "cpu")
    autocast_forward(layer, torch.bfloat16, "cpu")  # a second wrap replaces the first, never stacks
    out = layer(x)
    assert out.dtype == torch.float32 and torch.equal(out, out.bfloat16().float())  # computed in bf16
    assert not torch.equal(out, reference) and torch.allclose(out, reference, atol=0.05)
    assert layer.weight.dtype == torch.float32 and set(layer.state_dict()) == {"weight", "bias"}
    autocast_forward(layer, None)
    assert "forward" not in layer.__dict__ and torch.equal(layer(x), reference)


def test_set_attention_switches_sam_and_clip_without_changing_outputs(tiny_sam_dir, tiny_clip_dir):
    from regionspot.backbones.segmenter import load_segmenter
    from regionspot.backbones.vision_language import load_vision_language

    sam = load_segmenter(str(tiny_sam_dir)).model
    pixels = torch.randn(1, 3, sam.config.vision_config.image_size, sam.config.vision_config.image_size)
    with torch.no_grad():
        sdpa = sam.get_image_embeddings(pixels)
        set_attention(sam, "eager")
        kinds = {type(m).__name__ for m in sam.modules() if type(m).__name__.startswith("SamVision") and "Attention" in type(m).__name__}
        eager = sam.get_image_embeddings(pixels)
    assert kinds == {"SamVisionAttention"} and sam.config.mask_decoder_config._attn_implementation == "eager"
    assert torch.allclose(sdpa, eager, atol=1e-5)
    clip = load_vision_language(str(tiny_clip_dir)).model
    set_attention(clip, "eager")
    assert clip.config.vision_config._attn_implementation == "eager"
    with pytest.raises(ValueError):
        set_attention(clip, "flash")


def test_quantize_linear_int8_replaces_linear_layers():
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    x = torch.randn(3, 8)
    reference = model(x)
    quantize_linear_int8(model)
    assert not any(type(m) is nn.Linear for m in model.modules())
    assert torch.allclose(model(x), reference, atol=0.05)


def test_cpu_probe_is_consistent():
    flags = cpu_flags()
    assert isinstance(flags, frozenset)
    assert has_native_bf16("cpu") == bool({"amx_bf16", "avx512_bf16"} & flags)
    assert has_native_bf16("meta") is False
