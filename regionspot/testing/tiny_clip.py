"""A tiny random CLIP (model + tokenizer + image-processor config) that loads offline, for tests.

``save_tiny_clip(folder)`` writes a folder that ``load_vision_language(folder)``,
``CLIPModel.from_pretrained(folder)`` and ``CLIPTokenizer.from_pretrained(folder)`` read without any
download. The tokenizer is :func:`regionspot.shapesworld.tiny_models.tiny_clip_tokenizer` (a small BPE
over a word list); the architecture and the folder layout also come from ``tiny_models``.
"""

from __future__ import annotations

from pathlib import Path

from transformers import CLIPConfig

from regionspot.shapesworld.tiny_models import build_clip, clip_config, save_clip_folder, tiny_clip_tokenizer


def tiny_clip_config(
    vocab_size: int,
    image_size: int = 32,
    patch_size: int = 8,
    hidden_size: int = 32,
    projection_dim: int = 24,
    max_position_embeddings: int = 77,
) -> CLIPConfig:
    """A CLIPConfig with 2-layer, 4-head towers (vision width 48, text width ``hidden_size``), MLP ratio 2."""
    return clip_config(vocab_size, image_size=image_size, patch_size=patch_size, vision_width=48, vision_layers=2,
                       vision_heads=4, text_width=hidden_size, text_layers=2, text_heads=4,
                       context_length=max_position_embeddings, projection_dim=projection_dim, mlp_ratio=2)


def save_tiny_clip(
    folder: str | Path,
    seed: int = 0,
    image_size: int = 32,
    patch_size: int = 8,
    max_position_embeddings: int = 77,
) -> Path:
    """Write a tiny random CLIPModel (fp32) + tokenizer + preprocessor config to ``folder``; return the path.

    The same seed gives the same weights. The folder loads fully offline.
    """
    tokenizer = tiny_clip_tokenizer()
    config = tiny_clip_config(len(tokenizer), image_size=image_size, patch_size=patch_size,
                              max_position_embeddings=max_position_embeddings)
    return save_clip_folder(build_clip(config, seed=seed).eval(), tokenizer, folder, half=False)
