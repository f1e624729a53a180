import numpy as np
from PIL import Image

from regionspot.inference.results import RegionResult
from regionspot.inference.visualize import draw_result, mask_outline, place_label


def _result(boxes, masks=None, scores=None, confidence=None):
    n = len(boxes)
    scores = np.full(n, 0.04, np.float32) if scores is None else np.asarray(scores, np.float32)
    return RegionResult(
        boxes=np.asarray(boxes, np.float32), labels=[f"thing {i}" for i in range(n)],
        class_ids=np.arange(n), scores=scores, probs=np.zeros((n, n), np.float32),
        topk_ids=np.arange(n)[:, None], topk_scores=scores[:, None], iou=np.ones(n, np.float32),
        vocabulary=[f"thing {i}" for i in range(n)], image_size=(200, 300), masks=masks, confidence=confidence,
    )


def test_label_goes_beside_the_box_and_avoids_other_regions():
    boxes = [(100.0, 60.0, 160.0, 120.0), (100.0, 20.0, 160.0, 58.0)]  # a second region right above the first
    rect = place_label(boxes[0], (50, 14), (300, 200), boxes)
    assert all(
        min(rect[2], b[2]) - max(rect[0], b[0]) <= 0 or min(rect[3], b[3]) - max(rect[1], b[1]) <= 0 for b in boxes
    ), rect
    assert rect[1] >= 120.0  # above is taken by the other region, so below
    # A box touching the top edge still gets its tag outside it (below).
    assert place_label((10.0, 0.0, 80.0, 40.0), (40, 12), (300, 200), [(10.0, 0.0, 80.0, 40.0)])[1] >= 40.0


def testmask_outline_is_the_border_of_the_mask():
    mask = np.zeros((20, 20), bool)
    mask[5:15, 5:15] = True
    ring = mask_outline(mask, 1)
    assert ring[5, 5] and ring[5, 10] and ring[14, 14] and not ring[10, 10] and not ring[0, 0]
    assert ring.sum() == 100 - 64


def test_drawing_tints_lightly_and_shows_the_calibrated_confidence():
    image = Image.new("RGB", (300, 200), (128, 128, 128))
    masks = np.zeros((1, 200, 300), bool)
    masks[0, 80:120, 120:180] = True
    picture = np.asarray(draw_result(image, _result([(110, 70, 190, 130)], masks, confidence=[0.93])))
    inside = picture[100, 150].astype(int)
    assert np.abs(inside - 128).max() <= 0.3 * 255  # a light tint: the object stays visible
    assert np.abs(picture[80, 150].astype(int) - 128).max() > 60  # a solid outline on the mask border
    assert (picture[100:110, 140:160] == picture[100, 150]).all()  # no tag drawn over the object
    calibrated = _result([(110, 70, 190, 130)], confidence=[0.93])
    assert calibrated.display_scores[0] == np.float32(0.93) and calibrated.to_dict()["regions"][0]["confidence"] == 0.93
    assert _result([(1, 1, 5, 5)]).display_scores[0] == np.float32(0.04)


def test_masks_are_drawn_one_bounding_box_crop_at_a_time():
    from regionspot.inference.masks import DenseMasks

    class CropOnly(DenseMasks):
        """Refuses anything that would build a full-size mask."""

        def mask(self, i):
            raise AssertionError("a full-size mask was built")

        def numpy(self):
            raise AssertionError("all masks were built")

    image = Image.fromarray((np.random.default_rng(0).random((200, 300, 3)) * 255).astype(np.uint8))
    masks = np.zeros((3, 200, 300), bool)
    masks[0, 80:120, 120:180] = True
    masks[1, 100:190, 150:290] = True  # overlaps the first
    masks[1, 150:160, 200:210] = False  # with a hole
    boxes = [(110, 70, 190, 130), (140, 90, 295, 195), (5, 5, 40, 40)]  # the third region's mask is empty
    lazy = draw_result(image, _result(boxes, CropOnly(masks)))
    dense = draw_result(image, _result(boxes, masks))
    assert np.array_equal(np.asarray(lazy), np.asarray(dense))
    assert np.array_equal(np.asarray(lazy)[20:30, 10:30], np.asarray(image)[20:30, 10:30])  # untouched


def test_outline_is_every_mask_pixel_within_width_of_the_background():
    rng = np.random.default_rng(3)
    for _ in range(30):
        mask = np.zeros((25, 31), bool)
        mask[3:22, 2:29] = rng.random((19, 27)) < 0.93  # a blob with holes, touching nothing
        mask[rng.integers(0, 25), :] = True  # and a stripe reaching the image's edges
        for width in (1, 3, 8):
            expected = np.zeros_like(mask)
            for y, x in zip(*np.nonzero(mask)):
                window = mask[max(0, y - width) : y + width + 1, max(0, x - width) : x + width + 1]
                expected[y, x] = window.shape != (2 * width + 1, 2 * width + 1) or not window.all()
            assert np.array_equal(mask_outline(mask, width), expected)
