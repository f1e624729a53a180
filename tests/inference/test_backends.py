"""The backends on the embedded ShapesWorld model: each gives torch's labels and its logits within the stated
tolerance, masks and the result JSON as torch's, and a missing or incompatible export is one line.

Tolerances (embedded model, logits of magnitude ~5, the example's 4 boxes against its 64 names): the fp32
backends (onnxruntime, openvino) run the same float32 operations in another order: logits within 1e-4 and
labels equal (measured ~7e-6). The lossy ones (onnxruntime-int8: int8 matrix products in the encoders;
openvino-bf16: bfloat16 matrix products) within 0.5 (measured 0.09 and 0.13; the guard allows 2.0), and their
top-1 class within a tie of torch's (``compare_logits``' ``top1_up_to_ties``), as the accuracy guard asks.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from regionspot.cli import app
from regionspot.errors import OnnxModelError, RegionSpotError
from regionspot.inference.backends import BACKENDS, OnnxBackend, backend_spec, open_backend
from regionspot.inference.fast import compare_logits
from regionspot.inference.options import PredictOptions
from regionspot.registry import assets_dir
from regionspot.testing.onnx_models import exported, forced_isa

pytest.importorskip("onnxruntime")
EXAMPLE = json.loads((assets_dir() / "shapesworld" / "example.json").read_text())
IMAGE = assets_dir() / "shapesworld" / EXAMPLE["image"]
VOCABULARY = [v for v in (assets_dir() / "shapesworld" / "vocabulary.txt").read_text().splitlines() if v]
ONNX_BACKENDS = [name for name in BACKENDS if name != "torch"]
TOLERANCE = {"onnxruntime": 1e-4, "openvino": 1e-4, "onnxruntime-int8": 0.5, "openvino-bf16": 0.5}
runner = CliRunner()


@pytest.fixture(scope="module")
def folder():
    return exported(None)


def _labelled(backend, **prompts):
    backend.set_image(IMAGE)
    backend.set_vocabulary(VOCABULARY)
    return backend.predict(top_k=5, **prompts)


@pytest.fixture(scope="module")
def torch_result():
    return _labelled(open_backend("torch", text_cache_dir=False), boxes=EXAMPLE["boxes"])


def _backend(name, folder):
    if backend_spec(name).engine == "openvino":
        pytest.importorskip("openvino")
    return open_backend(name, onnx_dir=folder, threads=1, text_cache_dir=False)



@pytest.mark.parametrize("name", ONNX_BACKENDS)
def test_each_backend_gives_torchs_labels_and_logits(name, folder, torch_result):
    if name == "openvino-bf16" and forced_isa():
        pytest.importorskip("openvino")
        with pytest.raises(OnnxModelError, match="OpenVINO could not compile") as refused:
            _backend(name, folder)
        assert "\n" not in str(refused.value) and "use another backend" in str(refused.value)
        return
    result = _labelled(_backend(name, folder), boxes=EXAMPLE["boxes"])
    error = np.abs(result.logits - torch_result.logits).max()
    assert error <= TOLERANCE[name], f"{name}: max abs logit error {error}"
    agreement = compare_logits(torch.from_numpy(torch_result.logits), torch.from_numpy(result.logits))
    assert agreement.top1_up_to_ties == 1.0
    if TOLERANCE[name] < 1e-3:  # the fp32 backends: the same labels and scores
        assert result.labels == torch_result.labels
        np.testing.assert_array_equal(result.topk_ids, torch_result.topk_ids)
        np.testing.assert_allclose(result.probs, torch_result.probs, atol=1e-5, rtol=0)
    np.testing.assert_allclose(result.boxes, torch_result.boxes, atol=0, rtol=0)
    assert (np.asarray(result.masks) == np.asarray(torch_result.masks)).mean() >= 0.999


def test_onnx_result_json_is_torchs(folder, torch_result):
    result = _labelled(_backend("onnxruntime", folder), boxes=EXAMPLE["boxes"])
    got, expected = result.to_dict(masks=True), torch_result.to_dict(masks=True)
    assert [r["label"] for r in got["regions"]] == [r["label"] for r in expected["regions"]]
    assert [r["prompt"] for r in got["regions"]] == [r["prompt"] for r in expected["regions"]]
    for a, b in zip(got["regions"], expected["regions"]):
        assert abs(a["score"] - b["score"]) <= 1e-4 and abs(a["confidence"] - b["confidence"]) <= 1e-4
        assert [k["label"] for k in a["top_k"]] == [k["label"] for k in b["top_k"]]


def test_points_give_torchs_labels(folder):
    points = [[[200, 200]], [[140, 120]]]
    expected = _labelled(open_backend("torch", text_cache_dir=False), points=points)
    result = _labelled(_backend("onnxruntime", folder), points=points)
    assert result.labels == expected.labels
    np.testing.assert_allclose(result.boxes, expected.boxes, atol=1.0, rtol=0)
    assert result.prompts == expected.prompts


def test_onnx_backends_refuse_what_only_torch_does(folder):
    backend = _backend("onnxruntime", folder)
    backend.set_image(IMAGE)
    backend.set_vocabulary(VOCABULARY[:4])
    with pytest.raises(RegionSpotError, match="backend` torch"):
        backend.predict_everything()
    with pytest.raises(RegionSpotError, match="backend` torch"):
        backend.predict(boxes=EXAMPLE["boxes"], return_attention=True)


def test_text_embeddings_are_kept_per_model_backend_and_names(folder, tmp_path):
    spec = backend_spec("onnxruntime")
    first = OnnxBackend(folder, spec, threads=1, text_cache_dir=tmp_path)
    first.set_vocabulary(VOCABULARY[:5])
    (kept,) = tmp_path.glob("*.npy")
    np.testing.assert_array_equal(np.load(kept), first.runtime.vocabulary_embeddings)
    second = OnnxBackend(folder, spec, threads=1, text_cache_dir=tmp_path)
    second.set_vocabulary(VOCABULARY[:6])
    assert len(list(tmp_path.glob("*.npy"))) == 2
    # another backend (an int8 or bf16 text tower) never reads the fp32 backend's embeddings of the same names
    third = OnnxBackend(folder, backend_spec("onnxruntime-int8"), threads=1, text_cache_dir=tmp_path)
    third.set_vocabulary(VOCABULARY[:5])
    assert len(list(tmp_path.glob("*.npy"))) == 3


def test_a_missing_or_incompatible_export_is_one_line(folder, tmp_path):
    spec = backend_spec("onnxruntime")
    with pytest.raises(OnnxModelError, match="not a folder of exported graphs") as missing:
        OnnxBackend(tmp_path / "nothing", spec)
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    shutil.copyfile(broken / "sam_prompt.onnx", broken / "head.onnx")  # a graph in the wrong place
    with pytest.raises(OnnxModelError, match="holds the 'sam_prompt' graph") as wrong:
        OnnxBackend(broken, spec)
    (broken / "head.onnx").unlink()
    with pytest.raises(OnnxModelError, match="head.onnx is missing") as incomplete:
        OnnxBackend(broken, spec)
    for error in (missing, wrong, incomplete):
        assert "\n" not in str(error.value) and "regionspot export onnx" in str(error.value)
    result = runner.invoke(app, ["predict", "--backend", "onnxruntime", "--onnx", str(broken)])
    assert result.exit_code == 2 and result.output.strip().count("\n") == 0 and "head.onnx is missing" in result.output


def test_openvino_missing_is_one_line_naming_the_fix(folder, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "openvino", None)  # checked on every open, even after the one Core exists
    with pytest.raises(OnnxModelError, match=r"pip install 'regionspot\[openvino\]'"):
        OnnxBackend(folder, backend_spec("openvino"))


@pytest.mark.parametrize(("options", "message"), [
    (dict(backend="tensorrt"), "`backend` must be one of torch, onnxruntime"),
    (dict(backend="torch", onnx="model-onnx"), "`onnx` names exported graphs for an ONNX backend"),
    (dict(backend="onnxruntime", fast=True), "`fast` picks torch numerics"),
    (dict(backend="openvino", everything=True), "`everything` needs the segmenter's proposals"),
    (dict(backend="onnxruntime", device="cuda"), "`device` runs on a GPU"),
    (dict(backend="onnxruntime", onnx="model-onnx", model="BL"), "Pass `onnx` DIR"),
])
def test_predict_options_refuse_backend_combinations(options, message):
    with pytest.raises(RegionSpotError, match=message):
        PredictOptions(**options).validate()


@pytest.mark.parametrize("name", ["onnxruntime", "openvino"])
def test_cli_predict_with_a_backend_writes_torchs_labels(name, folder, tmp_path):
    if name == "openvino":
        pytest.importorskip("openvino")
    results = {}
    for backend, extra in (("torch", []), (name, ["--onnx", str(folder)])):
        out = tmp_path / f"{backend}.json"
        result = runner.invoke(app, ["predict", "--backend", backend, *extra, "--out", str(out), "--no-viz"])
        assert result.exit_code == 0, result.output
        results[backend] = json.loads(out.read_text())
    labels = {backend: [r["label"] for r in data["regions"]] for backend, data in results.items()}
    assert labels[name] == labels["torch"] and len(labels["torch"]) == len(EXAMPLE["boxes"])
    assert results[name]["model"]["backend"] == name


def test_cli_onnx_backend_without_prompts_is_one_line(folder, tmp_path):
    image = tmp_path / "photo.png"
    shutil.copyfile(IMAGE, image)
    result = runner.invoke(app, ["predict", str(image), "--backend", "onnxruntime", "--onnx", str(folder),
                                 "--vocab", "red circle,blue square"])
    assert result.exit_code == 2 and "pass --boxes or --points" in result.output
