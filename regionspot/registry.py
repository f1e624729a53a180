"""Named weights, registered apart from the architectures in ``regionspot.config.VARIANTS``.

``"shapesworld"`` is the embedded default: tiny SAM, tiny CLIP and a trained head that ship inside the
package (``regionspot/assets/shapesworld``), so the first command works offline on any machine. The paper's
variants (BB, BL, BL@336) and hub-id models are usable once ``regionspot download NAME`` has registered
them in the model home (``regionspot.weights.home``); until then their entry says how to get them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from regionspot.config import RELEASED_VARIANTS, VARIANTS, variant_config
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
    found = {"shapesworld": _shapesworld(), **{name: _official(name) for name in RELEASED_VARIANTS}}
    for name, model in installed_models().items():
        if name != "shapesworld":
            found[name] = _downloaded(model)
    return found


@dataclass(frozen=True)
class VariantCost:
    """A named variant's compute at full size (``backbones.flops.BACKBONE_FLOPS``).

    segmenter_flops / vision_language_flops: FLOPs per image of the segmenter's image encoder and of the
    vision-language tower; box_flops: the segmenter's prompt encoder + mask decoder per box; released: its head
    can be downloaded (else it is trained with its recipe).
    """

    name: str
    segmenter: str
    vision_language: str
    segmenter_flops: int
    vision_language_flops: int
    box_flops: int
    released: bool

    @property
    def image_tflops(self) -> float:
        """Both encoders, TFLOP per image."""
        return (self.segmenter_flops + self.vision_language_flops) / 1e12


def variant_costs() -> list[VariantCost]:
    """Every variant of ``config.VARIANTS`` with its backbones' FLOPs, in the order of the table."""
    from regionspot.backbones.flops import BACKBONE_FLOPS

    rows = []
    for name, config in VARIANTS.items():
        encoder, box = BACKBONE_FLOPS[config.segmenter]
        rows.append(VariantCost(name, config.segmenter, config.vision_language, encoder,
                                BACKBONE_FLOPS[config.vision_language][0], box, name in RELEASED_VARIANTS))
    return rows


def list_models() -> list[str]:
    """Names accepted by ``RegionSpot.from_pretrained(name)``."""
    return sorted(list_pretrained())


# --- backbones by name -----------------------------------------------------------------------------

BACKBONE_KINDS = ("segmenter", "vision_language")
_KIND_WORDS = {"segmenter": ("segmenter", "--sam"), "vision_language": ("vision-language model", "--clip")}


def _check_kind(kind: str) -> None:
    if kind not in BACKBONE_KINDS:
        raise ValueError(f"kind must be one of {BACKBONE_KINDS}, got {kind!r}.")


def _in_hub_cache(model_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(model_id, "config.json"), str)
    except Exception:  # an id the hub library rejects is not in its cache
        return False


def resolve_backbone(ref: str | Path, kind: str) -> str:
    """What to load for the backbone ``ref`` of ``kind`` ("segmenter" or "vision_language").

    ref: a registered name (``list_models()``: "shapesworld", "BB", "BL", "BL@336", a downloaded hub-id model)
        → its part: the folder inside the package or the model home, or, for a variant not downloaded, its hub
        id; an existing folder → that folder (``~`` expanded); a hub id → itself.
    Raises WeightsNotFoundError (one line listing the registered names) for a folder that does not exist, or a
    bare name (no "org/") that is none of these while the hub cannot be reached (offline, unreachable) and is
    not in the local Hugging Face cache; an "org/name" id unavailable offline is left to the hub loader, whose
    error names ``regionspot download``.
    """
    from regionspot.backbones.hub import hub_offline, hub_unreachable, looks_like_path
    from regionspot.errors import WeightsNotFoundError

    _check_kind(kind)
    ref = str(ref)
    registry = list_pretrained()
    if ref in registry:
        return getattr(registry[ref], kind)
    path = Path(ref).expanduser()
    if path.is_dir():
        return str(path)
    what, option = _KIND_WORDS[kind]
    names = ", ".join(sorted(registry))
    if looks_like_path(ref):
        raise WeightsNotFoundError(
            f"The {what} folder {ref} does not exist; pass {option} a registered name ({names}), a hub id or a folder."
        )
    # "org/name" is meant as a hub id: the hub loader's own error says how to get it (download, --from)
    if "/" not in ref and not _in_hub_cache(ref) and (hub_offline() or hub_unreachable() is not None):
        raise WeightsNotFoundError(
            f"Unknown {what} {ref!r}: not a registered name ({names}), not a folder, and not a hub id available "
            f"offline; pass {option} one of those names, a folder, or a hub id once online."
        )
    return ref


def backbone_name(folder: str | Path, kind: str) -> str | None:
    """The registered name whose ``kind`` part is ``folder`` (the embedded pair, a model in the home), or None."""
    _check_kind(kind)
    target = Path(folder).expanduser()
    if not target.is_dir():
        return None
    target = target.resolve()
    for name, weights in list_pretrained().items():
        part = Path(getattr(weights, kind))
        if part.is_dir() and part.resolve() == target:
            return name
    return None


def portable_backbone(ref: str, kind: str, artifact_dir: str | Path) -> str:
    """What an artifact (head checkpoint, token cache) in ``artifact_dir`` records for the backbone ``ref``.

    A registered name or hub id is kept; a folder that is a registered model's part becomes that name; any
    other folder becomes a path relative to ``artifact_dir`` (absolute only where no relative path exists,
    e.g. another drive). :func:`artifact_backbone` reads it back.
    """
    ref = str(ref)
    path = Path(ref).expanduser()
    if ref in list_pretrained() or not path.is_dir():
        return ref
    name = backbone_name(path, kind)
    if name is not None:
        return name
    try:
        return Path(os.path.relpath(path.resolve(), Path(artifact_dir).resolve())).as_posix()
    except ValueError:
        return str(path.resolve())


def artifact_backbone(ref: str, artifact_dir: str | Path) -> str:
    """The backbone an artifact in ``artifact_dir`` recorded as ``ref``, usable from anywhere: a relative folder
    that exists beside the artifact → that folder (absolute); anything else (name, hub id, absolute path) as is."""
    ref = str(ref)
    if ref in list_pretrained() or Path(ref).is_absolute():
        return ref
    beside = Path(artifact_dir) / ref
    return str(beside.resolve()) if beside.is_dir() else ref


def same_backbone(a: str, b: str, kind: str) -> bool:
    """Whether ``a`` and ``b`` name the same backbone: equal after :func:`resolve_backbone` (folders compared
    as resolved paths; a name that cannot be resolved compares as written)."""
    if a == b:
        return True

    def where(ref: str) -> str:
        registry = list_pretrained()
        found = getattr(registry[ref], kind) if ref in registry else ref
        path = Path(found).expanduser()
        return str(path.resolve()) if path.is_dir() else found

    return where(a) == where(b)


def backbone_image_size(ref: str) -> int | None:
    """The input size a registered model runs its vision-language model at (its head's), for ``ref`` a registered
    name or one of its folders; None for anything else (then the model's own size applies)."""
    registry = list_pretrained()
    name = ref if ref in registry else backbone_name(ref, "vision_language")
    if name is None:
        return None
    weights = registry[name]
    if weights.variant is not None:
        return variant_config(weights.variant).image_size
    if weights.head is None or not Path(weights.head).is_file():
        return None
    import json

    from safetensors import safe_open

    try:  # the head's recorded config (regionspot.checkpoint writes it; read here without importing it)
        with safe_open(weights.head, framework="pt") as handle:
            return int(json.loads((handle.metadata() or {})["config"])["image_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
