"""Class-agnostic region proposals from the segmenter alone ("recognise everything").

In the manner of SAM's automatic mask generator: a grid of single foreground points is decoded into
masks, on the whole image and on overlapping zoomed crops (small objects are seen larger there); masks
with a low predicted IoU, a low stability score or an implausible area are dropped; each kept mask's box
is decoded again as a box prompt (the segmenter is sharper from boxes than from one point); boxes cut by
a crop's inner edge are dropped; and overlapping boxes are suppressed, best ``iou × stability`` first.

Coordinate frames: every box here is XYXY in original-image pixels unless a name says ``crop``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from regionspot.backbones.base import Segmenter, SegmenterImageState
from regionspot.data.transforms import box_iou
from regionspot.inference.box_sources import BoxSource, ScoredBoxes
from regionspot.inference.proposal_options import STABILITY_OFFSET, ProposalOptions
from regionspot.masks.base import mask_to_box

__all__ = ["STABILITY_OFFSET", "ProposalOptions", "Proposals", "crop_boxes", "nms", "point_grid", "proposal_source",
           "propose_regions"]


@dataclass
class Proposals:
    """boxes (K, 4) float32 XYXY original-image pixels, best first; scores (K,) = iou × stability;
    iou (K,) the segmenter's predicted IoU; stability (K,) the stability score."""

    boxes: torch.Tensor
    scores: torch.Tensor
    iou: torch.Tensor
    stability: torch.Tensor

    def __len__(self) -> int:
        return len(self.boxes)

    def take(self, index: torch.Tensor) -> Proposals:
        return Proposals(self.boxes[index], self.scores[index], self.iou[index], self.stability[index])

    def scored_boxes(self) -> ScoredBoxes:
        """The proposals as a box source's answer: class-agnostic, scored by IoU × stability, on the CPU."""
        boxes = self.boxes.float().cpu()
        return ScoredBoxes(boxes, self.scores.float().cpu(), torch.full((len(boxes),), -1, dtype=torch.long))

    @staticmethod
    def concat(parts: list[Proposals]) -> Proposals:
        if not parts:
            empty = torch.zeros(0)
            return Proposals(torch.zeros(0, 4), empty, empty, empty)
        return Proposals(*(torch.cat([getattr(p, f) for p in parts]) for f in ("boxes", "scores", "iou", "stability")))


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression; returns kept indices, best score first. boxes (N, 4), scores (N,)."""
    order = scores.argsort(descending=True, stable=True)
    ious = box_iou(boxes[order], boxes[order])
    keep: list[int] = []
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= ious[i] > iou_threshold
    return order[keep]


def point_grid(points_per_side: int, height: int, width: int) -> torch.Tensor:
    """(N², 1, 2) float32 xy pixel centres of an N×N grid over a height × width frame."""
    steps = (torch.arange(points_per_side, dtype=torch.float32) + 0.5) / points_per_side
    ys, xs = torch.meshgrid(steps * height, steps * width, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)[:, None, :]


def crop_boxes(height: int, width: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """The 2×2 overlapping crops of a height × width image as integer XYXY pixel boxes."""
    crop_w = min(width, int(round(width * (1 + overlap) / 2)))
    crop_h = min(height, int(round(height * (1 + overlap) / 2)))
    return [(x0, y0, x0 + crop_w, y0 + crop_h) for y0 in (0, height - crop_h) for x0 in (0, width - crop_w)]


def _masks_to_proposals(out, frame: tuple[int, int], mask_frame: tuple[int, int], options: ProposalOptions) -> Proposals:
    """Filter one decode's masks (at ``mask_frame`` (h, w)) and return their boxes in ``frame`` (H, W) pixels."""
    masks = out.masks.cpu()
    area = masks.flatten(1).float().mean(-1)
    iou, stability = out.iou.float().cpu(), out.stability.float().cpu()
    good = (area > 0) & (area >= options.area_fraction[0]) & (area <= options.area_fraction[1])
    good &= (iou >= options.min_predicted_iou) & (stability >= options.min_stability)
    scale = torch.tensor([frame[1] / mask_frame[1], frame[0] / mask_frame[0]] * 2)
    boxes = mask_to_box(masks[good]).float() * scale  # (K, 4) XYXY in the frame's pixels
    # whole pixels of the frame, rounded outwards: masks finer than the frame (a tiny image upscaled to the
    # segmenter's input) must not give sub-pixel boxes
    boxes = torch.cat([(boxes[:, :2] + 1e-4).floor(), (boxes[:, 2:] - 1e-4).ceil()], dim=1)
    return Proposals(boxes, iou[good] * stability[good], iou[good], stability[good])


def _propose_in_frame(segmenter: Segmenter, state: SegmenterImageState, options: ProposalOptions) -> Proposals:
    """Proposals of one encoded frame (the image or a crop), as XYXY pixels of that frame."""
    frame = state.original_size
    mask_frame = state.reshaped_size  # masks at the segmenter's working size bound the memory
    decode = {"masks": "full", "chunk_size": options.chunk_size, "mask_size": mask_frame,
              "stability_offset": STABILITY_OFFSET}
    points = point_grid(options.points_per_side, *frame)
    found = _masks_to_proposals(segmenter.decode_prompts(state, points=points, **decode), frame, mask_frame, options)
    if options.refine and len(found):
        found = found.take(nms(found.boxes, found.scores, 0.9))  # near-identical masks need one refinement
        boxes = found.boxes.clone()
        boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2] + 1.0)  # at least one pixel wide
        found = _masks_to_proposals(segmenter.decode_prompts(state, boxes=boxes, **decode), frame, mask_frame, options)
    return found.take(nms(found.boxes, found.scores, options.nms_iou)) if len(found) else found


def _inside_crop(boxes: torch.Tensor, crop: tuple[int, int, int, int], height: int, width: int) -> torch.Tensor:
    """(K,) bool: the box (original pixels) does not touch an edge of the crop that is inside the image."""
    x0, y0, x1, y1 = crop
    tol = 0.01 * max(x1 - x0, y1 - y0) + 1.0
    cut = (boxes[:, 0] <= x0 + tol) & (x0 > 0)
    cut |= (boxes[:, 1] <= y0 + tol) & (y0 > 0)
    cut |= (boxes[:, 2] >= x1 - tol) & (x1 < width)
    cut |= (boxes[:, 3] >= y1 - tol) & (y1 < height)
    return ~cut


@torch.inference_mode()
def propose_regions(
    segmenter: Segmenter,
    image: Image.Image,
    options: ProposalOptions | None = None,
    state: SegmenterImageState | None = None,
) -> Proposals:
    """Class-agnostic proposals for ``image`` (RGB PIL), at most ``options.max_regions``, best first.

    state: the segmenter's encoding of ``image`` when the caller has it (saves one encode).
    Returns Proposals with boxes (K, 4) float32 XYXY in original-image pixels.
    """
    options = options or ProposalOptions()
    width, height = image.size
    state = state if state is not None else segmenter.encode_image(image)
    parts = [_propose_in_frame(segmenter, state, options)]
    if options.crop_layers and min(height, width) >= options.min_crop_side:
        for crop in crop_boxes(height, width, options.crop_overlap):
            found = _propose_in_frame(segmenter, segmenter.encode_image(image.crop(crop)), options)
            found.boxes += torch.tensor([crop[0], crop[1]] * 2, dtype=torch.float32)
            parts.append(found.take(_inside_crop(found.boxes, crop, height, width)))
    found = Proposals.concat(parts)
    if not len(found):
        return found
    found.boxes[:, 0::2] = found.boxes[:, 0::2].clamp(0, width)
    found.boxes[:, 1::2] = found.boxes[:, 1::2].clamp(0, height)
    return found.take(nms(found.boxes, found.scores, options.nms_iou)[: options.max_regions])


def proposal_source(segmenter: Segmenter, points_per_side: int = 16, max_regions: int = 300) -> BoxSource:
    """The segmenter's automatic proposals (:func:`propose_regions`) as a box source
    (``inference.box_sources``): class-agnostic, scored by the segmenter's predicted IoU × stability."""
    options = ProposalOptions(points_per_side=points_per_side, max_regions=max_regions)

    def detect(image: Image.Image) -> ScoredBoxes:
        return propose_regions(segmenter, image, options).scored_boxes()

    return detect
