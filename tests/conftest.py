"""Shared fixtures: tiny randomly initialised backbones of the real transformers classes, saved to
folders once per test session, and a tiny RegionSpot model folder (sam/, clip/, head.safetensors)."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# A developer's downloaded weights (~/.cache/regionspot) never reach the tests: an empty model home.
os.environ["REGIONSPOT_HOME"] = tempfile.mkdtemp(prefix="regionspot_home_")
torch.set_num_threads(min(2, torch.get_num_threads()))

# Tests whose results depend on the CPU's floating-point kernels: `bash scripts/test.sh --avx2` runs them again
# with AVX2 kernels forced (as on AVX2-only CPUs), and CI does so on every run.
NUMERICS = ("tests/backbones/", "tests/utils/", "tests/inference/", "tests/masks/", "tests/modeling/", "tests/text/",
            "tests/evaluation/", "tests/test_model.py", "tests/engine/test_eval_fast_path.py",
            "tests/engine/test_eval_batching.py", "tests/shapesworld/test_guard.py", "tests/test_checkpoint.py")


def pytest_configure(config):
    config.addinivalue_line("markers", "numerics: depends on the CPU's floating-point kernels (rerun under AVX2)")


def pytest_collection_modifyitems(config, items):
    root = config.rootpath
    for item in items:
        path = item.path.relative_to(root).as_posix()
        if path.startswith(NUMERICS):
            item.add_marker(pytest.mark.numerics)


@pytest.fixture(scope="session")
def tiny_sam_dir(tmp_path_factory):
    from regionspot.testing.tiny_sam import save_tiny_sam

    return save_tiny_sam(tmp_path_factory.mktemp("tiny") / "sam", seed=0)


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    from regionspot.testing.tiny_clip import save_tiny_clip

    return save_tiny_clip(tmp_path_factory.mktemp("tiny") / "clip", seed=0)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_sam_dir, tiny_clip_dir):
    """A model folder laid out like the shipped one: sam/, clip/ and a random head.safetensors whose
    config names the backbones by relative folder."""
    import shutil

    from regionspot.backbones.segmenter import load_segmenter
    from regionspot.backbones.vision_language import load_vision_language
    from regionspot.checkpoint import save_head_checkpoint
    from regionspot.config import HeadConfig, RegionSpotConfig
    from regionspot.modeling.head import RegionSpotHead

    root = tmp_path_factory.mktemp("tiny_model")
    shutil.copytree(tiny_sam_dir, root / "sam")
    shutil.copytree(tiny_clip_dir, root / "clip")
    vl = load_vision_language(str(root / "clip"))
    token_dim = load_segmenter(str(root / "sam")).token_dim
    config = RegionSpotConfig(
        segmenter="sam", vision_language="clip", image_size=vl.image_size, templates="single",
        head=HeadConfig(token_dim=token_dim, feature_dim=vl.feature_dim, embed_dim=vl.embed_dim, ffn_dim=64, num_heads=4, depth=2),
    )
    torch.manual_seed(0)
    save_head_checkpoint(root / "head.safetensors", RegionSpotHead(config.head), config)
    return root


@pytest.fixture(scope="session")
def tiny_owlv2_dir(tmp_path_factory):
    from regionspot.testing.tiny_owlv2 import save_tiny_owlv2

    return save_tiny_owlv2(tmp_path_factory.mktemp("tiny") / "owlv2", seed=3)
