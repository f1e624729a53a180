"""The weights fingerprint of a freshly loaded model, remembered per weight file.

``weights_fingerprint`` reads every tensor (≈3.5 s for CLIP ViT-L on one core) and the text-embedding
cache needs it on every start. A loaded model's weights are a function of its files and the load dtype,
so the fingerprint is stored under a key made of (absolute path, size, mtime) of each weight file plus
the dtype; a changed, moved or touched file gives a new key and a fresh computation. The value is the
same string ``weights_fingerprint`` returns.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from torch import nn

from regionspot.utils.fingerprint import weights_fingerprint

_WEIGHT_SUFFIXES = (".safetensors", ".bin")
_MAX_ENTRIES = 256


def default_fingerprint_file() -> Path:
    """``$REGIONSPOT_CACHE/fingerprints.json``, else ``~/.cache/regionspot/fingerprints.json``."""
    root = os.environ.get("REGIONSPOT_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "regionspot") / "fingerprints.json"


def weight_files(folder: str | Path | None) -> list[Path]:
    """The weight files (``*.safetensors``, ``*.bin``) directly in ``folder``; [] when it is not a folder."""
    if folder is None or not Path(folder).is_dir():
        return []
    return sorted(p.resolve() for p in Path(folder).iterdir() if p.suffix in _WEIGHT_SUFFIXES and p.is_file())


def _files_key(files: list[Path], model: nn.Module) -> str:
    digest = hashlib.sha256()
    dtype = next((p.dtype for p in model.parameters()), None)
    digest.update(str(dtype).encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def cached_weights_fingerprint(model: nn.Module, files: list[Path], store: Path | None = None) -> str:
    """``weights_fingerprint(model)`` for a model loaded unchanged from ``files``, remembered in ``store``.

    Without files the fingerprint is computed every time. An unreadable or unwritable store is ignored.
    """
    if not files:
        return weights_fingerprint(model)
    store = store or default_fingerprint_file()
    key = _files_key(files, model)
    try:
        known = json.loads(store.read_text())
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):
        known = {}
    if isinstance(known.get(key), str):
        return known[key]
    value = weights_fingerprint(model)
    known = dict(list(known.items())[-(_MAX_ENTRIES - 1):])  # bounded: the oldest entries go first
    known[key] = value
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        temporary = store.with_name(f"{store.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(known))
        temporary.replace(store)
    except OSError:
        pass
    return value
