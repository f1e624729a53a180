import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from regionspot.errors import PromptError, RegionSpotError, VocabularyError
from regionspot.inference.predictor import RegionSpotPredictor
from regionspot.inference.region_filter import RegionFilter
from regionspot.model import RegionSpot

VOCAB = ["red circle", "blue square", "green star"]
BOXES = [[4, 6, 40, 30], [20, 20, 60, 44], [0, 0, 63, 47]]


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return RegionSpot.from_pretrained(tiny_model_dir / "head.safetensors")


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    return (rng.random((48, 64, 3)) * 255).astype(np.uint8)


@pytest.fixture()
def predictor(model, image, tmp_path):
    p = RegionSpotPredictor(model, text_cache_dir=str(tmp_path / "text"))
    p.set_image(image)
    p.set_vocabulary(VOCAB)
    return p


def test_predict_shapes_and_probabilities(predictor):
    result = predictor.predict(boxes=BOXES, top_k=2)
    assert len(result) == 3 and result.probs.shape == (3, 3)
    np.testing.assert_allclose(result.probs.sum(-1), 1.0, atol=1e-5)
    assert result.topk_ids.shape == (3, 2) and (np.diff(result.topk_scores, axis=1) <= 0).all()
    assert result.labels == [VOCAB[i] for i in result.probs.argmax(-1)]
    assert result.masks.shape == (3, 48, 64) and result.masks.dtype == bool
    np.testing.assert_allclose(result.boxes, np.asarray(BOXES, np.float32))


def test_image_inputs_agree_and_predict_is_repeatable(model, image, predictor, tmp_path):
    first = predictor.predict(boxes=BOXES).probs
    np.testing.assert_allclose(predictor.predict(boxes=BOXES).probs, first, atol=1e-6)
    path = tmp_path / "img.png"
    Image.fromarray(image).save(path)
    for source in (path, Image.fromarray(image), Image.fromarray(image).convert("RGBA")):
        other = RegionSpotPredictor(model, text_cache_dir=str(tmp_path / "text"))
        other.set_image(source)
        other.set_vocabulary(VOCAB)
        np.testing.assert_allclose(other.predict(boxes=BOXES).probs, first, atol=1e-5)


def test_box_order_permutes_results(predictor):
    result = predictor.predict(boxes=BOXES)
    perm = [2, 0, 1]
    permuted = predictor.predict(boxes=[BOXES[i] for i in perm])
    np.testing.assert_allclose(permuted.probs, result.probs[perm], atol=1e-5)


def test_vocabulary_order_permutes_columns(predictor):
    probs = predictor.predict(boxes=BOXES).probs
    predictor.set_vocabulary(VOCAB[::-1])
    np.testing.assert_allclose(predictor.predict(boxes=BOXES).probs, probs[:, ::-1], atol=1e-5)


def test_points_give_regions_with_mask_boxes(predictor):
    result = predictor.predict(points=[[20, 20], [40, 30]])
    assert len(result) == 2 and result.boxes.shape == (2, 4)


def test_masks_off_does_not_change_scores(predictor):
    with_masks = predictor.predict(boxes=BOXES)
    without = predictor.predict(boxes=BOXES, return_masks=False)
    assert without.masks is None
    np.testing.assert_allclose(without.probs, with_masks.probs, atol=1e-6)


def test_coco_json_and_dict(predictor):
    result = predictor.predict(boxes=BOXES, top_k=2)
    entries = result.to_coco_json(image_id=7, category_ids=[11, 12, 13])
    assert len(entries) == 6
    first = entries[0]
    assert first["image_id"] == 7 and first["category_id"] in (11, 12, 13)
    assert first["bbox"] == pytest.approx([4, 6, 36, 24])
    assert isinstance(first["segmentation"]["counts"], str)
    summary = result.to_dict()
    assert summary["regions"][0]["label"] == result.labels[0]


def test_misuse_and_bad_prompts(model, predictor):
    fresh = RegionSpotPredictor(model)
    with pytest.raises(RegionSpotError, match="set_image"):
        fresh.predict(boxes=BOXES)
    with pytest.raises(VocabularyError):
        predictor.set_vocabulary([])
    with pytest.raises(VocabularyError):
        predictor.set_vocabulary(["cat", "cat"])
    with pytest.raises(PromptError):
        predictor.predict(boxes=[[np.nan, 0, 10, 10]])
    with pytest.raises(PromptError):
        predictor.predict(boxes=[[10, 10, 10, 30]])
    with pytest.raises(PromptError):
        predictor.predict(boxes=[[1, 2, 3]])
    with pytest.raises(PromptError):
        predictor.predict()


def test_out_of_image_box_is_clipped_with_a_message(predictor):
    with pytest.warns(UserWarning):
        result = predictor.predict(boxes=[[-10, -5, 30, 100]])
    assert result.messages and result.boxes[0].tolist() == [0, 0, 30, 48]


def test_head_from_another_variant_is_refused(tiny_model_dir, tmp_path):
    from regionspot.checkpoint import load_head_checkpoint, save_head_checkpoint
    from regionspot.errors import CheckpointError
    from regionspot.modeling.head import RegionSpotHead

    _, config, _ = load_head_checkpoint(tiny_model_dir / "head.safetensors")
    config.head.feature_dim *= 2
    save_head_checkpoint(tmp_path / "head.safetensors", RegionSpotHead(config.head), config)
    with pytest.raises(CheckpointError, match="another variant"):
        RegionSpot.from_pretrained(tmp_path / "head.safetensors", segmenter=str(tiny_model_dir / "sam"),
                                   vision_language=str(tiny_model_dir / "clip"))


def test_model_has_only_head_parameters_trainable(model):
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("head.") for n in trainable)
    assert torch.is_grad_enabled()


def test_a_vocabulary_is_embedded_once_and_reused(model, image, monkeypatch):
    calls = []
    original = model.text_embeddings
    monkeypatch.setattr(model, "text_embeddings", lambda names, **kw: calls.append(list(names)) or original(names, **kw))
    p = RegionSpotPredictor(model, vocabularies_kept=2)
    p.set_image(image)
    for names in (VOCAB, VOCAB[::-1], VOCAB, VOCAB[::-1], ["cat", "dog"], VOCAB):
        p.set_vocabulary(names)
        assert p.predict(boxes=BOXES[:1]).probs.shape == (1, len(names))
    # VOCAB, its reverse, then cat/dog pushes VOCAB out of the two kept: embedded again at the end
    assert calls == [VOCAB, VOCAB[::-1], ["cat", "dog"], VOCAB]


def test_predict_everything_labels_every_proposal(predictor):
    from regionspot.inference.proposals import ProposalOptions

    # a random SAM predicts negative IoUs and unstable masks: keep them all (and near-copies: no NMS)
    options = ProposalOptions(points_per_side=4, crop_layers=0, refine=False, nms_iou=1.0, area_fraction=(0.0, 1.0),
                              min_predicted_iou=-1.0)
    proposals = predictor._proposals(options)
    boxes, stability = proposals.boxes.numpy(), proposals.stability.numpy()
    assert len(boxes) > 1
    result = predictor.predict_everything(options, top_k=2, region_filter=RegionFilter.keep_all())
    # every proposal, most stable first
    assert len(result) == len(boxes) and result.topk_ids.shape == (len(boxes), 2)
    labelled = predictor.predict(boxes=boxes)
    order = np.argsort(-stability, kind="stable")
    np.testing.assert_allclose(result.boxes, boxes[order])
    np.testing.assert_allclose(result.probs, labelled.probs[order], atol=1e-6)
    # max_regions caps what is shown, chosen among all the proposals
    few = predictor.predict_everything(dataclasses.replace(options, max_regions=1), region_filter=RegionFilter.keep_all())
    np.testing.assert_allclose(few.boxes, boxes[order[:1]])


def test_predict_everything_shows_only_what_the_filter_keeps(predictor):
    from regionspot.inference.proposals import ProposalOptions
    from regionspot.inference.region_filter import filter_result

    # sixteen proposals, near-copies included (no proposal NMS): something for the filter to drop
    options = ProposalOptions(points_per_side=4, crop_layers=0, refine=False, nms_iou=1.0, area_fraction=(0.0, 1.0),
                              min_predicted_iou=-1.0)
    every = predictor.predict_everything(options, region_filter=RegionFilter.keep_all())
    strict = RegionFilter(min_stability=0.0, min_confidence=float(np.median(every.display_scores)), nms_iou=0.3)
    kept = predictor.predict_everything(options, region_filter=strict)
    assert 0 < len(kept) < len(every)
    assert (kept.display_scores >= strict.min_confidence).all()
    stability = predictor._proposals(options).stability.numpy()
    np.testing.assert_allclose(kept.boxes, filter_result(every, strict, rank=np.sort(stability)[::-1]).boxes)
    assert kept.masks is not None and len(kept.masks) == len(kept)
    # nothing stable or confident enough: an empty result that says why
    none = predictor.predict_everything(options, region_filter=RegionFilter(min_stability=0, min_confidence=1.0))
    assert len(none) == 0 and "lower the minimum confidence" in none.messages[-1]
    loose = predictor.predict_everything(options, region_filter=RegionFilter(min_stability=1.0))
    assert len(loose) == 0 and "lower the minimum stability" in loose.messages[-1]


def test_point_prompts_are_kept_in_the_result(predictor):
    points = [[10.0, 12.0], [30.0, 25.0]]
    result = predictor.predict(points=points)
    assert result.points.shape == (2, 1, 2) and result.points.dtype == np.float32
    np.testing.assert_allclose(result.points[:, 0], points)
    assert predictor.predict(boxes=BOXES).points is None


def test_predict_everything_without_proposals_says_so(predictor, monkeypatch):
    from regionspot.inference.proposals import Proposals

    monkeypatch.setattr(predictor, "_proposals", lambda options=None: Proposals.concat([]))
    result = predictor.predict_everything()
    assert len(result) == 0 and "No regions were proposed" in result.messages[-1]


def test_attention_comes_with_unchanged_scores(predictor):
    plain = predictor.predict(boxes=BOXES)
    traced = predictor.predict(boxes=BOXES, return_attention=True)
    assert plain.attention is None
    layers, heads = predictor.model.head.config.depth, predictor.model.head.config.num_heads
    tokens = predictor.model.vision_language.num_tokens
    assert traced.attention.shape == (3, layers, heads, tokens)
    np.testing.assert_allclose(traced.attention.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(traced.probs, plain.probs, atol=1e-5)
