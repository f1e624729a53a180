"""A tiny random CLIP (model + tokenizer + image-processor config) that loads offline.

``save_tiny_clip(folder)`` writes a folder that ``load_vision_language(folder)``,
``CLIPModel.from_pretrained(folder)`` and ``CLIPTokenizer.from_pretrained(folder)`` read without any
download. The tokenizer is a small byte-level BPE trained here over a word list (colours, shapes,
template words, a few object names); words outside the list fall back to single characters, so any
text tokenizes. Like OpenAI's vocabulary, the two special tokens are the last two ids.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

from regionspot.backbones.vision_language import save_clip_preprocessor_config
from regionspot.text.prompts import CLIP_IMAGENET_TEMPLATES
from regionspot.text.tokenizer import EOS, train_bpe

TINY_WORDS: tuple[str, ...] = (
    # colours and shapes (ShapesWorld-style tests)
    "red green blue yellow black white orange purple pink brown gray grey cyan magenta",
    "circle square triangle star rectangle ellipse hexagon cross ring diamond shape",
    # a few everyday objects
    "cat dog person car bus bicycle tree house chair table cup bottle background object thing",
    # prompt words
    "a an the photo of in scene this is there one picture image",
) + CLIP_IMAGENET_TEMPLATES


def tiny_clip_tokenizer() -> CLIPTokenizer:
    """A CLIPTokenizer over a small offline BPE vocabulary (special tokens are the last two ids)."""
    # Repeat the list so every word is frequent enough to be merged into one token.
    vocab, merges = train_bpe([" ".join(TINY_WORDS)] * 5, vocab_size=2000, min_frequency=1)
    return CLIPTokenizer(vocab=vocab, merges=merges, pad_token=EOS, unk_token=EOS)


def tiny_clip_config(
    vocab_size: int,
    image_size: int = 32,
    patch_size: int = 8,
    hidden_size: int = 32,
    projection_dim: int = 24,
    max_position_embeddings: int = 77,
) -> CLIPConfig:
    """A CLIPConfig with 2-layer, 4-head towers (vision width 48, text width ``hidden_size``)."""
    text = dict(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        hidden_act="quick_gelu",
    )
    vision = dict(
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=image_size,
        patch_size=patch_size,
        hidden_act="quick_gelu",
    )
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)


def save_tiny_clip(
    folder: str | Path,
    seed: int = 0,
    image_size: int = 32,
    patch_size: int = 8,
    max_position_embeddings: int = 77,
) -> Path:
    """Write a tiny random CLIPModel + tokenizer + preprocessor config to ``folder``; return the path.

    The same seed gives the same weights. The folder loads fully offline.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_clip_tokenizer()
    config = tiny_clip_config(
        len(tokenizer),
        image_size=image_size,
        patch_size=patch_size,
        max_position_embeddings=max_position_embeddings,
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = CLIPModel(config).eval()
    finally:
        torch.random.set_rng_state(generator_state)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    save_clip_preprocessor_config(folder, image_size)
    return folder
