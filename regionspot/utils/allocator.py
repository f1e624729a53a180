"""Let a CPU process keep the memory it frees, so big activations reuse pages instead of faulting in new ones.

glibc hands every allocation above its mmap threshold (128 kB, raised dynamically up to 32 MB) to a fresh
``mmap`` and returns it to the kernel on ``free``. A ViT forward pass allocates and frees activations of
12–50 MB per layer, and each one is then zero-filled page by page on first touch: on a 2-core machine the
SAM ViT-B encoder spent about 15 % of its time there (docs/performance.md). Raising the mmap and trim
thresholds to 1 GB keeps those pages in the heap for the next layer. Peak memory is unchanged (the same
tensors are alive at the peak); what changes is that the process keeps its peak heap after the work.

The command line calls :func:`keep_freed_memory` at start-up; Python users may call it themselves. It does
nothing where glibc's ``mallopt`` is not available (macOS, Windows, musl) or when ``REGIONSPOT_MALLOC_TUNING=0``.
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["KEEP_BYTES", "keep_freed_memory"]

KEEP_BYTES = 1 << 30
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)
_applied: bool | None = None


def keep_freed_memory(keep_bytes: int = KEEP_BYTES) -> bool:
    """Set glibc's mmap and trim thresholds to ``keep_bytes`` for this process (once). True if applied."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("REGIONSPOT_MALLOC_TUNING", "1") == "0":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter is linked with
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = bool(mallopt(_M_MMAP_THRESHOLD, keep_bytes)) and bool(mallopt(_M_TRIM_THRESHOLD, keep_bytes))
    return _applied
