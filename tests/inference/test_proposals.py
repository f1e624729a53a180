import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from regionspot.backbones.base import SegmenterImageState, SegmenterOutput
from regionspot.backbones.segmenter import load_segmenter, stability_score
from regionspot.data.transforms import box_iou
from regionspot.errors import PromptError
from regionspot.inference.proposals import ProposalOptions, crop_boxes, nms, point_grid, propose_regions

BACKGROUND = (0, 0, 0)


class ColourSegmenter:
    """A stand-in SAM that segments by colour: a point gets every pixel of the colour under it (the
    background's mask is the whole frame), a box the pixels of the commonest non-background colour inside
    it. Crops are encoded as their own images, as with the real segmenter."""

    model_id, token_dim = "colour", 4

    def __init__(self) -> None:
        self.encoded: list[tuple[int, int]] = []

    def encode_image(self, image):
        pixels = np.asarray(image.convert("RGB"))
        self.encoded.append(image.size)
        return SegmenterImageState(torch.zeros(1), pixels.shape[:2], pixels.shape[:2], {"pixels": pixels})

    def decode_prompts(self, state, boxes=None, points=None, point_labels=None, masks="full", chunk_size=16,
                       mask_size=None, stability_offset=None):
        pixels = state.extra["pixels"]
        colours = pixels.reshape(-1, 3)
        masks = []
        for i in range(len(boxes) if boxes is not None else len(points)):
            if boxes is not None:
                x1, y1, x2, y2 = (int(round(float(v))) for v in boxes[i])
                inside = colours.reshape(pixels.shape)[y1:y2, x1:x2].reshape(-1, 3)
                inside = inside[(inside != BACKGROUND).any(-1)]
                if len(inside) == 0:
                    masks.append(np.zeros(pixels.shape[:2], bool))
                    continue
                values, counts = np.unique(inside, axis=0, return_counts=True)
                colour = values[counts.argmax()]
            else:
                x, y = (int(v) for v in points[i, 0])
                colour = pixels[min(y, pixels.shape[0] - 1), min(x, pixels.shape[1] - 1)]
            masks.append((pixels == colour).all(-1))
        masks_t = torch.from_numpy(np.stack(masks))
        n = len(masks_t)
        iou = torch.full((n,), 0.9)
        return SegmenterOutput(torch.zeros(n, 4), iou, masks_t, torch.full((n,), 0.95) if stability_offset else None)


def scene() -> tuple[Image.Image, list[list[float]]]:
    """A 96×128 image with a large and two small rectangles; returns it and their XYXY boxes."""
    pixels = np.zeros((96, 128, 3), np.uint8)
    boxes = [[10, 10, 60, 50], [97, 72, 103, 78], [65, 19, 71, 25]]  # the small two fall between grid points
    for colour, (x1, y1, x2, y2) in zip([(255, 0, 0), (0, 255, 0), (0, 0, 255)], boxes):
        pixels[y1:y2, x1:x2] = colour
    return Image.fromarray(pixels), boxes


def test_every_object_found_once_with_its_exact_box():
    image, truth = scene()
    found = propose_regions(ColourSegmenter(), image, ProposalOptions(points_per_side=16))
    ious = box_iou(torch.tensor(truth, dtype=torch.float32), found.boxes)
    assert (ious.max(1).values == 1.0).all()
    assert len(found) == 3  # the background (whole frame) is too large; duplicates across crops suppressed
    assert (found.scores[:-1] >= found.scores[1:]).all()


def test_small_objects_need_the_crops():
    image, truth = scene()
    coarse = ProposalOptions(points_per_side=4, crop_layers=0)
    segmenter = ColourSegmenter()
    whole = propose_regions(segmenter, image, coarse)
    assert segmenter.encoded == [(128, 96)]
    cropped = propose_regions(segmenter, image, dataclasses.replace(coarse, crop_layers=1))
    assert len(segmenter.encoded) == 1 + 1 + 4  # whole image, then whole image + 4 crops
    hits = lambda p: int((box_iou(torch.tensor(truth, dtype=torch.float32), p.boxes).max(1).values >= 0.5).sum())  # noqa: E731
    assert hits(cropped) > hits(whole)


def test_max_regions_and_filters():
    image, _ = scene()
    assert len(propose_regions(ColourSegmenter(), image, ProposalOptions(points_per_side=8, max_regions=1))) == 1
    assert len(propose_regions(ColourSegmenter(), image, ProposalOptions(points_per_side=8, min_stability=0.96))) == 0
    assert len(propose_regions(ColourSegmenter(), image, ProposalOptions(points_per_side=8, min_predicted_iou=0.95))) == 0


def test_crops_cover_the_image_and_overlap():
    for height, width in [(96, 128), (1, 1), (33, 500)]:
        crops = crop_boxes(height, width, 0.2)
        covered = np.zeros((height, width), bool)
        for x0, y0, x1, y1 in crops:
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
            covered[y0:y1, x0:x1] = True
        assert covered.all()
    grid = point_grid(4, 40, 80)
    assert grid.shape == (16, 1, 2) and grid[0, 0].tolist() == [10.0, 5.0]


def test_bad_options_are_one_line_errors():
    with pytest.raises(PromptError, match="points_per_side"):
        ProposalOptions(points_per_side=0)
    with pytest.raises(PromptError, match="crop_layers"):
        ProposalOptions(crop_layers=2)


def test_nms_and_iou():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], dtype=torch.float32)
    assert torch.allclose(box_iou(boxes[:1], boxes[1:2]), torch.tensor([[0.81]]))
    kept = nms(boxes, torch.tensor([0.5, 0.9, 0.1]), 0.5)
    assert kept.tolist() == [1, 2]


def test_stability_score():
    logits = torch.tensor([[[3.0, 0.5], [-0.5, -3.0]], [[-5.0, -5.0], [-5.0, -5.0]]])
    # mask 0: 1 pixel above +1, 3 above -1; mask 1: empty at both thresholds
    assert stability_score(logits, 1.0).tolist() == [pytest.approx(1 / 3), 1.0]


@pytest.fixture(scope="module")
def real_sam(tiny_sam_dir):
    return load_segmenter(str(tiny_sam_dir))


def test_real_segmenter_stability_leaves_masks_unchanged(real_sam):
    image = Image.fromarray((np.random.default_rng(0).random((90, 150, 3)) * 255).astype(np.uint8))
    state = real_sam.encode_image(image)
    points = point_grid(3, 90, 150)
    plain = real_sam.decode_prompts(state, points=points)
    scored = real_sam.decode_prompts(state, points=points, stability_offset=1.0)
    assert plain.stability is None and scored.stability.shape == (9,)
    assert ((scored.stability >= 0) & (scored.stability <= 1)).all()
    assert torch.equal(plain.masks, scored.masks) and torch.equal(plain.tokens, scored.tokens)
    with pytest.raises(ValueError, match="full-size"):
        real_sam.decode_prompts(state, points=points, masks="none", stability_offset=1.0)


@pytest.mark.parametrize("size", [(300, 200), (1, 1), (2000, 3)])
def test_real_segmenter_proposals_run_at_any_size(real_sam, size):
    """The transformers SamModel path (128-px tiny SAM, so images are resized and masks come back at the
    segmenter's working size): boxes are in original pixels, inside the image, best first."""
    width, height = size
    image = Image.fromarray((np.random.default_rng(1).random((height, width, 3)) * 255).astype(np.uint8))
    # a random SAM predicts negative IoUs and masks of any size: keep them all
    options = ProposalOptions(points_per_side=4, max_regions=7, min_predicted_iou=-1.0, area_fraction=(0.0, 1.0))
    found = propose_regions(real_sam, image, options)
    assert 0 < len(found) <= 7 and found.boxes.shape == (len(found), 4)
    assert (found.boxes[:, 0::2] <= width).all() and (found.boxes[:, 1::2] <= height).all()
    assert (found.boxes >= 0).all() and (found.scores[:-1] >= found.scores[1:]).all()
    assert (found.boxes[:, 2:] > found.boxes[:, :2]).all()
