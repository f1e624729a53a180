"""A training step's batch, drawn from the token cache: the images' regions padded into tensors (labelled
boxes, then the background boxes the cache holds, as negatives), and the step's vocabulary when classes
are left out of it (their regions then become negatives too). Every draw comes from the step's generator
(``step_generator``), so a resumed run repeats them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from regionspot.cache.store import CachedRegions

__all__ = ["Batch", "collate", "drop_vocabulary", "step_generator"]


@dataclass
class Batch:
    """One process's share of a step, all from one dataset.

    tokens: (B, N, token_dim) float32; labels: (B, N) int64 (0 where padded, -1 for a negative: a background
    box, after the image's labelled ones); valid: (B, N) bool (False = padding); feature_map: (B, T, C)
    float32 or None (computed online later).
    """

    dataset_index: int
    tokens: torch.Tensor
    labels: torch.Tensor
    valid: torch.Tensor
    feature_map: torch.Tensor | None
    items: list[CachedRegions] = field(default_factory=list)


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """A generator for one step's augmentation draws, independent of what happened before."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step * 9_973 + rank) % (2**63))


def _subsample(n: int, limit: int, generator: torch.Generator) -> torch.Tensor | None:
    """Sorted indices of ``limit`` of ``n`` items drawn at random, or None (all) when ``n <= limit``."""
    return torch.randperm(n, generator=generator)[:limit].sort().values if n > limit else None


def collate(items: list[CachedRegions], dataset_index: int, max_regions: int, generator: torch.Generator,
            negatives_per_image: int | None = 0) -> Batch:
    """Pad regions to the largest N in the batch, after subsampling each image to ``max_regions`` boxes.

    negatives_per_image: the cached background boxes of each image to add after its labelled ones, with label
    -1, drawn at random when it holds more (None: all it holds; 0: none). Draws are made only for images
    that hold more boxes than their limit, so a cache without negatives gives the batches it always gave.
    """
    rows = []
    for item in items:
        idx = _subsample(item.tokens.shape[0], max_regions, generator)
        tok, lab = (item.tokens, item.labels) if idx is None else (item.tokens[idx], item.labels[idx])
        if item.negative_tokens is not None and negatives_per_image != 0:
            k = item.negative_tokens.shape[0]
            neg = _subsample(k, k if negatives_per_image is None else negatives_per_image, generator)
            neg_tok = item.negative_tokens if neg is None else item.negative_tokens[neg]
            tok = torch.cat([tok, neg_tok])
            lab = torch.cat([lab, torch.full((neg_tok.shape[0],), -1, dtype=lab.dtype)])
        rows.append((tok, lab))
    b, n_max = len(items), max(len(lab) for _, lab in rows)
    dim = items[0].tokens.shape[1]
    tokens = torch.zeros(b, n_max, dim)
    labels = torch.zeros(b, n_max, dtype=torch.long)
    valid = torch.zeros(b, n_max, dtype=torch.bool)
    for row, (tok, lab) in enumerate(rows):
        n = len(lab)
        tokens[row, :n] = tok.float()
        labels[row, :n] = lab
        valid[row, :n] = True
    maps = None
    if all(it.feature_map is not None for it in items):
        maps = torch.stack([it.feature_map.float() for it in items])  # (B, T, C)
    return Batch(dataset_index, tokens, labels, valid, maps, items)


def drop_vocabulary(texts: torch.Tensor, labels: torch.Tensor, drop: float, generator: torch.Generator,
                    observe: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None,
                    ) -> tuple[torch.Tensor, torch.Tensor, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None] | None]:
    """One step's vocabulary: each class left out with chance ``drop`` (at least one kept).

    texts: (V, D) the dataset's text embeddings; labels: (B, N) class indices into them (-1: a negative).
    Returns the kept rows (V', D), the labels as indices into them (-1 for a left-out class: a negative with
    all-zero targets) and ``observe`` wrapped to see logits over the whole vocabulary (left-out classes at
    -inf) and the original labels, so the collapse check counts classes as before.
    """
    keep = torch.rand(texts.shape[0], generator=generator) >= drop
    if not keep.any():
        keep[torch.randint(texts.shape[0], (1,), generator=generator)] = True
    position = torch.full((texts.shape[0],), -1, dtype=torch.long)
    position[keep] = torch.arange(int(keep.sum()))
    remapped = torch.where(labels >= 0, position[labels.clamp(min=0)], labels)
    wrapped = None
    if observe is not None:
        def wrapped(logits: torch.Tensor, _labels: torch.Tensor, known: torch.Tensor) -> None:
            full = logits.new_full((*logits.shape[:-1], texts.shape[0]), float("-inf"))
            full[..., keep.to(logits.device)] = logits
            observe(full, labels.to(logits.device), known)
    return texts[keep.to(texts.device)], remapped, wrapped
