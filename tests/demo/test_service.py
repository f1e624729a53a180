"""The demo's request handling without the web: every bad input is one clear RegionSpotError, and the
next good request still works."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from regionspot.demo.service import NAMES_FILE, TYPED, DemoRequest, result_table
from regionspot.errors import ImageError, PromptError, RegionSpotError, VocabularyError
from regionspot.testing.bad_images import bomb_png_bytes, write_bad_images

BOX = "62,98,114,155"


def good(service, example_image, **kw):
    request = DemoRequest(image=example_image, vocabulary=service.vocabulary("shapesworld"), boxes=BOX, **kw)
    return service.recognise(request)


def test_a_good_request_matches_the_predictor(demo_service, example_image):
    response = good(demo_service, example_image)
    predictor = demo_service.predictor
    direct = predictor.predict(boxes=[[62, 98, 114, 155]], top_k=5)
    assert response.result.labels == direct.labels and len(response.table) == 1
    assert response.table[0][2] == f"{direct.labels[0]} {direct.display_scores[0]:.2f}"
    assert response.picture.size == (256, 256) and response.attention is None
    entries = __import__("json").loads(response.results_json.read_text())
    assert len(entries) == 5 and entries[0]["category_name"] == direct.labels[0]


def test_the_table_shows_the_number_of_the_picture_and_the_cli(demo_service, example_image):
    """One number per region: the table's top-1 is the calibrated confidence (``display_scores``) that stdout
    and the picture show, formatted as they format it ("label 0.18"); the embedded head has a display
    temperature, so it differs from the paper's softmax score. The explain caption shows it too."""
    from regionspot.inference.explain import panel_caption

    response = good(demo_service, example_image)
    result = response.result
    shown = f"{result.display_scores[0]:.2f}"
    assert f"{result.scores[0]:.2f}" != shown  # else this test could not tell the two apart
    assert response.table[0][2] == f"{result.labels[0]} {shown}"
    assert response.table[0][2:] == [f"{result.vocabulary[int(c)]} {s:.2f}"
                                     for c, s in zip(result.topk_ids[0], result.display_topk_scores[0])]
    assert panel_caption(result, 0) == f"#0 {result.labels[0]} {shown} (last layer)"


def test_the_same_image_and_vocabulary_are_not_encoded_again(demo_service, example_image, monkeypatch):
    good(demo_service, example_image)
    calls = []
    model = demo_service.predictor.model
    original_text = model.text_embeddings
    monkeypatch.setattr(model, "text_embeddings", lambda *a, **k: calls.append("text") or original_text(*a, **k))
    original_encode = model.segmenter.encode_image
    monkeypatch.setattr(model.segmenter, "encode_image", lambda *a, **k: calls.append("image") or original_encode(*a, **k))
    good(demo_service, example_image)
    good(demo_service, example_image, points="80,120")
    assert calls == []


@pytest.mark.parametrize("name,error,match", [
    ("not_an_image", ImageError, "not_an_image.png.*valid image"),
    ("truncated", ImageError, "truncated.png"),
    ("bomb", ImageError, "bomb.png.*decompression bomb"),
    ("empty", ImageError, "empty.png"),
])
def test_bad_files_are_one_line_and_the_next_request_works(demo_service, example_image, tmp_path, name, error, match):
    bad = write_bad_images(tmp_path)[name]
    with pytest.raises(error, match=match):
        demo_service.recognise(DemoRequest(image=bad, vocabulary=["red ring"], boxes=BOX))
    assert len(good(demo_service, example_image).result) == 1


def test_tiny_and_huge_images(demo_service, example_image, tmp_path):
    one = tmp_path / "one.png"
    Image.new("RGB", (1, 1), (200, 10, 10)).save(one)
    tiny = demo_service.recognise(DemoRequest(image=one, vocabulary=["red ring", "blue star"], boxes="0,0,1,1"))
    assert len(tiny.result) == 1 and tiny.picture.size == (1, 1)
    everything = demo_service.recognise(DemoRequest(image=one, vocabulary=["red ring"], everything=True))
    assert len(everything.result) <= 1  # no crash; zero or one region
    wide = tmp_path / "wide.png"
    Image.new("RGB", (20000, 4), (0, 0, 255)).save(wide)
    with pytest.raises(ImageError, match="at most 8192"):
        demo_service.recognise(DemoRequest(image=wide, vocabulary=["red ring"], boxes=BOX))
    huge = tmp_path / "huge.png"
    huge.write_bytes(bomb_png_bytes(20000, 20000))
    with pytest.raises(ImageError, match="huge.png.*decompression bomb"):
        demo_service.open_image(huge)
    assert len(good(demo_service, example_image).result) == 1


def test_vocabularies(demo_service, tmp_path):
    assert len(demo_service.vocabulary("coco")) == 80 and len(demo_service.vocabulary("lvis")) == 1203
    assert demo_service.vocabulary(TYPED, "cat, dog\nbird") == ["cat", "dog", "bird"]
    names = tmp_path / "names.txt"
    names.write_text("# mine\nred ring\nblue star\n")
    assert demo_service.vocabulary(NAMES_FILE, names_file=names) == ["red ring", "blue star"]
    with pytest.raises(VocabularyError, match="empty"):
        demo_service.vocabulary(TYPED, " , ")
    with pytest.raises(VocabularyError, match="5000 names.*at most 1500"):
        demo_service.vocabulary(TYPED, ",".join(f"thing {i}" for i in range(5000)))
    with pytest.raises(VocabularyError, match="names file"):
        demo_service.vocabulary(NAMES_FILE)
    with pytest.raises(VocabularyError, match="Unknown vocabulary"):
        demo_service.vocabulary("imagenet")


def test_bad_prompts(demo_service, example_image):
    ask = lambda **kw: demo_service.recognise(DemoRequest(image=example_image, vocabulary=["red ring"], **kw))  # noqa: E731
    with pytest.raises(PromptError, match="entirely outside"):
        ask(boxes="300,300,400,400")
    with pytest.raises(PromptError, match="Add a prompt"):
        ask()
    with pytest.raises(PromptError, match="Upload an image first"):  # checked before the prompts
        demo_service.recognise(DemoRequest(image=None, vocabulary=["red ring"]))
    with pytest.raises(PromptError, match="4 numbers|needs 4"):
        ask(boxes="1,2,3")
    with pytest.raises(PromptError, match="There is no region #3"):
        ask(boxes=BOX, explain_region=3)
    clipped = ask(boxes="-20,-20,50,50")
    assert clipped.messages and "clipped" in clipped.messages[0]


def test_boxes_points_everything_and_attention(demo_service, example_image):
    names = demo_service.vocabulary("shapesworld")
    both = demo_service.recognise(DemoRequest(image=example_image, vocabulary=names, boxes=BOX, points="30,160",
                                              explain_region=1, explain_per_layer=True))
    assert len(both.result) == 2 and both.result.attention.shape[:2] == (2, 3)
    assert both.attention.size == (3 * 256, 256)
    found = demo_service.recognise(DemoRequest(image=example_image, vocabulary=names, everything=True, max_regions=5))
    assert 1 <= len(found.result) <= 5 and len(result_table(found.result)) == len(found.result)


def test_concurrent_requests_queue_and_agree(demo_service, example_image, tmp_path):
    """Eight threads at once, good and bad mixed: each gets its own answer, as if run one by one."""
    bad = write_bad_images(tmp_path)["truncated"]
    other = tmp_path / "other.png"
    Image.fromarray(np.asarray(Image.open(example_image))[::-1].copy()).save(other)  # upside down
    jobs = [(example_image, BOX), (other, "62,101,114,158"), (bad, BOX), (example_image, "9,134,57,184")] * 2
    expected = {}
    for image, box in jobs:
        if image != bad:
            expected[(str(image), box)] = good_labels(demo_service, image, box)
    answers: dict[int, object] = {}

    def run(i, image, box):
        try:
            answers[i] = good_labels(demo_service, image, box)
        except RegionSpotError as error:
            answers[i] = error

    threads = [threading.Thread(target=run, args=(i, *job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    for i, (image, box) in enumerate(jobs):
        if image == bad:
            assert isinstance(answers[i], ImageError)
        else:
            assert answers[i] == expected[(str(image), box)]


def good_labels(service, image, box):
    response = service.recognise(DemoRequest(image=image, vocabulary=service.vocabulary("shapesworld"), boxes=box))
    return [row[2:] for row in response.table]


def _regions(n: int, points=None):
    from regionspot.inference.results import RegionResult

    zeros = np.zeros((n,), np.float32)
    return RegionResult(boxes=np.zeros((n, 4), np.float32), labels=["a"] * n, class_ids=np.zeros((n,), np.int64),
                        scores=zeros, probs=np.ones((n, 1), np.float32), topk_ids=np.zeros((n, 1), np.int64),
                        topk_scores=zeros[:, None], iou=zeros, vocabulary=["a"], image_size=(8, 8), points=points)


def test_concatenated_results_keep_the_prompt_points():
    from regionspot.demo.service import concat_results

    clicked = np.array([[[3.0, 4.0]]], np.float32)  # (1, 1, 2): one region, one point
    both = concat_results(_regions(2), _regions(1, clicked))
    assert both.points.shape == (3, 1, 2)
    assert np.isnan(both.points[:2]).all() and np.array_equal(both.points[2], clicked[0])
    assert concat_results(_regions(1), _regions(1)).points is None


def test_the_onnx_backend_serves_the_same_labels(demo_service, example_image):
    pytest.importorskip("onnxruntime")
    from regionspot.demo.service import DemoService
    from regionspot.inference.backends import open_backend
    from regionspot.testing.onnx_models import exported

    backend = open_backend("onnxruntime", onnx_dir=exported(None), threads=1, text_cache_dir=False)
    service = DemoService(backend, demo_service.limits)
    both = good(service, example_image, points="80,120")  # a box and a point: two predict calls, concatenated
    expected = good(demo_service, example_image, points="80,120")
    assert both.result.labels == expected.result.labels and len(both.table) == 2
    np.testing.assert_allclose(both.result.logits, expected.result.logits, atol=1e-4, rtol=0)
    with pytest.raises(RegionSpotError, match="torch"):
        service.recognise(DemoRequest(image=example_image, vocabulary=["red circle"], everything=True))
