"""A labelled-tracks run over a video: frames streamed through a propagator and the head, written frame by frame.

The output folder (``OUT``) holds:

- ``frames/NNNNNN.json`` per frame (schema ``regionspot.track-frame/1``): each track's box, mask (COCO RLE), the
  frame's label and confidence, the segmenter's score, and the track's label from the evidence so far;
- ``tracks.json`` at the end (``regionspot.tracks/1``): each track's one label and confidence (``video.labels``:
  the mean calibrated log-probability over its frames), with its per-frame labels;
- the overlay: ``overlay.mp4`` (assembled at the end from ``overlay/NNNNNN.png``, which are then removed) or the
  ``overlay/`` frames themselves;
- ``state.json``, written after each frame: the run's options, the last frame written, the evidence so far and
  the propagator's state. A killed run started again with the same options continues after the last frame
  written (a propagator without a written-down state — the video model's memory — replays the frames before it
  without labelling or writing them); other options are refused unless ``restart``.

Frames are tracked forward from the prompt frame; earlier frames are not written. Frame indices count from 0.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from regionspot.errors import RegionSpotError, VideoError
from regionspot.inference.results import RegionResult
from regionspot.inference.visualize import draw_result
from regionspot.utils.io import write_json_atomic
from regionspot.utils.progress import progress_bar
from regionspot.video.frames import FrameSource, write_video
from regionspot.video.labels import FrameLabeller, TrackEvidence
from regionspot.video.propagate import Propagator, TrackedObjects

FRAME_SCHEMA, TRACKS_SCHEMA = "regionspot.track-frame/1", "regionspot.tracks/1"


@dataclass
class TrackRun:
    """One run: where the frames come from, what tracks and labels them, the prompts and what to write.

    boxes: (K, 4) XYXY or points: (K, 2) XY, frame pixels of ``prompt_frame``. overlay: "video", "frames" or
    "none". masks: RLE masks in the per-frame JSON. options: the run's identity (JSON-ready), compared on resume.
    """

    source: FrameSource
    propagator: Propagator
    labeller: FrameLabeller
    boxes: np.ndarray | None
    points: np.ndarray | None
    prompt_frame: int
    output: Path
    overlay: str = "video"
    masks: bool = True
    restart: bool = False
    options: dict = field(default_factory=dict)
    show_progress: bool = True

    @property
    def count(self) -> int:
        return len(self.boxes) if self.boxes is not None else len(self.points)


def frame_path(output: Path, index: int) -> Path:
    return output / "frames" / f"{index:06d}.json"


def read_state(run: TrackRun) -> dict | None:
    """The state of an earlier run in ``run.output`` with the same options, None for none; refuses another run's
    folder unless ``run.restart`` (then emptied)."""
    path = run.output / "state.json"
    if not path.is_file():
        return None
    state = json.loads(path.read_text())
    if state.get("options") == run.options:
        return state
    if not run.restart:
        raise RegionSpotError(f"{run.output} holds a run with other options; pass another output folder, or `restart` "
                              "to start again there.")
    for name in ("frames", "overlay"):
        shutil.rmtree(run.output / name, ignore_errors=True)
    for name in ("state.json", "tracks.json", "overlay.mp4"):
        (run.output / name).unlink(missing_ok=True)
    return None


def run_tracks(run: TrackRun, log: Callable[[str], None] = lambda line: None) -> dict:
    """Track, label and write (see the module docstring); returns the ``tracks.json`` content."""
    run.source.check_frame(run.prompt_frame)
    run.output.mkdir(parents=True, exist_ok=True)
    state = read_state(run)
    if state is not None and state.get("finished"):
        log(f"{run.output} is complete already (frames {run.prompt_frame}..{state['last_frame']}).")
        return json.loads((run.output / "tracks.json").read_text())
    evidence = TrackEvidence.from_dict(state["evidence"]) if state else TrackEvidence(run.count, len(run.labeller.vocabulary))
    done = state["last_frame"] if state else run.prompt_frame - 1
    snapshot = state.get("snapshot") if state else None
    first = run.prompt_frame
    if snapshot is not None:
        run.propagator.restore(snapshot)
        first = done + 1
    if done >= run.prompt_frame:
        log(f"resuming after frame {done}" + ("" if snapshot is not None else f" (replaying frames {run.prompt_frame}.."
                                                                           f"{done} to rebuild the tracker's memory)"))
    total = None if run.source.count is None else run.source.count - first
    last = done
    with progress_bar(total=total, desc="track", unit="frame", disable=not run.show_progress) as bar:
        for index, image in run.source.frames(start=first):
            objects = (run.propagator.start(image, run.boxes, run.points) if index == run.prompt_frame
                       else run.propagator.step(image))
            bar.update(1)
            if index <= done:
                continue  # replayed: written before
            write_frame(run, index, image, objects, evidence)
            last = index
    if last < run.prompt_frame:
        raise VideoError(f"There is no frame {run.prompt_frame}: {run.source.path} ended before it; pick an earlier frame.")
    return finish(run, evidence, last, log)


def write_frame(run: TrackRun, index: int, image: Image.Image, objects: TrackedObjects, evidence: TrackEvidence) -> None:
    """Label frame ``index`` and write its JSON, its overlay picture and then the state."""
    logits = run.labeller.logits(image, objects.tokens)  # (K, V)
    log_probs = run.labeller.log_probs(logits)
    evidence.add(log_probs, objects.present)
    track_ids, track_confidence = evidence.labels()
    vocabulary = run.labeller.vocabulary
    frame_ids = log_probs.argmax(axis=1)
    tracks = []
    for k in range(len(objects)):
        seen = bool(objects.present[k])
        record = {"id": k, "present": seen, "box_xyxy": [round(float(v), 2) for v in objects.boxes[k]],
                  "segmenter_score": round(float(objects.scores[k]), 4),
                  "label": vocabulary[frame_ids[k]] if seen else None,
                  "confidence": round(float(np.exp(log_probs[k, frame_ids[k]])), 4) if seen else None,
                  "track_label": vocabulary[track_ids[k]] if track_ids[k] >= 0 else None,
                  "track_confidence": round(float(track_confidence[k]), 4)}
        if run.masks and seen:
            record["mask"] = objects.masks.to_rle(k)
        tracks.append(record)
    payload = {"schema": FRAME_SCHEMA, "frame": index, "image_size": [image.height, image.width], "tracks": tracks}
    write_json_atomic(frame_path(run.output, index), payload)
    if run.overlay != "none":
        (run.output / "overlay").mkdir(exist_ok=True)
        overlay_picture(image, objects, tracks, vocabulary).save(run.output / "overlay" / f"{index:06d}.png")
    write_json_atomic(run.output / "state.json", {"options": run.options, "last_frame": index, "finished": False,
                                                  "evidence": evidence.to_dict(), "snapshot": run.propagator.snapshot()})


def overlay_picture(image: Image.Image, objects: TrackedObjects, tracks: list[dict], vocabulary: list[str]) -> Image.Image:
    """``image`` with each present track's mask, box and tag "#id track label" (its frame confidence) drawn."""
    shown = [k for k, record in enumerate(tracks) if record["present"]]
    n = len(shown)
    scores = np.array([tracks[k]["confidence"] for k in shown], np.float32)
    result = RegionResult(
        boxes=objects.boxes[shown] if n else np.zeros((0, 4), np.float32),
        labels=[f"#{k} {tracks[k]['track_label']}" for k in shown], class_ids=np.zeros(n, np.int64), scores=scores,
        probs=np.zeros((n, len(vocabulary)), np.float32), topk_ids=np.zeros((n, 1), np.int64),
        topk_scores=scores[:, None], iou=np.zeros(n, np.float32), vocabulary=vocabulary,
        image_size=(image.height, image.width), masks=objects.masks[np.asarray(shown, np.int64)] if n else None)
    return draw_result(image, result)


def finish(run: TrackRun, evidence: TrackEvidence, last: int, log: Callable[[str], None]) -> dict:
    """tracks.json (each track's label and its per-frame labels, read back from the frame files), the overlay
    video, and the state marked finished."""
    vocabulary = run.labeller.vocabulary
    ids, confidence = evidence.labels()
    per_frame: list[list[dict]] = [[] for _ in range(run.count)]
    for index in range(run.prompt_frame, last + 1):
        for record in json.loads(frame_path(run.output, index).read_text())["tracks"]:
            if record["present"]:
                per_frame[record["id"]].append({"frame": index, "label": record["label"], "confidence": record["confidence"]})
    prompts = run.boxes if run.boxes is not None else run.points
    tracks = [{"id": k, "prompt": {"box_xyxy" if run.boxes is not None else "point": [float(v) for v in prompts[k]]},
               "label": vocabulary[ids[k]] if ids[k] >= 0 else None, "confidence": round(float(confidence[k]), 4),
               "frames_present": int(evidence.frames[k]),
               "frames_agreeing": sum(f["label"] == vocabulary[ids[k]] for f in per_frame[k]) if ids[k] >= 0 else 0,
               "per_frame": per_frame[k]} for k in range(run.count)]
    summary = {"schema": TRACKS_SCHEMA, "video": str(run.source.path), "prompt_frame": run.prompt_frame,
               "last_frame": last, "vocabulary_size": len(vocabulary),
               "evidence": "mean calibrated log-probability over the frames where the track is present",
               "tracks": tracks}
    write_json_atomic(run.output / "tracks.json", summary)
    if run.overlay == "video":
        frames_dir = run.output / "overlay"
        files = sorted(frames_dir.glob("*.png"))
        written = write_video((Image.open(p) for p in files), run.output / "overlay.mp4", run.source.fps)
        shutil.rmtree(frames_dir)
        log(f"wrote {run.output / 'overlay.mp4'} ({written} frames)")
    state = json.loads((run.output / "state.json").read_text())
    write_json_atomic(run.output / "state.json", {**state, "finished": True})
    return summary
