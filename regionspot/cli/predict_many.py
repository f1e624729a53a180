"""``regionspot predict`` on many images: the command-line side of ``inference.batch`` (which prompts each
image gets, what is printed, the exit status)."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

import typer

from regionspot.errors import PromptError, RegionSpotError
from regionspot.inference.options import PredictOptions


def prompts_per_image(options: PredictOptions, boxes: list | None, points: list | None, images: list[Path]) -> list:
    """Each image's prompts: its --prompts entry, else --boxes/--points, else (with --everything or without
    --prompts) everything mode. An image left without any under --prompts is an error, before any work."""
    from regionspot.inference.batch import ImagePrompts, image_prompts, match_prompts, read_prompts_file

    given = image_prompts(boxes, points, "--boxes/--points")
    if options.prompts_file is None:
        return [given] * len(images)
    found, unmatched = match_prompts(images, read_prompts_file(options.prompts_file))
    if unmatched:
        typer.echo(f"note: {len(unmatched)} entries of {options.prompts_file.name} match no image "
                   f"(e.g. {unmatched[0]!r})", err=True)
    missing = [image for image, prompts in zip(images, found) if prompts is None]
    if missing and given.everything and not options.everything:
        raise PromptError(f"{len(missing)} of {len(images)} images have no entry in {options.prompts_file.name} "
                          f"(e.g. {missing[0]}); add them, give --boxes/--points for them, or pass --everything "
                          "to label what the segmenter proposes there.")
    return [prompts if prompts is not None else given if not given.everything else ImagePrompts() for prompts in found]


def head_file_identity(weights: str | None) -> list | None:
    """[size, mtime_ns] of the head file that ``weights`` (a registered name, a file or a model folder)
    loads, so that a rebuilt head makes new work; None when it is not a local file."""
    from regionspot.registry import list_pretrained

    registered = list_pretrained().get(weights or "shapesworld")
    if registered is not None and registered.head is None:
        return None
    path = Path(weights if registered is None else registered.head)
    path = path / "head.safetensors" if path.is_dir() else path
    if not path.is_file():
        return None
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def model_identity(options: PredictOptions) -> dict:
    """The weights a batch's results come from, as its rerun check and each result file record them (under the
    keys results already written use, so that a rerun finds them finished)."""
    backend = {} if options.backend == "torch" else {"backend": options.backend, "onnx": options.onnx and str(options.onnx)}
    return {"weights": options.weights, "sam": options.segmenter, "clip": options.vision_language,
            "fast": options.fast, "head_file": head_file_identity(options.weights), **backend}


def predict_many(options: PredictOptions, vocabulary: list[str], boxes: list | None, points: list | None,
                 load: Callable[[PredictOptions], tuple]) -> int:
    """Run the batch (the prompts typed apply to the images --prompts leaves without; ``load``: options -> (model,
    its record for the result JSON), called only if an image is left to do); print failures (one line each)
    and a summary; return the exit status (1: some failed)."""
    from regionspot.inference.batch import BatchSettings, discover_images, plan_batch, run_batch
    from regionspot.inference.coco_output import write_coco
    from regionspot.inference.results import SCHEMA
    from regionspot.utils.progress import progress_write

    out, pictures = options.out or Path("predictions"), not options.no_viz
    if out.suffix.lower() == ".json" or out.is_file():
        raise RegionSpotError(f"--out {out} must be a folder when there are many images.")
    images = discover_images(options.images)
    prompts = prompts_per_image(options, boxes, points, images)
    proposals, region_filter = options.proposals(), options.region_filter()
    record = {"schema": SCHEMA, "model": model_identity(options), "top_k": options.top_k, "masks": options.masks,
              "reject": options.reject}
    items = plan_batch(images, prompts, record, vocabulary,
                       {**dataclasses.asdict(proposals), "filter": dataclasses.asdict(region_filter)})
    unprompted = sum(item.prompts.everything for item in items)
    if unprompted:
        typer.echo(f"note: {unprompted} of {len(items)} images have no prompts: the segmenter proposes their regions "
                   "(everything mode; give boxes or points with --prompts FILE or --boxes for speed)", err=True)
    settings = BatchSettings(top_k=options.top_k, proposals=proposals, region_filter=region_filter, masks=options.masks,
                             pictures=pictures, decode_limit=options.decode_limit, record={"options": record})

    def make_predictor():
        predictor, settings.record["model"] = load(options)
        predictor.set_vocabulary(vocabulary)
        return predictor

    def report(outcome) -> None:
        if outcome.status == "failed":
            named = str(outcome.item.path) in outcome.error
            progress_write(f"failed: {'' if named else f'{outcome.item.path}: '}{outcome.error}", file=sys.stderr)

    summary = run_batch(items, out, settings, make_predictor, on_outcome=report)
    written = f"{out}/<name>.json" + (" and .png" if pictures else "")
    if options.output_format == "coco":
        coco, ids = write_coco(items, out, vocabulary, options.prompts_file)
        written += f", {coco} and {ids}"
    done, skipped, failed = summary.count("done"), summary.count("skipped"), summary.count("failed")
    rate = f", {done / summary.seconds * 60:.0f} images/min" if done and summary.seconds > 0 else ""
    typer.echo(f"{len(items)} images: {done} done, {skipped} skipped (finished before), {failed} failed "
               f"({summary.seconds:.1f}s{rate}); wrote {written}")
    return 1 if failed else 0
