"""The bundled example is a showcase of rejection: its vocabulary leaves one of its objects' classes out, the head's
own rule rejects that object, and every other object keeps its true name and is not rejected."""

from __future__ import annotations

import json

import numpy as np

from regionspot.inference.predictor import RegionSpotPredictor
from regionspot.model import RegionSpot
from regionspot.registry import assets_dir
from regionspot.shapesworld.ship import choose_unknown, example_spec, showcase_unknowns

SHIPPED = assets_dir() / "shapesworld"
RULE = {"score": "max_logit", "threshold": 0.0}


def test_the_bundled_example_shows_exactly_one_unknown_with_the_heads_own_rule():
    spec = json.loads((SHIPPED / "example.json").read_text())
    assert len(spec["unknown"]) == 1 and spec["unknown"][0] in spec["labels"]
    assert spec["unknown"][0] not in spec["vocabulary"]
    predictor = RegionSpotPredictor(RegionSpot.from_pretrained(None, device="cpu"))  # reject: on by default
    predictor.set_image(str(SHIPPED / spec["image"]))
    predictor.set_vocabulary(spec["vocabulary"])
    result = predictor.predict(boxes=spec["boxes"], top_k=1, return_masks=False)
    assert result.known is not None
    unknown = [label == spec["unknown"][0] for label in spec["labels"]]
    assert list(result.known) == [not u for u in unknown]
    assert [lab for lab, u in zip(result.labels, unknown, strict=True) if not u] == \
        [lab for lab, u in zip(spec["labels"], unknown, strict=True) if not u]


def test_a_class_qualifies_only_when_its_object_alone_is_rejected_and_the_others_stay_right():
    names = ["a", "b", "c", "d"]
    logits = np.array([[3.0, -1.0, -2.0, -2.0],    # object "a": nothing else near -> rejected without "a"
                       [-2.0, 2.0, 1.5, -2.0],     # object "b": "c" is close and above 0 -> still known without "b"
                       [-2.0, -2.0, 2.0, -2.0]])   # object "c": rejected without "c"
    assert showcase_unknowns(logits, ["a", "b", "c"], names, RULE) == ["c", "a"]
    logits[1, 0] = 2.5  # now "b"'s object is labelled "a" unless "a" is left out
    assert showcase_unknowns(logits, ["a", "b", "c"], names, RULE) == ["a"]
    logits[0, 1] = 0.5  # "a"'s object stays known as "b" without "a": nothing qualifies
    assert showcase_unknowns(logits, ["a", "b", "c"], names, RULE) == []


def test_unknowns_are_ordered_by_the_largest_logit_left_lowest_first():
    names = ["a", "b", "c"]
    logits = np.array([[3.0, -1.0, -2.0], [-3.0, 2.0, -3.0], [-0.5, -2.0, 2.0]])
    assert choose_unknown(logits, ["a", "b", "c"], names) == ["b", "a", "c"]
    assert showcase_unknowns(logits, ["a", "b", "c"], names, RULE) == ["b", "a", "c"]


def test_the_spec_keeps_the_true_labels_and_drops_the_unknown_from_the_vocabulary():
    example = {"boxes": [[0, 0, 2, 2], [3, 3, 5, 5]], "labels": ["red ring", "blue star"]}
    spec = example_spec(example, ["red ring", "blue star", "green heart"], "blue star")
    assert spec["labels"] == ["red ring", "blue star"] and spec["unknown"] == ["blue star"]
    assert spec["vocabulary"] == ["red ring", "green heart"]
    assert "unknown" not in example_spec(example, ["red ring", "blue star"], None)
    assert np.asarray(spec["boxes"]).shape == (2, 4)
