"""The numpy preprocessing (data/pixels.py) is what the torch path computes, bit for bit where both are numpy-fed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from regionspot.backbones.clip_inputs import preprocess_images
from regionspot.backbones.sam_inputs import SamPreprocess, normalize_sam_pixels, prepare_sam_input
from regionspot.data import pixels


@pytest.fixture()
def image():
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (77, 130, 3), dtype=np.uint8))


def test_sam_pixels_are_the_torch_paths_bit_for_bit(image):
    pre = SamPreprocess(longest_edge=96, pad_size=96)
    batch = prepare_sam_input(image, pre)
    array, reshaped = pixels.sam_resize_pad(image, 96, 96, pre.resample)
    assert reshaped == tuple(batch.reshaped_sizes[0]) == pixels.resized_shape(77, 130, 96)
    np.testing.assert_array_equal(array, batch.pixels[0].numpy())
    expected = normalize_sam_pixels(batch.pixels, batch.reshaped_sizes, pre).numpy()
    ours = pixels.normalize_sam_array(array[None], [reshaped], pre.rescale_factor, pre.mean, pre.std)
    assert ours.dtype == np.float32 and np.array_equal(ours, expected)


def test_clip_pixels_are_the_torch_paths_bit_for_bit(image):
    mean, std = (0.48, 0.45, 0.40), (0.26, 0.26, 0.27)
    expected = preprocess_images([image], 48, mean, std, resample=3).numpy()
    ours = pixels.normalize_array(pixels.clip_resize_pil(image, 48, 3), mean, std)[None]
    assert np.array_equal(ours, expected)


@pytest.mark.parametrize("size", [(224, 224), (31, 517), (64, 64)])
def test_bilinear_resize_matches_torch_within_float32_rounding(image, size):
    source = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255
    expected = F.interpolate(torch.from_numpy(source)[None], size, mode="bilinear", align_corners=False)[0].numpy()
    # measured up to 5.9e-6 on values in [0, 1]: torch rounds its source coordinates and mixes with fused multiply-adds
    np.testing.assert_allclose(pixels.bilinear_resize(source, size), expected, rtol=0, atol=1e-5)
