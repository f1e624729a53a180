"""The CLIP-style BPE tokenizer we train ourselves: it round-trips through CLIPTokenizerFast and is the same
in every process."""

import os
import subprocess
import sys

import pytest
from transformers import CLIPTokenizerFast

from regionspot.errors import VocabularyError
from regionspot.shapesworld import captions
from regionspot.text.tokenizer import BOS, EOS, save_clip_tokenizer, train_bpe

NAMES = ["red star", "blue circle", "green square", "yellow ring"]


def test_tokenizer_round_trips_through_clip_tokenizer_fast(tmp_path):
    saved = save_clip_tokenizer(tmp_path, captions.caption_corpus(NAMES), vocab_size=600, model_max_length=32)
    loaded = CLIPTokenizerFast.from_pretrained(tmp_path)
    text = "a photo of a red star on a cluttered background"
    ids = loaded(text)["input_ids"]
    assert ids == saved(text)["input_ids"]
    assert ids[0] == loaded.convert_tokens_to_ids(BOS) and ids[-1] == loaded.convert_tokens_to_ids(EOS)
    assert loaded.convert_tokens_to_ids(EOS) == len(loaded) - 1  # special tokens are the last ids
    assert loaded.tokenize("red star") == ["red</w>", "star</w>"]  # frequent words are single tokens
    assert loaded.decode(ids, skip_special_tokens=True).strip() == text
    assert len(loaded("an unseen zebra")["input_ids"]) > 3  # unknown words still tokenize
    assert loaded.model_max_length == 32


def test_tokenizer_rejects_empty_corpus():
    with pytest.raises(VocabularyError):
        train_bpe(["", "   "])


def test_training_is_the_same_in_every_process():
    # A trainer that breaks ties by hash order gives other merges and ids per process; ours must not.
    code = ("import json; from regionspot.shapesworld import captions; from regionspot.text.tokenizer import train_bpe; "
            f"print(json.dumps(train_bpe(captions.caption_corpus({NAMES!r}), vocab_size=400)))")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2", "3")}
    assert len(runs) == 1
    vocab, merges = train_bpe(captions.caption_corpus(NAMES), vocab_size=400)
    assert len(merges) > 20 and len(set(vocab.values())) == len(vocab)
