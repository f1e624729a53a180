"""A tiny training set-up for the tests: tiny random backbones and a token cache of 12 small ShapesWorld
images (4 colours × 2 shapes), made in a few seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from regionspot.backbones.segmenter import load_segmenter
from regionspot.backbones.vision_language import load_vision_language
from regionspot.cache.config import CacheConfig
from regionspot.cache.extract import extract_cache
from regionspot.data.coco_json import CocoDetectionDataset
from regionspot.shapesworld.generate import generate_shapesworld
from regionspot.shapesworld.world import WorldConfig
from regionspot.testing.tiny_clip import save_tiny_clip
from regionspot.testing.tiny_sam import save_tiny_sam
from regionspot.testing.tiny_vl import save_tiny_vl


def tiny_training_env(root: Path, vision_language: str = "clip") -> dict[str, Any]:
    """Under ``root``: the dataset (sw/), the tiny backbones (sam/, clip/) and their token cache (cache/, with
    CLIP maps and mirrored tokens). Returns {"root", "sam", "clip" (folders as str), "vl" (the loaded
    vision-language adapter), "token_dim"}.

    vision_language: "clip" (the tiny CLIP), or a model_type of ``testing.tiny_vl.save_tiny_vl`` ("siglip2",
    "metaclip_2", "tipsv2") whose tiny random model then stands in clip/."""
    info = generate_shapesworld(root / "sw", num_train=12, num_val=0, seed=0, image_size=64, progress=False,
                                world=WorldConfig(colours=("red", "green", "blue", "yellow"), shapes=("circle", "square")))
    dataset = CocoDetectionDataset(info["train_json"], info["image_root"], dataset_name="shapesworld")
    sam_dir = str(save_tiny_sam(root / "sam"))
    clip_dir = str(save_tiny_clip(root / "clip") if vision_language == "clip" else save_tiny_vl(vision_language, root / "clip"))
    segmenter, vl = load_segmenter(sam_dir), load_vision_language(clip_dir)
    extract_cache(dataset, segmenter, CacheConfig(out=root / "cache", flip=True, shard_size=4), vision_language=vl,
                  show_progress=False)
    return {"root": root, "sam": sam_dir, "clip": clip_dir, "vl": vl, "token_dim": segmenter.token_dim}
