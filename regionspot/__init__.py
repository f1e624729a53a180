"""regionspot: recognize any region of an image with an open vocabulary (RegionSpot).

>>> from regionspot import RegionSpot, RegionSpotPredictor
>>> predictor = RegionSpotPredictor(RegionSpot.from_pretrained())
"""

from regionspot.version import __version__

__all__ = [
    "HeadConfig",
    "RegionResult",
    "RegionSpot",
    "RegionSpotConfig",
    "RegionSpotPredictor",
    "list_models",
    "__version__",
]


def __getattr__(name: str):
    # Lazy: `regionspot --version` and light imports should not pay for torch/transformers.
    if name in ("RegionSpotConfig", "HeadConfig"):
        from regionspot import config

        return getattr(config, name)
    if name == "RegionSpot":
        from regionspot.model import RegionSpot

        return RegionSpot
    if name == "RegionSpotPredictor":
        from regionspot.inference.predictor import RegionSpotPredictor

        return RegionSpotPredictor
    if name == "RegionResult":
        from regionspot.inference.results import RegionResult

        return RegionResult
    if name == "list_models":
        from regionspot.registry import list_models

        return list_models
    raise AttributeError(f"module 'regionspot' has no attribute {name!r}")
