"""One identity for a set of weights, used in cache keys and manifests (text embeddings, token caches,
evaluation stores): equal weights give equal fingerprints, and any changed tensor changes it."""

from __future__ import annotations

import hashlib
from typing import Any


def weights_fingerprint(module: Any) -> str:
    """16 hex digits of sha256 over every tensor's name, shape, dtype and float64 sum.

    module: an ``nn.Module``, or an adapter: one that carries its own ``weights_fingerprint`` string
    gives that, one exposing its model as ``.model`` gives the model's; anything else gives "". Sums keep
    it cheap for large backbones (one pass, no copies to bytes); a change that keeps every tensor's sum
    is not detected.
    """
    own = getattr(module, "weights_fingerprint", None)
    if isinstance(own, str) and own:
        return own
    model = module if hasattr(module, "state_dict") else getattr(module, "model", None)
    if model is None or not hasattr(model, "state_dict"):
        return ""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        total = float(tensor.detach().double().sum()) if tensor.numel() else 0.0
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}{total:.10e}".encode())
    return digest.hexdigest()[:16]
