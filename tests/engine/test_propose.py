"""propose_boxes: the results file's format, coordinate frame and per-image cap, with a tiny OWLv2 and a
tiny SAM; an interrupted run resumes to the same file; eval's reader takes it back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from regionspot.backbones.segmenter import load_segmenter
from regionspot.data.coco_json import CocoDetectionDataset
from regionspot.data.transforms import xyxy_to_xywh
from regionspot.engine.propose import propose_boxes
from regionspot.errors import RegionSpotError
from regionspot.evaluation.detections import load_detections
from regionspot.inference.detector_boxes import load_owlv2_boxes
from regionspot.inference.proposals import proposal_source
from regionspot.testing.public_formats import make_objects365


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_owlv2_dir):
    root = tmp_path_factory.mktemp("propose")
    path, image_root = make_objects365(root / "o365", version=1, num_images=4)
    owl = load_owlv2_boxes(str(tiny_owlv2_dir))
    return {"dataset": CocoDetectionDataset(path, image_root), "owl": owl}


def _source(owl, cap):
    return lambda image: owl.detect(image, max_detections=cap)


def test_open_vocabulary_file_format_frame_and_cap(env, tmp_path):
    dataset, owl = env["dataset"], env["owl"]
    owl.set_queries(dataset.category_names)
    out = tmp_path / "boxes.json"
    stats = propose_boxes(dataset, _source(owl, 5), out, {"detector": "tiny"}, category_ids=dataset.category_ids,
                          max_per_image=5, show_progress=False)
    entries = json.loads(out.read_text())
    assert stats.images == 4 and stats.boxes == len(entries) > 4 and not (tmp_path / "boxes.json.partial.jsonl").exists()
    for record in dataset:
        mine = [e for e in entries if e["image_id"] == record.image_id]
        assert len(mine) <= 5 and all(set(e) == {"image_id", "category_id", "bbox", "score"} for e in mine)
        assert [e["score"] for e in mine] == sorted((e["score"] for e in mine), reverse=True)
        assert {e["category_id"] for e in mine} <= set(dataset.category_ids)
        found = owl.detect(dataset.load_image(record.index), max_detections=5)
        np.testing.assert_allclose(np.reshape([e["bbox"] for e in mine], (-1, 4)), xyxy_to_xywh(found.boxes.double()).numpy(),
                                   atol=0.006)
        assert [e["category_id"] for e in mine] == [dataset.category_ids[k] for k in found.labels.tolist()]
        for x, y, w, h in (e["bbox"] for e in mine):  # XYWH inside the original image
            assert x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= record.width + 0.01 and y + h <= record.height + 0.01
    sizes = {r.image_id: (r.height, r.width) for r in dataset}
    read, counts = load_detections(out, sizes, max_boxes_per_image=300)
    unique = {(e["image_id"], *e["bbox"]) for e in entries}  # the reader keeps a box listed twice once
    assert counts["kept"] == len(unique) and counts["other_images"] == 0 and counts["degenerate"] == 0


def test_class_agnostic_and_sam_boxes_have_no_class(env, tmp_path, tiny_sam_dir):
    dataset, owl = env["dataset"], env["owl"]
    owl.set_queries(None)
    propose_boxes(dataset, _source(owl, 3), tmp_path / "owl.json", {"d": 1}, max_per_image=3, show_progress=False)
    assert {e["category_id"] for e in json.loads((tmp_path / "owl.json").read_text())} == {0}
    sam = proposal_source(load_segmenter(str(tiny_sam_dir)), points_per_side=4, max_regions=7)
    stats = propose_boxes(dataset, sam, tmp_path / "sam.json", {"d": 2}, max_per_image=7, limit=2, show_progress=False)
    entries = json.loads((tmp_path / "sam.json").read_text())
    assert stats.images <= 2 and {e["image_id"] for e in entries} <= {dataset[0].image_id, dataset[1].image_id}
    assert all(0.0 <= e["score"] <= 1.0 and e["category_id"] == 0 for e in entries)
    assert all(sum(e["image_id"] == i for e in entries) <= 7 for i in {e["image_id"] for e in entries})


def test_an_interrupted_run_resumes_to_the_same_file(env, tmp_path):
    dataset, owl = env["dataset"], env["owl"]
    owl.set_queries(dataset.category_names)
    whole = tmp_path / "whole.json"
    propose_boxes(dataset, _source(owl, 4), whole, {"d": 1}, category_ids=dataset.category_ids, max_per_image=4,
                  show_progress=False)
    calls = {"n": 0}

    def crashing(image):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return owl.detect(image, max_detections=4)

    out = tmp_path / "resumed.json"
    with pytest.raises(KeyboardInterrupt):
        propose_boxes(dataset, crashing, out, {"d": 1}, category_ids=dataset.category_ids, max_per_image=4,
                      show_progress=False)
    assert not out.exists() and (tmp_path / "resumed.json.partial.jsonl").is_file()
    with pytest.raises(RegionSpotError, match="other settings"):
        propose_boxes(dataset, _source(owl, 4), out, {"d": 2}, max_per_image=4, show_progress=False)
    stats = propose_boxes(dataset, _source(owl, 4), out, {"d": 1}, category_ids=dataset.category_ids,
                          max_per_image=4, show_progress=False)
    assert stats.resumed == 2 and out.read_text() == whole.read_text()
