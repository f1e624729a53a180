"""`regionspot eval --fast-path`: the chosen numerics reach the backbones (with a head, and for the crop baselines
alone), are recorded in the report, and move the CI-subset AP by float error only."""


import pytest

from regionspot.engine.config import EvalOptions
from regionspot.errors import ConfigError
from regionspot.shapesworld.guard import regenerate_ci_subset

NUM_IMAGES = 6


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The first CI-subset val images (seed and world of the shipped metrics.json), regenerated."""
    info = regenerate_ci_subset(tmp_path_factory.mktemp("ci_subset"), NUM_IMAGES)
    return info["val_json"], info["image_root"]


def _run(world, out, fast_path):
    from regionspot.engine.evaluate import run_evaluation

    return run_evaluation(EvalOptions(data=world[0], images=world[1], out=out, iou_types=("bbox",), device="cpu",
                                      text_cache_dir=str(out / "text"), fast_path=fast_path), show_progress=False)


def test_bf16_eval_is_recorded_and_keeps_the_ap(world, tmp_path):
    plain = _run(world, tmp_path / "fp32", "fp32")
    fast = _run(world, tmp_path / "bf16", "bf16")
    assert plain.meta["options"]["fast_path"] == "fp32" and fast.meta["options"]["fast_path"] == "bf16"
    ap = [s.results["RegionSpot"]["bbox"].AP for s in (plain, fast)]
    # bf16 rounds the backbones' outputs differently per CPU (native AVX-512 BF16 / AMX, or emulated on AVX2);
    # on 6 images one swapped near-tie moves AP by up to ~0.03 (0.028 measured under forced AVX2 kernels),
    # while broken bf16 numerics lose far more.
    assert ap[0] > 0.05 and abs(ap[0] - ap[1]) <= 0.05, f"bf16 moved the CI-subset AP from {ap[0]:.4f} to {ap[1]:.4f}"


def test_crop_baselines_alone_get_the_path(tiny_sam_dir, tiny_clip_dir):
    from regionspot.engine.evaluate import load_parts

    segmenter, vision_language, model = load_parts(("clip-box",), None, str(tiny_sam_dir), str(tiny_clip_dir), "cpu",
                                                   fast_path="int8")
    assert model is None
    kinds = {type(m).__module__ for m in vision_language.model.modules()}
    assert any("quantized" in kind for kind in kinds)
    assert vision_language.weights_fingerprint.endswith("+int8")


def test_unknown_fast_path_is_one_clear_error():
    with pytest.raises(ConfigError, match="`fast_path` must be one of"):
        EvalOptions(fast_path="fp8").validate()


def test_auto_is_resolved_from_this_machines_verdicts(tiny_sam_dir, tiny_clip_dir, tmp_path, monkeypatch):
    from regionspot.engine.evaluate import load_parts
    from regionspot.errors import RegionSpotError
    from regionspot.inference import fast

    monkeypatch.setenv("REGIONSPOT_CACHE", str(tmp_path))
    monkeypatch.setattr(fast, "has_native_bf16", lambda device: False)
    with pytest.raises(RegionSpotError, match=fast.GUARD_COMMAND):  # before any model is loaded
        load_parts(("clip-box",), None, str(tiny_sam_dir), str(tiny_clip_dir), "cpu", fast_path="auto")
    fast.write_verdicts({"int8": fast.GuardResult(20, 0.1, 0.01, 1.0, 1.0)}, "cpu",
                        speeds={"int8": fast.PathSpeed(0.5, 1.0)})
    segmenter, vision_language, _ = load_parts(("clip-box",), None, str(tiny_sam_dir), str(tiny_clip_dir), "cpu",
                                               fast_path="auto")
    assert segmenter.weights_fingerprint.endswith("+int8") and vision_language.weights_fingerprint.endswith("+int8")
