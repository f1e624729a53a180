"""The bundled example's vocabulary leaves one of its objects' classes out: the region none of the names fits."""

from __future__ import annotations

import json

import numpy as np

from regionspot.inference.predictor import RegionSpotPredictor
from regionspot.model import RegionSpot
from regionspot.registry import assets_dir
from regionspot.shapesworld.ship import choose_unknown, example_spec

SHIPPED = assets_dir() / "shapesworld"


def test_the_unknown_is_the_object_with_the_lowest_sigmoid_once_its_class_is_left_out():
    spec = json.loads((SHIPPED / "example.json").read_text())
    names = [n for n in (SHIPPED / "vocabulary.txt").read_text().splitlines() if n]
    example = {"file": str(SHIPPED / spec["image"]), "boxes": spec["boxes"], "labels": spec["labels"]}
    chosen = choose_unknown(SHIPPED / "head.safetensors", SHIPPED / "sam", SHIPPED / "clip", example, names)
    assert spec["unknown"] == [chosen]
    predictor = RegionSpotPredictor(RegionSpot.from_pretrained(None, device="cpu"))
    predictor.set_image(example["file"])
    best = {}
    for label, box in zip(spec["labels"], spec["boxes"], strict=True):
        predictor.set_vocabulary([n for n in names if n != label])
        best[label] = float(predictor.predict(boxes=[box], top_k=1, return_masks=False).logits.max())
    assert min(best, key=best.get) == chosen and len(set(best.values())) == len(best)


def test_the_spec_keeps_the_true_labels_and_drops_the_unknown_from_the_vocabulary():
    example = {"boxes": [[0, 0, 2, 2], [3, 3, 5, 5]], "labels": ["red ring", "blue star"]}
    spec = example_spec(example, ["red ring", "blue star", "green heart"], "blue star")
    assert spec["labels"] == ["red ring", "blue star"] and spec["unknown"] == ["blue star"]
    assert spec["vocabulary"] == ["red ring", "green heart"]
    assert "unknown" not in example_spec(example, ["red ring", "blue star"], None)
    assert np.asarray(spec["boxes"]).shape == (2, 4)
