"""User-facing errors: one clear line that names the fix.

The CLI prints ``str(error)`` of these and exits non-zero, without a traceback.
"""


class RegionSpotError(Exception):
    """Base class for errors caused by user input (bad image, box, vocabulary, checkpoint)."""


class ImageError(RegionSpotError):
    """The image could not be read or decoded."""


class PromptError(RegionSpotError):
    """A box or point prompt is unusable (NaN, zero area, wrong shape)."""


class VocabularyError(RegionSpotError):
    """The vocabulary is empty, duplicated or otherwise unusable."""


class CheckpointError(RegionSpotError):
    """A checkpoint is missing, of the wrong variant/shape, or has missing/unexpected keys."""


class WeightsNotFoundError(RegionSpotError):
    """Backbone weights are not reachable (offline and not in a local folder or cache)."""


class LegacyCheckpointWarning(UserWarning):
    """A head checkpoint predates recorded preprocessing; it loads with the default pipeline of its time."""
