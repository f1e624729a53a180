"""Propagators: what carries each prompted object from frame to frame and gives the head its token there.

Two behind one interface (:class:`Propagator`):

- ``video/sam2_video.py``: a video segmentation model of the SAM 2 family (``Sam2VideoModel``, ...) with its
  memory of past frames; the real tracker.
- :class:`RepromptTracker` here: a **toy tracker**. An image segmenter (the embedded tiny ShapesWorld SAM, or
  any SAM) prompted on each frame with the box of the object's mask on the previous frame, grown by a margin.
  It has no memory and no appearance model: it follows objects that move less than the margin per frame and
  do not cross each other, which is what ShapesWorld clips need, and no more.

Coordinates: boxes XYXY and points XY in original-frame pixels; masks at the frame's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image

from regionspot.backbones.base import Segmenter
from regionspot.errors import PromptError
from regionspot.masks.base import RegionMasks
from regionspot.masks.lowres import LowResMasks


@dataclass
class TrackedObjects:
    """The K prompted objects on one frame, in prompt order.

    tokens: (K, D) float32, each object's position-aware token (the decoder's single-mask output token).
    masks: the K masks (K, H, W) at the frame's size (``RegionMasks``: made one region at a time).
    boxes: (K, 4) float32 XYXY frame pixels: each mask's tight box (zeros where the mask is empty).
    present: (K,) bool, whether the object is seen on this frame (video model: its object score > 0; toy
        tracker: a non-empty mask).
    scores: (K,) float32 in [0, 1], the segmenter's own confidence (video model: sigmoid of its object score;
        toy tracker: the predicted mask IoU).
    """

    tokens: torch.Tensor
    masks: RegionMasks
    boxes: np.ndarray
    present: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return int(self.tokens.shape[0])


@runtime_checkable
class Propagator(Protocol):
    """Tracks K prompted objects through frames given in order. token_dim: D, the width of its tokens."""

    token_dim: int

    def start(self, image: Image.Image, boxes: np.ndarray | None, points: np.ndarray | None) -> TrackedObjects:
        """The prompt frame: K boxes (K, 4) XYXY or K points (K, 2) XY (one foreground point per object)."""
        ...

    def step(self, image: Image.Image) -> TrackedObjects:
        """The next frame."""
        ...

    def snapshot(self) -> dict | None:
        """JSON-ready state that :meth:`restore` continues from after the last frame, or None when the state
        cannot be written down (the run then replays the frames from the prompt frame)."""
        ...

    def restore(self, snapshot: dict) -> None:
        """Continue after the frame :meth:`snapshot` was taken on."""
        ...


def check_prompts(boxes: np.ndarray | None, points: np.ndarray | None, size: tuple[int, int]) -> int:
    """The number of objects K; PromptError for no prompt, both kinds, bad shapes or a prompt outside the frame of
    ``size`` (height, width)."""
    if (boxes is None) == (points is None):
        raise PromptError("Give the objects to track as boxes or as points (one kind).")
    height, width = size
    if boxes is not None:
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        bad = ~((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]))
        outside = (boxes[:, 2] <= 0) | (boxes[:, 3] <= 0) | (boxes[:, 0] >= width) | (boxes[:, 1] >= height)
        if bad.any() or outside.any():
            k = int(np.flatnonzero(bad | outside)[0])
            raise PromptError(f"Box {k + 1} {boxes[k].tolist()} is empty or outside the {width}x{height} frame.")
        return len(boxes)
    points = np.asarray(points, np.float32).reshape(-1, 2)
    outside = (points[:, 0] < 0) | (points[:, 1] < 0) | (points[:, 0] >= width) | (points[:, 1] >= height)
    if outside.any():
        k = int(np.flatnonzero(outside)[0])
        raise PromptError(f"Point {k + 1} {points[k].tolist()} is outside the {width}x{height} frame.")
    return len(points)


def grow_boxes(boxes: np.ndarray, margin: float, size: tuple[int, int]) -> np.ndarray:
    """(K, 4) XYXY boxes grown by ``margin`` × their side on every side, clipped to the (height, width) frame."""
    boxes = np.asarray(boxes, np.float32)
    pad = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1) * margin * np.array([-1, -1, 1, 1], np.float32)
    grown = boxes + pad
    height, width = size
    return np.clip(grown, 0, [width, height, width, height]).astype(np.float32)


class RepromptTracker:
    """The toy tracker: ``segmenter`` prompted on each frame with the previous frame's mask box, grown by
    ``margin`` (a fraction of the box's side) so that an object that moved a little is still inside it.

    An object whose mask comes out empty is not present on that frame; it is looked for again in its last box.
    Its state (the K boxes to prompt next) is written down by :meth:`snapshot`, so a run resumes without replay.
    """

    def __init__(self, segmenter: Segmenter, margin: float = 0.15) -> None:
        self.segmenter = segmenter
        self.margin = margin
        self.token_dim = segmenter.token_dim
        self._boxes: np.ndarray | None = None  # (K, 4) XYXY: where to look on the next frame

    def start(self, image: Image.Image, boxes: np.ndarray | None, points: np.ndarray | None) -> TrackedObjects:
        check_prompts(boxes, points, (image.height, image.width))
        if boxes is not None:
            return self._decode(image, boxes=np.asarray(boxes, np.float32).reshape(-1, 4))
        return self._decode(image, points=np.asarray(points, np.float32).reshape(-1, 2))

    def step(self, image: Image.Image) -> TrackedObjects:
        if self._boxes is None:
            raise ValueError("call start() on the prompt frame before step()")
        return self._decode(image, boxes=grow_boxes(self._boxes, self.margin, (image.height, image.width)))

    @torch.inference_mode()
    def _decode(self, image: Image.Image, boxes: np.ndarray | None = None, points: np.ndarray | None = None) -> TrackedObjects:
        state = self.segmenter.encode_image(image)
        seg = self.segmenter.decode_prompts(
            state, boxes=None if boxes is None else torch.from_numpy(boxes),
            points=None if points is None else torch.from_numpy(points)[:, None, :], masks="low_res")
        masks = LowResMasks(seg.low_res_masks, seg.mask_frame)
        mask_boxes = masks.boxes()  # (K, 4) tight XYXY, zeros when empty
        present = (mask_boxes[:, 2] > mask_boxes[:, 0]) & (mask_boxes[:, 3] > mask_boxes[:, 1])
        # where to look next when the mask is empty: the last box, else the prompt (a point: a small box around it)
        previous = boxes if boxes is not None else np.concatenate([points - 4, points + 4], axis=1)
        if self._boxes is not None:
            previous = self._boxes
        self._boxes = np.where(present[:, None], mask_boxes, previous).astype(np.float32)
        return TrackedObjects(seg.tokens.float().cpu(), masks, mask_boxes.astype(np.float32), present,
                              seg.iou.float().cpu().numpy())

    def snapshot(self) -> dict | None:
        return None if self._boxes is None else {"boxes": self._boxes.round(3).tolist()}

    def restore(self, snapshot: dict) -> None:
        self._boxes = np.asarray(snapshot["boxes"], np.float32).reshape(-1, 4)
