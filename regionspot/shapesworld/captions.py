"""The text side of the tiny CLIP's pre-training: caption templates, the corpus its tokenizer is trained
on, one random caption per training image, and batching captions into token ids.

Class names are ``"<colour> <shape>"`` (see :mod:`regionspot.shapesworld.world`).
"""

from __future__ import annotations

import numpy as np
import torch

from regionspot.text.templates import CLIP_IMAGENET_TEMPLATES, get_templates

CAPTION_TEMPLATES: tuple[str, ...] = (
    "{}",
    "a {}",
    "the {}",
    "a photo of a {}",
    "a photo of a {} on a cluttered background",
    "a {} on a textured background",
    "a {} in the scene",
    "a picture of the {}",
    "a drawing of a {}",
    "a close-up of a {}",
    "there is a {} here",
    "one {}",
    "a {} shape",
    "a small {}",
    "a large {}",
)
COMPOSED_TEMPLATES: tuple[str, ...] = (
    "a {shape} coloured {colour}",
    "a {colour} coloured {shape}",
    "a {shape} that is {colour}",
)


def caption_corpus(names: list[str]) -> list[str]:
    """Every caption the tokenizer should know well (training captions and the zero-shot templates)."""
    texts = []
    templates = list(CAPTION_TEMPLATES) + list(get_templates("imagenet"))
    for name in names:
        colour, shape = name.split(" ", 1)
        texts += [t.format(name) for t in templates]
        texts += [t.format(colour=colour, shape=shape) for t in COMPOSED_TEMPLATES]
    return texts


def sample_captions(names: list[str], labels: np.ndarray, rng: np.random.Generator) -> list[str]:
    """One random caption per label: own templates (half), CLIP's ImageNet templates, composed forms."""
    captions = []
    for label in labels.tolist():
        name = names[label]
        r = rng.random()
        if r < 0.5:
            template = CAPTION_TEMPLATES[rng.integers(len(CAPTION_TEMPLATES))]
            captions.append(template.format(name))
        elif r < 0.9:
            template = CLIP_IMAGENET_TEMPLATES[rng.integers(len(CLIP_IMAGENET_TEMPLATES))]
            captions.append(template.format(name))
        else:
            colour, shape = name.split(" ", 1)
            template = COMPOSED_TEMPLATES[rng.integers(len(COMPOSED_TEMPLATES))]
            captions.append(template.format(colour=colour, shape=shape))
    return captions


def tokenize_captions(tokenizer, captions: list[str], context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) input ids and attention mask, padded to the longest caption (at most ``context``)."""
    ids = tokenizer(captions, add_special_tokens=True, truncation=False)["input_ids"]
    ids = [row if len(row) <= context else row[: context - 1] + [row[-1]] for row in ids]
    length = max(len(row) for row in ids)
    input_ids = torch.full((len(ids), length), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(ids), length), dtype=torch.long)
    for i, row in enumerate(ids):
        input_ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return input_ids, mask
