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


def test_preprocess_round_trips_and_presets_differ_in_every_point(tmp_path):
    from regionspot.config import PreprocessConfig, preprocess_preset

    config = variant_config("BL")
    config.preprocess = preprocess_preset("released")
    config.to_yaml(tmp_path / "c.yaml")
    assert RegionSpotConfig.from_yaml(tmp_path / "c.yaml").preprocess == config.preprocess
    default, released = preprocess_preset("default"), preprocess_preset("released")
    assert default == PreprocessConfig() == RegionSpotConfig().preprocess
    assert (released.clip_resize, released.clip_antialias, released.eval_resize, released.class_names) == (
        "torch-bilinear", False, "shortest-edge", "raw")
    assert (released.eval_min_size, released.eval_max_size, released.sam_decoder_eps) == (800, 1333, 1e-5)
    released.class_names = "clean"  # presets are handed out as copies
    assert preprocess_preset("released").class_names == "raw"


@pytest.mark.parametrize(("data", "message"), [
    ({"clip_resize": "bicubic"}, "clip_resize"),
    ({"eval_resize": "longest"}, "eval_resize"),
    ({"class_names": "pretty"}, "class_names"),
    ({"eval_min_size": 900, "eval_max_size": 800}, "eval_min_size"),
    ({"sam_decoder_eps": 2.0}, "sam_decoder_eps"),
    ({"resize": "pil"}, "Unknown PreprocessConfig keys"),
])
def test_bad_preprocess_is_refused(data, message):
    with pytest.raises(ValueError, match=message):
        RegionSpotConfig.from_dict({"preprocess": data})
