import math

import pytest
import torch
import torch.nn.functional as F

from regionspot.config import HeadConfig
from regionspot.modeling.head import RegionSpotHead
from regionspot.modeling.losses import sigmoid_focal_loss


def small_head(**kw) -> RegionSpotHead:
    cfg = HeadConfig(feature_dim=32, embed_dim=16, ffn_dim=64, num_heads=4, **kw)
    torch.manual_seed(0)
    return RegionSpotHead(cfg).eval()


def reference_attention(q_in, kv_in, in_w, in_b, out_w, out_b, heads, key_pad=None):
    """Plain multi-head attention written out, for one batch element: (N, C), (T, C) -> (N, C)."""
    c = q_in.shape[-1]
    wq, wk, wv = in_w.split(c)
    bq, bk, bv = in_b.split(c)
    q, k, v = q_in @ wq.T + bq, kv_in @ wk.T + bk, kv_in @ wv.T + bv
    d = c // heads
    outs = []
    for h in range(heads):
        sl = slice(h * d, (h + 1) * d)
        scores = q[:, sl] @ k[:, sl].T / math.sqrt(d)
        if key_pad is not None:
            scores = scores.masked_fill(key_pad[None, :], float("-inf"))
        outs.append(scores.softmax(-1) @ v[:, sl])
    return torch.cat(outs, -1) @ out_w.T + out_b


def reference_head(state, tokens, fmap, cfg, key_pad=None):
    """The official post-norm decoder, written from its definition, on a state dict."""
    x = tokens @ state["to_clip.weight"].T + state["to_clip.bias"]
    for i in range(cfg.depth):
        p = lambda n, i=i: state[f"decoder.layers.{i}.{n}"]  # noqa: E731
        sa = reference_attention(x, x, p("self_attn.in_proj_weight"), p("self_attn.in_proj_bias"),
                                 p("self_attn.out_proj.weight"), p("self_attn.out_proj.bias"), cfg.num_heads, key_pad)
        x = F.layer_norm(x + sa, (x.shape[-1],), p("norm1.weight"), p("norm1.bias"))
        ca = reference_attention(x, fmap, p("multihead_attn.in_proj_weight"), p("multihead_attn.in_proj_bias"),
                                 p("multihead_attn.out_proj.weight"), p("multihead_attn.out_proj.bias"), cfg.num_heads)
        x = F.layer_norm(x + ca, (x.shape[-1],), p("norm2.weight"), p("norm2.bias"))
        ff = F.relu(x @ p("linear1.weight").T + p("linear1.bias")) @ p("linear2.weight").T + p("linear2.bias")
        x = F.layer_norm(x + ff, (x.shape[-1],), p("norm3.weight"), p("norm3.bias"))
    x = F.layer_norm(x, (x.shape[-1],), state["decoder.norm.weight"], state["decoder.norm.bias"])
    return x @ state["projector.weight"].T + state["projector.bias"]


def test_head_matches_written_out_reference():
    head = small_head()
    tokens, fmap = torch.randn(5, 256), torch.randn(17, 32)
    with torch.no_grad():
        out = head(tokens[None], fmap[None]).region_embeddings[0]
        ref = reference_head(head.state_dict(), tokens, fmap, head.config)
    assert out.shape == (5, 16)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_padding_does_not_change_real_regions_and_batch_equals_single():
    head = small_head()
    a, b = torch.randn(3, 256), torch.randn(5, 256)
    fa, fb = torch.randn(9, 32), torch.randn(9, 32)
    tokens = torch.zeros(2, 5, 256)
    tokens[0, :3], tokens[1] = a, b
    pad = torch.zeros(2, 5, dtype=torch.bool)
    pad[0, 3:] = True
    with torch.no_grad():
        batched = head(tokens, torch.stack([fa, fb]), pad).region_embeddings
        single_a = head(a[None], fa[None]).region_embeddings[0]
        single_b = head(b[None], fb[None]).region_embeddings[0]
    torch.testing.assert_close(batched[0, :3], single_a, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched[1], single_b, atol=1e-5, rtol=1e-5)


def test_permuting_regions_permutes_outputs():
    head = small_head()
    tokens, fmap = torch.randn(1, 6, 256), torch.randn(1, 11, 32)
    perm = torch.randperm(6)
    with torch.no_grad():
        out = head(tokens, fmap).region_embeddings
        out_p = head(tokens[:, perm], fmap).region_embeddings
    torch.testing.assert_close(out[:, perm], out_p, atol=1e-5, rtol=1e-5)


def test_token_only_ablation_ignores_the_feature_map():
    head = small_head(use_feature_map=False)
    tokens = torch.randn(1, 4, 256)
    with torch.no_grad():
        a = head(tokens, torch.randn(1, 7, 32)).region_embeddings
        b = head(tokens, None).region_embeddings
    torch.testing.assert_close(a, b)


def test_wrong_feature_width_is_a_clear_error():
    head = small_head()
    with pytest.raises(ValueError, match="another vision-language model"):
        head(torch.randn(1, 2, 256), torch.randn(1, 7, 64))


def test_focal_loss_matches_definition_and_ignores_padding():
    logits = torch.randn(1, 3, 4)
    labels = torch.tensor([[2, 0, 1]])
    valid = torch.tensor([[True, True, False]])
    loss = sigmoid_focal_loss(logits, labels, valid)
    t = F.one_hot(labels, 4).float()
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    pt = p * t + (1 - p) * (1 - t)
    per = ((0.25 * t + 0.75 * (1 - t)) * ce * (1 - pt) ** 2).sum(-1)
    torch.testing.assert_close(loss, per[0, :2].mean())
    # a confident correct prediction has a lower loss than a confident wrong one
    good = torch.full((1, 1, 4), -6.0)
    good[0, 0, 2] = 6.0
    assert sigmoid_focal_loss(good, torch.tensor([[2]])) < sigmoid_focal_loss(good, torch.tensor([[1]]))


def test_returned_attention_is_what_the_forward_multiplied_the_values_with():
    head = small_head(depth=2)
    torch.manual_seed(1)
    tokens, fmap = torch.randn(2, 5, 256), torch.randn(2, 17, 32)
    seen: list[torch.Tensor] = []  # each layer's cross-attention output, from the decoder's own forward
    handles = [layer.multihead_attn.register_forward_hook(lambda _m, _a, out: seen.append(out[0]))
               for layer in head.decoder.layers]
    out = head(tokens, fmap, return_attention=True)
    for handle in handles:
        handle.remove()
    assert out.attention.shape == (2, 2, 4, 5, 17)  # (B, L, heads, N, T)
    torch.testing.assert_close(out.attention.sum(-1), torch.ones(2, 2, 4, 5))
    for i, layer in enumerate(head.decoder.layers):
        attn = layer.multihead_attn
        c, heads = 32, 4
        v = fmap @ attn.in_proj_weight[2 * c:].T + attn.in_proj_bias[2 * c:]  # (B, T, C)
        v = v.view(2, 17, heads, c // heads).transpose(1, 2)  # (B, heads, T, C/heads)
        mixed = (out.attention[:, i] @ v).transpose(1, 2).reshape(2, 5, c)  # (B, N, C)
        torch.testing.assert_close(attn.out_proj(mixed), seen[i], atol=1e-5, rtol=1e-5)
    # a different input gives different weights: they are not a constant or a stale copy
    other = head(tokens, fmap.flip(1), return_attention=True).attention
    assert not torch.allclose(other, out.attention)


def test_asking_for_attention_does_not_change_the_embeddings():
    head = small_head(depth=3)
    tokens, fmap = torch.randn(1, 4, 256), torch.randn(1, 10, 32)
    plain = head(tokens, fmap)
    traced = head(tokens, fmap, return_attention=True)
    assert plain.attention is None
    torch.testing.assert_close(traced.region_embeddings, plain.region_embeddings, atol=1e-5, rtol=1e-5)
    assert head(tokens, fmap).attention is None  # the recorder's hooks are gone after the traced forward
