"""Reading ``torch.save`` files without running pickled code (``weights_only=True``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from regionspot.errors import CheckpointError


def read_weights_only_state_dict(
    path: str | Path, what: str, wrapper_keys: tuple[str, ...] = ("model", "state_dict")
) -> dict[str, torch.Tensor]:
    """A state dict of tensors from a ``torch.save`` file, read with ``weights_only=True``.

    Training checkpoints that wrap the weights under one of ``wrapper_keys`` are unwrapped. ``what``
    names the expected file in the one-line CheckpointError (e.g. "an official SAM .pth").
    """
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError (pickled code refused), RuntimeError, EOFError, ...
        first = (str(error).splitlines() or [""])[0][:160]
        raise CheckpointError(
            f"Cannot read {path} as a weights-only checkpoint with torch.load(weights_only=True) "
            f"({error.__class__.__name__}: {first}); is it {what}?"
        ) from None
    for key in wrapper_keys:
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a plain state dict of tensors; pass {what}.")
    return dict(obj)
