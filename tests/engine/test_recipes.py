"""The paper's recipes under configs/: two stages x three variants (+ the Table 3 ablation), built from
one stage-1 file by ``base:`` merging; the merge rules themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

from regionspot.config import VARIANTS, preprocess_preset
from regionspot.engine.config import ConfigError, TrainConfig, read_config_yaml

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
VARIANT_FILES = {"BB": "bb", "BL": "bl", "BL@336": "bl336"}


def test_every_recipe_loads():
    names = sorted(p.name for p in CONFIGS.glob("*.yaml"))
    assert len(names) >= 9
    for name in names:
        TrainConfig.from_yaml(CONFIGS / name)


@pytest.mark.parametrize("variant", sorted(VARIANT_FILES))
def test_two_stages_per_variant(variant):
    short = VARIANT_FILES[variant]
    stage1 = TrainConfig.from_yaml(CONFIGS / f"regionspot_{short}_o365.yaml")
    stage2 = TrainConfig.from_yaml(CONFIGS / f"regionspot_{short}_all.yaml")
    expected = VARIANTS[variant]
    for config in (stage1, stage2):
        assert config.model.vision_language == expected.vision_language
        assert config.model.image_size == expected.image_size
        assert (config.model.head.feature_dim, config.model.head.embed_dim) == (expected.head.feature_dim,
                                                                                 expected.head.embed_dim)
        assert config.model.preprocess == preprocess_preset("released")
        assert (config.lr, config.batch_size, config.max_iters, config.lr_steps) == (2.5e-5, 16, 450_000, [350_000, 420_000])
    assert [d.cache for d in stage1.datasets] == ["caches/o365"] and stage1.init_head is None
    assert [(d.cache, d.weight) for d in stage2.datasets] == [
        ("caches/o365", 1.0), ("caches/openimages", 1.0), ("caches/v3det", 1.0)]
    assert stage2.init_head == f"{stage1.output_dir}/final_head.safetensors"
    assert stage2.output_dir != stage1.output_dir


def test_ablation_and_overrides_on_merged_recipes():
    ablation = TrainConfig.from_yaml(CONFIGS / "regionspot_bl_o365_oi.yaml", ["datasets.1.weight=2"])
    assert [(d.cache, d.weight) for d in ablation.datasets] == [("caches/o365", 1.0), ("caches/openimages", 2.0)]


def test_base_merge_rules(tmp_path):
    (tmp_path / "a.yaml").write_text("lr: 1.0\nmodel: {image_size: 224, head: {depth: 3, dropout: 0.1}}\n"
                                     "datasets: [{cache: x}, {cache: y}]\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yaml").write_text("base: ../a.yaml\nmodel: {head: {depth: 1}}\ndatasets: [{cache: z}]\n")
    (tmp_path / "c.yaml").write_text("base: [sub/b.yaml]\nlr: 2.0\n")
    merged = read_config_yaml(tmp_path / "c.yaml")
    assert merged == {"lr": 2.0, "model": {"image_size": 224, "head": {"depth": 1, "dropout": 0.1}},
                      "datasets": [{"cache": "z"}]}  # mappings merge, lists replace
    (tmp_path / "loop.yaml").write_text("base: loop2.yaml\n")
    (tmp_path / "loop2.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(ConfigError, match="its own base"):
        read_config_yaml(tmp_path / "loop.yaml")
    (tmp_path / "orphan.yaml").write_text("base: nowhere.yaml\n")
    with pytest.raises(ConfigError, match="nowhere.yaml not found"):
        read_config_yaml(tmp_path / "orphan.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        read_config_yaml(tmp_path / "list.yaml")


@pytest.mark.parametrize("variant, short", [("T-L", "tl"), ("S-SigL", "ssigl")])
def test_two_stages_of_the_newer_backbone_variants(variant, short):
    stage1 = TrainConfig.from_yaml(CONFIGS / f"regionspot_{short}_o365.yaml")
    stage2 = TrainConfig.from_yaml(CONFIGS / f"regionspot_{short}_all.yaml")
    expected = VARIANTS[variant]
    bl = TrainConfig.from_yaml(CONFIGS / "regionspot_bl_o365.yaml")
    for config in (stage1, stage2):
        assert (config.model.segmenter, config.model.vision_language, config.model.image_size) == (
            expected.segmenter, expected.vision_language, expected.image_size)
        assert (config.model.head.feature_dim, config.model.head.embed_dim) == (expected.head.feature_dim,
                                                                                 expected.head.embed_dim)
        assert (config.lr, config.batch_size, config.max_iters, config.lr_steps) == (bl.lr, bl.batch_size, bl.max_iters,
                                                                                    bl.lr_steps)
        # tokens depend on the segmenter: never SAM ViT-B's caches
        assert not {d.cache for d in config.datasets} & {"caches/o365", "caches/openimages", "caches/v3det"}
    assert len(stage1.datasets) == 1 and len(stage2.datasets) == 3 and stage1.init_head is None
    assert stage2.init_head == f"{stage1.output_dir}/final_head.safetensors"
