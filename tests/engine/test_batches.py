"""A step's batch: cached background boxes added as negatives, classes left out of the step's vocabulary."""

from __future__ import annotations

import torch

from regionspot.cache.store import CachedRegions
from regionspot.engine.batches import collate, drop_vocabulary


def _item(n: int, k: int, label0: int = 0) -> CachedRegions:
    return CachedRegions(
        tokens=torch.randn(n, 8).half(), boxes=torch.zeros(n, 4), labels=torch.arange(label0, label0 + n),
        image_index=0, image_id=0, file_name="x.png", width=10, height=10, flip=False,
        negative_tokens=torch.randn(k, 8).half() if k else None, negative_boxes=torch.zeros(k, 4) if k else None)


def test_negatives_follow_the_labelled_regions_with_label_minus_one():
    items = [_item(2, 3), _item(1, 0, label0=4)]
    batch = collate(items, 0, 100, torch.Generator().manual_seed(0), negatives_per_image=None)
    assert batch.labels.tolist() == [[0, 1, -1, -1, -1], [4, 0, 0, 0, 0]]
    assert batch.valid.tolist() == [[True] * 5, [True, False, False, False, False]]
    torch.testing.assert_close(batch.tokens[0, 2:], items[0].negative_tokens.float())
    two = collate(items, 0, 100, torch.Generator().manual_seed(0), negatives_per_image=2)
    assert two.labels[0].tolist() == [0, 1, -1, -1] and two.valid[0].all()
    none = collate(items, 0, 100, torch.Generator().manual_seed(0), negatives_per_image=0)
    assert none.labels.tolist() == [[0, 1], [4, 0]] and none.valid.tolist() == [[True, True], [True, False]]


def test_a_left_out_class_becomes_a_negative_and_the_rest_are_reindexed():
    texts = torch.arange(10.0)[:, None].repeat(1, 3)  # row c holds c
    labels = torch.tensor([[0, 3, 7, -1], [9, 2, 0, 0]])
    kept, remapped, _ = drop_vocabulary(texts, labels, 0.5, torch.Generator().manual_seed(4))
    classes = kept[:, 0].long()
    assert 0 < len(classes) < 10
    for old, new in zip(labels.flatten().tolist(), remapped.flatten().tolist(), strict=True):
        if old >= 0 and old in classes.tolist():
            assert classes[new] == old
        else:
            assert new == -1
    assert (remapped == -1).any() and (remapped >= 0).any()
    # Something is always left to score against.
    kept, _, _ = drop_vocabulary(texts, labels, 0.999999, torch.Generator().manual_seed(0))
    assert len(kept) >= 1
