"""How "recognise everything" proposes regions (``ProposalOptions``), apart from the proposing itself
(``inference/proposals.py``, which imports torch), so that options and many-images runs can name them without
torch."""

from __future__ import annotations

from dataclasses import dataclass

from regionspot.errors import PromptError

STABILITY_OFFSET = 1.0  # the mask logit offset of the stability score (SAM's automatic mask generator's)


@dataclass(frozen=True)
class ProposalOptions:
    """How regions are proposed (defaults: measured on ShapesWorld val with the embedded model,
    ``benchmarks/quality/proposal_recall.py``).

    points_per_side: the point grid on the whole image and on each crop is N×N.
    crop_layers: 0 — the whole image only; 1 — also 2×2 overlapping crops, each encoded on its own.
    crop_overlap: fraction of a crop's side it shares with its neighbour.
    min_crop_side: images whose shorter side is below this many pixels are not cropped.
    min_predicted_iou / min_stability: drop masks below these (the segmenter's IoU prediction and the
        stability score at logit offset ``STABILITY_OFFSET``); 0 keeps all and lets the ranking decide.
    area_fraction: (min, max) share of their frame a kept mask covers.
    refine: decode each kept mask's box again as a box prompt and use that mask's box.
    nms_iou: boxes overlapping a better one by more than this IoU are suppressed.
    max_regions: at most this many proposals per image, best first.
    chunk_size: prompts per decoder call.
    """

    points_per_side: int = 16
    crop_layers: int = 1
    crop_overlap: float = 0.2
    min_crop_side: int = 32
    min_predicted_iou: float = 0.0
    area_fraction: tuple[float, float] = (0.0005, 0.9)
    min_stability: float = 0.0
    refine: bool = True
    nms_iou: float = 0.7
    max_regions: int = 100
    chunk_size: int = 64

    def __post_init__(self) -> None:
        if not 1 <= self.points_per_side <= 128:
            raise PromptError(f"points_per_side must be in 1..128, got {self.points_per_side}.")
        if self.crop_layers not in (0, 1):
            raise PromptError(f"crop_layers must be 0 or 1, got {self.crop_layers}.")
        if not 0.0 <= self.crop_overlap < 1.0:
            raise PromptError(f"crop_overlap must be in [0, 1), got {self.crop_overlap}.")
        if self.max_regions < 1:
            raise PromptError(f"max_regions must be at least 1, got {self.max_regions}.")
