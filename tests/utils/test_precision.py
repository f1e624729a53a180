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


def test_set_attention_switches_the_configs_without_changing_outputs(tiny_clip_dir):
    """The generic switch: every config that names an attention implementation (SAM's vision layers, which pick
    a class at construction, are re-classed in ``backbones/sam_attention.py``)."""
    from regionspot.backbones.vision_language import load_vision_language

    clip = load_vision_language(str(tiny_clip_dir)).model
    pixels = torch.randn(1, 3, clip.config.vision_config.image_size, clip.config.vision_config.image_size)
    with torch.no_grad():
        sdpa = clip.vision_model(pixel_values=pixels).last_hidden_state
        assert set_attention(clip, "eager") is clip
        eager = clip.vision_model(pixel_values=pixels).last_hidden_state
    assert clip.config.vision_config._attn_implementation == "eager"
    assert clip.config.text_config._attn_implementation == "eager"
    torch.testing.assert_close(sdpa, eager, rtol=1e-5, atol=1e-5)
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
