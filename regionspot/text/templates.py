"""Text templates ("a photo of a {}.") and class-name cleaning: how class names become the text the
vision-language model embeds. (Box and point prompts for the segmenter are ``backbones/prompts.py``.)

Template sets (``get_templates(name)``):

- ``"imagenet"`` (default, 81 templates): the 80 prompt templates CLIP published for ImageNet
  zero-shot classification, plus the bare ``"{}."``. The official RegionSpot code takes its templates
  from ``get_prompt_templates()`` of a ``prompt_engineering`` module; that function name and module
  come from X-Decoder/SEEM, whose set is exactly ``"{}."`` + the 80 CLIP templates, and 81 is the
  count we measured for the LVIS text prompts (1203 × 81 = 97,443). The order does not matter: the
  template embeddings are averaged.
- ``"clip80"``: the 80 CLIP ImageNet templates only.
- ``"scene"``: ``["a photo of a {} in the scene."]``, the example template the paper names.
- ``"single"``: ``["a photo of a {}."]``.
- ``"siglip"``: ``["This is a photo of {}."]``, the prompt SigLIP and SigLIP 2 are shown with (their
  adapters' ``default_templates``; CLIP, MetaCLIP 2 and TIPSv2 recommend ``"imagenet"``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from regionspot.errors import VocabularyError

# The 80 templates CLIP used for ImageNet zero-shot classification (a public list).
CLIP_IMAGENET_TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {}.",
    "a photo of many {}.",
    "a sculpture of a {}.",
    "a photo of the hard to see {}.",
    "a low resolution photo of the {}.",
    "a rendering of a {}.",
    "graffiti of a {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a tattoo of a {}.",
    "the embroidered {}.",
    "a photo of a hard to see {}.",
    "a bright photo of a {}.",
    "a photo of a clean {}.",
    "a photo of a dirty {}.",
    "a dark photo of the {}.",
    "a drawing of a {}.",
    "a photo of my {}.",
    "the plastic {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a painting of the {}.",
    "a painting of a {}.",
    "a pixelated photo of the {}.",
    "a sculpture of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a plastic {}.",
    "a photo of the dirty {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a rendering of the {}.",
    "a {} in a video game.",
    "a photo of one {}.",
    "a doodle of a {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "the origami {}.",
    "the {} in a video game.",
    "a sketch of a {}.",
    "a doodle of the {}.",
    "a origami {}.",
    "a low resolution photo of a {}.",
    "the toy {}.",
    "a rendition of the {}.",
    "a photo of the clean {}.",
    "a photo of a large {}.",
    "a rendition of a {}.",
    "a photo of a nice {}.",
    "a photo of a weird {}.",
    "a blurry photo of a {}.",
    "a cartoon {}.",
    "art of a {}.",
    "a sketch of the {}.",
    "a embroidered {}.",
    "a pixelated photo of a {}.",
    "itap of the {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a plushie {}.",
    "a photo of the nice {}.",
    "a photo of the small {}.",
    "a photo of the weird {}.",
    "the cartoon {}.",
    "art of the {}.",
    "a drawing of the {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "the plushie {}.",
    "a dark photo of a {}.",
    "itap of a {}.",
    "graffiti of the {}.",
    "a toy {}.",
    "itap of my {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "a tattoo of the {}.",
)

TEMPLATE_SETS: dict[str, tuple[str, ...]] = {
    "imagenet": ("{}.",) + CLIP_IMAGENET_TEMPLATES,
    "clip80": CLIP_IMAGENET_TEMPLATES,
    "scene": ("a photo of a {} in the scene.",),
    "single": ("a photo of a {}.",),
    "siglip": ("This is a photo of {}.",),
}

DEFAULT_TEMPLATES = "imagenet"

_SUFFIXES = ("-other", "-merged", "-stuff")


def get_templates(name_or_list: str | Sequence[str] = DEFAULT_TEMPLATES) -> list[str]:
    """A list of prompt templates, each with exactly one ``{}`` where the class name goes.

    name_or_list: a set name from ``TEMPLATE_SETS`` or an explicit list of templates.
    Raises VocabularyError for an unknown name, an empty list or a template without exactly one ``{}``.
    """
    if isinstance(name_or_list, str):
        if name_or_list not in TEMPLATE_SETS:
            raise VocabularyError(
                f"Unknown template set {name_or_list!r}; use one of {sorted(TEMPLATE_SETS)} or a list of "
                "strings each containing '{}'."
            )
        return list(TEMPLATE_SETS[name_or_list])
    templates = list(name_or_list)
    if not templates:
        raise VocabularyError(
            "The template list is empty; pass at least one template such as 'a photo of a {}.'."
        )
    for template in templates:
        if not isinstance(template, str) or template.count("{}") != 1 or re.search(r"\{[^}]", template):
            raise VocabularyError(
                f"Template {template!r} must contain exactly one '{{}}' (and no other braces), "
                "e.g. 'a photo of a {}.'."
            )
    return templates


def clean_class_name(name: str, style: str = "clean") -> str:
    """A dataset class name prepared for a text prompt.

    Both styles drop the COCO-panoptic suffixes ``-other``/``-merged``/``-stuff`` (as the released
    RegionSpot code does). ``style="clean"`` (regionspot's default) also turns underscores into
    spaces, keeps the text of LVIS-style parentheses (``"squid_(food)"`` -> ``"squid food"``) and
    collapses whitespace; ``style="raw"`` keeps the rest of the name as the dataset spells it
    (``"bat_(animal)"``, ``"Band_Aid"``), as the released code does.
    """
    if style not in ("clean", "raw"):
        raise VocabularyError(f"Unknown class-name style {style!r}; use 'clean' or 'raw'.")
    for suffix in _SUFFIXES:
        name = name.replace(suffix, "")
    if style == "raw":
        return name
    name = name.replace("_", " ").replace("(", " ").replace(")", " ")
    return " ".join(name.split())


def validate_vocabulary(names: Sequence[str], style: str = "clean") -> list[str]:
    """Class names prepared with :func:`clean_class_name` (``style``), checked for use as a vocabulary.

    Raises VocabularyError when the list is empty, a name is empty (after preparation) or two names
    become the same after preparation (the error names the duplicates).
    """
    if isinstance(names, str):
        raise VocabularyError("The vocabulary must be a list of class names, not one string.")
    names = list(names)
    if not names:
        raise VocabularyError("The vocabulary is empty; pass at least one class name.")
    cleaned = []
    for index, name in enumerate(names):
        if not isinstance(name, str):
            raise VocabularyError(f"Class name #{index} is {type(name).__name__}, not a string.")
        clean = clean_class_name(name, style)
        if not clean.strip():
            raise VocabularyError(f"Class name #{index} ({name!r}) is empty; remove it from the vocabulary.")
        cleaned.append(clean)
    duplicates = sorted(name for name, count in Counter(cleaned).items() if count > 1)
    if duplicates:
        raise VocabularyError(f"Duplicate class names after cleaning: {duplicates}; make every name unique.")
    return cleaned
