"""Heads and caches refer to their backbones by name, hub id or a folder relative to themselves: moving the
whole project folder keeps them working."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from regionspot.backbones.segmenter import load_segmenter
from regionspot.backbones.vision_language import load_vision_language
from regionspot.cache.config import CacheConfig
from regionspot.cache.extract import extract_cache
from regionspot.cache.store import TokenCache
from regionspot.checkpoint import read_head_config
from regionspot.data.coco_json import CocoDetectionDataset
from regionspot.engine.config import TrainConfig
from regionspot.engine.setup import build_training
from regionspot.engine.train import train
from regionspot.inference.predictor import RegionSpotPredictor
from regionspot.model import RegionSpot
from regionspot.shapesworld.generate import generate_shapesworld
from regionspot.testing.tiny_clip import save_tiny_clip
from regionspot.testing.tiny_sam import save_tiny_sam


def _strings(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def _config(project: Path) -> TrainConfig:
    return TrainConfig.from_dict({
        "model": {"segmenter": str(project / "sam"), "vision_language": str(project / "clip"), "templates": ["a {}."],
                  "head": {"depth": 1, "num_heads": 2, "ffn_dim": 32, "dropout": 0.0}},
        "datasets": [{"cache": str(project / "cache")}], "output_dir": str(project / "run"), "batch_size": 2,
        "max_iters": 3, "warmup_iters": 1, "lr_steps": [100], "cpu": True, "mixed_precision": "no",
        "checkpoint_every": 100, "log_every": 1, "text_cache_dir": str(project / "text"), "verify_cache": "size",
    })


def test_a_moved_project_keeps_its_head_and_cache_working(tmp_path):
    project = tmp_path / "project"
    info = generate_shapesworld(project / "data", num_train=4, num_val=0, seed=0, image_size=64, progress=False)
    save_tiny_sam(project / "sam")
    save_tiny_clip(project / "clip")
    dataset = CocoDetectionDataset(info["train_json"], info["image_root"], dataset_name="shapesworld")
    extract_cache(dataset, load_segmenter(str(project / "sam")), CacheConfig(out=project / "cache", flip=True, shard_size=2),
                  vision_language=load_vision_language(str(project / "clip")), show_progress=False)
    result = train(_config(project), show_progress=False)
    recorded = read_head_config(result.final_head)
    assert (recorded.segmenter, recorded.vision_language) == (str((project / "sam").resolve()),
                                                              str((project / "clip").resolve()))

    image = dataset.load_image(0)
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    shutil.move(str(project), str(moved))
    assert not project.exists()

    manifest = json.loads((moved / "cache" / "manifest.json").read_text())
    assert not [s for s in _strings(manifest) if s.startswith("/") or str(tmp_path) in s]
    assert manifest["segmenter"] == "../sam" and manifest["vision_language"]["id"] == "../clip"
    cache = TokenCache(moved / "cache")
    assert cache.num_images == 4 and Path(cache.image_root) == (moved / "data").resolve()
    assert cache.get(0).tokens.shape[0] > 0

    model = RegionSpot.from_pretrained(moved / "run", device="cpu")
    assert Path(model.config.segmenter) == (moved / "sam").resolve()
    predictor = RegionSpotPredictor(model, text_cache_dir=str(moved / "text"))
    predictor.set_image(image)
    predictor.set_vocabulary(["red circle", "blue square"])
    out = predictor.predict(boxes=[[4, 4, 40, 40]], return_masks=False)
    assert out.scores.shape == (1,)
    # Training again from the moved folders accepts the moved cache as made with the same backbones.
    setup = build_training(_config(moved), "cpu", show_progress=False)
    assert setup.head.config.token_dim == cache.manifest["token_dim"]
