"""``TrackOptions``: everything ``regionspot track`` is asked, the one list of its options (torch-free).

The command line fills it field by field (its parameters are these fields; ``cli/options.py`` knows the flags).
Messages name fields in backticks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from regionspot.errors import PromptError, RegionSpotError, VocabularyError

TRACKERS = ("toy", "video")
OVERLAYS = ("video", "frames", "none")


@dataclass
class TrackOptions:
    """What to track, with which model, and what to write.

    video: a video file or a folder of frame images. boxes / points: the objects on frame ``frame`` as typed
        ('x1,y1,x2,y2; ...' in ``box_format``, or 'x,y; ...': one foreground point per object), frame pixels.
    vocab / vocab_file / vocab_preset: the class names (at most one; None: the embedded model's own).
    output: the run's folder (per-frame JSON, tracks.json, the overlay, state.json). overlay: "video"
        (OUTPUT/overlay.mp4), "frames" (OUTPUT/overlay/NNNNNN.png) or "none". masks: each object's mask (COCO RLE)
        in the per-frame JSON. restart: start again in an output folder that holds another run.
    tracker: "toy" (the label model's own image segmenter re-prompted with the previous frame's mask box) or "video"
        (a SAM 2 family video model, ``video_model``: a folder or hub id). margin: the toy tracker's box growth.
    model / head / segmenter / vision_language: the label model, as for ``predict`` (None: the embedded model).
    device: None: the best available. fps: the overlay video's rate (None: the video's own; a folder's: 10).
    """

    video: Path | None = None
    boxes: str | None = None
    box_format: str = "xyxy"
    points: str | None = None
    frame: int = 0
    vocab: str | None = None
    vocab_file: Path | None = None
    vocab_preset: str | None = None
    output: Path = Path("tracks")
    overlay: str = "video"
    masks: bool = True
    restart: bool = False
    tracker: str = "toy"
    video_model: str | None = None
    margin: float = 0.15
    model: str | None = None
    head: str | None = None
    segmenter: str | None = None
    vision_language: str | None = None
    device: str | None = None
    fps: float | None = None

    def validate(self) -> None:
        """Raise one user error naming the field (in backticks) of the first bad value; reads no file."""
        if self.video is None:
            raise RegionSpotError("Name the video: a video file or a folder of frame images.")
        if (self.boxes is None) == (self.points is None):
            raise PromptError("Give the objects to track on frame `frame`: `boxes` 'x1,y1,x2,y2; ...' or `points` "
                              "'x,y; ...' (one of them).")
        if self.frame < 0:
            raise PromptError(f"`frame` must be 0 or more, got {self.frame}.")
        if sum(x is not None for x in (self.vocab, self.vocab_file, self.vocab_preset)) > 1:
            raise VocabularyError("Pass one of `vocab`, `vocab_file` or `vocab_preset`, not several.")
        if self.overlay not in OVERLAYS:
            raise RegionSpotError(f"`overlay` must be one of {', '.join(OVERLAYS)}, got {self.overlay!r}.")
        if self.tracker not in TRACKERS:
            raise RegionSpotError(f"`tracker` must be one of {', '.join(TRACKERS)}, got {self.tracker!r}.")
        if self.tracker == "video" and not self.video_model:
            raise RegionSpotError("`tracker` video needs `video_model`: a folder or hub id of a SAM 2 family video model.")
        if self.tracker == "toy" and self.video_model:
            raise RegionSpotError("`video_model` is for `tracker` video; add it or drop `video_model`.")
        if not 0 <= self.margin <= 2:
            raise RegionSpotError(f"`margin` must be in 0..2 (a fraction of the box side), got {self.margin}.")
        if self.fps is not None and not self.fps > 0:
            raise RegionSpotError(f"`fps` must be a positive number, got {self.fps}.")
        if self.model is not None and self.head is not None:
            raise RegionSpotError("Pass `model` NAME (registered weights) or `head` PATH (your own head), not both.")

    @property
    def weights(self) -> str | None:
        """The label model's weights (None: the embedded model)."""
        return self.model if self.model is not None else self.head

    @property
    def embedded(self) -> bool:
        """Whether the embedded ShapesWorld model labels (no other weights or backbones named)."""
        return self.weights in (None, "shapesworld") and self.segmenter is None and self.vision_language is None
