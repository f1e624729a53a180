"""``regionspot track``: labelled tracks in a video — objects prompted on one frame, followed and labelled on every
frame, one label per track.

Its options are ``video.options.TrackOptions``' fields. The body reads as steps: check the options, read the
prompts and names, open the frames (a bad file or a missing frame is one line before any model loads), load the
label model and the tracker, run (``video.run.run_tracks``), print each track.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

import regionspot.cli.checks as checks
from regionspot.cli.app import app, best_device, friendly
from regionspot.cli.options import flag_messages
from regionspot.cli.predict import default_vocabulary, read_vocabulary
from regionspot.utils.startup_gc import start_up
from regionspot.video.options import TrackOptions


@app.command()
@friendly
@flag_messages
def track(
    video: Annotated[Path | None, typer.Argument(help="A video file (any format FFmpeg reads) or a folder of frame "
                                                      "images.")] = TrackOptions.video,
    boxes: Annotated[str | None, typer.Option(help="The objects on --frame as boxes in pixels, separated by ';': "
                                                   "'x1,y1,x2,y2; x1,y1,x2,y2'.")] = TrackOptions.boxes,
    box_format: Annotated[str, typer.Option(help="How --boxes read: xyxy (corners) or xywh.")] = TrackOptions.box_format,
    points: Annotated[str | None, typer.Option(help="The objects on --frame as one point each: 'x,y; x,y'.")] = TrackOptions.points,
    frame: Annotated[int, typer.Option(help="The frame the prompts are on (from 0); tracks run forward from it.")] = TrackOptions.frame,
    vocab: Annotated[str | None, typer.Option(help="Comma-separated class names, e.g. 'cat,dog'.")] = TrackOptions.vocab,
    vocab_file: Annotated[Path | None, typer.Option(help="A file with one class name per line.")] = TrackOptions.vocab_file,
    vocab_preset: Annotated[str | None, typer.Option(help="A ready vocabulary: coco, lvis or shapesworld.")] = TrackOptions.vocab_preset,
    output: Annotated[Path, typer.Option(help="The run's folder: frames/NNNNNN.json, tracks.json, the overlay, "
                                              "state.json (a rerun continues after the last frame written).")] = TrackOptions.output,
    overlay: Annotated[str, typer.Option(help="video (OUTPUT/overlay.mp4), frames (OUTPUT/overlay/*.png) or none.")] = TrackOptions.overlay,
    masks: Annotated[bool, typer.Option("--masks/--no-masks", help="Each object's mask (COCO RLE) in the per-frame "
                                                                   "JSON.")] = TrackOptions.masks,
    restart: Annotated[bool, typer.Option("--restart", help="Start again in an output folder that holds a run with "
                                                            "other options.")] = TrackOptions.restart,
    tracker: Annotated[str, typer.Option(help="toy: the label model's image segmenter re-prompted on each frame with the "
                                              "previous frame's mask box (a toy, for ShapesWorld clips); video: a SAM 2 "
                                              "family video model (--video-model).")] = TrackOptions.tracker,
    video_model: Annotated[str | None, typer.Option(help="--tracker video: a folder or hub id of a Sam2VideoModel, "
                                                         "EdgeTamVideoModel or Sam3TrackerVideoModel.")] = TrackOptions.video_model,
    margin: Annotated[float, typer.Option(help="--tracker toy: grow the previous box by this fraction of its side.")] = TrackOptions.margin,
    model: Annotated[str | None, typer.Option(help="Registered label weights by name (see `regionspot models`).")] = TrackOptions.model,
    head: Annotated[str | None, typer.Option(help="Head checkpoint (.safetensors) or a registered name.")] = TrackOptions.head,
    segmenter: Annotated[str | None, typer.Option("--sam", help="Segmenter: registered name, hub id or folder.")] = TrackOptions.segmenter,
    vision_language: Annotated[str | None, typer.Option("--clip", help="Vision-language model: registered name, hub id or folder.")] = TrackOptions.vision_language,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1, mps (default: best available).")] = TrackOptions.device,
    fps: Annotated[float | None, typer.Option(help="The overlay video's frame rate (default: the video's; a folder: 10).")] = TrackOptions.fps,
) -> None:
    """Track objects prompted on one frame through a video and label them on every frame; each track gets one label
    from the evidence of all its frames (mean calibrated log-probability), its per-frame labels kept.

    Writes OUTPUT/frames/NNNNNN.json per frame, OUTPUT/tracks.json and an overlay video (or frames). Frames are read
    one at a time (memory does not grow with the video's length). A killed run, started again with the same
    options, continues after the last frame written.
    """
    run_track(TrackOptions(**locals()))


def run_track(options: TrackOptions) -> dict:
    """``track``'s steps; returns the tracks.json content."""
    options = dataclasses.replace(options, device=checks.check_device(options.device))
    options.validate()
    names = checks.check_names(read_vocabulary(options.vocab, options.vocab_file, options.vocab_preset), options.vocab)
    names = default_vocabulary(names, options)
    boxes = checks.read_box_option(options.boxes, options.box_format) if options.boxes is not None else None
    points = checks.read_point_option(options.points) if options.points is not None else None
    source, boxes, points = open_inputs(options, boxes, points)
    if options.embedded:
        for note in checks.embedded_model_notes(names, None, ""):
            typer.echo(f"note: {note}")
    propagator, labeller = load_models(options, names)
    from regionspot.video.run import TrackRun, run_tracks

    run = TrackRun(source, propagator, labeller, boxes, points, options.frame, options.output, options.overlay,
                   options.masks, options.restart, options=run_identity(options, names, boxes, points))
    summary = run_tracks(run, log=lambda line: typer.echo(line, err=True))
    for record in summary["tracks"]:
        typer.echo(f"track {record['id']}: {record['label']}  {record['confidence']:.2f}  (present on "
                   f"{record['frames_present']} frames, {record['frames_agreeing']} of them labelled so on their own)")
    typer.echo(f"wrote {options.output}/frames/ ({summary['last_frame'] - options.frame + 1} frames), "
               f"{options.output}/tracks.json")
    return summary


def open_inputs(options: TrackOptions, boxes, points):
    """(frame source, boxes (K, 4) or None, points (K, 2) or None): the frames opened, the prompt frame checked
    to exist, the prompts checked against the frame size."""
    import numpy as np

    from regionspot.video.frames import open_frames
    from regionspot.video.propagate import check_prompts

    source = open_frames(options.video, options.fps)
    source.check_frame(options.frame)
    boxes = None if boxes is None else np.asarray(boxes, np.float32)
    points = None if points is None else np.asarray(points, np.float32)
    check_prompts(boxes, points, source.size)
    return source, boxes, points


@start_up()  # the imports and the weights: no garbage collection until the models are loaded
def load_models(options: TrackOptions, names: list[str]):
    """(propagator, frame labeller): the label model (weights as for predict) and the tracker on the device."""
    from transformers.utils import logging as transformers_logging

    from regionspot.model import RegionSpot
    from regionspot.video.labels import FrameLabeller
    from regionspot.video.propagate import RepromptTracker

    transformers_logging.disable_progress_bar()
    device = options.device or best_device()
    model = RegionSpot.from_pretrained(options.weights, segmenter=options.segmenter,
                                       vision_language=options.vision_language, device=device)
    if options.tracker == "video":
        from regionspot.video.sam2_video import VideoModelPropagator, load_video_model

        propagator = VideoModelPropagator(load_video_model(options.video_model, device))
    else:
        propagator = RepromptTracker(model.segmenter, margin=options.margin)
    return propagator, FrameLabeller(model, names, propagator.token_dim)


def run_identity(options: TrackOptions, names: list[str], boxes, points) -> dict:
    """What makes two runs the same run (a rerun into the same folder continues only then)."""
    return {"video": str(Path(options.video).resolve()), "frame": options.frame, "vocabulary": names,
            "boxes": None if boxes is None else boxes.tolist(), "points": None if points is None else points.tolist(),
            "tracker": options.tracker, "video_model": options.video_model, "margin": options.margin,
            "weights": options.weights, "segmenter": options.segmenter, "vision_language": options.vision_language,
            "overlay": options.overlay, "masks": options.masks}
