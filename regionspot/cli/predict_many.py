"""``regionspot predict`` on many images: the command-line side of ``inference.batch`` (which prompts each
image gets, what is printed, the exit status)."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

import typer

from regionspot.errors import PromptError, RegionSpotError


@dataclass
class ManyImages:
    """What ``regionspot predict`` was asked to do on many images (parsed and checked options)."""

    inputs: list[Path]
    vocabulary: list[str]
    boxes: list | None
    points: list | None
    everything: bool
    prompts_file: Path | None
    out: Path
    output_format: str
    masks: bool
    pictures: bool
    decode_limit: int | None
    top_k: int
    proposals: object  # inference.proposals.ProposalOptions
    region_filter: object = None  # inference.region_filter.RegionFilter (None: its defaults)


def prompts_per_image(request: ManyImages, images: list[Path]) -> list:
    """Each image's prompts: its --prompts entry, else --boxes/--points, else (with --everything or without
    --prompts) everything mode. An image left without any under --prompts is an error, before any work."""
    from regionspot.inference.batch import ImagePrompts, image_prompts, match_prompts, read_prompts_file

    given = image_prompts(request.boxes, request.points, "--boxes/--points")
    if request.prompts_file is None:
        return [given] * len(images)
    found, unmatched = match_prompts(images, read_prompts_file(request.prompts_file))
    if unmatched:
        typer.echo(f"note: {len(unmatched)} entries of {request.prompts_file.name} match no image "
                   f"(e.g. {unmatched[0]!r})", err=True)
    missing = [image for image, prompts in zip(images, found) if prompts is None]
    if missing and given.everything and not request.everything:
        raise PromptError(f"{len(missing)} of {len(images)} images have no entry in {request.prompts_file.name} "
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


def predict_many(request: ManyImages, choice) -> int:
    """Run the batch; print failures (one line each) and a summary; return the exit status (1: some failed)."""
    from regionspot.inference.batch import (
        BatchSettings,
        discover_images,
        plan_batch,
        run_batch,
    )
    from regionspot.inference.coco_output import write_coco
    from regionspot.inference.region_filter import RegionFilter
    from regionspot.inference.results import SCHEMA
    from regionspot.utils.progress import progress_write

    if request.out.suffix.lower() == ".json" or request.out.is_file():
        raise RegionSpotError(f"--out {request.out} must be a folder when there are many images.")
    images = discover_images(request.inputs)
    prompts = prompts_per_image(request, images)
    region_filter = request.region_filter or RegionFilter()
    proposals = {**dataclasses.asdict(request.proposals), "filter": dataclasses.asdict(region_filter)}
    options = {"schema": SCHEMA, "model": dataclasses.asdict(choice), "top_k": request.top_k, "masks": request.masks}
    options["model"].pop("device")  # the same weights give the same result on any device
    options["model"]["head_file"] = head_file_identity(choice.weights)
    items = plan_batch(images, prompts, options, request.vocabulary, proposals)
    unprompted = sum(item.prompts.everything for item in items)
    if unprompted:
        typer.echo(f"note: {unprompted} of {len(items)} images have no prompts: the segmenter proposes their regions "
                   "(everything mode; give boxes or points with --prompts FILE or --boxes for speed)", err=True)
    settings = BatchSettings(top_k=request.top_k, proposals=request.proposals, region_filter=region_filter,
                             masks=request.masks,
                             pictures=request.pictures, decode_limit=request.decode_limit, record={"options": options})

    def make_predictor():
        from regionspot.inference.predictor import RegionSpotPredictor

        model = choice.load()
        settings.record["model"] = choice.record(model)
        predictor = RegionSpotPredictor(model)
        predictor.set_vocabulary(request.vocabulary)
        return predictor

    def report(outcome) -> None:
        if outcome.status == "failed":
            named = str(outcome.item.path) in outcome.error
            progress_write(f"failed: {'' if named else f'{outcome.item.path}: '}{outcome.error}", file=sys.stderr)

    summary = run_batch(items, request.out, settings, make_predictor, on_outcome=report)
    written = f"{request.out}/<name>.json" + (" and .png" if request.pictures else "")
    if request.output_format == "coco":
        coco, ids = write_coco(items, request.out, request.vocabulary, request.prompts_file)
        written += f", {coco} and {ids}"
    done, skipped, failed = summary.count("done"), summary.count("skipped"), summary.count("failed")
    rate = f", {done / summary.seconds * 60:.0f} images/min" if done and summary.seconds > 0 else ""
    typer.echo(f"{len(items)} images: {done} done, {skipped} skipped (finished before), {failed} failed "
               f"({summary.seconds:.1f}s{rate}); wrote {written}")
    return 1 if failed else 0
