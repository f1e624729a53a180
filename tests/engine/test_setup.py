"""What a training run is built from: sizes read from the backbones, refused when a config contradicts them."""

from __future__ import annotations

import pytest

from regionspot.cache.config import CacheConfig
from regionspot.cache.extract import extract_cache
from regionspot.data.coco_json import CocoDetectionDataset
from regionspot.engine.config import ConfigError, TrainConfig
from regionspot.engine.setup import build_training
from regionspot.model import RegionSpot
from regionspot.shapesworld.generate import generate_shapesworld


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """A token cache made with the embedded ShapesWorld pair, asked for by name."""
    root = tmp_path_factory.mktemp("setup")
    info = generate_shapesworld(root / "sw", num_train=3, num_val=0, seed=0, image_size=96, progress=False)
    model = RegionSpot.from_pretrained("shapesworld", device="cpu")
    dataset = CocoDetectionDataset(info["train_json"], info["image_root"], dataset_name="shapesworld")
    extract_cache(dataset, model.segmenter, CacheConfig(out=root / "cache", flip=False, shard_size=4),
                  vision_language=model.vision_language, show_progress=False)
    return {"root": root, "model": model}


def _config(embedded, **model) -> TrainConfig:
    return TrainConfig.from_dict({
        "model": {"segmenter": "shapesworld", "vision_language": "shapesworld", "templates": ["a {}."],
                  "head": {"depth": 1, "num_heads": 2, "ffn_dim": 32}, **model},
        "datasets": [{"cache": str(embedded["root"] / "cache")}], "output_dir": str(embedded["root"] / "run"),
        "cpu": True, "mixed_precision": "no", "text_cache_dir": str(embedded["root"] / "text"),
    })


def test_a_config_without_sizes_gets_them_from_the_backbones(embedded):
    config = _config(embedded)
    assert set(config.sizes_from_backbones) == {"model.head.token_dim", "model.head.feature_dim",
                                                "model.head.embed_dim", "model.image_size"}
    assert "token_dim" not in config.to_dict()["model"]["head"] and "image_size" not in config.to_dict()["model"]
    setup = build_training(config, "cpu", show_progress=False)
    shipped = embedded["model"]
    head = setup.head.config
    assert (head.token_dim, head.feature_dim, head.embed_dim) == (
        shipped.segmenter.token_dim, shipped.vision_language.feature_dim, shipped.vision_language.embed_dim)
    assert config.model.image_size == shipped.config.image_size == setup.vision_language.image_size
    assert setup.fingerprints["vision_language"] == shipped.vision_language.weights_fingerprint


def test_a_stated_size_that_contradicts_the_backbone_is_one_line_naming_the_key(embedded):
    shipped = embedded["model"]
    config = _config(embedded, head={"feature_dim": 768})
    with pytest.raises(ConfigError) as error:
        build_training(config, "cpu", show_progress=False)
    message = str(error.value)
    assert "\n" not in message and "model.head.feature_dim" in message
    assert "768" in message and str(shipped.vision_language.feature_dim) in message
    # Stating the backbone's own value is fine.
    agreeing = _config(embedded, head={"feature_dim": shipped.vision_language.feature_dim})
    assert build_training(agreeing, "cpu", show_progress=False).head.config.feature_dim == 128
