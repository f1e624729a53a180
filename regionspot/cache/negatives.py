"""Background boxes: random boxes of an image that overlap none of its labelled objects.

The token cache stores the segmenter tokens of a few of them per image (``CacheConfig.negatives_per_image``)
beside the labelled boxes, and training gives them all-zero targets in the sigmoid focal loss, so a head
learns to score "none of these" low on every class. The draw is seeded by the image (its id), so the same
image gets the same boxes in every run and on every rank; the mirrored variant gets the same boxes mirrored.
"""

from __future__ import annotations

import torch

from regionspot.data.transforms import box_iou

__all__ = ["NEGATIVE_LABEL", "background_boxes"]

# The label a cached background box carries in a shard (never a class index).
NEGATIVE_LABEL = -1
_TRIES_PER_BOX = 50
_MIN_SIDE = 4.0  # pixels: a smaller box carries no content to classify


def background_boxes(boxes: torch.Tensor, width: int, height: int, count: int, max_iou: float,
                     seed: int) -> torch.Tensor:
    """Up to ``count`` random boxes whose IoU with every labelled box is below ``max_iou``.

    boxes: (N, 4) float XYXY pixels of the labelled objects (N may be 0); width / height: the image size.
    A box's sides are those of a random labelled box scaled by 0.5..2 (each side on its own), or 5..50 % of
    the image side when there is none, so the negatives look like the objects in size; its place is uniform
    in the image. Draws are made with a generator seeded by ``seed``; the search gives up after
    ``50 * count`` candidates, so a crowded image may get fewer. Returns (K, 4) float32 XYXY pixels, K <= count.
    """
    if count < 1:
        return torch.zeros(0, 4)
    gen = torch.Generator().manual_seed(int(seed) % (2**63))
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    tries = _TRIES_PER_BOX * count
    if len(boxes):
        sides = (boxes[:, 2:] - boxes[:, :2]).clamp(min=_MIN_SIDE)  # (N, 2) w, h
        pick = torch.randint(len(boxes), (tries,), generator=gen)
        size = sides[pick] * 2.0 ** (torch.rand(tries, 2, generator=gen) * 2 - 1)
    else:
        size = torch.rand(tries, 2, generator=gen) * 0.45 + 0.05
        size = size * torch.tensor([float(width), float(height)])
    limit = torch.tensor([float(width), float(height)])
    size = torch.minimum(size.clamp(min=_MIN_SIDE), limit)
    corner = torch.rand(tries, 2, generator=gen) * (limit - size)
    candidates = torch.cat([corner, corner + size], dim=1).floor()
    candidates[:, 2:] = torch.maximum(candidates[:, 2:], candidates[:, :2] + 1)
    clear = torch.ones(tries, dtype=torch.bool) if not len(boxes) else box_iou(candidates, boxes).amax(1) < max_iou
    chosen: list[torch.Tensor] = []
    for box in candidates[clear]:
        # Background boxes may overlap each other, but not repeat one another.
        if chosen and box_iou(box[None], torch.stack(chosen)).amax() >= 0.7:
            continue
        chosen.append(box)
        if len(chosen) == count:
            break
    return torch.stack(chosen) if chosen else torch.zeros(0, 4)
