"""One demo server for the demo tests: the embedded model (offline), the bundled example, a free port."""

from __future__ import annotations

import os

import pytest

if os.environ.get("CI"):
    import gradio  # noqa: F401  (CI installs the [dev] extras: a missing demo stack fails there, never skips)
else:
    pytest.importorskip("gradio", reason="the demo tests need the [demo] extra (pip install -e '.[dev]')")


@pytest.fixture(scope="session")
def demo_service():
    from regionspot.demo.service import DemoService
    from regionspot.inference.predictor import RegionSpotPredictor
    from regionspot.inference.proposals import ProposalOptions
    from regionspot.model import RegionSpot

    # an 8x8 grid keeps "recognise everything" quick on a 2-core CI machine; the default is 16x16
    return DemoService(RegionSpotPredictor(RegionSpot.from_pretrained()), proposals=ProposalOptions(points_per_side=8))


@pytest.fixture(scope="session")
def example_image():
    from regionspot.cli.predict import bundled_example

    return bundled_example()[0]


@pytest.fixture(scope="session")
def demo_url(demo_service, example_image):
    from regionspot.demo.app import start_in_background

    url, app = start_in_background(demo_service, example_image)
    yield url
    app.close()
