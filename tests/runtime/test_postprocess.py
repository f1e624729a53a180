"""The runtime's numpy post-processing against the torch functions of the library it mirrors: probabilities within
1e-6 (a few float32 ulp: torch's vectorised exp rounds differently from numpy's), the same classes in the same order."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from regionspot.masks.base import mask_to_box
from regionspot.masks.resize import MaskFrame
from regionspot.masks.resize import upsample_mask_logits as torch_upsample
from regionspot.modeling import postprocess as torch_post
from regionspot.runtime import postprocess


def test_probabilities_top_k_and_confidence_match_torch():
    logits = np.random.default_rng(0).normal(0, 5, (7, 40)).astype(np.float32)
    logits[3, [4, 9]] = 8.0  # a tie: torch.topk leaves its order open, the runtime puts the lower id first
    probs, scores, ids = postprocess.top_classes(logits, 5)
    t_probs, t_scores, t_ids = torch_post.top_classes(torch.from_numpy(logits), 5)
    np.testing.assert_allclose(probs, t_probs.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(scores, t_scores.numpy(), rtol=0, atol=1e-6)
    untied = np.arange(len(logits)) != 3
    np.testing.assert_array_equal(ids[untied], t_ids.numpy()[untied])
    assert list(ids[3, :2]) == [4, 9] and set(t_ids[3, :2].tolist()) == {4, 9}
    confidence = postprocess.calibrated_confidence(logits, ids, 1.7)
    expected = torch_post.calibrated_confidence(torch.from_numpy(logits), t_ids, 1.7)
    np.testing.assert_allclose(confidence, expected.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(postprocess.l2_normalize(logits), F.normalize(torch.from_numpy(logits), dim=-1).numpy(),
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize("reshaped,size", [((256, 192), (300, 225)), ((100, 256), (37, 95)), ((256, 256), (256, 256))])
def test_mask_upsampling_matches_torch(reshaped, size):
    """Logits within 1e-4 of torch's (measured 2.1e-5: float32 rounding of the same two-tap mixes; torch computes
    small outputs with another kernel), masks equal where |logit| > 1e-4."""
    low = np.random.default_rng(1).normal(0, 4, (3, 64, 64)).astype(np.float32)
    ours = postprocess.upsample_mask_logits(low, 256, reshaped, size)
    expected = torch_upsample(torch.from_numpy(low), MaskFrame(256, reshaped, size)).numpy()
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-4)
    decided = np.abs(expected) > 1e-4
    np.testing.assert_array_equal((ours > 0)[decided], (expected > 0)[decided])
    np.testing.assert_array_equal(mask_to_box(ours > 0), mask_to_box(expected > 0))
