"""The runtime's plain-Python CLIP tokenizer gives the ids of the tokenizers library (what the PyTorch path uses)."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer

from regionspot.errors import OnnxModelError
from regionspot.registry import assets_dir
from regionspot.runtime.tokenizer import ClipTokenizer, split_words
from regionspot.text.presets import PRESETS, preset_vocabulary
from regionspot.text.templates import TEMPLATE_SETS

TEXTS = [
    "a photo of a red circle.", "Band_Aid", "bat_(animal)", "it's the dog's ball", "x''s", "  Many   SPACES\tand\nlines ",
    "numbers 1234 and 3.5%", "café crème brûlée", "Ünïcödé ß ΣΊΣΥΦΟΣ", "emoji 🐱🐶!", "日本語のテキスト", "a--b__c!!?",
    "they're we've I'm you'll he'd", "", "½ ² Ⅻ",
]


def vocabulary_texts() -> list[str]:
    names = [name for preset in PRESETS for name in preset_vocabulary(preset)]
    templates = sorted({t for group in TEMPLATE_SETS.values() for t in group})
    return names + [t.format(n) for t in templates[:20] for n in names[:50]]


@pytest.mark.parametrize("folder", ["embedded", "tiny"])
def test_ids_match_the_tokenizers_library(folder, tiny_clip_dir):
    path = (assets_dir() / "shapesworld" / "clip" if folder == "embedded" else tiny_clip_dir) / "tokenizer.json"
    ours, reference = ClipTokenizer(path), Tokenizer.from_file(str(path))
    texts = TEXTS + vocabulary_texts()
    mismatched = [t for t in texts if ours.encode(t) != reference.encode(t).ids]
    assert not mismatched, mismatched[:5]


def test_word_split_follows_clips_pattern():
    assert split_words("it's a dog's x!'s 12") == ["it", "'s", "a", "dog", "'s", "x", "!'", "s", "1", "2"]


def test_another_tokenizer_layout_is_refused_in_one_line(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text('{"model": {"type": "WordPiece"}}')
    with pytest.raises(OnnxModelError, match="not CLIP's byte-level BPE tokenizer"):
        ClipTokenizer(path)
