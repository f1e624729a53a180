"""The SigLIP 2 (NaFlex) adapter on a tiny random ``Siglip2Model`` (offline): parity with the model's own outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoTokenizer, Siglip2Model

from regionspot.backbones.base import VisionLanguage
from regionspot.backbones.siglip import Siglip2Adapter, patchify
from regionspot.backbones.vision_language import load_vision_language
from regionspot.testing.tiny_vl import save_tiny_siglip2

PROMPTS = ["This is a photo of red square.", "cat", "This is a photo of a green triangle in a field.", "tree"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny_siglip2(tmp_path_factory.mktemp("tiny") / "siglip2", seed=0)


@pytest.fixture(scope="module")
def siglip2(folder):
    return load_vision_language(str(folder))


@pytest.fixture(scope="module")
def reference(folder):
    return Siglip2Model.from_pretrained(str(folder)).eval()


def _square_images(side: int = 32):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)) for _ in range(2)]


def _processor_inputs(folder, images):
    """What the model's own image processor gives for square images already at the input size."""
    processor = AutoImageProcessor.from_pretrained(str(folder))
    return dict(processor(images=images, return_tensors="pt"))


def test_dispatch_shapes_and_preprocessing(siglip2):
    assert isinstance(siglip2, Siglip2Adapter) and isinstance(siglip2, VisionLanguage)
    assert (siglip2.image_size, siglip2.patch_size, siglip2.num_tokens) == (32, 8, 16)  # sqrt(16) patches of 8
    assert siglip2.mean == (0.5, 0.5, 0.5) and siglip2.std == (0.5, 0.5, 0.5)
    assert siglip2.resample == int(Image.Resampling.BILINEAR)
    assert (siglip2.scoring_form, siglip2.default_templates, siglip2.has_class_token) == ("sigmoid", "siglip", False)
    assert siglip2.logit_bias == pytest.approx(-2.5) and siglip2.logit_scale == pytest.approx(np.exp(2.3), rel=1e-5)
    assert (siglip2.feature_dim, siglip2.embed_dim, siglip2.context_length) == (32, 32, 64)
    assert not any(p.requires_grad for p in siglip2.model.parameters())


def test_patches_are_the_image_processors(folder, siglip2):
    images = _square_images()
    inputs = _processor_inputs(folder, images)
    patches, shapes = patchify(siglip2.preprocess(images), siglip2.patch_size)
    assert patches.shape == inputs["pixel_values"].shape == (2, 16, 8 * 8 * 3)
    torch.testing.assert_close(patches, inputs["pixel_values"].float(), atol=1e-6, rtol=0)
    assert torch.equal(shapes, inputs["spatial_shapes"]) and bool(inputs["pixel_attention_mask"].all())


def test_feature_map_is_the_encoder_output_before_the_post_layernorm(folder, siglip2, reference):
    images = _square_images()
    features = siglip2.feature_map(images)
    assert features.shape == (2, 16, 32) and features.dtype == torch.float32
    with torch.no_grad():
        out = reference.vision_model(**_processor_inputs(folder, images), output_hidden_states=True)
        torch.testing.assert_close(features, out.hidden_states[-1], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(reference.vision_model.post_layernorm(features), out.last_hidden_state,
                                   atol=1e-5, rtol=1e-5)
    assert not torch.allclose(features, out.last_hidden_state, atol=1e-2)


def test_logits_are_the_models_sigmoid_form(folder, siglip2, reference):
    """model(...).logits_per_image = scale · cos(encode_image, encode_text) + bias, with the processor's text."""
    images = _square_images()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    text = tokenizer(PROMPTS, padding="max_length", max_length=64, return_tensors="pt")
    with torch.no_grad():
        out = reference(**text, **_processor_inputs(folder, images))
    ours = siglip2.logit_scale * siglip2.encode_image(images) @ siglip2.encode_text(PROMPTS).t() + siglip2.logit_bias
    torch.testing.assert_close(ours, out.logits_per_image, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(siglip2.encode_text(PROMPTS), torch.nn.functional.normalize(out.text_embeds, dim=-1),
                               atol=1e-5, rtol=1e-5)
    batched, singles = siglip2.encode_text(PROMPTS, batch_size=3), torch.cat([siglip2.encode_text([p]) for p in PROMPTS])
    torch.testing.assert_close(batched, singles, atol=1e-5, rtol=0)


def test_other_square_sizes_resize_the_position_grid(folder, reference):
    big = load_vision_language(str(folder), image_size=48)
    images = _square_images(48)
    features = big.feature_map(images)
    assert features.shape == (2, 36, 32) and big.num_tokens == 36
    with torch.no_grad():
        expected = reference.vision_model(**big.naflex_inputs(big.preprocess(images)), output_hidden_states=True)
    torch.testing.assert_close(features, expected.hidden_states[-1])
    assert big.encode_image(images).shape == (2, 32)  # image embeddings at the native 32 px
    with pytest.raises(ValueError, match="multiple of its patch size"):
        load_vision_language(str(folder), image_size=44)


def test_bf16_numerics(folder):
    adapter = load_vision_language(str(folder))
    images = _square_images()
    reference_map = adapter.feature_map(images)
    assert adapter.set_numerics("bf16") == "+bf16" and adapter.weights_fingerprint.endswith("+bf16")
    lossy = adapter.feature_map(images)
    assert lossy.dtype == torch.float32 and not torch.equal(lossy, reference_map)
    torch.testing.assert_close(lossy, reference_map, atol=0.1, rtol=0.05)
    assert adapter.encode_text(PROMPTS[:2]).shape == (2, 32)


def test_the_model_scores_with_the_bias(siglip2):
    """RegionSpot.forward adds SigLIP's bias to every logit (score_regions' sigmoid form)."""
    from types import SimpleNamespace

    from regionspot.config import HeadConfig, RegionSpotConfig
    from regionspot.model import RegionSpot
    from regionspot.modeling.head import RegionSpotHead
    from regionspot.modeling.scoring import score_regions

    torch.manual_seed(0)
    head = RegionSpotHead(HeadConfig(token_dim=16, feature_dim=32, embed_dim=32, depth=1, num_heads=2, ffn_dim=64,
                                     dropout=0.0)).eval()
    segmenter = SimpleNamespace(token_dim=16, model_id="sam")
    model = RegionSpot(segmenter=segmenter, vision_language=siglip2, head=head, config=RegionSpotConfig())
    tokens, fmap = torch.randn(1, 3, 16), siglip2.feature_map(_square_images()[:1])
    text = siglip2.encode_text(PROMPTS)
    with torch.no_grad():
        logits = model(tokens, fmap, text).logits
        plain = score_regions(head, tokens, fmap, text, siglip2.logit_scale).logits
    assert model.logit_bias == pytest.approx(-2.5)
    torch.testing.assert_close(logits, plain - 2.5)
