"""Named weights, registered apart from the architectures in ``regionspot.config.VARIANTS``.

``"shapesworld"`` is the embedded default: tiny SAM, tiny CLIP and a trained head that ship inside the
package (``regionspot/assets/shapesworld``), so the first command works offline on any machine. The paper's
variants (BB, BL, BL@336) and hub-id models are usable once ``regionspot download NAME`` has registered
them in the model home (``regionspot.weights.home``); until then their entry says how to get them.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from regionspot.config import VARIANTS, variant_config
from regionspot.weights.home import InstalledModel, installed_models


@dataclass(frozen=True)
class PretrainedWeights:
    """Where a named model's weights live: a head file, and the architecture it belongs to.

    variant: a name in ``regionspot.config.VARIANTS`` whose backbone ids the head runs with, or None for a
        model whose backbones ship as folders (``backbones``: (segmenter, vision_language)).
    head: the head checkpoint, or None when the model is not downloaded yet (see ``description``).
    folder: where a downloaded model lives in the model home, or None.
    """

    name: str
    variant: str | None
    head: str | None
    description: str
    backbones: tuple[str, str] | None = None
    folder: str | None = None

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


def download_command(name: str) -> str:
    """The command that downloads and registers ``name``."""
    return f"regionspot download {name}"


def _official(variant: str) -> PretrainedWeights:
    return PretrainedWeights(
        name=variant,
        variant=variant,
        head=None,
        description=f"RegionSpot-{variant} (official weights, CC BY-NC): not downloaded; get it with `{download_command(variant)}`",
    )


def _downloaded(model: InstalledModel) -> PretrainedWeights:
    variant = model.name if model.name in VARIANTS else None
    title = f"RegionSpot-{model.name} (official weights, CC BY-NC)" if variant else model.name
    state = "downloaded" if model.complete() else f"incomplete, run `{download_command(model.name)}` again"
    return PretrainedWeights(
        name=model.name,
        variant=variant,
        head=str(model.head),
        description=f"{title}: {state} in {model.folder}",
        backbones=(str(model.segmenter), str(model.vision_language)),
        folder=str(model.folder),
    )


def list_pretrained() -> dict[str, PretrainedWeights]:
    """All registered weights by name: the embedded model, the variants (downloaded or not), downloaded hub ids."""
    found = {"shapesworld": _shapesworld(), **{name: _official(name) for name in VARIANTS}}
    for name, model in installed_models().items():
        if name != "shapesworld":
            found[name] = _downloaded(model)
    return found


def list_models() -> list[str]:
    """Names accepted by ``RegionSpot.from_pretrained(name)``."""
    return sorted(list_pretrained())
