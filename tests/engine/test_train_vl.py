"""The cache and train commands' library path with the newer vision-language models (tiny random SigLIP 2,
MetaCLIP 2, TIPSv2): maps cached at their own shape, a head trained on them, the loss falls. Plumbing only:
random backbones say nothing about how well a head on the real models would do."""

from __future__ import annotations

import pytest

from regionspot.cache.store import TokenCache
from regionspot.checkpoint import load_head_checkpoint
from regionspot.engine.config import TrainConfig
from regionspot.engine.setup import build_training
from regionspot.engine.train import train
from regionspot.testing.tiny_training import tiny_training_env


# 60 steps on random backbones: the collapse check fires on some; the plumbing's claim is the falling loss
@pytest.mark.filterwarnings("ignore::regionspot.errors.CollapseWarning")
@pytest.mark.parametrize("kind", ["siglip2", "metaclip_2", "tipsv2"])
def test_a_head_trains_on_the_new_vision_language_maps(kind, tmp_path):
    env = tiny_training_env(tmp_path / "env", vision_language=kind)
    vl = env["vl"]
    cache = TokenCache(env["root"] / "cache")
    assert cache.get(0).feature_map.shape == (vl.num_tokens, vl.feature_dim)
    config = TrainConfig.from_dict({
        "model": {"segmenter": env["sam"], "vision_language": env["clip"], "image_size": vl.image_size,
                  "templates": vl.default_templates,
                  "head": {"token_dim": env["token_dim"], "feature_dim": vl.feature_dim, "embed_dim": vl.embed_dim,
                           "depth": 1, "num_heads": 2, "ffn_dim": 64, "dropout": 0.0}},
        "datasets": [{"cache": str(env["root"] / "cache")}], "output_dir": str(tmp_path / "run"),
        "batch_size": 8, "lr": 1e-3, "weight_decay": 1e-4, "max_iters": 60, "warmup_iters": 5, "lr_steps": [1000],
        "mixed_precision": "no", "cpu": True, "checkpoint_every": 60, "log_every": 1,
        "text_cache_dir": str(env["root"] / "text"),
    })
    setup = build_training(config, "cpu", show_progress=False)
    assert setup.logit_bias == (pytest.approx(-2.5) if kind == "siglip2" else None)  # SigLIP's own scoring form
    result = train(config, show_progress=False)
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 60 and sum(losses[-10:]) < 0.8 * sum(losses[:10]), (losses[:10], losses[-10:])
    _, model_config, _ = load_head_checkpoint(result.final_head)
    assert model_config.vision_language == env["clip"] and model_config.templates == vl.default_templates
