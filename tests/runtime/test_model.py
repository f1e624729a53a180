"""The torch-free runtime against the PyTorch predictor on the embedded ShapesWorld model, and the example script
in a subprocess that never imports torch or transformers.

Tolerances (embedded model, logits of magnitude ~5): logits and tokens 1e-4 absolute, probabilities 1e-5, SAM's
IoU 1e-5; full-size masks identical on at least 99.9 % of pixels (a pixel flips only where a logit is within
float32 rounding of 0). Measured: logits 7.4e-6, probabilities 1.7e-7, IoU 6e-8, masks identical. The graphs run
the same float32 operations as PyTorch in another order (ONNX Runtime's fused kernels), so only rounding differs;
the preprocessing is bit-identical (tests/data/test_pixels.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from regionspot.inference.predictor import RegionSpotPredictor
from regionspot.model import RegionSpot
from regionspot.registry import assets_dir
from regionspot.runtime import OnnxRegionSpot
from regionspot.testing.isolated import imported, run_isolated
from regionspot.testing.onnx_models import exported

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = assets_dir() / "shapesworld" / "example.png"


@pytest.fixture(scope="module")
def folder():
    return exported(None)


@pytest.fixture(scope="module")
def both(folder):
    vocabulary = [v for v in (assets_dir() / "shapesworld" / "vocabulary.txt").read_text().splitlines() if v]
    runtime = OnnxRegionSpot(folder, threads=1)
    runtime.set_image(EXAMPLE)
    runtime.set_vocabulary(vocabulary)
    predictor = RegionSpotPredictor(RegionSpot.from_pretrained(device="cpu"))
    predictor.set_image(EXAMPLE)
    predictor.set_vocabulary(vocabulary)
    return runtime, predictor


def test_boxes_give_the_predictors_labels_logits_tokens_and_masks(both):
    runtime, predictor = both
    boxes = json.loads((assets_dir() / "shapesworld" / "example.json").read_text())["boxes"]
    got, expected = runtime.predict(boxes=boxes, top_k=5), predictor.predict(boxes=boxes, top_k=5)
    assert got.labels == expected.labels
    np.testing.assert_array_equal(got.topk_ids, expected.topk_ids)
    np.testing.assert_allclose(got.probs, expected.probs, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got.confidence, expected.confidence, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got.iou, expected.iou, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got.boxes, expected.boxes, atol=0, rtol=0)
    np.testing.assert_allclose(got.rejection_score, expected.rejection_score, atol=1e-4, rtol=0)  # same code, same rule
    assert got.rejection == expected.rejection and (got.known is None) == (expected.known is None)
    with torch.inference_mode():
        seg = predictor.model.segmenter.decode_prompts(predictor._state, boxes=torch.tensor(boxes), masks="none")
        logits = predictor.model(seg.tokens[None], predictor._feature_map, predictor._text).logits[0]
    np.testing.assert_allclose(got.tokens, seg.tokens.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(got.logits, logits.numpy(), atol=1e-4, rtol=0)
    assert (got.masks() == np.asarray(expected.masks)).mean() >= 0.999


def test_points_give_the_predictors_labels_and_mask_boxes(both):
    runtime, predictor = both
    points = [[[200, 200]], [[140, 120]], [[100, 70]]]
    got, expected = runtime.predict(points=points), predictor.predict(points=points)
    assert got.labels == expected.labels
    np.testing.assert_allclose(got.probs, expected.probs, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got.boxes, expected.boxes, atol=1.0, rtol=0)


def test_text_embeddings_match_the_model(both):
    runtime, predictor = both
    names = ["red circle", "a very long name of a blue square with many words", "white cross"]
    expected = predictor.model.text_embeddings(names, cache_dir=False, show_progress=False)
    np.testing.assert_allclose(runtime.text_embeddings(names), expected.numpy(), atol=1e-5, rtol=0)


def test_the_example_script_labels_regions_without_torch_or_transformers(folder):
    """examples/onnx_label.py in a fresh interpreter; at exit neither torch nor transformers was ever imported."""
    body = (
        f"sys.argv = ['onnx_label.py', {str(folder)!r}, {str(EXAMPLE)!r}, '--names', 'black ring,cyan ring,red square',"
        " '--boxes', '0,78,73,174;110,73,178,139']\n"
        f"runpy.run_path({str(ROOT / 'examples' / 'onnx_label.py')!r}, run_name='__main__')\n"
    )
    result = run_isolated(body, timeout=300, cwd=None)
    assert result.returncode == 0, result.stderr
    assert imported(result) == "IMPORTED []"
    payload = json.loads(result.stdout[: result.stdout.rindex("IMPORTED")])
    assert [region["label"] for region in payload["regions"]][0] == "black ring"  # the example's first object
    assert len(payload["regions"]) == 2 and len(payload["regions"][0]["top"]) == 3


def test_openvino_runs_the_same_graphs(folder, both):
    pytest.importorskip("openvino")
    runtime, _ = both
    boxes = json.loads((assets_dir() / "shapesworld" / "example.json").read_text())["boxes"]
    expected = runtime.predict(boxes=boxes, top_k=5)
    openvino = OnnxRegionSpot(folder, threads=1, engine="openvino")
    assert openvino.graphs.model == runtime.graphs.model
    openvino.set_image(EXAMPLE)
    openvino.set_vocabulary(runtime.vocabulary)
    got = openvino.predict(boxes=boxes, top_k=5)
    assert got.labels == expected.labels
    np.testing.assert_allclose(got.logits, expected.logits, atol=1e-4, rtol=0)
    np.testing.assert_allclose(got.tokens, expected.tokens, atol=1e-4, rtol=0)
