"""Named weights, registered apart from the architectures in ``regionspot.config.VARIANTS``.

``"shapesworld"`` is the embedded default: tiny SAM, tiny CLIP and a trained head that ship inside the
package (``regionspot/assets/shapesworld``), so the first command works offline on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path


@dataclass(frozen=True)
class PretrainedWeights:
    """Where a named model's parts live: hub ids / folders for the backbones, a head file."""

    name: str
    segmenter: str
    vision_language: str
    head: str | None
    description: str


def assets_dir() -> Path:
    """The package's bundled assets folder."""
    return Path(str(resources.files("regionspot") / "assets"))


def _shapesworld() -> PretrainedWeights:
    root = assets_dir() / "shapesworld"
    return PretrainedWeights(
        name="shapesworld",
        segmenter=str(root / "sam"),
        vision_language=str(root / "clip"),
        head=str(root / "head.safetensors"),
        description="Tiny SAM + tiny CLIP + head trained on ShapesWorld (embedded; offline).",
    )


def _hub(variant: str, clip: str) -> PretrainedWeights:
    return PretrainedWeights(
        name=variant,
        segmenter="facebook/sam-vit-base",
        vision_language=clip,
        head=None,
        description=f"RegionSpot-{variant}: the official head must be provided (regionspot convert regionspot FILE.pth).",
    )


def list_pretrained() -> dict[str, PretrainedWeights]:
    """All registered weights by name."""
    return {
        "shapesworld": _shapesworld(),
        "BB": _hub("BB", "openai/clip-vit-base-patch16"),
        "BL": _hub("BL", "openai/clip-vit-large-patch14"),
        "BL@336": _hub("BL@336", "openai/clip-vit-large-patch14-336"),
    }


def default_weights() -> PretrainedWeights:
    return list_pretrained()["shapesworld"]


def list_models() -> list[str]:
    """Names accepted by ``RegionSpot.from_pretrained(name)``."""
    return sorted(list_pretrained())
