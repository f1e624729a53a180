"""The model home: ``$REGIONSPOT_HOME`` (default ``~/.cache/regionspot``).

``models/<NAME>/`` holds one downloaded model, ready offline: ``sam/`` and ``clip/`` (transformers folders),
``head.safetensors`` and the manifest ``model.json`` (what it is and where each file came from). A hub id
``org/name`` is stored as ``models/org--name``. ``downloads/`` keeps partial transfers until they finish.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOME_ENV = "REGIONSPOT_HOME"
MANIFEST = "model.json"
MANIFEST_SCHEMA = "regionspot.model/1"


def regionspot_home(home: str | Path | None = None) -> Path:
    """``home``, else ``$REGIONSPOT_HOME``, else ``~/.cache/regionspot`` (not created here)."""
    return Path(home or os.environ.get(HOME_ENV) or "~/.cache/regionspot").expanduser()


def model_dir(name: str, home: str | Path | None = None) -> Path:
    """The folder of the model ``name`` (a variant such as "BL", or a hub id "org/name")."""
    return regionspot_home(home) / "models" / name.replace("/", "--")


@dataclass(frozen=True)
class InstalledModel:
    """A model registered in the home: its folder and the three parts' paths."""

    name: str
    folder: Path
    head: Path
    segmenter: Path
    vision_language: Path
    manifest: dict[str, Any]

    def complete(self) -> bool:
        return self.head.is_file() and self.segmenter.is_dir() and self.vision_language.is_dir()


def read_installed(folder: Path) -> InstalledModel | None:
    """The model registered in ``folder``, or None when it has no readable manifest."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        return None
    return InstalledModel(
        name=str(manifest.get("name") or folder.name), folder=folder,
        head=folder / manifest.get("head", "head.safetensors"), segmenter=folder / manifest.get("segmenter", "sam"),
        vision_language=folder / manifest.get("vision_language", "clip"), manifest=manifest,
    )


def installed_models(home: str | Path | None = None) -> dict[str, InstalledModel]:
    """Every model registered in the home, by name (partial installs, whose folders start with '.', skipped)."""
    root = regionspot_home(home) / "models"
    if not root.is_dir():
        return {}
    found = {}
    for folder in sorted(root.iterdir()):
        if folder.is_dir() and not folder.name.startswith("."):
            model = read_installed(folder)
            if model is not None:
                found[model.name] = model
    return found
