"""End to end on CPU: tiny ShapesWorld -> token cache -> train a head on tiny random backbones."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from regionspot.cache.store import TokenCache
from regionspot.checkpoint import load_head_checkpoint
from regionspot.engine.config import ConfigError, TrainConfig
from regionspot.engine.optim import lr_factor
from regionspot.engine.setup import dataset_text_embeddings
from regionspot.engine.train import (
    TrainingDivergedError,
    cache_accuracy,
    train,
)
from regionspot.modeling.head import RegionSpotHead
from regionspot.testing.tiny_training import tiny_training_env

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return tiny_training_env(tmp_path_factory.mktemp("train"))


def make_config(env, out: Path, **kw) -> TrainConfig:
    vl = env["vl"]
    data = {
        "model": {
            "segmenter": env["sam"],
            "vision_language": env["clip"],
            "image_size": vl.image_size,
            "templates": ["a {}."],
            "head": {"token_dim": env["token_dim"], "feature_dim": vl.feature_dim, "embed_dim": vl.embed_dim,
                     "depth": 1, "num_heads": 2, "ffn_dim": 64, "dropout": 0.0},
        },
        "datasets": [{"cache": str(env["root"] / "cache")}],
        "output_dir": str(out),
        "batch_size": 4,
        "lr": 2e-3,
        "weight_decay": 1e-4,
        "max_iters": 8,
        "warmup_iters": 5,
        "lr_steps": [1000],
        "mixed_precision": "no",
        "cpu": True,
        "checkpoint_every": 4,
        "log_every": 1,
        "text_cache_dir": str(env["root"] / "text"),
    }
    data.update(kw)
    return TrainConfig.from_dict(data)


def test_loss_falls_and_accuracy_rises(env, tmp_path):
    config = make_config(env, tmp_path / "run", max_iters=200, checkpoint_every=100, lr=3e-3, log_every=20)
    result = train(config, show_progress=False)
    losses = [h["loss"] for h in result.history]
    assert result.step == 200 and len(losses) == 200
    assert sum(losses[-10:]) / 10 < 0.6 * sum(losses[:10]) / 10
    cache = TokenCache(config.datasets[0].cache)
    state, model_config, meta = load_head_checkpoint(result.final_head)
    assert meta["steps"] == 200 and model_config.head.feature_dim == env["vl"].feature_dim
    head = RegionSpotHead(model_config.head)
    head.load_state_dict(state, strict=True)
    text = dataset_text_embeddings(env["vl"], cache, config, False)
    acc = cache_accuracy(head, cache, text, env["vl"].logit_scale)
    labels = torch.cat([cache.get(i).labels for i in range(cache.num_images)])
    majority = labels.bincount().max().item() / len(labels)
    chance = 1 / len(cache.category_names)
    torch.manual_seed(0)
    untrained = cache_accuracy(RegionSpotHead(model_config.head), cache, text, env["vl"].logit_scale)
    # Over seeds 0-4 this run reaches 0.43-0.55 (CPU numerics move it a few points); majority is 0.25.
    assert acc > max(2.5 * chance, majority + 0.1, untrained + 0.2), (acc, chance, majority, untrained)
    run = Path(result.run_dir)
    assert (run / "metrics.csv").read_text().count("\n") == 11
    assert any((run / "tensorboard").iterdir())
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*")) == ["step_00000100", "step_00000200"]


def test_resume_reproduces_uninterrupted_run(env, tmp_path):
    full = train(make_config(env, tmp_path / "full"), show_progress=False)
    # "Killed" after step 4 (its checkpoint is the last thing it wrote), then resumed with the same command.
    train(make_config(env, tmp_path / "cut", max_iters=4), show_progress=False)
    resumed = train(make_config(env, tmp_path / "cut"), resume=True, show_progress=False)
    assert resumed.step == 8 and len(resumed.history) == 4
    a = load_file(str(full.run_dir / "checkpoints" / "step_00000008" / "head.safetensors"))
    b = load_file(str(resumed.run_dir / "checkpoints" / "step_00000008" / "head.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5)
    # A different seed gives a different run (the comparison above can fail).
    other = train(make_config(env, tmp_path / "other", seed=7), show_progress=False)
    c = load_file(str(other.run_dir / "checkpoints" / "step_00000008" / "head.safetensors"))
    assert not torch.allclose(a["projector.weight"], c["projector.weight"])


def test_nan_loss_stops_and_keeps_last_good_checkpoint(env, tmp_path, monkeypatch):
    import regionspot.modeling.losses as losses

    real = losses.sigmoid_focal_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] >= 4 else loss

    monkeypatch.setattr(losses, "sigmoid_focal_loss", poisoned)
    config = make_config(env, tmp_path / "run", checkpoint_every=2)
    with pytest.raises(TrainingDivergedError, match="step 4.*step_00000002"):
        train(config, show_progress=False)
    good = load_file(str(tmp_path / "run" / "checkpoints" / "step_00000002" / "head.safetensors"))
    assert all(torch.isfinite(v).all() for v in good.values())
    assert not (tmp_path / "run" / "checkpoints" / "step_00000004").exists()


def test_online_training_runs(env, tmp_path):
    result = train(make_config(env, tmp_path / "run", feature_source="online", color_jitter=0.2, max_iters=3),
                   show_progress=False)
    assert result.step == 3 and all(torch.isfinite(torch.tensor(h["loss"])) for h in result.history)


def test_configs_and_overrides(tmp_path):
    paper = TrainConfig.from_yaml(CONFIGS / "regionspot_bl_o365.yaml")
    assert (paper.lr, paper.weight_decay, paper.batch_size, paper.max_iters) == (2.5e-5, 1e-4, 16, 450_000)
    assert paper.lr_steps == [350_000, 420_000] and paper.model.head.feature_dim == 1024
    from regionspot.config import preprocess_preset

    assert paper.model.preprocess == preprocess_preset("released")  # the paper's recipe runs the released pipeline
    for name in ("shapesworld_tiny.yaml", "shapesworld.yaml"):
        TrainConfig.from_yaml(CONFIGS / name)
    cfg = TrainConfig.from_yaml(CONFIGS / "regionspot_bl_o365.yaml", ["lr=1e-4", "model.head.dropout=0", "lr_steps=[5,9]"])
    assert cfg.lr == 1e-4 and cfg.model.head.dropout == 0 and cfg.lr_steps == [5, 9]
    with pytest.raises(ConfigError, match="learning_rate"):
        TrainConfig.from_yaml(CONFIGS / "regionspot_bl_o365.yaml", ["learning_rate=1"])
    with pytest.raises(ConfigError, match="key=value"):
        TrainConfig.from_yaml(CONFIGS / "regionspot_bl_o365.yaml", ["lr"])
    with pytest.raises(ConfigError, match="not found"):
        TrainConfig.from_yaml(tmp_path / "missing.yaml")


def test_schedule():
    assert lr_factor(0, 10, 0.001, [20, 30], 0.1) == pytest.approx(0.001)
    assert lr_factor(10, 10, 0.001, [20, 30], 0.1) == 1.0
    assert lr_factor(25, 10, 0.001, [20, 30], 0.1) == pytest.approx(0.1)
    assert lr_factor(30, 10, 0.001, [20, 30], 0.1) == pytest.approx(0.01)


def test_cache_and_config_preprocessing_must_agree_and_the_head_records_them(env, tmp_path):
    import dataclasses
    import json
    import shutil

    from regionspot.cache.store import CacheError

    cache = TokenCache(env["root"] / "cache")
    assert cache.preprocess == {"sam_decoder_eps": 1e-6, "clip_resize": "pil", "clip_antialias": False}
    assert cache.raw_category_names == cache.category_names  # ShapesWorld names are already clean
    result = train(make_config(env, tmp_path / "run", max_iters=2), show_progress=False)
    recorded = load_head_checkpoint(result.final_head)[1].preprocess
    assert (recorded.sam_decoder_eps, recorded.clip_resize, recorded.class_names) == (1e-6, "pil", "clean")

    for change, message in (({"clip_resize": "torch-bilinear"}, "CLIP resize"), ({"sam_decoder_eps": 1e-5}, "eps 1e-06")):
        config = make_config(env, tmp_path / "bad", max_iters=2)
        config.model.preprocess = dataclasses.replace(config.model.preprocess, **change)
        with pytest.raises(CacheError, match=message):
            train(config, show_progress=False)

    # Online maps are computed with the config's resize, so there is nothing to disagree with; the head records it.
    config = make_config(env, tmp_path / "online", max_iters=2, feature_source="online")
    config.model.preprocess = dataclasses.replace(config.model.preprocess, clip_resize="torch-bilinear")
    online = load_head_checkpoint(train(config, show_progress=False).final_head)[1].preprocess
    assert (online.clip_resize, online.sam_decoder_eps) == ("torch-bilinear", 1e-6)

    # A cache from before raw names were kept cannot serve a raw-names head.
    old = tmp_path / "old_cache"
    shutil.copytree(env["root"] / "cache", old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["raw_category_names"], manifest["preprocess"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    config = make_config(env, tmp_path / "raw", max_iters=2, datasets=[{"cache": str(old)}])
    config.model.preprocess = dataclasses.replace(config.model.preprocess, class_names="raw")
    with pytest.raises(CacheError, match="raw class names"):
        train(config, show_progress=False)


def test_a_run_folder_loads_with_from_pretrained(env, tmp_path):
    from regionspot.model import RegionSpot

    result = train(make_config(env, tmp_path / "run", max_iters=4, checkpoint_every=2), show_progress=False)
    final = load_file(str(result.final_head))
    model = RegionSpot.from_pretrained(result.run_dir)
    assert all(torch.equal(model.head.state_dict()[k], v) for k, v in final.items())
    # While a run is in progress (no final head yet) the folder stands for its latest checkpoint,
    # which is written in the same head format.
    result.final_head.unlink()
    latest = RegionSpot.from_pretrained(result.run_dir)
    step4 = load_head_checkpoint(result.run_dir / "checkpoints" / "step_00000004" / "head.safetensors")
    assert step4[2]["step"] == 4 and step4[1].preprocess.sam_decoder_eps == 1e-6
    assert all(torch.equal(latest.head.state_dict()[k], v) for k, v in step4[0].items())


def test_a_run_with_negatives_says_so_in_its_head_and_one_without_does_not(env, tmp_path):
    plain = train(make_config(env, tmp_path / "plain", max_iters=2), show_progress=False)
    assert load_head_checkpoint(plain.final_head)[1].trained_with_negatives is False
    dropped = train(make_config(env, tmp_path / "drop", max_iters=2, vocabulary_drop=0.5), show_progress=False)
    assert load_head_checkpoint(dropped.final_head)[1].trained_with_negatives is True
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in dropped.history)
