"""One offline-aware way to load a transformers object (config, model, tokenizer, processor file).

Order: a local folder, or the local Hugging Face cache (no network); then the hub, unless
``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set or the id is a folder. Before going online, one TCP
connection to the hub's host is tried (at most :data:`PROBE_TIMEOUT_S`): an unreachable hub is one line at
once, instead of huggingface_hub's retries (~25 s of "Retrying in 8s" lines). A failure is a
``WeightsNotFoundError`` whose one line names the model and the fix the caller passes.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from regionspot.errors import WeightsNotFoundError

_TRUE = {"1", "true", "yes", "on"}
PROBE_TIMEOUT_S = 1.0
_UNREACHABLE: dict[str, str] = {}  # host:port -> why, for this process: one probe per unreachable host


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` asks for no network."""
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def looks_like_path(model_id: str) -> bool:
    """Hub ids are "name" or "org/name"; anything else (./x, /x, ~/x, a/b/c, a\\b) is meant as a folder."""
    return model_id.startswith((".", "/", "~")) or model_id.count("/") > 1 or "\\" in model_id


def hub_endpoint() -> str:
    """The hub's address: ``$HF_ENDPOINT`` or https://huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def hub_unreachable(timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why the hub cannot be reached ("Connection refused", "no answer within 1.5 s", ...), or None when a TCP
    connection to it opens within ``timeout`` seconds (name resolution included)."""
    parts = urlsplit(hub_endpoint())
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    key = f"{host}:{port}"
    if key in _UNREACHABLE:
        return _UNREACHABLE[key]
    outcome: dict[str, str] = {}

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome["ok"] = ""
        except OSError as error:
            outcome["error"] = error.strerror or str(error) or type(error).__name__

    thread = threading.Thread(target=probe, daemon=True)  # getaddrinfo ignores socket timeouts
    thread.start()
    thread.join(timeout)
    if "ok" in outcome:
        return None
    _UNREACHABLE[key] = outcome.get("error") or f"no answer within {timeout:g} s"
    return _UNREACHABLE[key]


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0][:160] if text else type(error).__name__


def from_pretrained(loader: Callable[..., Any], model_id: str, what: str, fix: str, **kwargs: Any) -> Any:
    """``loader(model_id, local_files_only=True, **kwargs)``, then online when allowed.

    what: what is being loaded, for the message ("SAM weights", "the tokenizer of CLIP"); fix: the
    one-line remedy appended to it. Raises WeightsNotFoundError.
    """
    try:
        return loader(model_id, local_files_only=True, **kwargs)
    except (OSError, ValueError) as error:
        local_error = error
    if hub_offline() or Path(model_id).expanduser().is_dir():
        raise WeightsNotFoundError(
            f"Cannot load {what} of {model_id!r} offline ({_first_line(local_error)}): {fix}."
        ) from None
    unreachable = hub_unreachable()
    if unreachable is not None:
        raise WeightsNotFoundError(
            f"Cannot load {what} of {model_id!r}: not in the local cache, and the hub {hub_endpoint()} is unreachable "
            f"({unreachable}); {fix}."
        ) from None
    try:
        return loader(model_id, **kwargs)
    except Exception as error:  # network failures come as many types (OSError, httpx, HfHubHTTPError)
        raise WeightsNotFoundError(f"Cannot load {what} of {model_id!r} ({_first_line(error)}): {fix}.") from None


def cached_file_or_none(model_id: str, filename: str) -> str | None:
    """Path of ``filename`` in a folder or hub repo (cache first, hub when allowed), or None when absent."""
    from transformers.utils import cached_file

    options = {"_raise_exceptions_for_missing_entries": False, "_raise_exceptions_for_connection_errors": False}
    try:
        path = cached_file(model_id, filename, local_files_only=True, **options)
        if (path is None and not hub_offline() and not Path(model_id).expanduser().is_dir()
                and hub_unreachable() is None):
            path = cached_file(model_id, filename, **options)
    except (OSError, ValueError):
        return None
    return path
