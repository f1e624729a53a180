"""The embedded ShapesWorld model, its example image and random boxes: what the mask tests decode."""

import numpy as np
import pytest
import torch
from PIL import Image

from regionspot.model import RegionSpot
from regionspot.registry import assets_dir


@pytest.fixture(scope="session")
def model():
    return RegionSpot.from_pretrained()  # the embedded ShapesWorld model


@pytest.fixture(scope="session")
def example():
    return Image.open(assets_dir() / "shapesworld" / "example.png").convert("RGB")


@pytest.fixture(scope="session")
def random_boxes():
    def make(height: int, width: int, n: int, seed: int) -> torch.Tensor:
        """(n, 4) float32 XYXY boxes in a (height, width) image's pixels, at least 3 pixels a side."""
        rng = np.random.default_rng(seed)
        x0, y0 = rng.uniform(0, width * 0.7, n), rng.uniform(0, height * 0.7, n)
        x1, y1 = x0 + rng.uniform(3, width * 0.3, n), y0 + rng.uniform(3, height * 0.3, n)
        return torch.tensor(np.stack([x0, y0, x1, y1], 1), dtype=torch.float32)

    return make
