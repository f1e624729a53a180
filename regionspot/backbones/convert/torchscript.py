"""Reading a TorchScript archive's tensors without ``torch.jit.load`` and without executing pickled code.

A TorchScript ``.pt`` (e.g. OpenAI's released CLIP files) is a zip holding ``<name>/data.pkl`` (the pickled
module tree), ``<name>/data/<key>`` (raw tensor storages) and ``<name>/code/``. A restricted unpickler
rebuilds only tensors, containers and inert attribute holders for the ``__torch__.*`` module objects and
refuses every other global; the module tree is then flattened into ``{dotted.name: tensor}``. Little-endian
archives only. Every problem is a one-line CheckpointError.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from regionspot.errors import CheckpointError


class _ScriptObject:
    """Inert stand-in for a pickled ``__torch__.*`` module: it only stores its attribute dict."""

    def __setstate__(self, state: Any) -> None:
        self.__dict__["_state"] = state if isinstance(state, dict) else {}


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class _StorageType:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


def _rebuild_tensor(storage: torch.Tensor, offset: int, size, stride, *_unused) -> torch.Tensor:
    return storage.as_strided(tuple(size), tuple(stride), offset).clone()


def _rebuild_parameter(data: torch.Tensor, *_unused) -> torch.Tensor:
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds tensors, containers and ``_ScriptObject`` holders; refuses every other global."""

    def __init__(self, file, archive: zipfile.ZipFile, prefix: str):
        super().__init__(file)
        self._archive = archive
        self._prefix = prefix
        self._storages: dict[str, torch.Tensor] = {}

    def find_class(self, module: str, name: str):
        if module == "__torch__" or module.startswith("__torch__."):
            return type(name, (_ScriptObject,), {})
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        raise CheckpointError(
            f"The TorchScript archive references {module}.{name}, which a weights-only reader does not build; "
            "pass a plain state dict saved with torch.save instead."
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise CheckpointError(f"Unsupported storage reference {pid!r} in the TorchScript archive.")
        storage_type, key, _location, numel = pid[1], str(pid[2]), pid[3], int(pid[4])
        dtype = storage_type.dtype if isinstance(storage_type, _StorageType) else None
        if dtype is None:
            raise CheckpointError(f"Unsupported storage type {storage_type!r} in the TorchScript archive.")
        if key not in self._storages:
            name = f"{self._prefix}data/{key}"
            try:
                raw = bytearray(self._archive.read(name))
            except KeyError:
                raise CheckpointError(f"The TorchScript archive lacks tensor data {name!r}.") from None
            flat = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
            if flat.numel() < numel:
                raise CheckpointError(
                    f"Tensor data {name!r} is truncated ({flat.numel()} < {numel} elements)."
                )
            self._storages[key] = flat
        return self._storages[key]


def torchscript_prefix(archive: zipfile.ZipFile) -> str | None:
    """The archive's folder prefix (``"name/"``) if it is a TorchScript archive, else None."""
    for name in archive.namelist():
        match = re.match(r"^([^/]+/)code/", name) or re.match(r"^([^/]+/)constants\.pkl$", name)
        if match:
            return match.group(1)
    return None


def _flatten(obj: Any, prefix: str, out: dict[str, torch.Tensor]) -> None:
    """Collect every tensor attribute of a module tree under dotted names."""
    state = obj.__dict__.get("_state", {}) if isinstance(obj, _ScriptObject) else obj
    for key, value in state.items():
        if not isinstance(key, str) or key.startswith("_"):
            continue
        name = f"{prefix}{key}"
        if isinstance(value, torch.Tensor):
            out[name] = value
        elif isinstance(value, (_ScriptObject, dict)):
            _flatten(value, name + ".", out)


def read_torchscript_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a TorchScript archive as a flat ``{dotted.name: tensor}`` dict, read without executing code."""
    path = Path(path)
    with zipfile.ZipFile(path) as archive:
        prefix = torchscript_prefix(archive)
        if prefix is None:
            raise CheckpointError(f"{path} is not a TorchScript archive (no code/ folder).")
        if (
            f"{prefix}byteorder" in archive.namelist()
            and archive.read(f"{prefix}byteorder").strip() != b"little"
        ):
            raise CheckpointError(f"{path} stores big-endian tensors, which this reader does not support.")
        try:
            with archive.open(f"{prefix}data.pkl") as handle:
                root = _RestrictedUnpickler(handle, archive, prefix).load()
        except KeyError:
            raise CheckpointError(
                f"{path} has no {prefix}data.pkl; it is not a TorchScript model archive."
            ) from None
        except (pickle.UnpicklingError, EOFError) as error:
            raise CheckpointError(f"{path} could not be read as a TorchScript archive ({error}).") from None
    out: dict[str, torch.Tensor] = {}
    _flatten(root, "", out)
    return out


