"""Class-agnostic region proposals from the segmenter alone, for images given without boxes.

A grid of single foreground points is decoded into masks (as SAM's automatic mode does, much
simplified); confident, non-trivial masks become boxes, and overlapping boxes are suppressed.
"""

from __future__ import annotations

import torch

from regionspot.backbones.base import Segmenter, SegmenterImageState
from regionspot.data.transforms import box_iou, mask_to_box


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression; returns kept indices, best score first. boxes (N, 4), scores (N,)."""
    order = scores.argsort(descending=True)
    ious = box_iou(boxes[order], boxes[order])
    keep: list[int] = []
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= ious[i] > iou_threshold
    return order[keep]


@torch.inference_mode()
def propose_regions(
    segmenter: Segmenter,
    state: SegmenterImageState,
    points_per_side: int = 16,
    min_predicted_iou: float = 0.7,
    min_area_fraction: float = 0.002,
    max_area_fraction: float = 0.95,
    nms_iou: float = 0.7,
    max_regions: int = 100,
    chunk_size: int = 64,
) -> torch.Tensor:
    """(K, 4) float32 XYXY boxes in original-image pixels, most confident first (K ≤ max_regions)."""
    height, width = state.original_size
    steps = (torch.arange(points_per_side, dtype=torch.float32) + 0.5) / points_per_side
    ys, xs = torch.meshgrid(steps * height, steps * width, indexing="ij")
    points = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)[:, None, :]  # (P, 1, 2)
    labels = torch.ones(points.shape[:2], dtype=torch.long)
    out = segmenter.decode_prompts(state, points=points, point_labels=labels, return_masks=True, chunk_size=chunk_size)
    masks, iou = out.masks.cpu(), out.iou.float().cpu()
    area = masks.flatten(1).sum(-1).float() / float(height * width)
    good = (iou >= min_predicted_iou) & (area >= min_area_fraction) & (area <= max_area_fraction)
    if not good.any():
        return torch.zeros((0, 4), dtype=torch.float32)
    boxes = mask_to_box(masks[good]).float()
    kept = nms(boxes, iou[good], nms_iou)[:max_regions]
    return boxes[kept]
