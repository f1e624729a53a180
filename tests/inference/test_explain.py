import numpy as np
import pytest
from PIL import Image

from regionspot.errors import RegionSpotError
from regionspot.inference import explain
from regionspot.inference.explain import (
    attention_grid,
    attention_maps,
    draw_attention,
    explain_figure,
    panel_caption,
    upsample,
)
from regionspot.inference.predictor import RegionSpotPredictor
from regionspot.inference.results import RegionResult
from regionspot.model import RegionSpot


def test_grid_drops_the_class_token_and_averages_heads():
    attention = np.zeros((1, 2, 2, 1 + 9), np.float32)  # (N, L, heads, T): class token + 3×3 patches
    attention[0, 1, 0, 1 + 5] = 1.0  # last layer, head 0: patch (row 1, col 2)
    attention[0, 1, 1, 0] = 1.0  # last layer, head 1: the class token only
    attention[0, 0, :, 1] = 1.0  # first layer: patch (0, 0)
    last = attention_grid(attention)[0]
    assert last.shape == (3, 3) and last[1, 2] == 0.5 and last.sum() == 0.5
    every = attention_grid(attention, layer=None)[0]
    assert every[0, 0] == 0.5 and every[1, 2] == 0.25
    assert attention_grid(attention, layer=0)[0, 0, 0] == 1.0
    with pytest.raises(ValueError, match="layers"):
        attention_grid(attention, layer=2)
    with pytest.raises(ValueError, match="square"):
        attention_grid(np.ones((1, 1, 1, 8)))


def test_upsampling_keeps_the_frame():
    grid = np.zeros((2, 2), np.float32)
    grid[0, 1] = 1.0  # top-right patch
    heat = upsample(grid, (40, 100))
    assert heat.shape == (40, 100)
    assert heat[:20, 50:].mean() > 0.5 > heat[20:, :50].mean()  # bright top-right, dark bottom-left


def test_draw_attention_checks_the_size():
    image = Image.new("RGB", (30, 20), (10, 20, 30))
    out = draw_attention(image, np.linspace(0, 1, 600).reshape(20, 30), box=[2, 2, 10, 10], caption="x")
    assert out.size == (30, 20) and out.mode == "RGB"
    with pytest.raises(ValueError, match="does not match"):
        draw_attention(image, np.zeros((30, 20)))


def test_maps_and_figure_from_a_real_forward(tiny_model_dir):
    predictor = RegionSpotPredictor(RegionSpot.from_pretrained(tiny_model_dir / "head.safetensors"))
    image = Image.fromarray((np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8))
    predictor.set_image(image)
    predictor.set_vocabulary(["red circle", "blue square"])
    result = predictor.predict(boxes=[[4, 6, 40, 30], [20, 20, 60, 44]], return_attention=True)
    maps = attention_maps(result)
    assert maps.shape == (2, 48, 64) and np.isfinite(maps).all()
    layers = result.attention.shape[1]
    assert explain_figure(image, result).size == (64, 2 * 48)
    assert explain_figure(image, result, regions=[1], per_layer=True).size == (64 * layers, 48)
    assert explain_figure(image, result, max_side=32).size == (32, 2 * 24)  # panels of a large image are scaled down
    with pytest.raises(RegionSpotError, match="regions"):
        explain_figure(image, result, regions=[5])
    with pytest.raises(RegionSpotError, match="return_attention"):
        attention_maps(predictor.predict(boxes=[[4, 6, 40, 30]]))


def _calibrated(confidence):
    """Two regions whose paper softmax score (0.07) and calibrated confidence differ."""
    n = len(confidence)
    return RegionResult(
        boxes=np.array([[0, 0, 8, 8]] * n, np.float32), labels=["red heart", "blue star"][:n],
        class_ids=np.arange(n), scores=np.full(n, 0.07, np.float32), probs=np.full((n, 2), 0.5, np.float32),
        topk_ids=np.arange(n)[:, None], topk_scores=np.full((n, 1), 0.07, np.float32), iou=np.ones(n, np.float32),
        vocabulary=["red heart", "blue star"], image_size=(16, 16), confidence=np.asarray(confidence, np.float32),
        attention=np.full((n, 2, 1, 1 + 4), 0.2, np.float32),
    )


def test_captions_show_the_confidence_a_person_sees_everywhere():
    result = _calibrated([0.18, 0.5])
    assert panel_caption(result, 0) == "#0 red heart 0.18 (last layer)"  # not the paper score 0.07
    assert panel_caption(result, 1, layer=0) == "#1 blue star 0.50 (layer 1)"
    assert panel_caption(result, 0, layer=None) == "#0 red heart 0.18 (all layers)"
    uncalibrated = _calibrated([0.18])
    uncalibrated.confidence = None  # a head without a display temperature: the confidence is the score
    assert panel_caption(uncalibrated, 0) == "#0 red heart 0.07 (last layer)"


def test_the_figure_draws_those_captions(monkeypatch):
    drawn = []
    original = explain.draw_attention
    monkeypatch.setattr(explain, "draw_attention", lambda *a, **k: drawn.append(a[3]) or original(*a, **k))
    explain_figure(Image.new("RGB", (16, 16)), _calibrated([0.18, 0.5]), per_layer=True)
    assert drawn == ["#0 red heart 0.18 (layer 1)", "#0 red heart 0.18 (layer 2)",
                     "#1 blue star 0.50 (layer 1)", "#1 blue star 0.50 (layer 2)"]
