"""The TIPSv2 adapter on a tiny random ``Tipsv2Model`` (offline): parity with the model's own outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoTokenizer, Tipsv2Model

from regionspot.backbones.base import VisionLanguage
from regionspot.backbones.tips import TipsAdapter
from regionspot.backbones.vision_language import load_vision_language
from regionspot.testing.tiny_vl import save_tiny_tipsv2

PROMPTS = ["a photo of a red square.", "cat", "a photo of a green triangle in a field.", "tree"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny_tipsv2(tmp_path_factory.mktemp("tiny") / "tipsv2", seed=0)


@pytest.fixture(scope="module")
def tips(folder):
    return load_vision_language(str(folder))


@pytest.fixture(scope="module")
def reference(folder):
    return Tipsv2Model.from_pretrained(str(folder)).eval()


def _images(side: int = 32):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)) for _ in range(2)]


def _pixels(images) -> torch.Tensor:
    """The image processor's pixels for images already at the input size: RGB / 255, no normalisation."""
    return torch.stack([torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1) for im in images])


def test_dispatch_shapes_and_preprocessing(tips):
    assert isinstance(tips, TipsAdapter) and isinstance(tips, VisionLanguage)
    assert (tips.image_size, tips.patch_size) == (32, 8)
    assert tips.num_tokens == 1 + 1 + 16  # class token, one register token, 4 × 4 patches
    assert tips.mean == (0.0, 0.0, 0.0) and tips.std == (1.0, 1.0, 1.0)  # do_normalize: false
    assert tips.resample == int(Image.Resampling.BILINEAR)
    assert (tips.scoring_form, tips.default_templates) == ("softmax", "imagenet")
    assert tips.logit_scale == pytest.approx(20.0) and not hasattr(tips, "logit_bias")
    assert (tips.feature_dim, tips.embed_dim, tips.context_length) == (32, 32, 64)
    torch.testing.assert_close(tips.preprocess(_images()), _pixels(_images()), atol=1e-6, rtol=0)


def test_feature_map_is_the_normalised_output_sequence(tips, reference):
    images = _images()
    features = tips.feature_map(images)
    assert features.shape == (2, tips.num_tokens, 32) and features.dtype == torch.float32
    with torch.no_grad():
        out = reference.vision_model(pixel_values=_pixels(images), output_hidden_states=True)
    torch.testing.assert_close(features, out.last_hidden_state, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(features[:, 0], out.pooler_output, atol=1e-5, rtol=1e-5)  # class token first
    # after the tower's final LayerNorm: every token has zero mean / unit variance before the affine part
    ln = reference.vision_model.layernorm
    standardised = (features - ln.bias) / ln.weight
    torch.testing.assert_close(standardised.mean(-1), torch.zeros(2, tips.num_tokens), atol=1e-4, rtol=0)
    assert not torch.allclose(features, out.hidden_states[-1], atol=1e-2)  # the raw residual stream differs


def test_logits_are_the_models(folder, tips, reference):
    """model(...).logits_per_image = cos(encode_image, encode_text) / temperature, with the processor's text."""
    images = _images()
    text = AutoTokenizer.from_pretrained(str(folder))(PROMPTS, padding="max_length", max_length=64, return_tensors="pt")
    with torch.no_grad():
        out = reference(input_ids=text["input_ids"], attention_mask=text["attention_mask"], pixel_values=_pixels(images))
    ours = tips.logit_scale * tips.encode_image(images) @ tips.encode_text(PROMPTS).t()
    torch.testing.assert_close(ours, out.logits_per_image, atol=1e-4, rtol=1e-4)
    # per-batch padding to the longest prompt gives the processor's padding to 64 (masked attention and mean)
    torch.testing.assert_close(tips.encode_text(PROMPTS, batch_size=3), out.text_embeds, atol=1e-5, rtol=1e-5)


def test_larger_input_interpolates_positions(folder, reference):
    big = load_vision_language(str(folder), image_size=48)
    images = _images(48)
    features = big.feature_map(images)
    assert features.shape == (2, 2 + 36, 32) and big.num_tokens == 38
    with torch.no_grad():
        expected = reference.vision_model(pixel_values=_pixels(images)).last_hidden_state
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=1e-5)


def test_bf16_numerics(folder):
    adapter = load_vision_language(str(folder))
    images = _images()
    reference_map = adapter.feature_map(images)
    assert adapter.set_numerics("bf16") == "+bf16"
    lossy = adapter.feature_map(images)
    assert lossy.dtype == torch.float32 and not torch.equal(lossy, reference_map)
    torch.testing.assert_close(lossy, reference_map, atol=0.1, rtol=0.05)
