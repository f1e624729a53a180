"""Class text embeddings: a template ensemble per class, cached on disk.

For each class, every template is filled with the (cleaned) class name and encoded; the template
embeddings are averaged and the mean is L2-normalised. As in the official RegionSpot code, the raw
text projections are averaged (not per-template normalised vectors) when the model can return them
(``encode_text(..., normalize=False)``, as ``ClipAdapter`` does); a model that only returns normalised
embeddings gets those averaged instead, and that choice is part of the cache key.

All prompts of all classes go through ONE ``encode_text`` call, so the adapter sorts them by token
length and pads per batch across classes.

Cache: ``<cache_dir>/<key>.safetensors`` holding ``embeddings`` (V, D) float32, where the key hashes the
model id, a fingerprint of its weights (when the model has ``weights_fingerprint``), the templates, the
class names and the ensemble mode. A hit skips encoding entirely.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from regionspot.errors import CheckpointError, PromptTruncatedWarning, preview
from regionspot.text.templates import DEFAULT_TEMPLATES, get_templates, validate_vocabulary
from regionspot.utils.io import atomic_path

CACHE_FORMAT = 1


class TextEncoder(Protocol):
    """What this module needs of a vision-language model (``backbones.base.VisionLanguage`` has it all):
    its id and weights fingerprint for the cache key, and ``encode_text``.

    ``encode_text(prompts, batch_size=...)`` returns (P, D) float embeddings, one per prompt; a model whose
    ``encode_text`` also takes ``normalize=False`` (raw projections) and ``show_progress`` gets them.
    """

    model_id: str
    weights_fingerprint: str

    def encode_text(self, prompts: Sequence[str], batch_size: int = 256) -> torch.Tensor: ...


def default_cache_dir() -> Path:
    """``$REGIONSPOT_CACHE/text`` when that variable is set, else ``~/.cache/regionspot/text``."""
    root = os.environ.get("REGIONSPOT_CACHE")
    if root:
        return Path(root).expanduser() / "text"
    return Path.home() / ".cache" / "regionspot" / "text"


def _accepts(function, name: str) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def text_cache_key(
    model: TextEncoder, class_names: Sequence[str], templates: Sequence[str], ensemble: str
) -> str:
    """A hex digest identifying (model, weights fingerprint, templates, class names, ensemble mode)."""
    payload = {
        "format": CACHE_FORMAT,
        "model_id": model.model_id,
        "fingerprint": model.weights_fingerprint,
        "templates": list(templates),
        "class_names": list(class_names),
        "ensemble": ensemble,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()[:40]


def class_text_embeddings(
    model: TextEncoder,
    class_names: Sequence[str],
    templates: str | Sequence[str] = DEFAULT_TEMPLATES,
    cache_dir: str | Path | None | bool = None,
    show_progress: bool = True,
    batch_size: int = 256,
    name_style: str = "clean",
) -> torch.Tensor:
    """(V, D) float32 L2-normalised text embeddings, one per class, in the given order.

    class_names: the vocabulary; names are prepared and validated (``validate_vocabulary``: empty or
        duplicate names raise VocabularyError).
    name_style: "clean" or "raw" class-name handling (``clean_class_name``); a head records its own.
    templates: a template-set name (``regionspot.text.templates``) or a list of templates with ``{}``.
    cache_dir: folder of the on-disk cache (None: ``default_cache_dir()``; False: no cache).
    show_progress: a progress bar while encoding (shown by the adapter for large vocabularies).
    A class whose prompts exceed the text context is truncated with ONE warning naming the classes.
    """
    names = validate_vocabulary(class_names, name_style)
    template_list = get_templates(templates)
    raw_mode = _accepts(model.encode_text, "normalize")
    ensemble = "mean-raw" if raw_mode else "mean-normalized"

    path = None
    if cache_dir is not False:
        folder = Path(cache_dir) if cache_dir not in (None, True) else default_cache_dir()
        path = folder / f"{text_cache_key(model, names, template_list, ensemble)}.safetensors"
        if path.is_file():
            return _read_cache(path, len(names))

    prompts = [template.format(name) for name in names for template in template_list]
    kwargs: dict = {"batch_size": batch_size}
    if raw_mode:
        kwargs["normalize"] = False
    if _accepts(model.encode_text, "show_progress"):
        kwargs["show_progress"] = bool(show_progress) and len(prompts) > 8 * batch_size
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        features = model.encode_text(prompts, **kwargs)  # (V*T, D)
    _rewarn(caught, prompts, names, len(template_list))

    features = features.float().cpu().reshape(len(names), len(template_list), -1)  # (V, T, D)
    embeddings = F.normalize(features.mean(dim=1), dim=-1)  # (V, D)
    if path is not None:
        _write_cache(path, embeddings, model, len(template_list))
    return embeddings


def _rewarn(caught: list, prompts: list[str], names: list[str], num_templates: int) -> None:
    """Turn per-prompt truncation warnings into one warning naming the classes; pass others on."""
    truncated_classes: list[str] = []
    prompt_class = {prompt: names[i // num_templates] for i, prompt in enumerate(prompts)}
    for record in caught:
        if issubclass(record.category, PromptTruncatedWarning):
            for prompt in getattr(record.message, "prompts", []):
                name = prompt_class.get(prompt)
                if name is not None and name not in truncated_classes:
                    truncated_classes.append(name)
        else:
            warnings.warn_explicit(record.message, record.category, record.filename, record.lineno)
    if truncated_classes:
        warnings.warn(
            PromptTruncatedWarning(
                f"Class name(s) {preview(truncated_classes, 5)} make prompts longer than the text encoder's context; "
                "those prompts were truncated (shorten the names to avoid this).",
                truncated_classes,
            ),
            stacklevel=3,
        )


def _read_cache(path: Path, num_classes: int) -> torch.Tensor:
    try:
        embeddings = load_file(str(path))["embeddings"]
    except (OSError, KeyError, RuntimeError) as error:
        raise CheckpointError(
            f"Text-embedding cache {path} is unreadable ({error}); delete the file."
        ) from None
    if embeddings.ndim != 2 or embeddings.shape[0] != num_classes:
        raise CheckpointError(
            f"Text-embedding cache {path} holds shape {tuple(embeddings.shape)}, expected {num_classes} rows; "
            "delete the file."
        )
    return embeddings.float()


def _write_cache(path: Path, embeddings: torch.Tensor, model: TextEncoder, num_templates: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "format": str(CACHE_FORMAT),
        "model_id": str(model.model_id),
        "num_classes": str(embeddings.shape[0]),
        "num_templates": str(num_templates),
    }
    with atomic_path(path) as tmp:
        save_file({"embeddings": embeddings.contiguous()}, str(tmp), metadata=metadata)
