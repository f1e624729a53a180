"""keep_freed_memory: applied once where glibc's mallopt exists, skipped when switched off."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _run(env_value: str | None) -> list[str]:
    code = ("from regionspot.utils.allocator import keep_freed_memory as k; "
            "print(k(), k())")
    env = {"PATH": "/usr/bin:/bin"}
    if env_value is not None:
        env["REGIONSPOT_MALLOC_TUNING"] = env_value
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_applied_once_on_glibc_and_off_by_env():
    assert _run(None) == ["True", "True"]
    assert _run("0") == ["False", "False"]
