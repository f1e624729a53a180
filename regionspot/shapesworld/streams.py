"""Every random stream of ShapesWorld, in one table.

A stream is ``numpy.random.default_rng([seed, stream_id, *more])``: the seed says which world or run,
the stream id says what the numbers are for, and ``more`` is usually the image index. Images drawn for
different purposes (the dataset's splits, the CLIP and SAM pre-training pools, held-out sets, the
example) must never coincide even when two seeds are equal (the dataset seed and a pre-training seed are
both user-chosen), so every purpose owns a distinct id here. The values are historical: changing one
changes every image or batch drawn from it.

Seeds used directly (not streams): ``torch.manual_seed`` / ``torch.Generator`` for CLIP's init and
augmentation and ``sam_style_init_`` for SAM's init take the pre-training seed; the SAM mIoU point
picks use ``default_rng(seed)`` with its own ``seed`` argument.
"""

from __future__ import annotations

import numpy as np

TRAIN_SPLIT = 0  # dataset images of the train split, [seed, 0, index]
VAL_SPLIT = 1  # dataset images of the val split, [seed, 1, index]
CATEGORY_BUCKETS = 7919  # the f / c / r permutation of the categories, [seed, 7919]
CLIP_CROPS = 71  # CLIP pre-training object-crop pool
CLIP_SCENES = 72  # CLIP pre-training single-object scene pool
CLIP_HELDOUT_CROPS = 73  # CLIP zero-shot test crops
CLIP_HELDOUT_SCENES = 74  # CLIP zero-shot test scenes
EXAMPLE_CANDIDATES = 75  # candidate images for the shipped example
SAM_POOL = 81  # SAM pre-training image pool
SAM_HELDOUT = 83  # SAM mIoU test images (when no val split is given)
SAM_BATCHES = 5  # SAM pre-training batch and prompt sampling, [seed, 5]
CLIP_BATCHES = 99  # CLIP pre-training batch and caption sampling, [seed, 99]
VIDEO_MOTION = 24  # a video clip's objects, start positions and velocities, [seed, 24]
VIDEO_OBJECT_PAINT = 7  # a video clip's object k painted, [seed, 7, k]
VIDEO_NOISE = 11  # a video clip's per-frame sensor noise, [seed, 11, frame]

STREAMS: dict[str, int] = {
    "TRAIN_SPLIT": TRAIN_SPLIT,
    "VAL_SPLIT": VAL_SPLIT,
    "CATEGORY_BUCKETS": CATEGORY_BUCKETS,
    "CLIP_CROPS": CLIP_CROPS,
    "CLIP_SCENES": CLIP_SCENES,
    "CLIP_HELDOUT_CROPS": CLIP_HELDOUT_CROPS,
    "CLIP_HELDOUT_SCENES": CLIP_HELDOUT_SCENES,
    "EXAMPLE_CANDIDATES": EXAMPLE_CANDIDATES,
    "SAM_POOL": SAM_POOL,
    "SAM_HELDOUT": SAM_HELDOUT,
    "SAM_BATCHES": SAM_BATCHES,
    "CLIP_BATCHES": CLIP_BATCHES,
    "VIDEO_MOTION": VIDEO_MOTION,
    "VIDEO_OBJECT_PAINT": VIDEO_OBJECT_PAINT,
    "VIDEO_NOISE": VIDEO_NOISE,
}

SPLIT_STREAMS: dict[str, int] = {"train": TRAIN_SPLIT, "val": VAL_SPLIT}


def stream_rng(seed: int, stream: int, *index: int) -> np.random.Generator:
    """The generator of ``stream`` (an id from this table) under ``seed``, optionally per ``index``."""
    return np.random.default_rng([seed, stream, *index])
