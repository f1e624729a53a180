"""Train and save a small CLIP-style BPE tokenizer that loads offline with ``CLIPTokenizer(Fast)``.

The tokenizer is a byte-level BPE with CLIP's conventions: lower-cased NFC text, words split by CLIP's
regular expression, word-final pieces marked with ``</w>``, and the two special tokens
``<|startoftext|>`` / ``<|endoftext|>`` as the last two ids (pad = end, as OpenAI CLIP). It is trained
on a corpus of captions (e.g. ShapesWorld captions and CLIP's prompt templates),
so frequent words become single tokens; any other text still tokenizes, one byte-level character at a
time, because every single character exists both as a piece and as a word-final piece.

``save_clip_tokenizer(folder, texts)`` writes ``tokenizer.json`` + ``vocab.json`` + ``merges.txt`` +
configs; ``CLIPTokenizerFast.from_pretrained(folder)`` reads them without any download. Training is a
small deterministic BPE of our own (ties broken by string order), so a rebuild gives the same ids.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import BPE

from regionspot.errors import VocabularyError

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
# CLIP's word splitting (letters runs, single digits, punctuation runs, English contractions).
CLIP_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def _word_counts(texts: list[str]) -> Counter:
    """Byte-level words of ``texts`` (CLIP's normalisation and word split) and how often each occurs."""
    splitter = Tokenizer(BPE())
    splitter.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    splitter.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(CLIP_SPLIT_PATTERN), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    counts: Counter = Counter()
    for text in texts:
        normalized = splitter.normalizer.normalize_str(text)
        counts.update(word for word, _ in splitter.pre_tokenizer.pre_tokenize_str(normalized))
    return counts


def train_bpe(texts: Iterable[str], vocab_size: int = 1024, min_frequency: int = 2) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocabulary and merges of a CLIP-style byte-level BPE trained on ``texts``, deterministically.

    texts: training strings (captions). vocab_size: target size before the byte fallbacks and the two
    special tokens are added (the result is at most ``vocab_size + 514``). Each step merges the most
    frequent adjacent pair (at least ``min_frequency`` occurrences); ties go to the smallest pair in
    string order, so the same texts give the same tokenizer in every process (a hash-ordered trainer
    does not).
    Returns (vocab: piece -> id, merges: list of (left, right) pairs in merge order).
    """
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        raise VocabularyError("The tokenizer corpus is empty; pass at least one non-empty caption.")
    words = {tuple(word[:-1]) + (word[-1] + "</w>",): n for word, n in _word_counts(texts).items()}
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    for piece in alphabet + sorted({s for word in words for s in word}):
        vocab.setdefault(piece, len(vocab))
    merges: list[tuple[str, str]] = []
    while len(vocab) < vocab_size:
        pairs: Counter = Counter()
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += n
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        if pairs[best] < min_frequency:
            break
        merges.append(best)
        joined = best[0] + best[1]
        vocab.setdefault(joined, len(vocab))
        words = {_merge(word, best, joined): n for word, n in words.items()}
    # Every character also as a word-final piece, so unseen words always tokenize.
    for char in alphabet:
        for piece in (char, char + "</w>"):
            if piece not in vocab:
                vocab[piece] = len(vocab)
    vocab[BOS] = len(vocab)
    vocab[EOS] = len(vocab)
    return vocab, merges


def _merge(word: tuple[str, ...], pair: tuple[str, str], joined: str) -> tuple[str, ...]:
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(joined)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


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
