"""Telling a torch tensor from a numpy array without importing torch, so that modules which take either stay
importable — and the torch-free paths (the ONNX backends) run — without torch."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np


def is_torch_tensor(x: Any) -> bool:
    """Whether ``x`` is a ``torch.Tensor``. Never imports torch: when torch is not imported, nothing is one."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def as_numpy(x: Any, dtype: Any = None) -> np.ndarray:
    """``x`` (a torch tensor on any device, an array, or a sequence) as a host numpy array, cast to ``dtype``
    when given (a tensor is cast in torch first when ``dtype`` is float32: bfloat16 has no numpy type)."""
    if is_torch_tensor(x):
        x = x.detach()
        x = (x.float() if dtype is not None and np.dtype(dtype) == np.float32 else x).cpu().numpy()
    return np.asarray(x) if dtype is None else np.asarray(x, dtype=dtype)
