"""The demo app answers gradio_client calls (the README's example) through the same queue as the page."""

from __future__ import annotations

import re

import pytest

from regionspot.inference.predictor import RegionSpotPredictor

BOX = "62,98,114,155"


@pytest.fixture(scope="module")
def client(demo_url):
    from gradio_client import Client

    return Client(demo_url, verbose=False)


def expected_top5(model, image, names, box):
    """The same model, a separate predictor: what the server should answer."""
    predictor = RegionSpotPredictor(model)
    predictor.set_image(image)
    predictor.set_vocabulary(names)
    return predictor.predict(boxes=[box], top_k=5).to_dict()["regions"][0]["top_k"]


def test_readme_client_example(client, demo_service, example_image):
    from gradio_client import handle_file

    # the README's three lines, with the bundled example
    answer = client.predict(handle_file(str(example_image)), "red heart, red ring, black cross", BOX, "", False,
                            api_name="/label")
    names = ["red heart", "red ring", "black cross"]
    assert answer["vocabulary"] == names and len(answer["regions"]) == 1
    want = expected_top5(demo_service.predictor.model, example_image, names, [62, 98, 114, 155])
    assert answer["regions"][0]["top_k"] == want


def test_page_endpoint_and_errors_over_the_api(client, demo_service, example_image, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(AppError, match="corrupt.png.*valid image"):
        client.predict(handle_file(str(bad)), "cat", BOX, "", False, api_name="/label")
    with pytest.raises(AppError, match="5000 names"):
        client.predict(handle_file(str(example_image)), ",".join(f"n{i}" for i in range(5000)), BOX, "", False,
                       api_name="/label")
    answer = client.predict(handle_file(str(example_image)), "", "", "40,150", False, api_name="/label")
    assert len(answer["vocabulary"]) == 64 and len(answer["regions"]) == 1  # the default preset


def test_concurrent_clients_are_queued(client, demo_service, example_image, tmp_path):
    from gradio_client import handle_file

    bad = tmp_path / "text.png"
    bad.write_text("not an image")
    jobs = [client.submit(handle_file(str(example_image if i % 3 else bad)), "red heart, red ring", BOX, "", False,
                          api_name="/label") for i in range(6)]
    want = expected_top5(demo_service.predictor.model, example_image, ["red heart", "red ring"], [62, 98, 114, 155])
    for i, job in enumerate(jobs):
        if i % 3:
            assert job.result(timeout=300)["regions"][0]["top_k"] == want
        else:
            with pytest.raises(Exception, match="valid image"):
                job.result(timeout=300)


@pytest.mark.parametrize("name,match", [
    ("not_an_image", r"not_an_image\.png.*valid image"),
    ("truncated", r"truncated\.png"),
    ("bomb", r"bomb\.png.*decompression bomb"),
])
def test_a_bad_upload_clears_the_previous_image_and_says_so(demo_service, example_image, tmp_path, name, match):
    from regionspot.demo.app import load_outputs
    from regionspot.testing.bad_images import write_bad_images

    good = load_outputs(demo_service, str(example_image))
    assert good[0] == str(example_image) and good[1].size == (256, 256) and good[-1].startswith("Loaded a 256x256")
    bad = write_bad_images(tmp_path)[name]
    path, canvas, boxes, points, corner, picture, attention, table, download, status = load_outputs(demo_service, str(bad))
    assert path is None and canvas is None and picture is None and download is None  # nothing of the old image
    assert (boxes, points, corner, table) == ("", "", None, []) and attention["value"] is None
    assert re.match(r"Upload failed: .*" + match, status) and status.endswith("upload another image.")
    assert "\n" not in status and str(tmp_path) not in status  # one line, naming the upload, not the server's folder
