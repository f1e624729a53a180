"""inference.batch: which files, their output names, prompts files and fingerprints."""

import json

import pytest
from PIL import Image

from regionspot.errors import ImageError, PromptError
from regionspot.inference.batch import (
    ImagePrompts,
    discover_images,
    match_prompts,
    output_names,
    plan_batch,
    read_prompts_file,
)


def _png(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6)).save(path)
    return path


def test_discovery_of_files_folders_and_globs(tmp_path):
    a, b, c = _png(tmp_path / "d" / "b.png"), _png(tmp_path / "d" / "a.JPG"), _png(tmp_path / "d" / "sub" / "c.png")
    (tmp_path / "d" / "readme.txt").write_text("x")
    assert discover_images([tmp_path / "d"]) == [b, a]  # sorted, image suffixes only, not subfolders
    assert discover_images([str(tmp_path / "d" / "**" / "*.png")]) == [a, c]
    assert discover_images([a, tmp_path / "d"]) == [a, b]  # each once, in the order first named
    with pytest.raises(ImageError, match="Image not found"):
        discover_images([tmp_path / "missing.png"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="no image files"):
        discover_images([tmp_path / "empty"])


def test_output_names_are_unique_and_stay_short_where_they_can(tmp_path):
    paths = [tmp_path / "x" / "a.png", tmp_path / "y" / "a.png", tmp_path / "x" / "b.png", tmp_path / "x" / "b.jpg",
             tmp_path / "x" / "c.png"]
    names = output_names(paths)
    assert names[0] == "x__a" and names[1] == "y__a" and names[4] == "c"
    assert names[2].endswith("b_png") and names[3].endswith("b_jpg") and len(set(names)) == 5


def test_prompts_file_reading_and_matching(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"a.png": {"boxes": [[1, 2, 3, 4]]}, "x/b.png": {"points": [[5, 6]]}}))
    table = read_prompts_file(path)
    images = [tmp_path / "a.png", tmp_path / "x" / "b.png", tmp_path / "y" / "b.png"]
    found, unmatched = match_prompts(images, table)
    assert found == [ImagePrompts(boxes=((1, 2, 3, 4),)), ImagePrompts(points=((5, 6),)), None] and unmatched == []
    path.write_text(json.dumps({"b.png": {"boxes": [[1, 2, 3, 4]]}}))
    with pytest.raises(PromptError, match="matches 2 images"):
        match_prompts(images, read_prompts_file(path))
    for bad, message in [("[1, 2]", "expected"), ('{"a.png": {"box": []}}', "must be"),
                         ('{"a.png": {"boxes": [[1, 2, 3]]}}', "4-number"), ("{", "not valid JSON"),
                         ('{"a.png": {"boxes": [[1, 1, 5, 5]], "points": [[1, 1], [2, 2]]}}', "1 boxes but 2 points")]:
        path.write_text(bad)
        with pytest.raises(PromptError, match=message):
            read_prompts_file(path)


def test_a_coco_file_gives_each_image_its_boxes(tmp_path):
    path = tmp_path / "val.json"
    coco = {"images": [{"id": 7, "file_name": "val/a.png"}, {"id": 8, "file_name": "val/empty.png"}],
            "annotations": [{"image_id": 7, "bbox": [10, 20, 30, 40]}, {"image_id": 7, "bbox": [0, 0, 5, 5]}],
            "categories": []}
    path.write_text(json.dumps(coco))
    table = read_prompts_file(path)
    assert table == {"val/a.png": ImagePrompts(boxes=((10, 20, 40, 60), (0, 0, 5, 5)))}  # XYWH -> XYXY
    found, _ = match_prompts([tmp_path / "val" / "a.png", tmp_path / "val" / "empty.png"], table)
    assert found[1] is None  # no annotations: no entry (everything mode or an error, as for any file)
    coco["annotations"].append({"image_id": 99, "bbox": [1, 1, 2, 2]})
    path.write_text(json.dumps(coco))
    with pytest.raises(PromptError, match="no image of this file"):
        read_prompts_file(path)


def test_fingerprints_follow_content_prompts_and_options(tmp_path):
    image = _png(tmp_path / "a.png")
    box = ImagePrompts(boxes=((1, 1, 5, 5),))

    def fp(prompts=box, options=None, vocabulary=("cat",), proposals=None):
        return plan_batch([image], [prompts], options or {"top_k": 3}, vocabulary, proposals)[0].fingerprint

    first = fp()
    assert fp() == first
    assert len({first, fp(options={"top_k": 2}), fp(vocabulary=("dog",)), fp(ImagePrompts(boxes=((1, 1, 6, 5),)))}) == 4
    assert fp(proposals={"grid": 8}) == first  # proposal options matter in everything mode only
    assert fp(ImagePrompts(), proposals={"grid": 8}) != fp(ImagePrompts(), proposals={"grid": 16})
    Image.new("RGB", (8, 6), (1, 2, 3)).save(image)
    assert fp() != first
