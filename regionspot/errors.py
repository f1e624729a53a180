"""Every error and warning class of regionspot. User-facing errors give one clear line that names the fix.

The CLI prints ``str(error)`` of these and exits non-zero, without a traceback.
"""

from collections.abc import Sequence


def preview(items: Sequence[str], limit: int = 3) -> str:
    """``'a', 'b', 'c' and 4 more``: a short quoted list for a one-line message (long items cut at 60)."""
    shown = ", ".join(repr(x if len(x) <= 60 else x[:57] + "...") for x in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


class RegionSpotError(Exception):
    """Base class for errors caused by user input (bad image, box, vocabulary, checkpoint)."""


class ImageError(RegionSpotError):
    """The image could not be read or decoded."""


class VideoError(ImageError):
    """A video or frame folder cannot be read (missing, unreadable, unsupported codec, no such frame)."""


class PromptError(RegionSpotError):
    """A box or point prompt is unusable (NaN, zero area, wrong shape)."""


class VocabularyError(RegionSpotError):
    """The vocabulary is empty, duplicated or otherwise unusable."""


class CheckpointError(RegionSpotError):
    """A checkpoint is missing, of the wrong variant/shape, or has missing/unexpected keys."""


class OnnxModelError(CheckpointError):
    """An exported ONNX model folder is incomplete, of another model, or of an incompatible format version."""


class WeightsNotFoundError(RegionSpotError):
    """Backbone weights are not reachable (offline and not in a local folder or cache)."""


class LegacyCheckpointWarning(UserWarning):
    """A head checkpoint predates recorded preprocessing; it loads with the default pipeline of its time."""


class PredictionStoreError(RegionSpotError):
    """The prediction folder belongs to another run (different data, methods or models)."""


class EvaluationError(RegionSpotError):
    """Ground truth or detections are unusable for evaluation (missing fields, unknown ids)."""


class CacheError(RegionSpotError):
    """A token cache is missing, incomplete, corrupt, or was built for other backbones."""


class ConfigError(RegionSpotError):
    """A training config file or override is malformed or names an unknown key."""


class TrainingDivergedError(RegionSpotError):
    """The loss became NaN/inf; the run stopped and the last good checkpoint was kept."""


class PromptTruncatedWarning(UserWarning):
    """Some prompts were longer than the text encoder's context and were truncated.

    ``prompts`` holds the affected prompt strings so callers can name the classes they came from.
    """

    def __init__(self, message: str, prompts: Sequence[str] = ()):
        super().__init__(message)
        self.prompts = list(prompts)


class DownloadError(RegionSpotError):
    """A file could not be fetched, verified or registered (network, 404, web page, checksum, disk)."""


class CollapseWarning(UserWarning):
    """A training run looks collapsed (one label for most regions, flat loss, or AP far below the crop baseline)."""
