"""OpenAI CLIP checkpoint conversion: plain state dicts and TorchScript archives, strict keys."""

from __future__ import annotations

import warnings
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from regionspot.backbones.convert.clip import (
    clip_state_dict_to_openai,
    convert_openai_clip,
    infer_architecture,
    load_openai_checkpoint,
)
from regionspot.backbones.vision_language import load_vision_language
from regionspot.errors import CheckpointError

PROMPTS = ["a photo of a red square.", "cat", "a bad photo of the zebra xylophone."]


@pytest.fixture(scope="module")
def source(tiny_clip_dir):
    return load_vision_language(str(tiny_clip_dir))


@pytest.fixture(scope="module")
def openai_state(source):
    return clip_state_dict_to_openai(source.model.state_dict())


def _images():
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 256, (36, 44, 3), dtype=np.uint8))]


def _assert_same_outputs(a, b, atol=1e-6):
    images = _images()
    torch.testing.assert_close(a.encode_text(PROMPTS), b.encode_text(PROMPTS), atol=atol, rtol=0)
    torch.testing.assert_close(a.encode_image(images), b.encode_image(images), atol=atol, rtol=0)
    torch.testing.assert_close(a.feature_map(images), b.feature_map(images), atol=atol * 10, rtol=0)
    assert a.logit_scale == pytest.approx(b.logit_scale, rel=1e-3)


def test_openai_layout_keys(openai_state):
    assert "visual.transformer.resblocks.1.attn.in_proj_weight" in openai_state
    assert openai_state["visual.transformer.resblocks.0.attn.in_proj_weight"].shape == (3 * 48, 48)
    assert openai_state["visual.proj"].shape == (48, 24)  # (width, embed): transposed vs. transformers
    assert openai_state["text_projection"].shape == (32, 24)
    assert not any("q_proj" in k or "position_ids" in k for k in openai_state)


def test_infer_architecture(openai_state, source):
    arch = infer_architecture(openai_state, vision_heads=4, text_heads=4)
    assert arch["vision_width"] == 48 and arch["vision_layers"] == 2 and arch["patch_size"] == 8
    assert arch["image_size"] == 32 and arch["embed_dim"] == 24 and arch["context_length"] == 77
    assert arch["text_width"] == 32 and arch["text_layers"] == 2
    assert arch["vocab_size"] == source.model.config.text_config.vocab_size == len(source.tokenizer)
    with pytest.raises(CheckpointError, match="heads"):
        infer_architecture(openai_state)  # width // 64 == 0 for a tiny model


def test_plain_state_dict_round_trip(tmp_path, source, openai_state, tiny_clip_dir):
    path = tmp_path / "ViT-tiny.pt"
    torch.save(openai_state, path)
    out = convert_openai_clip(path, tmp_path / "out", tokenizer=tiny_clip_dir, vision_heads=4, text_heads=4)
    converted = load_vision_language(str(out))
    assert converted.image_size == 32 and converted.feature_dim == 48 and converted.embed_dim == 24
    _assert_same_outputs(source, converted)


class _Holder(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _script_module_like_openai(state: dict[str, torch.Tensor], dtype: torch.dtype) -> torch.nn.Module:
    """Nested modules named like OpenAI's CLIP (visual / transformer / resblocks / attn ...)."""
    root = _Holder()
    for key, value in state.items():
        *path, leaf = key.split(".")
        module = root
        for part in path:
            if not hasattr(module, part):
                module.add_module(part, _Holder())
            module = getattr(module, part)
        module.register_parameter(
            leaf, torch.nn.Parameter(value.detach().clone().to(dtype), requires_grad=False)
        )
    # non-weight tensors a real OpenAI archive carries: the causal mask and the input resolution
    getattr(root.transformer.resblocks, "0").attn.register_buffer(
        "attn_mask", torch.full((77, 77), -1e4).triu(1)
    )
    root.register_buffer("input_resolution", torch.tensor(32))
    return torch.jit.script(root)


def test_torchscript_archive_read_without_jit_load(
    tmp_path, monkeypatch, source, openai_state, tiny_clip_dir
):
    path = tmp_path / "ViT-tiny-jit.pt"
    _script_module_like_openai(openai_state, torch.float16).save(str(path))
    with zipfile.ZipFile(path) as archive:
        assert any(name.endswith("/data.pkl") for name in archive.namelist())

    def forbidden(*args, **kwargs):
        raise AssertionError("torch.jit.load must not be called")

    monkeypatch.setattr(torch.jit, "load", forbidden)
    state = load_openai_checkpoint(path)
    assert set(state) == set(openai_state) | {"transformer.resblocks.0.attn.attn_mask", "input_resolution"}
    for key, value in openai_state.items():
        assert state[key].dtype == torch.float16
        assert torch.equal(state[key], value.half()), key

    out = convert_openai_clip(path, tmp_path / "out", tokenizer=tiny_clip_dir, vision_heads=4, text_heads=4)
    converted = load_vision_language(str(out))
    # fp16 storage rounds the weights: compare directions, not bits
    images = _images()
    cos_text = torch.nn.functional.cosine_similarity(
        source.encode_text(PROMPTS), converted.encode_text(PROMPTS)
    )
    cos_image = torch.nn.functional.cosine_similarity(
        source.encode_image(images), converted.encode_image(images)
    )
    assert cos_text.min() > 0.999 and cos_image.min() > 0.999


def test_fp32_torchscript_archive_converts_exactly(tmp_path, source, openai_state, tiny_clip_dir):
    path = tmp_path / "ViT-tiny-jit32.pt"
    _script_module_like_openai(openai_state, torch.float32).save(str(path))
    out = convert_openai_clip(path, tmp_path / "out32", tokenizer=tiny_clip_dir, vision_heads=4, text_heads=4)
    _assert_same_outputs(source, load_vision_language(str(out)))


def test_missing_and_unexpected_keys_are_named(tmp_path, openai_state):
    missing = dict(openai_state)
    del missing["visual.ln_post.weight"]
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"visual\.ln_post\.weight"):
        convert_openai_clip(tmp_path / "missing.pt", tmp_path / "a", vision_heads=4, text_heads=4)

    extra = dict(openai_state)
    extra["visual.extra_head.weight"] = torch.zeros(2)
    torch.save(extra, tmp_path / "extra.pt")
    with pytest.raises(CheckpointError, match=r"visual\.extra_head\.weight"):
        convert_openai_clip(tmp_path / "extra.pt", tmp_path / "b", vision_heads=4, text_heads=4)

    with pytest.raises(CheckpointError, match="does not exist"):
        convert_openai_clip(tmp_path / "nope.pt", tmp_path / "c")


def test_without_tokenizer_warns_and_images_still_work(tmp_path, openai_state):
    torch.save(openai_state, tmp_path / "plain.pt")
    with pytest.warns(UserWarning, match="--tokenizer"):
        out = convert_openai_clip(tmp_path / "plain.pt", tmp_path / "notok", vision_heads=4, text_heads=4)
    assert not (out / "tokenizer.json").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adapter = load_vision_language(str(out))
    assert adapter.encode_image(_images()).shape == (1, 24)
    with pytest.raises(CheckpointError, match="tokenizer"):
        adapter.encode_text(["cat"])
