import torch

from regionspot.backbones.base import SegmenterImageState, SegmenterOutput
from regionspot.data.transforms import box_iou
from regionspot.inference.proposals import nms, propose_regions


class FakeSegmenter:
    """Every point prompt returns the mask of the square it falls in (two squares), or nothing."""

    model_id, token_dim = "fake", 4

    def decode_prompts(self, state, boxes=None, points=None, point_labels=None, return_masks=True, chunk_size=16):
        h, w = state.original_size
        masks = torch.zeros(len(points), h, w, dtype=torch.bool)
        iou = torch.zeros(len(points))
        for i, (x, y) in enumerate(points[:, 0].tolist()):
            if 2 <= x < 10 and 2 <= y < 10:
                masks[i, 2:10, 2:10], iou[i] = True, 0.9 + 0.001 * i
            elif 20 <= x < 30 and 12 <= y < 30:
                masks[i, 12:30, 20:30], iou[i] = True, 0.95
            else:
                masks[i, :, :], iou[i] = True, 0.99  # the whole image: too large to be a region
        return SegmenterOutput(tokens=torch.zeros(len(points), 4), iou=iou, masks=masks)


def test_grid_proposals_find_each_object_once():
    state = SegmenterImageState(embeddings=torch.zeros(1), original_size=(32, 32), reshaped_size=(32, 32))
    boxes = propose_regions(FakeSegmenter(), state, points_per_side=8)
    assert boxes.tolist() == [[20.0, 12.0, 30.0, 30.0], [2.0, 2.0, 10.0, 10.0]]


def test_nms_and_iou():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], dtype=torch.float32)
    assert torch.allclose(box_iou(boxes[:1], boxes[1:2]), torch.tensor([[0.81]]))
    kept = nms(boxes, torch.tensor([0.5, 0.9, 0.1]), 0.5)
    assert kept.tolist() == [1, 2]
