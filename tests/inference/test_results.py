"""The result JSON (regionspot.result/1): its schema, its fields, and the docs that define them."""

from pathlib import Path

import numpy as np
import pytest
import torch

from regionspot.inference.predictor import RegionSpotPredictor
from regionspot.inference.proposals import Proposals
from regionspot.inference.region_filter import RegionFilter
from regionspot.inference.results import SCHEMA, RegionResult, result_schema
from regionspot.model import RegionSpot
from regionspot.testing.schema_check import check_against_schema, schema_errors

VOCAB = ["red circle", "blue square", "green star"]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "output.md"


@pytest.fixture(scope="module")
def predictor(tiny_model_dir):
    p = RegionSpotPredictor(RegionSpot.from_pretrained(tiny_model_dir / "head.safetensors"))
    rng = np.random.default_rng(0)
    p.set_image((rng.random((48, 64, 3)) * 255).astype(np.uint8))  # 64 wide, 48 high
    p.set_vocabulary(VOCAB)
    return p


def test_boxes_with_masks_follow_the_schema_with_both_numbers(predictor):
    from pycocotools.mask import decode

    result = predictor.predict(boxes=[[4, 6, 40, 30], [-5, 20, 70, 44]], top_k=2)
    payload = result.to_dict(image_path="photo.png", masks=True)
    check_against_schema(payload, result_schema())
    assert payload["schema"] == SCHEMA == "regionspot.result/1"
    assert payload["image"] == {"path": "photo.png", "width": 64, "height": 48}
    second = payload["regions"][1]
    assert second["box_xyxy"] == [0, 20, 64, 44]  # clamped to the image ...
    assert second["prompt"] == {"type": "box", "box_xyxy": [-5, 20, 70, 44]}  # ... the prompt as given
    for i, region in enumerate(payload["regions"]):
        assert [t["score"] for t in region["top_k"]] == pytest.approx(result.topk_scores[i], abs=1e-4)
        assert [t["confidence"] for t in region["top_k"]] == pytest.approx(result.display_topk_scores[i], abs=1e-4)
        assert region["confidence"] == region["top_k"][0]["confidence"] and region["score"] == region["top_k"][0]["score"]
        assert region["mask"]["size"] == [48, 64]
        assert (decode(region["mask"]).astype(bool) == np.asarray(result.masks[i])).all()
    assert "mask" not in result.to_dict()["regions"][0]  # masks only on request
    with pytest.raises(ValueError, match="masks"):
        predictor.predict(boxes=[[4, 6, 40, 30]], return_masks=False).to_dict(masks=True)


def test_points_and_proposals_are_recorded_as_their_prompts(predictor, monkeypatch):
    points = predictor.predict(points=[[20, 20], [40, 30]]).to_dict()
    assert points["regions"][1]["prompt"] == {"type": "point", "points": [[40, 30]], "point_labels": [1]}
    both = predictor.predict(boxes=[[4, 6, 40, 30]], points=[[[10, 10], [30, 12]]], point_labels=[[1, 0]]).to_dict()
    assert both["regions"][0]["prompt"] == {"type": "box", "box_xyxy": [4, 6, 40, 30], "points": [[10, 10], [30, 12]],
                                            "point_labels": [1, 0]}
    one = torch.ones(1)
    monkeypatch.setattr(predictor, "_proposals", lambda options=None: Proposals(torch.tensor([[2.0, 3, 30, 40]]), one, one, one))
    proposed = predictor.predict_everything(region_filter=RegionFilter.keep_all()).to_dict()
    assert proposed["regions"][0]["prompt"] == {"type": "proposal", "box_xyxy": [2, 3, 30, 40]}
    for payload in (points, both, proposed):
        check_against_schema(payload, result_schema())


def test_the_schema_rejects_what_a_program_could_not_trust(predictor):
    payload = predictor.predict(boxes=[[4, 6, 40, 30]]).to_dict()
    schema = result_schema()
    assert schema_errors(payload, schema) == []
    broken = dict(payload, image={"path": None, "size": [48, 64]})
    assert any("missing 'width'" in e for e in schema_errors(broken, schema))
    region = dict(payload["regions"][0], score=1.5, prompt={"type": "scribble"})
    errors = schema_errors(dict(payload, regions=[region]), schema)
    assert any("1.5 > 1" in e for e in errors) and any("anyOf" in e for e in errors)
    assert schema_errors(dict(payload, schema="regionspot.result/2"), schema)


def test_docs_define_every_field_once():
    text = DOCS.read_text()
    schema = result_schema()
    fields = [*schema["properties"], *schema["$defs"]["region"]["properties"], *schema["$defs"]["prompt"]["properties"]]
    for name in fields:
        assert f"`{name}`" in text, f"docs/output.md does not describe {name}"
    assert text.count("**`score`**") == 1 and text.count("**`confidence`**") == 1  # each defined once


def test_rejection_fields_are_optional_additions_to_schema_1():

    n = 2
    result = RegionResult(
        boxes=np.zeros((n, 4), np.float32), labels=["cat", "dog"], class_ids=np.array([0, 1]),
        scores=np.array([0.6, 0.7], np.float32), probs=np.full((n, 2), 0.5, np.float32),
        topk_ids=np.array([[0], [1]]), topk_scores=np.array([[0.6], [0.7]], np.float32), iou=np.ones(n, np.float32),
        vocabulary=["cat", "dog"], image_size=(10, 10))
    plain = result.to_dict()
    assert "rejection" not in plain and all("known" not in r for r in plain["regions"])
    assert result.display_labels == ["cat", "dog"] and result.is_known.all()
    result.rejection_score, result.known = np.array([2.5, -3.0], np.float32), np.array([True, False])
    result.rejection = {"score": "max_logit", "threshold": -1.0}
    data = result.to_dict()
    assert schema_errors(data, result_schema()) == [] and data["schema"] == "regionspot.result/1"
    assert [r["known"] for r in data["regions"]] == [True, False] and data["regions"][1]["label"] == "dog"
    assert data["regions"][1]["rejection_score"] == -3.0 and data["rejection"] == {"score": "max_logit", "threshold": -1.0}
    assert result.display_labels == ["cat", "unknown"]
    assert result.take([1]).known.tolist() == [False] and result.take([1]).rejection == result.rejection
