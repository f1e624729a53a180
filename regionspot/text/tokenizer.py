"""Train and save a small CLIP-style BPE tokenizer that loads offline with ``CLIPTokenizer(Fast)``.

The tokenizer is a byte-level BPE with CLIP's conventions: lower-cased NFC text, words split by CLIP's
regular expression, word-final pieces marked with ``</w>``, and the two special tokens
``<|startoftext|>`` / ``<|endoftext|>`` as the last two ids (pad = end, as OpenAI CLIP). It is trained
with HF ``tokenizers`` on a corpus of captions (e.g. ShapesWorld captions and CLIP's prompt templates),
so frequent words become single tokens; any other text still tokenizes, one byte-level character at a
time, because every single character exists both as a piece and as a word-final piece.

``save_clip_tokenizer(folder, texts)`` writes ``tokenizer.json`` + ``vocab.json`` + ``merges.txt`` +
configs; ``CLIPTokenizerFast.from_pretrained(folder)`` reads them without any download.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer

from regionspot.errors import VocabularyError

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
# CLIP's word splitting (letters runs, single digits, punctuation runs, English contractions).
CLIP_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def train_bpe(texts: Iterable[str], vocab_size: int = 1024, min_frequency: int = 2) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocabulary and merges of a CLIP-style byte-level BPE trained on ``texts``.

    texts: training strings (captions). vocab_size: target size before the byte fallbacks and the two
    special tokens are added (the result is at most ``vocab_size + 514``).
    Returns (vocab: piece -> id, merges: list of (left, right) pairs in merge order).
    """
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        raise VocabularyError("The tokenizer corpus is empty; pass at least one non-empty caption.")
    tokenizer = Tokenizer(BPE(end_of_word_suffix="</w>"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(CLIP_SPLIT_PATTERN), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=alphabet,
        end_of_word_suffix="</w>",
        min_frequency=min_frequency,
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    model = json.loads(tokenizer.to_str())["model"]
    vocab: dict[str, int] = dict(model["vocab"])
    # Every character also as a word-final piece, so unseen words always tokenize.
    for char in sorted(alphabet):
        for piece in (char, char + "</w>"):
            if piece not in vocab:
                vocab[piece] = len(vocab)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    vocab[BOS] = len(vocab)
    vocab[EOS] = len(vocab)
    return vocab, merges


def build_clip_tokenizer(texts: Iterable[str], vocab_size: int = 1024, min_frequency: int = 2):
    """A ``CLIPTokenizerFast`` over a BPE trained on ``texts`` (special tokens are the last two ids)."""
    from transformers import CLIPTokenizerFast

    vocab, merges = train_bpe(texts, vocab_size=vocab_size, min_frequency=min_frequency)
    return CLIPTokenizerFast(vocab=vocab, merges=merges, unk_token=EOS, bos_token=BOS, eos_token=EOS, pad_token=EOS)


def save_clip_tokenizer(
    folder: str | Path, texts: Iterable[str], vocab_size: int = 1024, min_frequency: int = 2, model_max_length: int = 77
):
    """Train a CLIP BPE tokenizer on ``texts`` and save it to ``folder``; return the tokenizer.

    The folder then loads offline with ``CLIPTokenizerFast.from_pretrained(folder)`` (and
    ``AutoTokenizer``). ``model_max_length`` should be the text encoder's context length.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_clip_tokenizer(texts, vocab_size=vocab_size, min_frequency=min_frequency)
    tokenizer.model_max_length = int(model_max_length)
    tokenizer.save_pretrained(str(folder))
    return tokenizer
