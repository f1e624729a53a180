"""LowResMasks: the segmenter's low-resolution logits, made into full-size masks one region at a time, must
give exactly the masks of the segmenter's own full-size path (embedded ShapesWorld model); with the numpy
kernel (the ONNX backends'), exactly the torch-free runtime's masks, and torch's up to rounding at logit 0."""

import numpy as np
import pytest
import torch

from regionspot.inference.predictor import RegionSpotPredictor
from regionspot.masks.base import DenseMasks, as_region_masks, mask_to_box
from regionspot.masks.lowres import LowResMasks, concat_masks
from regionspot.masks.resize import resize_masks, upsample_mask_logits
from regionspot.masks.rle import encode_rle, mask_runs
from regionspot.runtime.postprocess import upsample_mask_logits as numpy_upsample_mask_logits


@pytest.mark.parametrize("size", [(1000, 1333), (301, 517), (30, 41)])  # large (window replica), odd, tiny
def test_low_res_masks_are_exactly_the_segmenters_full_size_masks(model, example, size, random_boxes):
    height, width = size
    segmenter = model.segmenter
    state = segmenter.encode_image(example.resize((width, height)))
    boxes = random_boxes(height, width, 10, seed=height)
    for mask_size, nearest in [(None, None), ((height // 2 + 1, width // 3 + 2), (height, width))]:
        dense = segmenter.decode_prompts(state, boxes=boxes, mask_size=mask_size).masks
        if nearest is not None:  # the released evaluation's mask return
            dense = resize_masks(dense, *nearest, align="corner")
        dense = dense.numpy()
        out = segmenter.decode_prompts(state, boxes=boxes, mask_size=mask_size, masks="low_res")
        assert out.masks is None and out.low_res_masks.shape == (10, 64, 64)  # the tiny SAM's 256² input / 4
        lazy = LowResMasks(out.low_res_masks, out.mask_frame, nearest_size=nearest)
        assert lazy.shape == dense.shape and dense.any(axis=(1, 2)).sum() >= 2  # not all empty
        assert np.array_equal(lazy.numpy(), dense)  # every pixel
        assert [lazy.to_rle(i) for i in range(10)] == [encode_rle(m) for m in dense]
        assert np.array_equal(lazy.boxes(), mask_to_box(dense))
        for i in range(10):
            crop, (top, left) = lazy.crop(i)
            assert np.array_equal(crop, dense[i, top : top + crop.shape[0], left : left + crop.shape[1]])
            assert crop.sum() == dense[i].sum()  # the crop holds all of the region
        runs = mask_runs(torch.from_numpy(dense))
        assert all(np.array_equal(lazy.runs(i), runs[i]) for i in range(10))


# Where the numpy kernel's pixels may differ from torch's: a full-size logit this close to 0. Both kernels
# compute the same bilinear mix in float32, rounded differently (torch fuses multiply-adds, numpy rounds each
# product): measured up to 2.1e-5 apart on logits of magnitude up to ~19 (images 30×41 to 2000×3000, no
# pixel differed), so a pixel may flip only where its logit is within float32 rounding of the threshold.
NUMPY_KERNEL_MARGIN = 1e-4


@pytest.mark.parametrize("size", [(1000, 1333), (301, 517), (30, 41)])
def test_numpy_kernel_gives_the_runtimes_masks_and_torchs_up_to_rounding(model, example, size, random_boxes):
    height, width = size
    state = model.segmenter.encode_image(example.resize((width, height)))
    out = model.segmenter.decode_prompts(state, boxes=random_boxes(height, width, 10, seed=height + 1), masks="low_res")
    frame = out.mask_frame
    runtime = numpy_upsample_mask_logits(out.low_res_masks.numpy(), frame.pad_size, frame.reshaped_size, frame.size) > 0
    lazy = LowResMasks(out.low_res_masks, frame, kernel="numpy")
    assert runtime.any(axis=(1, 2)).sum() >= 2  # not all empty
    assert np.array_equal(lazy.numpy(), runtime)  # the ONNX runtime's own masks, every pixel
    assert [lazy.to_rle(i) for i in range(10)] == [encode_rle(m) for m in runtime]
    assert np.array_equal(lazy.boxes(), mask_to_box(runtime))
    for i in range(10):
        crop, (top, left) = lazy.crop(i)
        assert crop.sum() == runtime[i].sum()
        assert np.array_equal(crop, runtime[i, top : top + crop.shape[0], left : left + crop.shape[1]])
    torch_logits = upsample_mask_logits(out.low_res_masks, frame).numpy()
    differ = lazy.numpy() != (torch_logits > 0)
    assert np.all(np.abs(torch_logits[differ]) < NUMPY_KERNEL_MARGIN), "a pixel differs away from logit 0"
    nearest = (height // 2 + 1, width // 3 + 2)  # the legacy nearest resize after it, as with the torch kernel
    shrunk = LowResMasks(out.low_res_masks, frame, nearest_size=nearest, kernel="numpy")
    assert np.array_equal(shrunk.numpy(), resize_masks(runtime, *nearest, align="corner"))
    assert shrunk[[1, 2]].kernel == "numpy" and concat_masks(lazy, lazy[:2]).kernel == "numpy"


def test_one_region_at_a_time_and_array_like_access(model, example, random_boxes):
    state = model.segmenter.encode_image(example)
    out = model.segmenter.decode_prompts(state, boxes=random_boxes(256, 256, 6, seed=1), masks="low_res")
    logits = out.low_res_masks.clone()
    logits[3] = -10.0  # an empty region
    lazy = LowResMasks(logits, out.mask_frame)
    dense = lazy.numpy()
    assert lazy.dtype == bool and len(lazy) == 6 and np.asarray(lazy).shape == (6, 256, 256)
    assert np.array_equal(lazy[-1], dense[5]) and np.array_equal(lazy[2], dense[2])
    assert [m.sum() for m in lazy] == [m.sum() for m in dense]
    assert np.array_equal(np.asarray(lazy[1:3]), dense[1:3]) and isinstance(lazy[[0, 4]], LowResMasks)
    assert np.array_equal(np.asarray(lazy[np.array([True, False, False, False, False, True])]), dense[[0, 5]])
    crop, offset = lazy.crop(3)
    assert crop.shape == (0, 0) and lazy.bbox(3) is None and not lazy[3].any()
    assert lazy.to_rle(3) == encode_rle(np.zeros((256, 256), bool))
    assert np.array_equal(lazy.window(0, 10, 200, 5, 100), dense[0, 10:200, 5:100])
    with pytest.raises(IndexError):
        lazy[6]
    wrapped = as_region_masks(dense)
    assert isinstance(wrapped, DenseMasks) and wrapped.bbox(0) == lazy.bbox(0) and as_region_masks(lazy) is lazy


def test_concatenation_stays_low_res_in_one_frame(model, example, random_boxes):
    state = model.segmenter.encode_image(example)
    first = model.segmenter.decode_prompts(state, boxes=random_boxes(256, 256, 2, seed=2), masks="low_res")
    second = model.segmenter.decode_prompts(state, points=torch.tensor([[[60.0, 120.0]]]), masks="low_res")
    a, b = LowResMasks(first.low_res_masks, first.mask_frame), LowResMasks(second.low_res_masks, second.mask_frame)
    both = concat_masks(a, b)
    assert isinstance(both, LowResMasks) and len(both) == 3
    assert np.array_equal(np.asarray(both), np.concatenate([np.asarray(a), np.asarray(b)]))
    mixed = concat_masks(a, np.asarray(b))
    assert isinstance(mixed, DenseMasks) and np.array_equal(np.asarray(mixed), np.asarray(both))
    assert concat_masks(a, None) is None


def test_predictor_keeps_masks_low_res_until_asked(model, example, tmp_path, random_boxes):
    """Memory by design: a result holds N low-res logit grids, not N full-size masks."""
    predictor = RegionSpotPredictor(model, text_cache_dir=str(tmp_path))
    predictor.set_image(example.resize((1500, 1200)))
    predictor.set_vocabulary(["red circle", "blue square"])
    result = predictor.predict(boxes=random_boxes(1200, 1500, 40, seed=3).numpy())
    assert isinstance(result.masks, LowResMasks) and result.masks.shape == (40, 1200, 1500)
    assert result.masks.logits.shape == (40, 64, 64) and result.masks.logits.dtype == np.float32
    points = predictor.predict(points=[[300.0, 500.0], [900.0, 700.0]])
    assert np.array_equal(points.boxes, mask_to_box(np.asarray(points.masks)))  # point regions: the masks' boxes
    coco = result.to_coco_json(top_k=1)
    dense = np.asarray(result.masks)
    assert [entry["segmentation"] for entry in coco] == [encode_rle(m) for m in dense]
