"""Ready-made vocabularies and names files.

Presets: ``"coco"`` (the 80 COCO thing classes), ``"lvis"`` (the 1203 LVIS v1 categories, spelled as the
dataset does: ``bat_(animal)``; the model's class-name style prepares them for prompts) and
``"shapesworld"`` (the 64 classes of the embedded ShapesWorld model). The COCO and LVIS lists ship as
text files in ``regionspot/text/vocabularies``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from regionspot.errors import VocabularyError

PRESETS: dict[str, str] = {
    "coco": "COCO (80 classes)",
    "lvis": "LVIS v1 (1203 classes)",
    "shapesworld": "ShapesWorld (64 classes, the embedded model's)",
}


def _preset_file(name: str) -> Path:
    package = resources.files("regionspot")
    if name == "shapesworld":
        return Path(str(package / "assets" / "shapesworld" / "vocabulary.txt"))
    return Path(str(package / "text" / "vocabularies" / {"coco": "coco80.txt", "lvis": "lvis1203.txt"}[name]))


def preset_vocabulary(name: str) -> list[str]:
    """The class names of preset ``name`` (see ``PRESETS``), in the dataset's order."""
    if name not in PRESETS:
        raise VocabularyError(f"Unknown vocabulary preset {name!r}; choose one of {', '.join(PRESETS)}.")
    return read_names_file(_preset_file(name))


def read_names_file(path: str | Path) -> list[str]:
    """Class names from a text file: one per line; blank lines and lines starting with '#' are skipped."""
    path = Path(path)
    if not path.is_file():
        raise VocabularyError(f"Vocabulary file not found: {path}.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise VocabularyError(f"{path.name} is not a UTF-8 text file; give one class name per line.") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def split_names(text: str) -> list[str]:
    """Typed class names: separated by commas or new lines; surrounding spaces and empty items dropped."""
    return [name.strip() for line in text.splitlines() for name in line.split(",") if name.strip()]
