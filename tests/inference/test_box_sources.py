"""ScoredBoxes: the one answer of every box source (ground truth, a detections file, OWLv2, the segmenter's proposals)."""

import numpy as np
import torch

from regionspot.inference.box_sources import ScoredBoxes
from regionspot.inference.proposals import Proposals


def test_unscored_boxes_are_float32_xyxy_without_class():
    found = ScoredBoxes.unscored(np.array([[1, 2, 3, 4], [5, 6, 7, 8]], dtype=np.float64))
    assert len(found) == 2 and found.boxes.dtype == torch.float32 and found.scores is None
    assert found.labels.tolist() == [-1, -1]
    assert ScoredBoxes.unscored(np.zeros(0)).boxes.shape == (0, 4)


def test_class_agnostic_boxes_keep_their_scores_in_order():
    found = ScoredBoxes.class_agnostic([[0, 0, 5, 5], [1, 1, 2, 2]], [0.9, 0.2])
    assert found.boxes.shape == (2, 4) and found.scores.tolist() == [np.float32(0.9), np.float32(0.2)]
    assert found.labels.dtype == torch.long and found.labels.tolist() == [-1, -1]


def test_proposals_answer_as_a_box_source():
    one = torch.tensor([0.5, 0.25], dtype=torch.float64)
    proposals = Proposals(torch.tensor([[2.0, 3, 30, 40], [0, 0, 9, 9]], dtype=torch.float64), one * 0.8, one, one)
    found = proposals.scored_boxes()
    assert found.boxes.dtype == torch.float32 and torch.equal(found.boxes, proposals.boxes.float())
    assert torch.equal(found.scores, (one * 0.8).float()) and found.labels.tolist() == [-1, -1]
