"""The accuracy guard on any labelled COCO set, through public calls only: the set read by the COCO reader, the
logits the same as the predictor's, a verdict per path recorded for this machine."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from regionspot.errors import RegionSpotError
from regionspot.evaluation import guard
from regionspot.evaluation.guard import (
    PathModels,
    guard_table,
    read_guard_set,
    region_logits,
    run_guard,
    time_paths,
)
from regionspot.inference.fast import choose_fast_path, machine_signature, read_verdicts
from regionspot.inference.predictor import RegionSpotPredictor
from regionspot.model import RegionSpot


@pytest.fixture(scope="module")
def coco_set(tmp_path_factory):
    """Three images (one without boxes), category ids out of order, a crowd box and a box past the edge."""
    root = tmp_path_factory.mktemp("guard_set")
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(root / name)
    data = {
        "images": [{"id": 3, "file_name": "c.png", "width": 64, "height": 48},
                   {"id": 1, "file_name": "a.png", "width": 64, "height": 48},
                   {"id": 2, "file_name": "b.png", "width": 64, "height": 48}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 9, "bbox": [2, 3, 20, 15], "area": 300, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 4, "bbox": [30, 10, 40, 30], "area": 1200, "iscrowd": 0},
            {"id": 3, "image_id": 1, "category_id": 4, "bbox": [0, 0, 64, 48], "area": 3072, "iscrowd": 1},
            {"id": 4, "image_id": 3, "category_id": 9, "bbox": [10, 10, 30, 30], "area": 900, "iscrowd": 0},
        ],
        "categories": [{"id": 9, "name": "blue_ring"}, {"id": 4, "name": "red star"}],
    }
    (root / "set.json").write_text(json.dumps(data))
    return root / "set.json", root


def test_the_set_is_read_by_the_coco_reader(coco_set):
    regions = read_guard_set(*coco_set, num_images=5)
    assert [p.name for p in regions.images] == ["a.png", "c.png"]  # by id; the image without boxes is skipped
    assert regions.names == ["red star", "blue_ring"]  # by category id, as written
    assert regions.labels[0].tolist() == [1, 0] and regions.labels[1].tolist() == [1]  # the crowd box is not kept
    assert regions.boxes[0].tolist() == [[2.0, 3.0, 22.0, 18.0], [30.0, 10.0, 64.0, 40.0]]  # XYXY, clipped
    assert len(read_guard_set(*coco_set, num_images=1).images) == 1


def test_an_unlabelled_set_is_one_clear_error(tmp_path):
    (tmp_path / "empty.json").write_text(json.dumps({"images": [], "annotations": [],
                                                     "categories": [{"id": 1, "name": "x"}]}))
    with pytest.raises(RegionSpotError, match="no image with a box"):
        read_guard_set(tmp_path / "empty.json", tmp_path, 4)


def test_guard_logits_are_the_predictors(coco_set, tiny_model_dir):
    model = RegionSpot.from_pretrained(tiny_model_dir)
    regions = read_guard_set(*coco_set, num_images=5)
    logits = region_logits(model, regions, text_cache_dir=False)
    predictor = RegionSpotPredictor(model, text_cache_dir=None)
    predictor.set_vocabulary(regions.names)
    probs = []
    for image, boxes in zip(regions.images, regions.boxes):
        predictor.set_image(image)
        probs.append(torch.from_numpy(predictor.predict(boxes=boxes, return_masks=False).probs))
    assert logits.shape == (3, 2)
    torch.testing.assert_close(logits.softmax(-1), torch.cat(probs))


def test_run_guard_compares_times_and_records(coco_set, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("REGIONSPOT_CACHE", str(tmp_path))
    loads = []
    load = RegionSpot.from_pretrained
    monkeypatch.setattr(RegionSpot, "from_pretrained", lambda *a, **k: loads.append(k) or load(*a, **k))
    rows = run_guard(["eager", "int8"], *coco_set, num_images=5, weights=tiny_model_dir, text_cache_dir=tmp_path / "t",
                     repeats=2)
    assert len(loads) == 1 and "fast_path" not in loads[0]  # one fp32 load; the paths are switched or copied
    assert [row.path for row in rows] == ["eager", "int8"] and all(row.result.regions == 3 for row in rows)
    assert rows[0].result.max_abs < 1e-3 < rows[1].result.max_abs  # eager is float-exact, int8 is not
    assert rows[0].accuracy == rows[0].reference_accuracy
    assert all(row.speed.seconds > 0 and row.speed.fp32_seconds == rows[0].speed.fp32_seconds for row in rows)
    assert rows[1].speed.switch_seconds > 0  # int8's quantisation, timed once
    (verdicts,) = read_verdicts().values()
    assert set(verdicts) == {"eager", "int8"}
    assert verdicts["int8"]["speed"]["speedup"] == pytest.approx(rows[1].speed.speedup)
    table = guard_table(rows)
    assert "speed-up" in table[0] and f"{rows[1].speed.speedup:.2f}×" in table[3]


def _guard_with_timings(coco_set, tiny_model_dir, monkeypatch, seconds):
    monkeypatch.setattr(guard, "time_paths", lambda *args, **kwargs: seconds)
    return run_guard(["int8"], *coco_set, num_images=5, weights=tiny_model_dir, text_cache_dir=False)


def test_a_slow_but_accurate_path_is_not_chosen(coco_set, tiny_model_dir, tmp_path, monkeypatch):
    """int8 on an AVX2-only CPU: accurate, not faster (injected timings): recorded, never picked."""
    monkeypatch.setenv("REGIONSPOT_CACHE", str(tmp_path))
    (row,) = _guard_with_timings(coco_set, tiny_model_dir, monkeypatch, {"fp32": 42.2, "int8": 43.5})
    assert row.result.top1_up_to_ties == 1.0 and row.speed.speedup < 1
    assert choose_fast_path("cpu") == "fp32"
    assert "| pass |" in guard_table([row])[2] and guard_table([row])[2].endswith("| < 1.10× | no |")
    (row,) = _guard_with_timings(coco_set, tiny_model_dir, monkeypatch, {"fp32": 42.2, "int8": 21.1})
    assert choose_fast_path("cpu") == "int8" and guard_table([row])[2].endswith("| 2.00× | faster | yes |")
    assert read_verdicts()[machine_signature("cpu")]["int8"]["pays_off"] is True


def test_time_paths_interleaves_and_keeps_each_images_best_round():
    """Injected clock: each run advances it by a set time; the order rotates each round."""
    durations = {("a", 0): [3.0, 1.0, 2.0], ("b", 0): [2.0, 2.0, 5.0], ("a", 1): [4.0, 4.0, 4.0], ("b", 1): [1.0, 9.0, 1.0]}
    now, order = [0.0], []

    def run(path, image):
        order.append(path)
        now[0] += durations[path, image][sum(1 for p in order if p == path) - 1 - 3 * image]

    seconds = time_paths(run, ["a", "b"], images=2, repeats=3, clock=lambda: now[0])
    assert seconds == {"a": (1.0 + 4.0) / 2, "b": (2.0 + 1.0) / 2}
    assert order[:6] == ["a", "b", "b", "a", "a", "b"]
    with pytest.raises(ValueError):
        time_paths(run, ["a"], images=0, repeats=1)


def test_path_models_switch_one_model_and_copy_the_one_way_paths(tiny_model_dir):
    model = RegionSpot.from_pretrained(tiny_model_dir)
    models = PathModels(model, ["bf16", "int8"])
    assert model.fast_path == "fp32" and set(models.copies) == {"int8"} and set(models.switch_seconds) == {"bf16", "int8"}
    assert models.get("int8").fast_path == "int8" and models.get("int8") is not model
    assert models.get("bf16") is model and model.fast_path == "bf16"
    assert models.get("fp32") is model and model.fast_path == "fp32"
    def lin1(m):
        return type(m.segmenter.model.vision_encoder.layers[0].mlp.lin1)

    assert lin1(model) is torch.nn.Linear and lin1(models.get("int8")) is not torch.nn.Linear  # only the copy is int8
