"""`regionspot eval --backend`: the exported graphs under ONNX Runtime (fp32, int8) and OpenVINO (fp32, bf16) score
the first CI-subset images like the torch backend, into a store of their own; torch-only options are one line."""

import json

import pytest
from typer.testing import CliRunner

from regionspot.cli import app
from regionspot.engine.config import EvalOptions
from regionspot.errors import ConfigError
from regionspot.shapesworld.guard import regenerate_ci_subset

NUM_IMAGES = 4
runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The first CI-subset val images (seed and world of the shipped metrics.json), regenerated."""
    info = regenerate_ci_subset(tmp_path_factory.mktemp("ci_subset"), NUM_IMAGES)
    return info["val_json"], info["image_root"]


@pytest.fixture(scope="module")
def folder():
    from regionspot.testing.onnx_models import exported

    return exported()  # the embedded model's graphs


@pytest.fixture(scope="module")
def text_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("text")


def _options(world, out, text_cache, **kw):
    return EvalOptions(data=world[0], images=world[1], out=out, text_cache_dir=str(text_cache), **kw)


@pytest.fixture(scope="module")
def torch_ap(world, text_cache, tmp_path_factory):
    from regionspot.engine.evaluate import run_evaluation

    summary = run_evaluation(_options(world, tmp_path_factory.mktemp("torch"), text_cache, device="cpu"),
                             show_progress=False)
    return {t: r.AP for t, r in summary.results["RegionSpot"].items()}


def _ap(out):
    rows = json.loads((out / "report.json").read_text())["rows"]["RegionSpot"]
    return {t: r["AP"] for t, r in rows.items()}


def test_onnxruntime_eval_on_the_command_line_matches_torch(world, folder, text_cache, torch_ap, tmp_path):
    args = ["eval", "--data", str(world[0]), "--images", str(world[1]), "--out", str(tmp_path), "--backend",
            "onnxruntime", "--onnx", str(folder), "--text-cache-dir", str(text_cache)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "| RegionSpot | GT boxes |" in result.output
    ap = _ap(tmp_path)
    assert torch_ap["bbox"] > 0.2 and torch_ap["segm"] > 0.05  # a trained model: AP far from zero
    # The same fp32 graphs: logits agree to ~1e-5 (the export's parity tests), mask logits likewise, so only a class
    # tied to ~1e-5 or a pixel whose logit is within ~1e-5 of 0 could change: 4 images, no room for more than a
    # rounding-level difference (measured: identical AP).
    for iou_type in ("bbox", "segm"):
        assert abs(ap[iou_type] - torch_ap[iou_type]) <= 0.005, (iou_type, ap, torch_ap)
    meta = json.loads((tmp_path / "report.json").read_text())["meta"]
    assert meta["backend"] == "onnxruntime" and meta["options"]["backend"] == "onnxruntime"
    assert set(meta["this_run"]["seconds_per_image"]) == {"decode", "image_graphs", "prompt_and_head", "postprocess"}


@pytest.mark.parametrize(("backend", "tolerance"), [
    # int8 encoders / a bf16 pipeline round every activation: a near-tied class or a mask edge can move; on 4
    # images one swapped near-tie moves AP by up to a few points, broken numerics lose far more
    ("onnxruntime-int8", 0.05), ("openvino", 0.005), ("openvino-bf16", 0.05),
])
def test_other_backends_keep_the_ap(world, folder, text_cache, torch_ap, tmp_path, backend, tolerance):
    from regionspot.engine.evaluate import run_evaluation

    summary = run_evaluation(_options(world, tmp_path, text_cache, backend=backend, onnx=folder), show_progress=False)
    assert summary.meta["backend"] == backend
    for iou_type in ("bbox", "segm"):
        ap = summary.results["RegionSpot"][iou_type].AP
        assert abs(ap - torch_ap[iou_type]) <= tolerance, (backend, iou_type, ap, torch_ap)


def test_a_rerun_resumes_and_another_backend_is_refused(world, folder, text_cache, tmp_path):
    from regionspot.engine.evaluate import run_evaluation
    from regionspot.errors import RegionSpotError

    first = run_evaluation(_options(world, tmp_path, text_cache, backend="onnxruntime", onnx=folder, limit=2),
                           show_progress=False)
    again = run_evaluation(_options(world, tmp_path, text_cache, backend="onnxruntime", onnx=folder, limit=2),
                           show_progress=False)
    assert first.meta["this_run"]["scored"] == 2
    assert again.meta["this_run"]["scored"] == 0 and again.meta["this_run"]["skipped_done"] == 2  # nothing recomputed
    assert again.results["RegionSpot"]["bbox"].AP == first.results["RegionSpot"]["bbox"].AP
    with pytest.raises(RegionSpotError, match="holds predictions of another run .differs in .*backend"):
        run_evaluation(_options(world, tmp_path, text_cache, device="cpu", limit=2), show_progress=False)


@pytest.mark.parametrize(("kw", "message"), [
    ({"methods": ("regionspot", "clip-box")}, "`methods` clip-box (CLIP on crops) runs only with `backend` torch"),
    ({"fast_path": "bf16"}, "`fast_path` bf16 (torch numerics) runs only with `backend` torch"),
    ({"device": "cuda"}, "`device` cuda runs only with `backend` torch"),
    ({"templates": "single"}, "`templates` other than the head's"),
    ({"onnx": "graphs", "head": "other.safetensors"}, "Pass `onnx` DIR (exported graphs) or the weights"),
    ({"backend": "tensorrt"}, "`backend` must be one of torch, onnxruntime"),
])
def test_torch_only_options_are_one_line(kw, message):
    options = EvalOptions(**{"backend": "onnxruntime", **kw})
    with pytest.raises(Exception, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        options.validate()
    assert "\n" not in str(caught.value)


def test_onnx_needs_an_onnx_backend_and_sharding_needs_torch(monkeypatch):
    with pytest.raises(ConfigError, match="add `backend` onnxruntime"):
        EvalOptions(onnx="graphs").validate()
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="several processes"):
        EvalOptions(backend="openvino").validate()
    EvalOptions().validate()  # torch shards under accelerate
