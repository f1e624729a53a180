"""Full-size masks in bounded chunks on the logits' device, their crops, and the evaluation's region masks:
the segmenter's own full-size masks (embedded ShapesWorld model)."""

import numpy as np
import pytest
import torch

from regionspot.masks import regions as regions_lib
from regionspot.masks.base import mask_to_box
from regionspot.masks.lowres import LowResMasks
from regionspot.masks.regions import CropMasks, region_masks
from regionspot.masks.resize import resize_masks
from regionspot.masks.rle import encode_rle, mask_runs


@pytest.mark.parametrize("size", [(301, 517), (30, 41)])
def test_full_size_chunks_and_their_crops_are_the_segmenters_full_size_masks(model, example, monkeypatch, size, random_boxes):
    """The device path (a GPU's): full-size masks a few regions at a time, then only each region's crop kept."""
    height, width = size
    segmenter = model.segmenter
    state = segmenter.encode_image(example.resize((width, height)))
    boxes = random_boxes(height, width, 7, seed=width)
    per_region = max(segmenter.preprocess.pad_size**2, height * width)
    monkeypatch.setattr(regions_lib, "MASK_CHUNK_PIXELS", 3 * per_region)  # chunks of 3, 3, 1 regions
    for mask_size, nearest in [(None, None), ((height // 2 + 1, width // 3 + 2), (height, width))]:
        dense = segmenter.decode_prompts(state, boxes=boxes, mask_size=mask_size).masks
        if nearest is not None:
            dense = resize_masks(dense, *nearest, align="corner")
        out = segmenter.decode_prompts(state, boxes=boxes, mask_size=mask_size, masks="low_res")
        chunks = list(regions_lib.full_size_chunks(out.low_res_masks, out.mask_frame, nearest_size=nearest))
        assert [len(c) for c in chunks] == [3, 3, 1] and torch.equal(torch.cat(chunks), dense)
        cropped = CropMasks([c for chunk in chunks for c in CropMasks.cut(chunk)], dense.shape[1:])
        dense = dense.numpy()
        assert cropped.shape == dense.shape and np.array_equal(cropped.numpy(), dense)
        assert [cropped.to_rle(i) for i in range(7)] == [encode_rle(m) for m in dense]
        assert np.array_equal(cropped.boxes(), mask_to_box(dense))
        h, w = dense.shape[1:]
        assert np.array_equal(cropped.window(2, 3, h - 1, 0, w // 2), dense[2, 3 : h - 1, : w // 2])
        assert np.array_equal(np.asarray(cropped[[4, 0]]), dense[[4, 0]])
    empty = CropMasks.cut(torch.zeros(2, 5, 6, dtype=torch.bool))
    assert [c.shape for c, _ in empty] == [(0, 0), (0, 0)] and CropMasks(empty, (5, 6)).bbox(1) is None


def test_region_masks_give_the_same_runs_and_crops_on_both_paths(model, example, monkeypatch, random_boxes):
    """The evaluation's masks: the CPU path (LowResMasks, one region's crop at a time) and the device path
    (full-size chunks, forced here on the CPU in chunks of 2) give the full-size masks' runs and pixels."""
    height, width = 301, 517
    segmenter = model.segmenter
    state = segmenter.encode_image(example.resize((width, height)))
    boxes = random_boxes(height, width, 5, seed=4)
    mask_size = (height // 2 + 1, width // 3 + 2)  # masks at the model's size, then nearest to the original
    dense = resize_masks(segmenter.decode_prompts(state, boxes=boxes, mask_size=mask_size).masks, height, width,
                         align="corner")
    out = segmenter.decode_prompts(state, boxes=boxes, mask_size=mask_size, masks="low_res")
    monkeypatch.setattr(regions_lib, "MASK_CHUNK_PIXELS", 2 * max(segmenter.preprocess.pad_size**2, height * width))
    expected = mask_runs(dense)
    for on_device in (None, True):
        masks, runs = region_masks(out.low_res_masks, out.mask_frame, (height, width), runs=True, crops=True,
                                   on_device=on_device)
        assert isinstance(masks, LowResMasks if on_device is None else CropMasks)
        assert np.array_equal(np.asarray(masks), dense.numpy())
        assert len(runs) == 5 and all(np.array_equal(a, b) for a, b in zip(runs, expected))
        assert region_masks(out.low_res_masks, out.mask_frame, (height, width), runs=False, crops=False,
                            on_device=on_device)[1] is None
    masks, runs = region_masks(out.low_res_masks, out.mask_frame, (height, width), runs=False, crops=False,
                               on_device=True)
    assert masks is None and runs is None
