"""Post-processing: top (box, class) pairs per image, detector-score product, COCO results format."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from regionspot.errors import PromptError, VocabularyError
from regionspot.masks.rle import encode_rle
from regionspot.modeling.postprocess import image_topk_pairs, softmax_probs, to_coco_results


def test_softmax_probs_rows_sum_to_one_in_float32():
    logits = torch.randn(5, 7, dtype=torch.bfloat16) * 10
    p = softmax_probs(logits)
    assert p.dtype == torch.float32 and p.shape == (5, 7)
    torch.testing.assert_close(p.sum(-1), torch.ones(5))
    with pytest.raises(VocabularyError):
        softmax_probs(torch.randn(2, 3, 4))


def test_several_labels_per_box_are_kept():
    # Box 0 is ambiguous between classes 0 and 1; box 1 is confidently class 2.
    probs = torch.tensor([[0.48, 0.47, 0.05], [0.02, 0.03, 0.95]])
    boxes = torch.tensor([[0, 0, 10, 10], [5, 5, 20, 20]], dtype=torch.float32)
    bi, ci, s = image_topk_pairs(probs, boxes, max_per_image=3)
    assert bi.tolist() == [1, 0, 0] and ci.tolist() == [2, 0, 1]
    torch.testing.assert_close(s, torch.tensor([0.95, 0.48, 0.47]))
    # one-label-per-box would have dropped (box 0, class 1); the pairs protocol keeps it
    assert (bi == 0).sum() == 2


def test_cap_is_over_all_pairs_and_sorted():
    torch.manual_seed(0)
    probs = softmax_probs(torch.randn(40, 25))
    boxes = torch.rand(40, 4)
    bi, ci, s = image_topk_pairs(probs, boxes, max_per_image=300)
    assert len(s) == 300
    assert torch.all(s[:-1] >= s[1:])
    # exactly the 300 largest of the 1000 pair scores
    torch.testing.assert_close(s, probs.flatten().sort(descending=True).values[:300])
    torch.testing.assert_close(probs[bi, ci], s)
    bi_all, _, s_all = image_topk_pairs(probs, boxes, max_per_image=None)
    assert len(s_all) == 40 * 25 and bi_all.dtype == torch.int64
    _, _, s_few = image_topk_pairs(probs, boxes, max_per_image=None, min_score=0.1)
    assert len(s_few) == int((probs >= 0.1).sum()) and s_few.min() >= 0.1


def test_detector_scores_multiply_class_probabilities():
    probs = torch.tensor([[0.9, 0.1], [0.6, 0.4]])
    boxes = torch.zeros(2, 4)
    box_scores = torch.tensor([0.5, 1.0])
    bi, ci, s = image_topk_pairs(probs, boxes, max_per_image=None, box_scores=box_scores)
    # pair scores: (0,0)=.45, (0,1)=.05, (1,0)=.6, (1,1)=.4
    assert list(zip(bi.tolist(), ci.tolist())) == [(1, 0), (0, 0), (1, 1), (0, 1)]
    torch.testing.assert_close(s, torch.tensor([0.6, 0.45, 0.4, 0.05]))


def test_bad_shapes_raise_clear_errors():
    with pytest.raises(PromptError, match="boxes"):
        image_topk_pairs(torch.rand(3, 4), torch.rand(2, 4))
    with pytest.raises(PromptError, match="box_scores"):
        image_topk_pairs(torch.rand(3, 4), torch.rand(3, 4), box_scores=torch.rand(2))
    with pytest.raises(VocabularyError, match="class_index"):
        to_coco_results(
            1, torch.rand(2, 4), torch.tensor([0]), torch.tensor([5]), torch.tensor([0.5]), [1, 2]
        )


def test_coco_results_format_and_rle_masks():
    from faster_coco_eval.core import mask as mask_utils

    boxes = torch.tensor([[10.0, 20.0, 30.0, 60.0], [0.0, 0.0, 8.0, 8.0]])
    masks = torch.zeros(2, 64, 48, dtype=torch.bool)
    masks[0, 20:60, 10:30] = True
    masks[1, :8, :8] = True
    probs = torch.tensor([[0.7, 0.3], [0.1, 0.9]])
    bi, ci, s = image_topk_pairs(probs, boxes)
    category_ids = [17, 42]  # vocabulary index -> dataset category id
    out = to_coco_results(5, boxes, bi, ci, s, category_ids, masks=masks)
    assert len(out) == 4
    first = out[0]
    assert set(first) == {"image_id", "category_id", "bbox", "score", "segmentation"}
    assert first["image_id"] == 5 and first["category_id"] == 42 and first["score"] == pytest.approx(0.9)
    assert first["bbox"] == [0.0, 0.0, 8.0, 8.0] and all(isinstance(v, float) for v in first["bbox"])
    by_box0 = [d for d in out if d["bbox"] == [10.0, 20.0, 20.0, 40.0]]
    assert sorted(d["category_id"] for d in by_box0) == [17, 42]
    for d in out:
        rle = d["segmentation"]
        assert isinstance(rle["counts"], str) and rle["size"] == [64, 48]
        decoded = mask_utils.decode(dict(rle))
        box = 0 if d["bbox"][0] == 10.0 else 1
        assert np.array_equal(decoded.astype(bool), masks[box].numpy())
    assert "segmentation" not in to_coco_results(5, boxes, bi, ci, s, category_ids)[0]


def test_coco_results_take_masks_one_region_at_a_time():
    boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [2.0, 2.0, 6.0, 6.0]])
    masks = np.zeros((2, 8, 8), bool)
    masks[0, :4, :4] = masks[1, 2:6, 3:6] = True
    bi, ci, s = image_topk_pairs(torch.tensor([[0.6, 0.4], [0.3, 0.7]]), boxes)
    asked = []
    lazy = to_coco_results(1, boxes, bi, ci, s, [1, 2], mask_rle=lambda b: asked.append(b) or encode_rle(masks[b]))
    assert lazy == to_coco_results(1, boxes, bi, ci, s, [1, 2], masks=masks)
    assert sorted(asked) == [0, 1]  # each box's mask encoded once, though each box carries two labels


def test_fit_temperature_recovers_the_temperature_that_made_the_labels():
    from regionspot.modeling.postprocess import fit_temperature

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4000, 20, generator=generator) * 3
    labels = torch.multinomial(torch.softmax(logits / 0.5, -1), 1, generator=generator)[:, 0]  # sharper than logits
    assert abs(fit_temperature(logits, labels) - 0.5) < 0.05
    assert abs(fit_temperature(logits * 4, labels) - 2.0) < 0.2


def test_calibrated_confidence_is_the_tempered_softmax_and_keeps_the_ranking():
    from regionspot.modeling.postprocess import calibrated_confidence

    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.5, 0.1]])
    ids = logits.argmax(-1)
    assert torch.allclose(calibrated_confidence(logits, ids, 1.0), torch.softmax(logits, -1).max(-1).values)
    sharp = calibrated_confidence(logits, ids, 0.25)
    assert torch.allclose(sharp, torch.softmax(logits * 4, -1).max(-1).values)
    assert (sharp > calibrated_confidence(logits, ids, 1.0)).all()
    with pytest.raises(VocabularyError):
        calibrated_confidence(logits, ids, 0.0)
