"""Labels for tracks: the head on each frame's tokens, and one label per track from the evidence of all its frames.

Each frame: the vision-language model's feature map of that frame and the propagator's token of each object go
through the head (``RegionSpot.forward``), giving logits (K, V) against the vocabulary — the frame's label.

The track's label accumulates evidence: the **mean over the frames where the object is present of its
calibrated log-probabilities** ``log softmax(logits / T)`` (T: the head's display temperature), and its argmax.
Why this rule: if frames were independent views, the sum of log-probabilities is the log-posterior of the class
(a product of per-frame likelihoods), so a frame that is sure of a class counts more than a frame that hesitates,
unlike a majority vote over per-frame labels. Frames of one video are far from independent, so the sum would be
wildly over-confident; its mean has the same argmax and a confidence (softmax of the mean: the normalised geometric
mean of the per-frame probabilities) on the scale of one frame's. Summed raw logits would ignore the temperature
that calibrates them; mean probabilities (soft voting) were the other candidate and let many unsure frames outvote
a few sure ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from regionspot.errors import CheckpointError
from regionspot.model import RegionSpot


class FrameLabeller:
    """The head of ``model`` on one frame at a time, against ``vocabulary`` (embedded once)."""

    def __init__(self, model: RegionSpot, vocabulary: Sequence[str], token_dim: int, text_cache_dir: str | None = None) -> None:
        if model.head.config.token_dim != token_dim:
            raise CheckpointError(f"The head reads {model.head.config.token_dim}-wide tokens but the tracker gives "
                                  f"{token_dim}-wide ones: use a head trained on this tracker's segmenter tokens.")
        self.model = model.eval()
        self.vocabulary = list(vocabulary)
        with torch.inference_mode():
            self.text = model.text_embeddings(self.vocabulary, cache_dir=text_cache_dir, show_progress=False)  # (V, D)
        self.temperature = float(model.config.display_temperature)

    @torch.inference_mode()
    def logits(self, image: Image.Image, tokens: torch.Tensor) -> torch.Tensor:
        """(K, V) float32 on the CPU: the head's logits of K tokens (K, D) on ``image``'s feature map."""
        if len(tokens) == 0:
            return torch.zeros((0, len(self.vocabulary)))
        feature_map = self.model.vision_language.feature_map([image])  # (1, T, C)
        out = self.model(tokens[None].to(feature_map.device, feature_map.dtype), feature_map, self.text)
        return out.logits[0].float().cpu()

    def log_probs(self, logits: torch.Tensor) -> np.ndarray:
        """(K, V) float64 calibrated log-probabilities ``log softmax(logits / T)``."""
        return torch.log_softmax(logits.double() / self.temperature, dim=-1).numpy()


class TrackEvidence:
    """Per track: the sum of calibrated log-probabilities (K, V) over the frames it was present on, and their count.

    ``labels()`` is each track's class (argmax of the mean) and confidence (softmax of the mean, at that class).
    """

    def __init__(self, tracks: int, classes: int) -> None:
        self.sums = np.zeros((tracks, classes), np.float64)
        self.frames = np.zeros(tracks, np.int64)

    def add(self, log_probs: np.ndarray, present: np.ndarray) -> None:
        """One frame: log_probs (K, V), present (K,) bool (absent objects add nothing)."""
        present = np.asarray(present, bool)
        self.sums[present] += log_probs[present]
        self.frames[present] += 1

    def labels(self) -> tuple[np.ndarray, np.ndarray]:
        """(K,) int64 class ids (-1: never present) and (K,) float64 confidences (0 for those)."""
        seen = self.frames > 0
        mean = self.sums / np.maximum(self.frames, 1)[:, None]
        ids = np.where(seen, mean.argmax(axis=1), -1)
        shifted = np.exp(mean - mean.max(axis=1, keepdims=True))
        confidence = (shifted / shifted.sum(axis=1, keepdims=True)).max(axis=1)
        return ids.astype(np.int64), np.where(seen, confidence, 0.0)

    def to_dict(self) -> dict:
        return {"sums": self.sums.tolist(), "frames": self.frames.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> TrackEvidence:
        sums = np.asarray(data["sums"], np.float64)
        evidence = cls(*sums.shape)
        evidence.sums, evidence.frames = sums, np.asarray(data["frames"], np.int64)
        return evidence
