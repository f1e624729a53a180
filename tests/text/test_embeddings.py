"""Class text embeddings: template ensemble, batching across classes, on-disk cache."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from regionspot.backbones.vision_language import PromptTruncatedWarning, load_vision_language
from regionspot.errors import VocabularyError
from regionspot.testing.tiny_clip import save_tiny_clip
from regionspot.text.embeddings import class_text_embeddings, default_cache_dir
from regionspot.text.templates import get_templates

NAMES = ["red_square", "blue circle", "green triangle-other", "cat"]


class Counting:
    """Wraps an adapter and counts encode_text calls and prompts (keeps the adapter's keywords)."""

    def __init__(self, inner):
        self.inner = inner
        self.model_id = inner.model_id
        self.weights_fingerprint = inner.weights_fingerprint
        self.feature_dim, self.embed_dim, self.image_size = (
            inner.feature_dim,
            inner.embed_dim,
            inner.image_size,
        )
        self.calls = 0
        self.prompts = 0

    @property
    def logit_scale(self):
        return self.inner.logit_scale

    def feature_map(self, images):
        return self.inner.feature_map(images)

    def encode_image(self, images):
        return self.inner.encode_image(images)

    def encode_text(self, prompts, batch_size=256, **kwargs):
        self.calls += 1
        self.prompts += len(prompts)
        return self.inner.encode_text(prompts, batch_size=batch_size, **kwargs)


class NormalizedOnly(Counting):
    """A protocol-only model: encode_text returns normalised embeddings and takes no extra keywords."""

    def encode_text(self, prompts, batch_size=256):
        self.calls += 1
        return self.inner.encode_text(prompts, batch_size=batch_size)


@pytest.fixture(scope="module")
def clip(tiny_clip_dir):
    return load_vision_language(str(tiny_clip_dir))


def test_ensemble_matches_manual_average(clip, tmp_path):
    templates = ["a photo of a {}.", "itap of my {}.", "a bad photo of the {}."]
    out = class_text_embeddings(clip, NAMES, templates=templates, cache_dir=False)
    assert out.shape == (4, clip.embed_dim) and out.dtype == torch.float32
    cleaned = ["red square", "blue circle", "green triangle", "cat"]
    manual = []
    for name in cleaned:
        raw = torch.cat([clip.encode_text([t.format(name)], normalize=False) for t in templates])  # (T, D)
        manual.append(F.normalize(raw.mean(0), dim=-1))
    torch.testing.assert_close(out, torch.stack(manual), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(4))


def test_normalized_only_model_averages_normalized_embeddings(clip):
    model = NormalizedOnly(clip)
    templates = ["a photo of a {}.", "a toy {}."]
    out = class_text_embeddings(model, ["cat", "dog"], templates=templates, cache_dir=False)
    manual = torch.stack(
        [
            F.normalize(clip.encode_text([t.format(n) for t in templates]).mean(0), dim=-1)
            for n in ["cat", "dog"]
        ]
    )
    torch.testing.assert_close(out, manual, atol=1e-5, rtol=0)
    assert model.calls == 1


def test_all_classes_in_one_encode_call(clip):
    model = Counting(clip)
    out = class_text_embeddings(model, NAMES, templates="imagenet", cache_dir=False, batch_size=64)
    assert model.calls == 1 and model.prompts == len(NAMES) * 81
    assert out.shape == (4, clip.embed_dim) and torch.isfinite(out).all()


def test_cache_hit_skips_encoding_and_misses_on_change(clip, tiny_clip_dir, tmp_path):
    model = Counting(clip)
    first = class_text_embeddings(model, NAMES, templates="single", cache_dir=tmp_path)
    assert model.calls == 1 and len(list(tmp_path.glob("*.safetensors"))) == 1
    second = class_text_embeddings(model, NAMES, templates="single", cache_dir=tmp_path)
    assert model.calls == 1  # hit: no encoding
    torch.testing.assert_close(first, second, atol=0, rtol=0)

    class_text_embeddings(model, NAMES[:3], templates="single", cache_dir=tmp_path)
    assert model.calls == 2  # other class names
    class_text_embeddings(model, NAMES, templates=["a toy {}."], cache_dir=tmp_path)
    assert model.calls == 3  # other templates
    class_text_embeddings(model, list(reversed(NAMES)), templates="single", cache_dir=tmp_path)
    assert model.calls == 4  # order is part of the key

    other_dir = save_tiny_clip(tmp_path / "other_clip", seed=1)
    other = Counting(load_vision_language(str(other_dir)))
    other.model_id = model.model_id  # same id, different weights: the fingerprint must tell them apart
    different = class_text_embeddings(other, NAMES, templates="single", cache_dir=tmp_path)
    assert other.calls == 1 and not torch.allclose(different, first)
    assert len(list(tmp_path.glob("*.safetensors"))) == 5


def test_default_cache_dir_follows_env(monkeypatch, tmp_path, clip):
    monkeypatch.setenv("REGIONSPOT_CACHE", str(tmp_path / "root"))
    assert default_cache_dir() == tmp_path / "root" / "text"
    class_text_embeddings(clip, ["cat"], templates="single")
    assert len(list((tmp_path / "root" / "text").glob("*.safetensors"))) == 1


def test_long_name_truncated_with_exactly_one_warning_naming_the_class(clip):
    long_name = "zebra " * 80 + "xylophone"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = class_text_embeddings(clip, ["cat", long_name], templates="imagenet", cache_dir=False)
    truncation = [w for w in caught if issubclass(w.category, PromptTruncatedWarning)]
    assert len(truncation) == 1
    assert "zebra zebra" in str(truncation[0].message) and "'cat'" not in str(truncation[0].message)
    assert truncation[0].message.prompts == [" ".join(long_name.split())]
    assert torch.isfinite(out).all()


def test_bad_vocabulary_raises(clip):
    with pytest.raises(VocabularyError, match="empty"):
        class_text_embeddings(clip, [], cache_dir=False)
    with pytest.raises(VocabularyError, match="empty"):
        class_text_embeddings(clip, ["cat", ""], cache_dir=False)
    with pytest.raises(VocabularyError, match="'cat'"):
        class_text_embeddings(clip, ["cat", "cat-other"], cache_dir=False)
    with pytest.raises(VocabularyError, match="exactly one"):
        class_text_embeddings(clip, ["cat"], templates=["no slot"], cache_dir=False)


def test_templates_by_name_equal_explicit_list(clip):
    by_name = class_text_embeddings(clip, ["cat", "dog"], templates="clip80", cache_dir=False)
    by_list = class_text_embeddings(clip, ["cat", "dog"], templates=get_templates("clip80"), cache_dir=False)
    torch.testing.assert_close(by_name, by_list, atol=0, rtol=0)
