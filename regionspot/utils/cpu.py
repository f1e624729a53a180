"""The CPU this process runs on, read without torch: its model name and the feature flags the numerics and the
backends depend on (bf16, AMX, VNNI)."""

from __future__ import annotations

import functools
import platform
from pathlib import Path

__all__ = ["cpu_flags", "cpu_model"]

_FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8", "avx512_vnni", "avx_vnni")


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of interest that ``/proc/cpuinfo`` lists (empty where it is not readable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            listed = set(line.split(":", 1)[1].split())
            return frozenset(flag for flag in _FLAGS_OF_INTEREST if flag in listed)
    return frozenset()


@functools.cache
def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` ("model name"), else ``platform.processor()`` or the machine."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
