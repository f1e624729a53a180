import numpy as np
import pytest
import torch
from PIL import Image

from regionspot.evaluation.baselines import (
    baseline_logits,
    crop_box,
    crop_logits,
    mean_fill_colour,
    region_crops,
)


@pytest.fixture(scope="module")
def vl(tiny_clip_dir):
    from regionspot.backbones.vision_language import load_vision_language

    return load_vision_language(str(tiny_clip_dir))


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    return Image.fromarray((rng.random((48, 64, 3)) * 255).astype(np.uint8))


@pytest.fixture(scope="module")
def text(vl):
    torch.manual_seed(1)
    return torch.nn.functional.normalize(torch.randn(5, vl.embed_dim), dim=-1)


BOXES = np.asarray([[4.2, 6.0, 40.0, 30.7], [20, 20, 60, 60], [-5, -3, 10, 10]], np.float32)


def test_box_crops_are_plain_crops_rounded_outwards_and_clipped(image):
    crops = region_crops(image, BOXES)
    assert [c.size for c in crops] == [(36, 25), (40, 28), (10, 10)]  # (w, h); box 2 and 3 clipped
    np.testing.assert_array_equal(np.asarray(crops[0]), np.asarray(image)[6:31, 4:40])
    # A degenerate box still gives a 1×1 crop instead of an error.
    assert crop_box(image, [10, 10, 10, 10]).size == (1, 1)


def test_mask_crops_blank_outside_the_mask_with_the_mean_colour(image, vl):
    fill = mean_fill_colour(vl)
    assert fill == (123, 117, 104)  # round(CLIP mean × 255)
    masks = np.zeros((len(BOXES), 48, 64), bool)
    masks[0, 10:20, 10:30] = True
    crops = region_crops(image, BOXES, masks, fill=fill)
    patch = np.asarray(crops[0])
    original = np.asarray(image)[6:31, 4:40]
    inside = masks[0, 6:31, 4:40]
    np.testing.assert_array_equal(patch[inside], original[inside])
    assert (patch[~inside] == np.asarray(fill, np.uint8)).all()
    assert (np.asarray(crops[1]) == np.asarray(fill, np.uint8)).all()  # empty mask: fully blanked
    with pytest.raises(ValueError, match="masks must be"):
        region_crops(image, BOXES, masks[:, :10])


def test_clip_box_logits_are_scaled_cosines_of_the_crops(image, vl, text):
    logits = baseline_logits("clip-box", vl, image, BOXES, text, batch_size=2)
    assert logits.shape == (3, 5) and logits.dtype == torch.float32 and torch.isfinite(logits).all()
    by_hand = vl.encode_image([crop_box(image, b) for b in BOXES]) @ text.T * vl.logit_scale
    torch.testing.assert_close(logits, by_hand, atol=1e-4, rtol=1e-4)
    # Batching the crops does not change the scores.
    torch.testing.assert_close(crop_logits(vl, region_crops(image, BOXES), text, batch_size=64), logits,
                               atol=1e-5, rtol=1e-5)
    assert crop_logits(vl, [], text).shape == (0, 5)


def test_clip_mask_with_full_masks_equals_clip_box_and_needs_masks(image, vl, text):
    boxes = np.asarray([[4, 6, 40, 30], [20, 20, 60, 47]], np.float32)
    full = np.ones((2, 48, 64), bool)
    torch.testing.assert_close(
        baseline_logits("clip-mask", vl, image, boxes, text, masks=full),
        baseline_logits("clip-box", vl, image, boxes, text), atol=1e-5, rtol=1e-5,
    )
    partial = full.copy()
    partial[0, :, :20] = False
    assert not torch.allclose(
        baseline_logits("clip-mask", vl, image, boxes, text, masks=partial)[0],
        baseline_logits("clip-box", vl, image, boxes, text)[0],
    )
    with pytest.raises(ValueError, match="masks"):
        baseline_logits("clip-mask", vl, image, boxes, text)
    with pytest.raises(ValueError, match="unknown baseline"):
        baseline_logits("clip-whole", vl, image, boxes, text)
