"""Head-only checkpoints (safetensors) and the converter for the official RegionSpot release.

A regionspot checkpoint holds only what was trained: the head's tensors, plus (in the safetensors
metadata) the RegionSpotConfig — which names the frozen backbones and the preprocessing the head was
trained with — and the package version. Loading is strict: a missing, unexpected or mis-shaped tensor
is a CheckpointError that names it. A checkpoint written before the preprocessing was recorded loads
with regionspot's default preprocessing (the behaviour of its time) and says so once.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from regionspot.backbones.convert.torch_io import read_weights_only_state_dict
from regionspot.config import HeadConfig, RegionSpotConfig, preprocess_preset, variant_config
from regionspot.errors import CheckpointError, LegacyCheckpointWarning
from regionspot.utils.io import atomic_path
from regionspot.version import __version__

FORMAT = "regionspot-head"
FORMAT_VERSION = "1"


def portable_config(config: RegionSpotConfig, artifact_dir: str | Path) -> RegionSpotConfig:
    """``config`` with its backbones as a file in ``artifact_dir`` records them: registered names and hub ids
    as they are, a registered model's folder by its name, any other folder relative to ``artifact_dir``
    (``regionspot.registry.portable_backbone``). No absolute path, so moving the folder keeps it working."""
    from regionspot.registry import portable_backbone

    return dataclasses.replace(
        config, segmenter=portable_backbone(config.segmenter, "segmenter", artifact_dir),
        vision_language=portable_backbone(config.vision_language, "vision_language", artifact_dir),
    )


def save_head_checkpoint(
    path: str | Path, head: nn.Module | dict[str, torch.Tensor], config: RegionSpotConfig, meta: dict[str, Any] | None = None
) -> Path:
    """Write the head's weights + config to ``path`` (safetensors), atomically.

    The backbones are recorded by name, hub id, or a folder relative to the file (:func:`portable_config`);
    ``meta["backbone_fingerprints"]`` ({"segmenter": ..., "vision_language": ...}), when the caller knows
    them, says which weights those were.
    """
    path = Path(path)
    state = head.state_dict() if isinstance(head, nn.Module) else head
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "regionspot_version": __version__,
        "config": json.dumps(portable_config(config, path.parent).to_dict()),
        "meta": json.dumps(meta or {}),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def load_head_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], RegionSpotConfig, dict[str, Any]]:
    """Read a regionspot head checkpoint. Returns (state_dict, config, meta).

    A backbone recorded as a folder relative to the file comes back as that folder's absolute path
    (``regionspot.registry.artifact_backbone``); names and hub ids as recorded. An official RegionSpot ``.pth`` is converted on the fly (see :func:`convert_official_regionspot`).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Head checkpoint not found: {path}; pass the path of a .safetensors (or official .pth) file.")
    if path.suffix in (".pth", ".pt", ".bin", ".ckpt") or zipfile.is_zipfile(path):
        state, config = official_regionspot_state(path)
        return state, config, {"converted_from": str(path)}
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint ({error}); re-download or re-export it.") from error
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a regionspot head checkpoint (format={metadata.get('format')!r}); "
            "for official RegionSpot .pth files run `regionspot convert regionspot FILE --out OUT.safetensors`."
        )
    config_dict = json.loads(metadata["config"])
    if "preprocess" not in config_dict:
        _warn_legacy_once(path)
    config = _with_backbones_beside(RegionSpotConfig.from_dict(config_dict), path.parent)
    meta = json.loads(metadata.get("meta", "{}"))
    meta["regionspot_version"] = metadata.get("regionspot_version")
    return state, config, meta


def _with_backbones_beside(config: RegionSpotConfig, artifact_dir: Path) -> RegionSpotConfig:
    from regionspot.registry import artifact_backbone

    config.segmenter = artifact_backbone(config.segmenter, artifact_dir)
    config.vision_language = artifact_backbone(config.vision_language, artifact_dir)
    return config


def read_head_config(path: str | Path) -> RegionSpotConfig:
    """The config recorded in a regionspot head checkpoint, without reading its tensors."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        return _with_backbones_beside(RegionSpotConfig.from_dict(json.loads(metadata["config"])), Path(path).parent)
    except (SafetensorError, OSError, ValueError, KeyError) as error:
        raise CheckpointError(f"{path} is not a readable regionspot head checkpoint ({error}).") from None


def find_head_file(folder: str | Path) -> Path:
    """The head checkpoint a folder stands for.

    A model folder holds ``head.safetensors``; a finished training run ``final_head.safetensors``; a run in
    progress ``checkpoints/latest.json`` naming its newest ``checkpoints/step_*/head.safetensors``.
    """
    folder = Path(folder)
    for name in ("head.safetensors", "final_head.safetensors"):
        if (folder / name).is_file():
            return folder / name
    latest = folder / "checkpoints" / "latest.json"
    if latest.is_file():
        try:
            step_dir = json.loads(latest.read_text())["path"]
        except (ValueError, KeyError) as error:
            raise CheckpointError(f"{latest} is unreadable ({error}); pass a step_* checkpoint folder instead.") from None
        return folder / "checkpoints" / step_dir / "head.safetensors"
    raise CheckpointError(
        f"{folder} holds no head checkpoint (head.safetensors, final_head.safetensors or checkpoints/latest.json); "
        "pass a .safetensors file or a model / training-run folder."
    )


_WARNED_LEGACY: set[str] = set()


def _warn_legacy_once(path: Path) -> None:
    key = str(path.resolve())
    if key in _WARNED_LEGACY:
        return
    _WARNED_LEGACY.add(key)
    warnings.warn(
        LegacyCheckpointWarning(
            f"{path} records no preprocessing (it predates recording it); using the default pipeline of its "
            "time (PIL CLIP resize, cleaned class names, the segmenter's eps). Re-save it with "
            "`RegionSpot.from_pretrained(...).save_pretrained(...)` to record them."
        ),
        stacklevel=3,
    )


def load_head_state(head: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Strictly load ``state`` into ``head``; any key or shape mismatch is a one-line CheckpointError."""
    expected = head.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing:
        raise CheckpointError(f"{source} lacks head weight {missing[0]!r} ({len(missing)} missing); is it a RegionSpot head checkpoint?")
    if unexpected:
        raise CheckpointError(f"{source} has unexpected weight {unexpected[0]!r} ({len(unexpected)} unexpected); it belongs to another model.")
    for key, value in expected.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise CheckpointError(
                f"{source}: weight {key!r} has shape {tuple(state[key].shape)} but this head expects {tuple(value.shape)}; "
                "the checkpoint is of another variant (choose the matching --sam/--clip or variant)."
            )
    head.load_state_dict(state, strict=True)


# --- the official release -------------------------------------------------------------------------

_OFFICIAL_PREFIX = "model."
_FROZEN_PREFIXES = ("sam.", "clip_model.")


def official_regionspot_state(path: str | Path) -> tuple[dict[str, torch.Tensor], RegionSpotConfig]:
    """Head weights and inferred config from an official RegionSpot-BB / BL / BL@336 ``.pth``.

    The official file stores ``model.to_clip.*``, ``model.decoder.*`` and ``model.projector.*`` next to
    the frozen ``model.sam.*`` and ``model.clip_model.*`` weights, which are dropped (we load the
    backbones from their own ids). The variant is inferred from shapes: to_clip width 768 → BB, 1024 →
    BL, and BL@336 when the stored CLIP positional embedding has 577 = 1 + 24² rows. The config carries
    the released pipeline's preprocessing (``preprocess_preset("released")``): those heads were trained
    and evaluated with it.
    """
    path = Path(path)
    raw = read_weights_only_state_dict(path, "an official RegionSpot .pth", wrapper_keys=("model",))
    head_state: dict[str, torch.Tensor] = {}
    clip_pos = None
    for key, value in raw.items():
        name = key[len(_OFFICIAL_PREFIX):] if key.startswith(_OFFICIAL_PREFIX) else key
        if name.startswith(_FROZEN_PREFIXES):
            if name == "clip_model.visual.positional_embedding":
                clip_pos = value
            continue
        if name in ("logit_scale",):
            continue
        head_state[name] = value
    if "to_clip.weight" not in head_state or "projector.weight" not in head_state:
        raise CheckpointError(f"{path} has no 'model.to_clip.weight'/'model.projector.weight'; it is not a RegionSpot checkpoint.")
    width = head_state["to_clip.weight"].shape[0]
    if width == 768:
        config = variant_config("BB")
    elif width == 1024:
        config = variant_config("BL@336" if clip_pos is not None and clip_pos.shape[0] == 577 else "BL")
    else:
        config = RegionSpotConfig()
    config.preprocess = preprocess_preset("released")
    depth = 1 + max(int(k.split(".")[2]) for k in head_state if k.startswith("decoder.layers."))
    ffn = head_state["decoder.layers.0.linear1.weight"].shape[0]
    config.head = HeadConfig(
        token_dim=head_state["to_clip.weight"].shape[1],
        feature_dim=width,
        embed_dim=head_state["projector.weight"].shape[0],
        depth=depth,
        num_heads=config.head.num_heads,
        ffn_dim=ffn,
        dropout=config.head.dropout,
    )
    from regionspot.modeling.head import RegionSpotHead  # local: keep checkpoint import light

    load_head_state(RegionSpotHead(config.head), head_state, source=str(path))
    return head_state, config


def convert_official_regionspot(path: str | Path, out: str | Path, variant: str | None = None) -> Path:
    """Convert an official RegionSpot ``.pth`` into a regionspot head checkpoint (safetensors)."""
    state, config = official_regionspot_state(path)
    if variant is not None:
        wanted = variant_config(variant)
        if (wanted.head.feature_dim, wanted.head.embed_dim) != (config.head.feature_dim, config.head.embed_dim):
            raise CheckpointError(
                f"{path} is a {config.head.feature_dim}→{config.head.embed_dim} head but variant {variant} expects "
                f"{wanted.head.feature_dim}→{wanted.head.embed_dim}; drop --variant or pick the matching one."
            )
        wanted.head, wanted.preprocess = config.head, config.preprocess
        config = wanted
    return save_head_checkpoint(out, state, config, meta={"converted_from": Path(path).name})
