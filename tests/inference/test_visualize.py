import numpy as np
from PIL import Image

from regionspot.inference.results import RegionResult
from regionspot.inference.visualize import class_colour, draw_result, font_size, mask_outline, place_label


def _result(boxes, masks=None, scores=None, confidence=None, labels=None, points=None, size=(200, 300)):
    n = len(boxes)
    labels = [f"thing {i}" for i in range(n)] if labels is None else labels
    scores = np.full(n, 0.04, np.float32) if scores is None else np.asarray(scores, np.float32)
    return RegionResult(
        boxes=np.asarray(boxes, np.float32), labels=labels,
        class_ids=np.arange(n), scores=scores, probs=np.zeros((n, n), np.float32),
        topk_ids=np.arange(n)[:, None], topk_scores=scores[:, None], iou=np.ones(n, np.float32),
        vocabulary=list(labels), image_size=size, masks=masks, confidence=confidence, points=points,
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
    from regionspot.masks.base import DenseMasks

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


def _overlap(a, b):
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def test_tags_never_cover_each_other_in_a_crowd():
    rng = np.random.default_rng(1)
    corners = rng.uniform(100, 150, (25, 2))  # 25 small regions piled up near the centre of a 300 x 200 image
    boxes = np.concatenate([corners, corners + rng.uniform(5, 20, (25, 2))], 1).tolist()
    placed = []
    for box in boxes:
        rect = place_label(box, (46, 14), (300, 200), boxes, placed)
        assert 0 <= rect[0] and rect[2] <= 300 and 0 <= rect[1] and rect[3] <= 200, rect  # within the image
        placed.append(rect)
    clashes = [(a, b) for i, a in enumerate(placed) for b in placed[i + 1:] if _overlap(a, b) > 0]
    assert not clashes, clashes[:3]
    # the first tags still sit right beside their boxes
    assert placed[0][3] == boxes[0][1] or placed[0][1] == boxes[0][3] or placed[0][0] == boxes[0][2]


def test_tags_in_a_drawn_crowd_do_not_overlap_either():
    image = Image.new("RGB", (300, 200), (128, 128, 128))
    boxes = [(120 + 3 * i, 80 + 2 * i, 140 + 3 * i, 100 + 2 * i) for i in range(12)]
    colours = {class_colour(f"thing {i}") for i in range(12)}
    picture = np.asarray(draw_result(image, _result(boxes, confidence=np.linspace(0.9, 0.3, 12))))
    # every tag is drawn in full: each class colour fills a tag-sized patch somewhere
    for colour in colours:
        assert (picture.reshape(-1, 3) == colour).all(-1).sum() >= 100, colour


def test_a_class_keeps_its_colour_whatever_its_position():
    assert class_colour("red circle") == class_colour("red circle") != class_colour("blue square")
    # md5 of the name, not Python's per-process salted hash: a fixed value across runs
    assert class_colour("cat") == (186, 14, 208)
    image = Image.new("RGB", (300, 200), (0, 0, 0))
    first = np.asarray(draw_result(image, _result([(10, 10, 60, 60), (200, 100, 250, 150)], labels=["cat", "dog"])))
    second = np.asarray(draw_result(image, _result([(200, 100, 250, 150), (10, 10, 60, 60)], labels=["dog", "cat"])))
    assert tuple(first[35, 10]) == tuple(second[35, 10]) == class_colour("cat")  # the cat box's left edge
    assert tuple(first[125, 200]) == tuple(second[125, 200]) == class_colour("dog")


def test_text_grows_with_the_image():
    assert font_size(256, 256) < font_size(1024, 768) < font_size(4000, 3000)
    assert font_size(32, 32) >= 11 and font_size(40000, 30000) <= 120  # readable, never a banner

    def tag_height(width, height):
        image = Image.new("RGB", (width, height), (0, 0, 0))
        box = (width / 2, height / 2, width / 2 + 4, height / 2 + 4)  # a tiny box: the tag is the widest thing
        picture = np.asarray(draw_result(image, _result([box], labels=["cat"], size=(height, width))))
        rows = (picture == class_colour("cat")).all(-1).sum(1)
        return int((rows > 6).sum())  # the box adds at most 5 pixels a row

    assert tag_height(1600, 1200) > 3 * tag_height(320, 240) > 3 * 12


def test_prompt_points_are_drawn():
    image = Image.new("RGB", (300, 200), (128, 128, 128))
    boxes = [(100, 50, 200, 150)]
    points = np.array([[[150.0, 100.0]]], np.float32)  # (N, P, 2) xy
    plain = np.asarray(draw_result(image, _result(boxes, labels=["cat"])))
    with_points = np.asarray(draw_result(image, _result(boxes, labels=["cat"], points=points)))
    assert (plain[100, 150] == 128).all() and (with_points[100, 150] != plain[100, 150]).any()
    assert np.array_equal(with_points[:40], plain[:40])  # and only there (the tag sits above the box)


def test_an_unknown_region_is_grey_dashed_and_names_its_best_class():
    image = Image.new("RGB", (300, 200), (255, 255, 255))
    result = _result([[20, 20, 120, 120], [160, 40, 280, 160]], labels=["red circle", "blue star"])
    known_colour = class_colour("blue star")
    result.known = np.array([True, False])
    drawn = np.asarray(draw_result(image, result))
    edges = [drawn[60:141, x] for x in (159, 160, 161, 279, 280, 281)]  # the unknown box's sides, clear of its tag
    grey = max(((edge == (150, 150, 150)).all(-1) for edge in edges), key=lambda g: g.mean())
    assert 0.2 < grey.mean() < 0.8  # dashes of grey with gaps
    assert not (drawn == known_colour).all(-1).any()  # the rejected class's colour is not used
    result.known = None
    assert (np.asarray(draw_result(image, result)) == known_colour).all(-1).any()
