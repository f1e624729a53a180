"""A tiny random OWLv2 (``transformers.Owlv2ForObjectDetection`` + its processor) that loads offline, for tests.

64-pixel input and 16-pixel patches (a 4 x 4 grid: 16 box predictions per image), 2-layer towers of
width 32, the tiny CLIP word-list tokenizer. ``load_box_detector(folder)`` and
``Owlv2ForObjectDetection.from_pretrained(folder)`` read the folder without any download.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

from regionspot.shapesworld.tiny_models import save_model_folder, tiny_clip_tokenizer

TINY_OWLV2_SIZE = 64


def save_tiny_owlv2(folder: str | Path, seed: int = 0, image_size: int = TINY_OWLV2_SIZE) -> Path:
    """Write a tiny random OWLv2 detector (fp32) with tokenizer and image processor; return the folder."""
    tokenizer = tiny_clip_tokenizer()
    tokenizer.model_max_length = 16  # as OWLv2's own tokenizer: queries padded to the 16 text positions
    vocab = len(tokenizer)
    text = dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=16, bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  image_size=image_size, patch_size=16)
    config = Owlv2Config(text_config=text, vision_config=vision, projection_dim=32)  # OWLv2 needs projection_dim == text width
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Owlv2ForObjectDetection(config).eval()
    folder = save_model_folder(model, folder, half=False)
    processor = Owlv2Processor(image_processor=Owlv2ImageProcessor(size={"height": image_size, "width": image_size}),
                               tokenizer=tokenizer)
    processor.save_pretrained(str(folder))
    return folder
