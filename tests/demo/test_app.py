"""The demo app answers gradio_client calls (the README's example) through the same queue as the page."""

from __future__ import annotations

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
