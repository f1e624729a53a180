"""CLIP's byte-level BPE tokenizer read from a ``tokenizer.json``, in plain Python (no ``tokenizers``, no torch).

It implements the one tokenizer layout CLIP models ship (and ``regionspot convert clip`` / the ShapesWorld
models write): NFC, whitespace runs -> one space, lower case; words split by CLIP's pattern (contractions,
letter runs, single digits, runs of other characters; whitespace dropped); each word's UTF-8 bytes mapped to
GPT-2's byte alphabet; BPE merges by rank with ``</w>`` on the word's last piece; start and end tokens around.
``tests/runtime/test_tokenizer.py`` checks the ids against the ``tokenizers`` library on the vocabularies and
awkward text; a ``tokenizer.json`` of another layout is refused in one line.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from pathlib import Path

from regionspot.errors import OnnxModelError

__all__ = ["ClipTokenizer"]

_CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")
_SUPPORTED = "CLIP's byte-level BPE tokenizer"


@functools.cache
def _byte_alphabet() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {b: chr(b) for b in printable}, 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def _kind(char: str) -> str:
    """'L' letter, 'N' number, 'S' whitespace, 'O' anything else (the classes of CLIP's split pattern)."""
    if char.isspace():
        return "S"
    category = unicodedata.category(char)[0]
    return category if category in ("L", "N") else "O"


def split_words(text: str) -> list[str]:
    """CLIP's word split of normalised text: ``'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+``,
    each match a word, whitespace between matches dropped."""
    words, i = [], 0
    while i < len(text):
        contraction = next((c for c in _CONTRACTIONS if text.startswith(c, i)), None)
        kind = _kind(text[i])
        if contraction:
            end = i + len(contraction)
        elif kind == "S":
            i += 1
            continue
        elif kind == "N":
            end = i + 1
        else:
            end = i + 1
            while end < len(text) and _kind(text[end]) == kind:
                end += 1
        words.append(text[i:end])
        i = end
    return words


class ClipTokenizer:
    """Token ids of prompts, as CLIP's fast tokenizer gives them (start and end tokens included).

    path: a ``tokenizer.json`` of CLIP's layout. Raises OnnxModelError for another layout.
    """

    def __init__(self, path: str | Path) -> None:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        model = data.get("model") or {}
        if model.get("type") != "BPE" or model.get("end_of_word_suffix") != "</w>" or not _clip_layout(data):
            raise OnnxModelError(f"{path} is not {_SUPPORTED}; export a CLIP model with `regionspot export onnx`.")
        self.vocab: dict[str, int] = model["vocab"]
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
        self.ranks: dict[tuple[str, str], int] = {pair: rank for rank, pair in enumerate(merges)}
        special = {token["content"]: token["id"] for token in data.get("added_tokens", [])}
        post = data.get("post_processor") or {}
        self.start_id = int(post.get("cls", ["", special.get("<|startoftext|>")])[1])
        self.end_id = int(post.get("sep", ["", special.get("<|endoftext|>")])[1])
        self.unknown_id = self.vocab.get(model.get("unk_token") or "", self.end_id)
        self._cache: dict[str, list[int]] = {}

    @staticmethod
    def normalize(text: str) -> str:
        """NFC, every whitespace run -> one space, lower case character by character (the tokenizer's normaliser:
        no context rules such as Greek final sigma, which ``str.lower`` applies)."""
        return "".join(char.lower() for char in re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)))

    def _bpe(self, word: str) -> list[int]:
        if word in self._cache:
            return self._cache[word]
        alphabet = _byte_alphabet()
        pieces = [alphabet[b] for b in word.encode("utf-8")]
        pieces[-1] += "</w>"
        while len(pieces) > 1:
            ranked = [(self.ranks.get(pair, 1 << 62), k) for k, pair in enumerate(zip(pieces, pieces[1:]))]
            rank, k = min(ranked)
            if rank == 1 << 62:
                break
            pieces[k : k + 2] = [pieces[k] + pieces[k + 1]]
        ids = [self.vocab.get(piece, self.unknown_id) for piece in pieces]
        self._cache[word] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """One prompt -> [start, ..., end] token ids (not truncated)."""
        ids = [self.start_id]
        for word in split_words(self.normalize(text)):
            ids += self._bpe(word)
        return ids + [self.end_id]


def _clip_layout(data: dict) -> bool:
    """Whether a tokenizer.json has CLIP's normaliser and word split (the steps this module implements)."""
    text = json.dumps([data.get("normalizer"), data.get("pre_tokenizer")])
    return all(part in text for part in ('"NFC"', '"Lowercase"', "ByteLevel", "\\\\p{L}"))
