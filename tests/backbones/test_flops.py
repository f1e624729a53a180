"""The FLOP table of the variants' backbones: an entry recomputed at full size on the meta device, the counter
checked against a hand count, and every variant's backbones in the table."""

from __future__ import annotations

import torch

from regionspot.backbones.flops import BACKBONE_FLOPS, backbone_flops, count_flops, segmenter_flops
from regionspot.config import RELEASED_VARIANTS, VARIANTS
from regionspot.registry import list_pretrained, variant_costs
from regionspot.testing.tiny_sam2 import tiny_sam2_config


def test_hiera_tiny_entry_recomputes_exactly():
    assert backbone_flops("facebook/sam2.1-hiera-tiny") == BACKBONE_FLOPS["facebook/sam2.1-hiera-tiny"]


def test_counter_counts_a_matmul_and_the_tiny_model():
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    assert count_flops(lambda: a @ b) == 2 * 8 * 16 * 4
    encoder, box = segmenter_flops(tiny_sam2_config())
    assert 0 < box < encoder


def test_every_variant_is_in_the_table():
    costs = {row.name: row for row in variant_costs()}
    assert set(costs) == set(VARIANTS)
    for name, row in costs.items():
        assert row.segmenter_flops > 0 and row.vision_language_flops > 0 and row.box_flops > 0, name
        assert row.released == (name in RELEASED_VARIANTS)
    # the lever the newer segmenters pull: Hiera-T's encoder is about a third of ViT-B's
    assert costs["T-L"].segmenter_flops < 0.35 * costs["BL"].segmenter_flops
    assert costs["T-L"].vision_language_flops == costs["BL"].vision_language_flops
    # variants without released heads are not offered for download
    assert not {"T-L", "S-SigL"} & set(list_pretrained())
