"""Named weights, registered apart from the architectures in ``regionspot.config.VARIANTS``.

``"shapesworld"`` is the embedded default: tiny SAM, tiny CLIP and a trained head that ship inside the
package (``regionspot/assets/shapesworld``), so the first command works offline on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from regionspot.config import VARIANTS, variant_config


@dataclass(frozen=True)
class PretrainedWeights:
    """Where a named model's weights live: a head file, and the architecture it belongs to.

    variant: a name in ``regionspot.config.VARIANTS`` whose backbone ids the head runs with, or None for a
        model whose backbones ship as folders (``backbones``: (segmenter, vision_language)).
    head: the head checkpoint, or None when it must be provided by the user (official releases).
    """

    name: str
    variant: str | None
    head: str | None
    description: str
    backbones: tuple[str, str] | None = None

    @property
    def segmenter(self) -> str:
        return self.backbones[0] if self.backbones else variant_config(self.variant).segmenter

    @property
    def vision_language(self) -> str:
        return self.backbones[1] if self.backbones else variant_config(self.variant).vision_language


def assets_dir() -> Path:
    """The package's bundled assets folder."""
    return Path(str(resources.files("regionspot") / "assets"))


def _shapesworld() -> PretrainedWeights:
    root = assets_dir() / "shapesworld"
    return PretrainedWeights(
        name="shapesworld",
        variant=None,
        head=str(root / "head.safetensors"),
        description="Tiny SAM + tiny CLIP + head trained on ShapesWorld (embedded; offline).",
        backbones=(str(root / "sam"), str(root / "clip")),
    )


def _official(variant: str) -> PretrainedWeights:
    return PretrainedWeights(
        name=variant,
        variant=variant,
        head=None,
        description=f"RegionSpot-{variant}: the official head must be provided (regionspot convert regionspot FILE.pth).",
    )


def list_pretrained() -> dict[str, PretrainedWeights]:
    """All registered weights by name."""
    return {"shapesworld": _shapesworld(), **{name: _official(name) for name in VARIANTS}}


def list_models() -> list[str]:
    """Names accepted by ``RegionSpot.from_pretrained(name)``."""
    return sorted(list_pretrained())
