"""The frozen CLIP/SigLIP adapter on tiny random models (offline)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPModel

from regionspot.backbones.base import VisionLanguage
from regionspot.backbones.clip_inputs import preprocess_images
from regionspot.backbones.constants import CLIP_MEAN, CLIP_STD
from regionspot.backbones.siglip import SiglipAdapter
from regionspot.backbones.vision_language import PromptTruncatedWarning, load_vision_language
from regionspot.errors import WeightsNotFoundError


@pytest.fixture(scope="module")
def clip(tiny_clip_dir):
    return load_vision_language(str(tiny_clip_dir))


@pytest.fixture(scope="module")
def reference(tiny_clip_dir):
    """The same weights loaded directly with transformers, independent of the adapter."""
    return CLIPModel.from_pretrained(str(tiny_clip_dir)).eval()


def _images():
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)),
        Image.fromarray(rng.integers(0, 256, (64, 30, 3), dtype=np.uint8)),
    ]


def test_adapter_implements_protocol_and_is_frozen(clip, reference):
    assert isinstance(clip, VisionLanguage)
    assert clip.feature_dim == 48 and clip.embed_dim == 24 and clip.image_size == 32
    assert not any(p.requires_grad for p in clip.model.parameters())
    assert not clip.model.training
    assert clip.logit_scale == pytest.approx(float(reference.logit_scale.detach().exp()))
    assert clip.device == torch.device("cpu")


@pytest.mark.parametrize("antialias", [False, True])
def test_torch_bilinear_resize_is_the_released_float_interpolate(antialias):
    images = _images()
    pixels = preprocess_images(images, 32, CLIP_MEAN, CLIP_STD, resize="torch-bilinear", antialias=antialias)
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    for i, image in enumerate(images):
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255.0
        ref = torch.nn.functional.interpolate(x[None], (32, 32), mode="bilinear", align_corners=False,
                                              antialias=antialias)[0]
        torch.testing.assert_close(pixels[i], (ref - mean) / std, atol=0, rtol=0)
    pil = preprocess_images(images, 32, CLIP_MEAN, CLIP_STD)
    assert (pil - pixels).abs().max() > 0.05  # the two filters really differ


def test_adapter_runs_the_resize_it_was_loaded_with(tiny_clip_dir):
    images = _images()
    released = load_vision_language(str(tiny_clip_dir), resize="torch-bilinear")
    assert (released.resize, released.antialias) == ("torch-bilinear", False)
    expected = preprocess_images(images, released.image_size, released.mean, released.std, resize="torch-bilinear")
    torch.testing.assert_close(released.preprocess(images), expected, atol=0, rtol=0)
    with pytest.raises(ValueError, match="resize"):
        load_vision_language(str(tiny_clip_dir), resize="bicubic")


def test_preprocess_resizes_whole_image_without_crop():
    image = _images()[0]
    pixels = preprocess_images([image], 32, CLIP_MEAN, CLIP_STD)
    expected = np.asarray(image.resize((32, 32), Image.Resampling.BICUBIC), dtype=np.float32) / 255.0
    expected = (expected - np.array(CLIP_MEAN)) / np.array(CLIP_STD)
    assert pixels.shape == (1, 3, 32, 32) and pixels.dtype == torch.float32
    torch.testing.assert_close(pixels[0].permute(1, 2, 0), torch.tensor(expected, dtype=torch.float32))


def test_feature_map_is_last_hidden_state_before_post_layernorm(clip, reference):
    images = _images()
    features = clip.feature_map(images)
    assert features.shape == (2, 1 + (32 // 8) ** 2, 48) and features.dtype == torch.float32
    pixels = preprocess_images(images, 32, CLIP_MEAN, CLIP_STD)
    with torch.no_grad():
        out = reference.vision_model(pixel_values=pixels)
    torch.testing.assert_close(features, out.last_hidden_state)
    # pre-post-LN: the pooled (post-LN) class token differs from the map's class token, and equals LN of it
    assert not torch.allclose(features[:, 0], out.pooler_output, atol=1e-3)
    with torch.no_grad():
        torch.testing.assert_close(reference.vision_model.post_layernorm(features[:, 0]), out.pooler_output)


def test_feature_map_of_prepared_pixels_equals_feature_map_of_images(clip):
    """Worker processes prepare the pixels (a picklable function); the map from them is the same map."""
    import pickle

    images = _images()
    prepare = pickle.loads(pickle.dumps(clip.input_preprocessor()))
    pixels = torch.cat([prepare([image]) for image in images])  # (2, 3, 32, 32), one image per worker call
    assert pixels.shape == (2, 3, 32, 32) and pixels.dtype == torch.float32
    assert torch.equal(pixels, preprocess_images(images, 32, CLIP_MEAN, CLIP_STD))
    assert torch.equal(clip.feature_map(pixels), clip.feature_map(images))
    assert torch.equal(clip.encode_image(pixels), clip.encode_image(images))


def test_larger_image_size_interpolates_positions(tiny_clip_dir, reference):
    big = load_vision_language(str(tiny_clip_dir), image_size=48)
    images = _images()
    features = big.feature_map(images)
    assert features.shape == (2, 1 + (48 // 8) ** 2, 48)
    pixels = preprocess_images(images, 48, CLIP_MEAN, CLIP_STD)
    with torch.no_grad():
        expected = reference.vision_model(
            pixel_values=pixels, interpolate_pos_encoding=True
        ).last_hidden_state
    torch.testing.assert_close(features, expected)
    # Image embeddings (the crop baselines) stay at the native size whatever size the map is read at.
    native = load_vision_language(str(tiny_clip_dir))
    torch.testing.assert_close(big.encode_image(images), native.encode_image(images))


def test_encode_image_is_normalised_projection(clip, reference):
    images = _images()
    embeddings = clip.encode_image(images)
    pixels = preprocess_images(images, 32, CLIP_MEAN, CLIP_STD)
    with torch.no_grad():
        raw = reference.get_image_features(pixel_values=pixels).pooler_output
    torch.testing.assert_close(embeddings, raw / raw.norm(dim=-1, keepdim=True))
    torch.testing.assert_close(embeddings.norm(dim=-1), torch.ones(2))


def test_encode_text_sorted_batches_match_one_at_a_time(clip, reference, tiny_clip_dir):
    prompts = [
        "a photo of a red square in the scene with a blue circle.",
        "cat",
        "a photo of a green triangle.",
        "itap of my dog.",
        "a bad photo of the zebra xylophone.",
        "tree",
    ]
    batched = clip.encode_text(prompts, batch_size=4)
    singles = torch.cat([clip.encode_text([p]) for p in prompts])
    assert batched.shape == (6, 24)
    torch.testing.assert_close(batched, singles, atol=1e-5, rtol=0)
    torch.testing.assert_close(batched.norm(dim=-1), torch.ones(6))
    # order preserved and matching transformers' own padded-to-77 path
    tokens = clip.tokenizer(prompts, padding="max_length", max_length=77, return_tensors="pt")
    with torch.no_grad():
        raw = reference.get_text_features(**tokens).pooler_output
    torch.testing.assert_close(batched, raw / raw.norm(dim=-1, keepdim=True), atol=1e-5, rtol=0)
    raw_out = clip.encode_text(prompts, normalize=False)
    torch.testing.assert_close(raw_out, raw, atol=1e-5, rtol=0)


def test_long_prompt_truncated_with_one_warning(clip):
    long = "a photo of a " + " ".join(["zebra"] * 100) + "."
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = clip.encode_text([long, "cat", long + " again"])
    truncation = [w for w in caught if issubclass(w.category, PromptTruncatedWarning)]
    assert len(truncation) == 1
    assert len(truncation[0].message.prompts) == 2
    assert out.shape == (3, 24) and torch.isfinite(out).all()


def test_bad_inputs_raise_clear_errors(clip):
    with pytest.raises(TypeError):
        clip.feature_map([np.zeros((4, 4, 3))])
    with pytest.raises(ValueError):
        clip.encode_image([])
    with pytest.raises(TypeError):
        clip.encode_text("a single string")
    assert clip.encode_text([]).shape == (0, 24)


def test_unreachable_weights_raise_weights_not_found(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(WeightsNotFoundError, match="regionspot convert clip"):
        load_vision_language("openai/clip-vit-base-patch16")
    with pytest.raises(WeightsNotFoundError, match="save_pretrained"):
        load_vision_language(str(tmp_path))  # an existing folder without a model


def test_siglip_adapter_has_no_class_token(tmp_path, tiny_clip_dir):
    from transformers import CLIPTokenizer, SiglipConfig, SiglipModel

    tokenizer = CLIPTokenizer.from_pretrained(str(tiny_clip_dir))
    vocab = len(tokenizer)
    config = SiglipConfig(
        text_config=dict(
            vocab_size=vocab,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=24,
            projection_size=32,
            pad_token_id=vocab - 1,
            eos_token_id=vocab - 1,
            bos_token_id=vocab - 2,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=32,
            patch_size=8,
        ),
    )
    torch.manual_seed(0)
    SiglipModel(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    siglip = load_vision_language(str(tmp_path))
    assert isinstance(siglip, SiglipAdapter) and isinstance(siglip, VisionLanguage)
    images = _images()
    features = siglip.feature_map(images)
    assert features.shape == (2, 16, 32)
    with torch.no_grad():
        pixels = siglip.preprocess(images)
        hidden = siglip.model.vision_model(pixel_values=pixels, output_hidden_states=True)
    torch.testing.assert_close(features, hidden.hidden_states[-1])
    assert not torch.allclose(features, hidden.last_hidden_state, atol=1e-3)  # that one is post-LN
    text = siglip.encode_text(["a photo of a cat.", "red"], batch_size=1)
    torch.testing.assert_close(
        text, torch.cat([siglip.encode_text(["a photo of a cat."]), siglip.encode_text(["red"])])
    )
    assert text.shape == (2, 32) and np.isfinite(siglip.logit_bias)


def test_normalisation_is_read_from_preprocessor_config(tmp_path, tiny_clip_dir):
    import json
    import shutil

    folder = tmp_path / "clip"
    shutil.copytree(tiny_clip_dir, folder)
    config = json.loads((folder / "preprocessor_config.json").read_text())
    config.update(image_mean=[0.5, 0.5, 0.5], image_std=[0.25, 0.25, 0.25])
    (folder / "preprocessor_config.json").write_text(json.dumps(config))
    adapter = load_vision_language(str(folder))
    assert adapter.mean == (0.5, 0.5, 0.5) and adapter.std == (0.25, 0.25, 0.25)
    (folder / "preprocessor_config.json").unlink()
    assert load_vision_language(str(folder)).mean == CLIP_MEAN  # defaults when absent


def test_metaclip2_is_read_by_the_clip_adapter(tmp_path):
    """MetaCLIP 2 is CLIP's architecture: one adapter, and the model's own logits from its embeddings."""
    from transformers import AutoTokenizer, MetaClip2Model

    from regionspot.testing.tiny_vl import save_tiny_metaclip2

    folder = save_tiny_metaclip2(tmp_path / "metaclip2", seed=0)
    adapter = load_vision_language(str(folder))
    reference = MetaClip2Model.from_pretrained(str(folder)).eval()
    assert type(adapter).__name__ == "ClipAdapter" and isinstance(adapter, VisionLanguage)
    assert (adapter.scoring_form, adapter.default_templates, adapter.num_tokens) == ("softmax", "imagenet", 17)
    assert adapter.mean == CLIP_MEAN and adapter.std == CLIP_STD and adapter.resample == int(Image.Resampling.BICUBIC)
    images = _images()
    pixels = preprocess_images(images, 32, CLIP_MEAN, CLIP_STD)
    prompts = ["a photo of a cat.", "itap of my dog in the scene.", "tree"]
    text = AutoTokenizer.from_pretrained(str(folder))(prompts, padding="max_length", max_length=77, return_tensors="pt")
    with torch.no_grad():
        out = reference(**text, pixel_values=pixels)
        vision = reference.vision_model(pixel_values=pixels)
    torch.testing.assert_close(adapter.feature_map(images), vision.last_hidden_state)
    ours = adapter.logit_scale * adapter.encode_image(images) @ adapter.encode_text(prompts).t()
    torch.testing.assert_close(ours, out.logits_per_image, atol=1e-4, rtol=1e-4)


def test_an_unsupported_model_type_is_one_line(tiny_owlv2_dir):
    from regionspot.errors import CheckpointError

    with pytest.raises(CheckpointError, match=r"'owlv2' model; regionspot reads these vision-language models: "
                                              r"clip, metaclip_2, siglip, siglip2, tipsv2") as caught:
        load_vision_language(str(tiny_owlv2_dir))
    assert "\n" not in str(caught.value)
