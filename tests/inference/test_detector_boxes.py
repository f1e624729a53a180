"""OWLv2 boxes on a tiny random Owlv2ForObjectDetection: the same boxes, scores and labels as transformers'
own forward + post-processing, in original-image pixels of a non-square image; caps, thresholds, NMS."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import Owlv2ForObjectDetection, Owlv2Processor

from regionspot.errors import RegionSpotError
from regionspot.inference.detector_boxes import QUERY_TEMPLATE, load_owlv2_boxes, select_detections

NAMES = ["cat", "dog", "red car", "tree"]


@pytest.fixture(scope="module")
def owl_dir(tiny_owlv2_dir):
    return tiny_owlv2_dir


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (50, 80, 3), dtype=np.uint8))  # 80 wide, 50 high


def _reference(owl_dir, image, texts):
    """transformers' own pipeline: processor, full forward, post-processing to (height, width)."""
    model = Owlv2ForObjectDetection.from_pretrained(owl_dir).eval()
    processor = Owlv2Processor.from_pretrained(owl_dir)
    inputs = processor(text=[texts], images=image, return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    result = processor.post_process_grounded_object_detection(outputs, threshold=0.0,
                                                              target_sizes=[(image.height, image.width)])[0]
    return outputs, result


def test_open_vocabulary_boxes_match_transformers(owl_dir, image):
    owl = load_owlv2_boxes(str(owl_dir))
    owl.set_queries(NAMES)
    found = owl.detect(image, max_detections=1000)
    outputs, ref = _reference(owl_dir, image, [QUERY_TEMPLATE.format(n) for n in NAMES])
    width, height = image.size
    clipped = ref["boxes"].clone()
    clipped[:, 0::2] = clipped[:, 0::2].clamp(0, width)
    clipped[:, 1::2] = clipped[:, 1::2].clamp(0, height)
    big = ((clipped[:, 2] - clipped[:, 0]) >= 1) & ((clipped[:, 3] - clipped[:, 1]) >= 1)
    order = ref["scores"][big].argsort(descending=True, stable=True)
    assert len(found.boxes) == int(big.sum()) > 0
    torch.testing.assert_close(found.scores, ref["scores"][big][order], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(found.boxes, clipped[big][order], rtol=1e-4, atol=1e-3)
    assert found.labels.tolist() == ref["labels"][big][order].tolist()
    # The frame: normalised boxes refer to the image padded to an 80 x 80 square.
    cx, cy, w, h = outputs.pred_boxes[0][big][order][0].tolist()
    expected = torch.tensor([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]) * 80
    expected[0::2], expected[1::2] = expected[0::2].clamp(0, 80), expected[1::2].clamp(0, 50)
    torch.testing.assert_close(found.boxes[0], expected, rtol=1e-4, atol=1e-3)
    assert (found.boxes[:, 2] <= width).all() and (found.boxes[:, 3] <= height).all() and (found.boxes >= 0).all()


def test_class_agnostic_boxes_use_objectness(owl_dir, image):
    owl = load_owlv2_boxes(str(owl_dir))
    owl.set_queries(None)
    found = owl.detect(image, max_detections=1000, min_size=0.0)
    outputs, ref = _reference(owl_dir, image, ["a photo of a thing"])
    expected = torch.sigmoid(outputs.objectness_logits[0]).sort(descending=True).values
    torch.testing.assert_close(found.scores, expected, rtol=1e-4, atol=1e-6)
    assert (found.labels == -1).all() and len(found.boxes) == outputs.pred_boxes.shape[1]


def test_cap_threshold_and_nms(owl_dir, image):
    owl = load_owlv2_boxes(str(owl_dir))
    owl.set_queries(NAMES)
    every = owl.detect(image, max_detections=1000)
    capped = owl.detect(image, max_detections=3)
    torch.testing.assert_close(capped.boxes, every.boxes[:3])
    middle = float(every.scores[len(every.scores) // 2])
    assert (owl.detect(image, min_score=middle).scores >= middle).all()
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30.0]])
    kept = select_detections(boxes, torch.tensor([0.5, 0.9, 0.1]), torch.tensor([0, 1, 2]), 10, nms_iou=0.5)
    assert kept.labels.tolist() == [1, 2] and kept.scores.tolist() == pytest.approx([0.9, 0.1])


def test_wrong_model_and_queries_give_one_line(owl_dir, tiny_clip_dir, tmp_path):
    with pytest.raises(RegionSpotError, match="'clip' model; --detector takes an OWLv2"):
        load_owlv2_boxes(str(tiny_clip_dir))
    with pytest.raises(RegionSpotError, match="Cannot load the detector config"):
        load_owlv2_boxes(str(tmp_path / "nothing"))
    with pytest.raises(RegionSpotError, match="non-empty"):
        load_owlv2_boxes(str(owl_dir)).set_queries(["cat", " "])
