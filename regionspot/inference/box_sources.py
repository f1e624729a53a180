"""Boxes from somewhere: the one type every box source gives, and the sources.

A box source answers "which regions of this image should be recognised?" with :class:`ScoredBoxes`
(XYXY original-image pixels, best first). The sources:

- the user's prompts (``RegionSpotPredictor.predict(boxes=...)``, ``predict --boxes``): given, unscored;
- ground truth (``eval --boxes gt``): the dataset's boxes, unscored (``ScoredBoxes.unscored``);
- a detections file (``eval --boxes FILE``): ``evaluation.detections.load_detections`` -> one
  ``ScoredBoxes`` per image;
- an open-vocabulary detector (``propose --detector OWLV2``): ``inference.detector_boxes.Owlv2Boxes.detect``,
  a :data:`BoxSource`;
- the segmenter's own proposals (``propose --detector sam``, ``predict --everything``):
  ``inference.proposals.proposal_source``, a :data:`BoxSource` over ``propose_regions``.

A new source is a :data:`BoxSource`: a callable image -> ``ScoredBoxes``; ``engine.propose.propose_boxes``
writes any of them to a detections file that ``eval --boxes`` reads back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

__all__ = ["BoxSource", "ScoredBoxes"]


@dataclass
class ScoredBoxes:
    """One image's boxes from a source, best first.

    boxes: (K, 4) float32 XYXY, original-image pixels (on the CPU).
    scores: (K,) float32, the source's confidence (a detector's score, a proposal's IoU × stability), or
        None for boxes that carry none (ground truth, the user's).
    labels: (K,) int64 index into the source's queries (an open-vocabulary detector's class names), -1
        for a class-agnostic box.
    """

    boxes: torch.Tensor
    scores: torch.Tensor | None
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def unscored(cls, boxes: torch.Tensor | np.ndarray) -> ScoredBoxes:
        """Boxes (K, 4) XYXY that come with no score or class (ground truth, the user's prompts)."""
        boxes = torch.as_tensor(np.asarray(boxes, dtype=np.float32)).reshape(-1, 4)
        return cls(boxes, None, torch.full((len(boxes),), -1, dtype=torch.long))

    @classmethod
    def class_agnostic(cls, boxes: torch.Tensor | np.ndarray, scores: torch.Tensor | np.ndarray) -> ScoredBoxes:
        """Scored boxes (K, 4) XYXY, scores (K,), without classes."""
        boxes = torch.as_tensor(np.asarray(boxes, dtype=np.float32)).reshape(-1, 4)
        scores = torch.as_tensor(np.asarray(scores, dtype=np.float32)).reshape(-1)
        return cls(boxes, scores, torch.full((len(boxes),), -1, dtype=torch.long))


BoxSource = Callable[[Image.Image], ScoredBoxes]

