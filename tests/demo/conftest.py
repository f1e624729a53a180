"""One demo server for the demo tests: the embedded model (offline), the bundled example, a free port."""

from __future__ import annotations

import os
import socket

import pytest

if os.environ.get("CI"):
    import gradio  # noqa: F401  (CI installs the [dev] extras: a missing demo stack fails there, never skips)
else:
    pytest.importorskip("gradio", reason="the demo tests need the [demo] extra (pip install -e '.[dev]')")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def demo_service():
    from regionspot.demo.service import DemoService
    from regionspot.inference.predictor import RegionSpotPredictor
    from regionspot.model import RegionSpot

    return DemoService(RegionSpotPredictor(RegionSpot.from_pretrained()))


@pytest.fixture(scope="session")
def example_image():
    from regionspot.cli.predict import bundled_example

    return bundled_example()[0]


@pytest.fixture(scope="session")
def demo_url(demo_service, example_image):
    from regionspot.demo.app import build_app, launch

    app = build_app(demo_service, example_image)
    url = launch(app, port=free_port(), block=False, allowed_paths=[str(example_image.parent)])
    yield url
    app.close()
