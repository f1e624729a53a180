"""Reading a detector's boxes (COCO results) as prompts."""

import json

import numpy as np
import pytest

from regionspot.errors import RegionSpotError
from regionspot.evaluation.detections import load_detections


def test_load_detections_groups_clips_dedupes_and_caps(tmp_path):
    dets = [
        {"image_id": 1, "bbox": [10, 10, 20, 20], "score": 0.5, "category_id": 1},
        {"image_id": 1, "bbox": [10, 10, 20, 20], "score": 0.9, "category_id": 2},  # same box, higher score
        {"image_id": 1, "bbox": [50, 40, 30, 30], "score": 0.7},  # clipped to 64×48
        {"image_id": 1, "bbox": [5, 5, 0.2, 10], "score": 0.99},  # degenerate
        {"image_id": 1, "bbox": [0, 0, 5, 5], "score": 0.1},  # cut by the cap
        {"image_id": 2, "bbox": [0, 0, 5, 5], "score": 0.3},  # not evaluated
    ]
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(dets))
    out, counts = load_detections(path, {1: (48, 64)}, max_boxes_per_image=2)
    np.testing.assert_allclose(out[1].boxes, [[10, 10, 30, 30], [50, 40, 64, 48]])
    np.testing.assert_allclose(out[1].scores, [0.9, 0.7])
    assert out[1].labels.tolist() == [-1, -1]  # class-agnostic prompts: the file's categories are not kept
    assert counts == {"read": 6, "other_images": 1, "degenerate": 1, "kept": 2}
    path.write_text(json.dumps([{"bbox": [1, 2]}]))
    with pytest.raises(RegionSpotError, match="COCO results"):
        load_detections(path, {1: (48, 64)})


def test_released_glip_box_file_is_read_like_its_coco_results(tmp_path):
    glip = {
        "1": {"boxes": [[10, 10, 30, 30], [50, 40, 80, 70], [5, 5, 5.2, 15]], "scores": [0.9, 0.7, 0.99],
              "labels": [3, 4, 5]},
        "2": {"boxes": [[0, 0, 5, 5]], "scores": [0.3], "labels": [1]},
    }
    results = [{"image_id": int(k), "bbox": [x0, y0, x1 - x0, y1 - y0], "score": s}
               for k, v in glip.items() for (x0, y0, x1, y1), s in zip(v["boxes"], v["scores"], strict=True)]
    (tmp_path / "glip.json").write_text(json.dumps(glip))
    (tmp_path / "coco.json").write_text(json.dumps(results))
    sizes = {1: (48, 64), 2: (48, 64)}
    from_glip, glip_counts = load_detections(tmp_path / "glip.json", sizes)
    from_coco, coco_counts = load_detections(tmp_path / "coco.json", sizes)
    assert glip_counts == coco_counts == {"read": 4, "other_images": 0, "degenerate": 1, "kept": 3}
    for image_id in (1, 2):
        np.testing.assert_allclose(from_glip[image_id].boxes, from_coco[image_id].boxes)
        np.testing.assert_allclose(from_glip[image_id].scores, from_coco[image_id].scores)
    np.testing.assert_allclose(from_glip[1].boxes, [[10, 10, 30, 30], [50, 40, 64, 48]])  # XYXY, clipped
    (tmp_path / "bad.json").write_text(json.dumps({"1": {"boxes": [[1, 2, 3, 4]]}}))
    with pytest.raises(RegionSpotError, match="GLIP box file"):
        load_detections(tmp_path / "bad.json", sizes)
