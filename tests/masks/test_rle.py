"""The RLE codec: COCO's compressed RLE, from whole masks or from a crop, identical to pycocotools'."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from regionspot.errors import PromptError
from regionspot.masks.rle import crop_runs, encode_rle, encode_rle_crop, mask_runs, masks_to_rle, runs_to_rle


def test_encode_rle_matches_pycocotools():
    import pycocotools.mask as mask_utils

    rng = np.random.default_rng(0)
    cases = [np.zeros((5, 7), bool), np.ones((6, 3), bool)]
    cases += [rng.random((int(h), int(w))) < rng.random() for h, w in rng.integers(1, 70, (40, 2))]
    for m in cases:
        ref = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        ours = encode_rle(m)
        assert ours["counts"] == ref["counts"].decode() and ours["size"] == list(ref["size"])


def test_rle_of_a_crop_is_the_rle_of_the_whole_mask():
    import pycocotools.mask as mask_utils

    rng = np.random.default_rng(1)
    for _ in range(300):
        height, width = (int(v) for v in rng.integers(1, 40, 2))
        mask = np.zeros((height, width), bool)
        y0, x0 = rng.integers(0, height), rng.integers(0, width)
        y1, x1 = rng.integers(y0 + 1, height + 1), rng.integers(x0 + 1, width + 1)
        mask[y0:y1, x0:x1] = rng.random((y1 - y0, x1 - x0)) < rng.random()
        ref = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()
        # the tight box, and any window around it (edges of the image included)
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        top, bottom = (rows[0], rows[-1] + 1) if len(rows) else (0, 0)
        left, right = (cols[0], cols[-1] + 1) if len(cols) else (0, 0)
        windows = [(top, bottom, left, right), (0, height, 0, width), (max(0, top - 1), bottom, left, min(width, right + 2))]
        whole = mask_runs(torch.from_numpy(mask)[None])[0]
        for y0, y1, x0, x1 in windows:
            out = encode_rle_crop(mask[y0:y1, x0:x1], (y0, x0), (height, width))
            assert out == {"size": [height, width], "counts": ref}
            np.testing.assert_array_equal(crop_runs(mask[y0:y1, x0:x1], (y0, x0), (height, width)), whole)
    with pytest.raises(PromptError, match="does not fit"):
        encode_rle_crop(np.ones((3, 3), bool), (8, 0), (10, 10))


def test_masks_to_rle_of_a_batch_matches_pycocotools_mask_by_mask():
    import pycocotools.mask as mask_utils

    rng = np.random.default_rng(1)
    masks = rng.random((9, 37, 23)) < rng.random((9, 1, 1))  # densities from empty-ish to full-ish
    masks[0], masks[1] = False, True
    masks[2, 0, 0], masks[3, -1, -1] = True, True  # a run of ones first / last
    masks[4, :, 5:9] = True  # a rectangle: long runs, multi-group deltas
    rles = masks_to_rle(torch.from_numpy(masks))
    for mask, rle in zip(masks, rles):
        ref = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert rle["counts"] == ref["counts"].decode() and rle["size"] == [37, 23]
    runs = mask_runs(torch.from_numpy(masks))
    assert all(r.sum() == 37 * 23 for r in runs) and runs[1][0] == 0
    assert runs_to_rle(runs, (37, 23)) == rles
    assert masks_to_rle(torch.zeros(0, 5, 5, dtype=torch.bool)) == []
    for shape in ((3, 1, 7), (3, 7, 1), (2, 1, 1)):  # one row / one column: only one kind of run start
        thin = rng.random(shape) < 0.5
        assert [r["counts"] for r in masks_to_rle(torch.from_numpy(thin))] == [
            mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))["counts"].decode() for m in thin]
    big = np.zeros((2, 300, 700), bool)
    big[0, 10:290, 3:690] = True  # runs of ~280 and deltas that need three 5-bit groups
    assert [r["counts"] for r in masks_to_rle(torch.from_numpy(big))] == [
        mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))["counts"].decode() for m in big]
