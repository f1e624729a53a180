"""Which backend ``--backend auto`` runs: torch, or an ONNX backend that the guard found as accurate as torch fp32
and faster on this machine, for this model.

``regionspot guard --backend NAME`` (``evaluation/backend_guard.py``) records a verdict per (machine, model,
backend) in ``backend_guard.json`` beside the fast paths' verdicts: the accuracy guard's numbers, "passed", the
per-image seconds against torch fp32 in the same run, and "pays_off" (``inference.fast.pays_off``: ≥ 1.1× faster
per image, and its one-off cost — opening the graphs, less torch's model load — repaid by one image). ``auto`` picks
the fastest backend that passed and pays off; torch when none did, when this machine has no verdicts for the model,
or when the request needs torch (everything mode, attention maps, a GPU). The machine is the CPU model,
its flags and the engines' versions, read without importing torch or the engines, so ``predict --backend auto``
decides before anything heavy is imported.
"""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path

from regionspot.utils.cpu import cpu_flags, cpu_model

__all__ = ["AUTO", "backend_signature", "backend_verdicts_path", "choose_backend", "model_key", "read_backend_verdicts",
           "write_backend_verdicts"]

AUTO = "auto"
_ENGINES = ("onnxruntime", "openvino")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def backend_signature() -> str:
    """What a backend verdict depends on: CPU model, its flags, and the installed engines' versions."""
    engines = ", ".join(f"{name} {_version(name)}" for name in _ENGINES)
    return f"{cpu_model()} | {','.join(sorted(cpu_flags()))} | {engines}"


def model_key(weights: str | Path | None = None, segmenter: str | None = None,
              vision_language: str | None = None) -> str:
    """The model a verdict is for: the registered name (default "shapesworld") or the head file's absolute path,
    with any backbone overrides."""
    name = str(weights or "shapesworld")
    if Path(name).exists():
        name = str(Path(name).resolve())
    return " + ".join([name, *[part for part in (segmenter, vision_language) if part]])


def backend_verdicts_path() -> Path:
    """``$REGIONSPOT_CACHE/backend_guard.json`` when that variable is set, else ``~/.cache/regionspot/...``."""
    root = os.environ.get("REGIONSPOT_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "regionspot") / "backend_guard.json"


def read_backend_verdicts(path: Path | None = None) -> dict:
    """{machine signature: {model key: {backend: verdict}}}; empty when the file is absent or unreadable."""
    try:
        data = json.loads((path or backend_verdicts_path()).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_backend_verdicts(model: str, verdicts: dict[str, dict], path: Path | None = None) -> Path:
    """Record this machine's verdicts for ``model`` (each backend: "passed", "pays_off", "speedup", ...), kept
    beside other machines' and models' entries; returns the file."""
    path = path or backend_verdicts_path()
    data = read_backend_verdicts(path)
    data.setdefault(backend_signature(), {})[model] = verdicts
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".tmp-{os.getpid()}")
    temporary.write_text(json.dumps(data, indent=1))
    temporary.replace(path)
    return path


def choose_backend(model: str, needs_torch: str | None = None, verdicts: dict | None = None) -> tuple[str, str | None]:
    """(backend name, a line saying why when it is not torch, or why torch although verdicts exist).

    needs_torch: what the request asks that only torch does (e.g. "everything mode"), or None."""
    mine = (read_backend_verdicts() if verdicts is None else verdicts).get(backend_signature(), {}).get(model)
    if not mine:
        return "torch", None
    fit = [(entry.get("speedup", 0.0), name) for name, entry in mine.items()
           if isinstance(entry, dict) and entry.get("passed") and entry.get("pays_off")]
    if not fit:
        return "torch", None
    speedup, name = max(fit)
    if needs_torch:
        return "torch", f"backend torch: {needs_torch} needs it ({name} was {speedup:.2f}× faster on this machine)"
    return name, f"backend {name}: passed the guard on this machine, {speedup:.2f}× torch fp32 per image"
