"""RegionSpot.forward: tensors in, one documented output out."""

import torch
import torch.nn.functional as F

from regionspot.model import RegionSpot
from regionspot.modeling.outputs import RegionSpotOutput


def test_forward_returns_logits_and_region_embeddings(tiny_model_dir):
    model = RegionSpot.from_pretrained(tiny_model_dir)
    head = model.config.head
    torch.manual_seed(0)
    tokens = torch.randn(2, 3, head.token_dim)
    feature_map = torch.randn(2, model.vision_language.num_tokens, head.feature_dim)
    text = F.normalize(torch.randn(5, head.embed_dim), dim=-1)
    with torch.no_grad():
        out = model(tokens, feature_map, text)
    assert isinstance(out, RegionSpotOutput)
    assert out.logits.shape == (2, 3, 5) and out.region_embeddings.shape == (2, 3, head.embed_dim)
    expected = model.logit_scale * F.normalize(out.region_embeddings, dim=-1) @ text.t()
    torch.testing.assert_close(out.logits, expected)
