"""Tiny random SigLIP 2 (NaFlex), MetaCLIP 2 and TIPSv2 folders (model + tokenizer + image-processor config) that
load offline, for tests.

Each ``save_tiny_*`` writes a folder that ``load_vision_language(folder)`` and the transformers classes
(``AutoModel``, ``AutoTokenizer``, ``AutoImageProcessor``) read without any download. The tokenizers are the
models' own tokenizer classes over a character vocabulary (:func:`char_vocabulary`; SigLIP 2 and TIPSv2) or
the project's tiny CLIP BPE (MetaCLIP 2, whose text tower is CLIP's); the image-processor configs are written
by the models' own image-processor classes (TIPSv2's, which needs torchvision, by hand with its settings).
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch

from regionspot.shapesworld.tiny_models import save_model_folder, tiny_clip_tokenizer

__all__ = ["char_vocabulary", "save_tiny_metaclip2", "save_tiny_siglip2", "save_tiny_tipsv2", "save_tiny_vl"]

_CHARS = string.ascii_lowercase + string.digits + ".,'!?-_()"
_TOWER = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)


def char_vocabulary(specials: list[str]) -> dict[str, int]:
    """``specials`` (ids 0..), then the word marker "▁" and lower-case letters, digits and punctuation."""
    vocab = {token: index for index, token in enumerate(specials)}
    for piece in ["▁", *_CHARS]:
        vocab.setdefault(piece, len(vocab))
    return vocab


def _seeded(build, seed: int):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build().eval()


def save_tiny_siglip2(folder: str | Path, seed: int = 0, patch_size: int = 8, grid: int = 4,
                      context_length: int = 64) -> Path:
    """A tiny ``Siglip2Model`` (NaFlex; 2-layer 32-wide towers, a ``grid``² position grid of ``patch_size``
    patches, scale e^2.3, bias -2.5) + ``Siglip2Tokenizer`` + ``Siglip2ImageProcessor`` config."""
    from transformers import Siglip2Config, Siglip2ImageProcessor, Siglip2Model, Siglip2Tokenizer

    tokenizer = Siglip2Tokenizer(vocab=char_vocabulary(["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]), merges=[],
                                 model_max_length=context_length)
    config = Siglip2Config(
        text_config=dict(vocab_size=len(tokenizer), max_position_embeddings=context_length, projection_size=32,
                         pad_token_id=0, eos_token_id=1, bos_token_id=2, **_TOWER),
        vision_config=dict(patch_size=patch_size, num_patches=grid * grid, **_TOWER),
    )

    def build():
        model = Siglip2Model(config)
        with torch.no_grad():
            model.logit_scale.fill_(2.3)
            model.logit_bias.fill_(-2.5)
        return model

    folder = save_model_folder(_seeded(build, seed), folder, half=False)
    tokenizer.save_pretrained(str(folder))
    Siglip2ImageProcessor(patch_size=patch_size, max_num_patches=grid * grid).save_pretrained(str(folder))
    return folder


def save_tiny_metaclip2(folder: str | Path, seed: int = 0, image_size: int = 32, patch_size: int = 8) -> Path:
    """A tiny ``MetaClip2Model`` (CLIP architecture) + the tiny CLIP BPE tokenizer + ``CLIPImageProcessor`` config."""
    from transformers import CLIPImageProcessor, MetaClip2Config, MetaClip2Model

    tokenizer = tiny_clip_tokenizer()
    vocab = len(tokenizer)
    config = MetaClip2Config(
        text_config=dict(vocab_size=vocab, max_position_embeddings=77, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **_TOWER),
        vision_config=dict(image_size=image_size, patch_size=patch_size, **{**_TOWER, "hidden_size": 48}),
        projection_dim=24,
    )
    folder = save_model_folder(_seeded(lambda: MetaClip2Model(config), seed), folder, half=False)
    tokenizer.save_pretrained(str(folder))
    CLIPImageProcessor(size={"shortest_edge": image_size},
                       crop_size={"height": image_size, "width": image_size}).save_pretrained(str(folder))
    return folder


def save_tiny_tipsv2(folder: str | Path, seed: int = 0, image_size: int = 32, patch_size: int = 8,
                     registers: int = 1, context_length: int = 64) -> Path:
    """A tiny ``Tipsv2Model`` (2-layer 32-wide towers, ``registers`` register tokens, temperature 0.05) +
    ``Tipsv2Tokenizer`` + ``Tipsv2ImageProcessor`` config (``do_normalize: false``, bilinear)."""
    from transformers import Tipsv2Config, Tipsv2Model
    from transformers.models.tipsv2.tokenization_tipsv2 import Tipsv2Tokenizer

    tokenizer = Tipsv2Tokenizer(vocab=char_vocabulary(["<pad>", "<unk>"]), merges=[], model_max_length=context_length)
    config = Tipsv2Config(
        text_config=dict(vocab_size=len(tokenizer), max_position_embeddings=context_length, pad_token_id=0,
                         **_TOWER),
        vision_config=dict(image_size=image_size, patch_size=patch_size, num_register_tokens=registers,
                           mlp_ratio=2, **{k: v for k, v in _TOWER.items() if k != "intermediate_size"}),
        temperature_init_value=0.05,
    )
    folder = save_model_folder(_seeded(lambda: Tipsv2Model(config), seed), folder, half=False)
    tokenizer.save_pretrained(str(folder))
    # Tipsv2ImageProcessor needs torchvision to be built; its settings (transformers 5.24), written as it saves them
    processor = {"image_processor_type": "Tipsv2ImageProcessor", "processor_class": "Tipsv2Processor",
                 "do_resize": True, "size": {"height": image_size, "width": image_size}, "resample": 2,
                 "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": False, "do_convert_rgb": True}
    (folder / "preprocessor_config.json").write_text(json.dumps(processor, indent=2))
    return folder


def save_tiny_vl(kind: str, folder: str | Path, seed: int = 0) -> Path:
    """``save_tiny_siglip2`` / ``save_tiny_metaclip2`` / ``save_tiny_tipsv2`` by model_type."""
    builders = {"siglip2": save_tiny_siglip2, "metaclip_2": save_tiny_metaclip2, "tipsv2": save_tiny_tipsv2}
    if kind not in builders:
        raise ValueError(f"Unknown tiny vision-language kind {kind!r}; choose one of {sorted(builders)}.")
    return builders[kind](folder, seed=seed)

