"""Atomic file writes: write next to the target, flush + fsync, then rename over it.

A reader never sees a half-written file, and a killed writer leaves the previous version (or nothing)
plus, at worst, a stray ``.*.tmp<pid>-<id>`` file beside it.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.

    Whatever the block writes to the yielded path (a file, by any library) is fsynced before the rename.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Unique per call, not per process: two threads of one server may write the same target at once.
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        if tmp.is_file():
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.is_file():
            tmp.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int = 1, sort_keys: bool = False) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    write_bytes_atomic(path, json.dumps(obj, indent=indent, sort_keys=sort_keys).encode())


def fsync_folder_files(folder: str | os.PathLike) -> None:
    """fsync every file directly inside ``folder`` (before renaming the folder into place)."""
    for item in Path(folder).iterdir():
        if item.is_file():
            with open(item, "rb") as handle:
                os.fsync(handle.fileno())
