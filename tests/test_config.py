import pytest

from regionspot.config import RegionSpotConfig, variant_config


def test_yaml_round_trip(tmp_path):
    config = variant_config("BL@336")
    config.templates = ["a photo of a {}."]
    config.to_yaml(tmp_path / "c.yaml")
    assert RegionSpotConfig.from_yaml(tmp_path / "c.yaml") == config


def test_variants_match_the_paper():
    assert variant_config("BB").head.feature_dim == 768 and variant_config("BB").head.embed_dim == 512
    bl = variant_config("BL")
    assert (bl.head.feature_dim, bl.head.embed_dim, bl.head.depth, bl.head.num_heads, bl.head.ffn_dim) == (1024, 768, 3, 8, 2048)
    assert variant_config("BL@336").image_size == 336


def test_unknown_keys_and_variants_are_refused():
    with pytest.raises(ValueError, match="Unknown RegionSpotConfig keys"):
        RegionSpotConfig.from_dict({"segmentr": "x"})
    with pytest.raises(ValueError, match="Unknown variant"):
        variant_config("XL")
