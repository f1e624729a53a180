"""An auxiliary shape-name loss on the tiny SAM's mask token, used during its pre-training only.

RegionSpot reads one token per prompt from SAM: the mask decoder's two-way transformer output at the
single-mask token (``backbones.segmenter``). A segmenter trained on a billion masks has seen every kind
of outline, and its token knows the object's shape; the tiny SAM, trained for minutes on masks alone,
does not (a linear probe on its token finds the shape 12 % of the time, chance 8 %). This probe is a
linear shape classifier on that token, trained jointly with the mask loss so that the token must carry
the shape. It knows shape names only — never colours or class names — and is discarded after training,
so the saved SAM is an ordinary ``SamModel``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import SamModel

# Index of the single-mask token among the two-way transformer's queries: [iou, mask_0, ...]; the
# segmenter reads the same position.
from regionspot.backbones.segmenter import SINGLE_MASK_TOKEN


class TokenShapeProbe:
    """Captures the mask token of every decoder call of ``model`` and scores it against shape labels.

    classifier: Linear(token width → num_shapes), to be optimised with the model.
    """

    def __init__(self, model: SamModel, num_shapes: int) -> None:
        width = int(model.mask_decoder.iou_token.weight.shape[-1])
        self.classifier = torch.nn.Linear(width, num_shapes)
        self._tokens: torch.Tensor | None = None
        self._handle = model.mask_decoder.transformer.register_forward_hook(self._capture)

    def _capture(self, module: torch.nn.Module, inputs: tuple, output: tuple) -> None:
        self._tokens = output[0][:, :, SINGLE_MASK_TOKEN, :]  # (B, N, C)

    def loss(self, shapes: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the last decoder call's tokens (B, N, C) against ``shapes`` (B, N) int64."""
        if self._tokens is None:
            raise RuntimeError("TokenShapeProbe.loss() needs a decoder call first.")
        logits = self.classifier(self._tokens)
        return F.cross_entropy(logits.flatten(0, 1), shapes.flatten())

    def accuracy(self, shapes: torch.Tensor) -> float:
        """Share of the last decoder call's tokens whose arg-max shape is ``shapes`` (B, N)."""
        with torch.no_grad():
            return float((self.classifier(self._tokens).argmax(-1) == shapes).float().mean())

    def remove(self) -> None:
        """Detach the hook (the saved SAM carries no trace of the probe)."""
        self._handle.remove()
