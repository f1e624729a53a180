"""score_regions: the one path from tokens and a feature map to logits, for the model, training and evaluation."""

from contextlib import nullcontext
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from regionspot.config import HeadConfig
from regionspot.engine.train import Batch, train_step
from regionspot.evaluation.baselines import crop_logits
from regionspot.modeling.head import RegionSpotHead
from regionspot.modeling.losses import SigmoidFocalLoss
from regionspot.modeling.scoring import region_text_logits, score_regions


def small_head() -> RegionSpotHead:
    torch.manual_seed(0)
    return RegionSpotHead(HeadConfig(feature_dim=32, embed_dim=16, ffn_dim=64, num_heads=4, dropout=0.0)).eval()


def inputs(b: int = 2, n: int = 5, t: int = 9, v: int = 7):
    torch.manual_seed(1)
    tokens, fmap = torch.randn(b, n, 256), torch.randn(b, t, 32)
    text = F.normalize(torch.randn(v, 16), dim=-1)
    return tokens, fmap, text


def test_region_text_logits_are_scaled_cosines():
    regions = torch.randn(2, 3, 16)
    text = F.normalize(torch.randn(4, 16), dim=-1)
    logits = region_text_logits(regions, text, 100.0)
    assert logits.shape == (2, 3, 4) and logits.dtype == torch.float32
    assert logits.abs().max() <= 100.0 + 1e-4
    expected = 100.0 * F.cosine_similarity(regions[0, 1][None], text, dim=-1)
    torch.testing.assert_close(logits[0, 1], expected, atol=1e-4, rtol=1e-4)


def test_score_regions_is_the_head_then_scaled_cosines():
    head, (tokens, fmap, text) = small_head(), inputs()
    pad = torch.tensor([[False] * 5, [False, False, False, True, True]])
    with torch.no_grad():
        out = score_regions(head, tokens, fmap, text, 50.0, padding_mask=pad, return_attention=True)
        regions = head(tokens, fmap, pad).region_embeddings
    assert out.logits.shape == (2, 5, 7) and out.region_embeddings.shape == (2, 5, 16)
    assert out.attention.shape == (2, head.config.depth, 4, 5, 9)
    torch.testing.assert_close(out.region_embeddings, regions)
    torch.testing.assert_close(out.logits, 50.0 * F.normalize(regions, dim=-1) @ text.t())
    # real regions do not depend on what the padded slots hold
    other = tokens.clone()
    other[1, 3:] = 7.0
    with torch.no_grad():
        moved = score_regions(head, other, fmap, text, 50.0, padding_mask=pad).logits
    torch.testing.assert_close(moved[1, :3], out.logits[1, :3], atol=1e-5, rtol=1e-5)
    assert score_regions(head, tokens, fmap, text, 50.0).attention is None


def test_inputs_are_moved_to_the_heads_dtype_and_logits_stay_float32():
    head, (tokens, fmap, text) = small_head(), inputs()
    reference = score_regions(head, tokens, fmap, text, 10.0).logits
    head64 = small_head().double()
    out = score_regions(head64, tokens, fmap, text, 10.0)  # float32 inputs, float64 head
    assert out.region_embeddings.dtype == torch.float64 and out.logits.dtype == torch.float32
    torch.testing.assert_close(out.logits, reference, atol=1e-4, rtol=1e-4)


def test_gradients_reach_the_head():
    head, (tokens, fmap, text) = small_head(), inputs()
    score_regions(head, tokens, fmap, text, 10.0).logits.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in head.parameters())


def test_the_training_step_scores_with_score_regions():
    head, (tokens, fmap, text) = small_head(), inputs()
    labels, valid = torch.randint(0, 7, (2, 5)), torch.ones(2, 5, dtype=torch.bool)
    valid[1, 4] = False
    expected = score_regions(head, tokens, fmap, text, 20.0, padding_mask=~valid).logits.detach()
    accelerator = SimpleNamespace(device=torch.device("cpu"), num_processes=1, autocast=nullcontext,
                                  backward=lambda loss: loss.backward())
    seen = []
    optimizer = torch.optim.SGD(head.parameters(), lr=0.0)
    train_step(head, SigmoidFocalLoss(), optimizer, accelerator, Batch(0, tokens, labels, valid, fmap), text, 20.0,
               observe=lambda logits, _labels, _valid: seen.append(logits))
    torch.testing.assert_close(seen[0], expected)


def test_crop_baseline_uses_the_same_scaled_cosine():
    torch.manual_seed(2)
    embeddings = F.normalize(torch.randn(5, 16), dim=-1)
    text = F.normalize(torch.randn(3, 16), dim=-1)
    served = iter([embeddings[:2], embeddings[2:4], embeddings[4:]])
    clip = SimpleNamespace(logit_scale=42.0, encode_image=lambda crops: next(served))
    logits = crop_logits(clip, [object()] * 5, text, batch_size=2)
    torch.testing.assert_close(logits, region_text_logits(embeddings, text, 42.0))
    torch.testing.assert_close(logits, 42.0 * embeddings @ text.t(), atol=1e-5, rtol=1e-5)


def test_a_logit_bias_is_added_and_none_leaves_the_clip_logits_untouched():
    from regionspot.modeling.scoring import class_probabilities

    head, (tokens, fmap, text) = small_head(), inputs()
    with torch.no_grad():
        plain = score_regions(head, tokens, fmap, text, 10.0).logits
        none = score_regions(head, tokens, fmap, text, 10.0, logit_bias=None).logits
        biased = score_regions(head, tokens, fmap, text, 10.0, logit_bias=-2.5).logits
        regions = head(tokens, fmap).region_embeddings
    assert torch.equal(none, plain) and torch.equal(plain, region_text_logits(regions, text, 10.0))
    assert torch.equal(biased, plain + (-2.5))
    # the sigmoid form reads each pair alone; the softmax over the vocabulary does not see the bias
    torch.testing.assert_close(class_probabilities(biased, "sigmoid"), torch.sigmoid(plain - 2.5))
    torch.testing.assert_close(class_probabilities(biased), class_probabilities(plain))
    with pytest.raises(ValueError, match="scoring form"):
        class_probabilities(plain, "tanh")


def test_the_training_step_adds_the_bias():
    head, (tokens, fmap, text) = small_head(), inputs()
    labels, valid = torch.randint(0, 7, (2, 5)), torch.ones(2, 5, dtype=torch.bool)
    expected = score_regions(head, tokens, fmap, text, 20.0, padding_mask=~valid, logit_bias=-3.0).logits.detach()
    accelerator = SimpleNamespace(device=torch.device("cpu"), num_processes=1, autocast=nullcontext,
                                  backward=lambda loss: loss.backward())
    seen = []
    train_step(head, SigmoidFocalLoss(), torch.optim.SGD(head.parameters(), lr=0.0), accelerator,
               Batch(0, tokens, labels, valid, fmap), text, 20.0, observe=lambda logits, *_: seen.append(logits),
               logit_bias=-3.0)
    torch.testing.assert_close(seen[0], expected)
