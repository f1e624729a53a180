"""``regionspot shapesworld generate|build``: the synthetic world and its embedded models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regionspot.cli.app import friendly, shapes_app


@shapes_app.command("generate")
@friendly
def shapesworld_generate(
    out: Annotated[Path, typer.Option(help="Output folder.")],
    train: Annotated[int, typer.Option(help="Training images.")] = 1000,
    val: Annotated[int, typer.Option(help="Validation images.")] = 200,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 0,
    image_size: Annotated[int, typer.Option(help="Image side in pixels.")] = 256,
    world: Annotated[str, typer.Option(help="ShapesWorld preset: v2 (8 x 8 classes, the embedded model's world) or "
                                            "v1 (12 x 12, smaller objects).")] = "v2",
) -> None:
    """Generate a ShapesWorld dataset (COCO JSON with RLE masks and LVIS-style frequencies)."""
    from regionspot.shapesworld.generate import generate_shapesworld
    from regionspot.shapesworld.world import world_preset

    result = generate_shapesworld(out, train, val, seed=seed, image_size=image_size, world=world_preset(world))
    buckets = result["buckets"]
    typer.echo(
        f"ShapesWorld written to {result['root']}: {result['train']['images']} train / "
        f"{result['val']['images']} val images, {result['num_categories']} categories "
        f"(f={buckets['f']}, c={buckets['c']}, r={buckets['r']}), {result['images_per_second']:.1f} images/s.\n"
        f"  train: {result['train_json']}\n  val:   {result['val_json']}\n  image root: {result['image_root']}"
    )


@shapes_app.command("build")
@friendly
def shapesworld_build(
    out: Annotated[Path, typer.Option(help="Work folder (data, caches, runs, report.md, build.json).")] = Path("runs/shapesworld_build"),
    quick: Annotated[bool, typer.Option(help="A few-minute smoke build; installs nothing.")] = False,
    install: Annotated[bool, typer.Option(help="Copy the models into the package's assets (the embedded default).")] = True,
    resume: Annotated[bool, typer.Option("--resume/--fresh", help="Continue after the last stage finished in OUT "
                                         "(a killed build reruns from there), or start OUT over.")] = True,
    world: Annotated[str, typer.Option(help="ShapesWorld preset: v2 (8 x 8 classes, the shipped model) or v1 (12 x 12, smaller objects).")] = "v2",
    sam_shape_loss: Annotated[float | None, typer.Option(help="Weight of the tiny SAM's shape-name loss on its "
                                                         "mask token (default: the world's recipe; 0 = masks only).")] = None,
    reuse_backbones: Annotated[bool, typer.Option(help="Copy the installed tiny SAM and CLIP instead of pre-training "
                                                  "them: retrains the heads only (minutes instead of an hour).")] = False,
    negatives_per_image: Annotated[int | None, typer.Option(help="Background boxes per train image cached and used as "
                                                            "negatives in the heads' training (default: the recipe's, 0).")] = None,
    vocabulary_drop: Annotated[float | None, typer.Option(help="Chance of each class leaving a training step's vocabulary, "
                                                          "its boxes then negatives (default: the recipe's, 0).")] = None,
) -> None:
    """Rebuild the embedded ShapesWorld models (tiny CLIP, tiny SAM, RegionSpot heads) and write the table."""
    from dataclasses import replace

    from regionspot.registry import assets_dir
    from regionspot.shapesworld.build import BuildConfig, run_build

    config = (BuildConfig.quick if quick else BuildConfig.full)(world, sam_shape_loss)
    if reuse_backbones:
        config = replace(config, backbones_from=str(assets_dir() / "shapesworld"))
    if negatives_per_image is not None:
        config = replace(config, negatives_per_image=negatives_per_image)
    if vocabulary_drop is not None:
        config = replace(config, vocabulary_drop=vocabulary_drop)
    run_build(out, config, install=install and not quick, resume=resume)
    report = out / "report.md"  # written by the eval stage (this run's or, with --resume, an earlier one's)
    if report.is_file():
        typer.echo(report.read_text())



@shapes_app.command("clip")
@friendly
def shapesworld_clip(
    out: Annotated[Path, typer.Option(help="Output folder: frames/NNNNNN.png, clip.json (classes, boxes per frame).")] = Path("shapes_clip"),
    frames: Annotated[int, typer.Option(help="Number of frames.")] = 24,
    objects: Annotated[int, typer.Option(help="Moving shapes, 1..4 (one per quarter of the frame).")] = 3,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same clip).")] = 0,
    video: Annotated[bool, typer.Option("--video", help="Also write OUT/clip.mp4 (needs the [video] extra).")] = False,
) -> None:
    """Write a ShapesWorld clip of moving shapes (the embedded model's world) for `regionspot track`."""
    from regionspot.errors import RegionSpotError
    from regionspot.shapesworld.clip import MAX_OBJECTS, write_clip

    if frames < 1 or not 1 <= objects <= MAX_OBJECTS:
        raise RegionSpotError(f"--frames must be >= 1 and --objects in 1..{MAX_OBJECTS}; got {frames} and {objects}.")
    spec = write_clip(out, frames=frames, objects=objects, seed=seed, video=video)
    typer.echo(f"wrote {out}/frames/ ({frames} frames){' and clip.mp4' if video else ''}; objects: "
               f"{', '.join(spec['classes'])}\n  track them: regionspot track {out}/frames --boxes '{spec['boxes_option']}'")


@shapes_app.command("example")
@friendly
def shapesworld_example(
    candidates: Annotated[int, typer.Option(help="Candidate images to search (seeded: the same search each time).")] = 20000,
) -> None:
    """Choose the bundled example again with the installed models: the first candidate whose objects the head
    labels right, with one object's class left out of the vocabulary and marked unknown by the head's own
    rejection rule; rewrites example.png and example.json in the package's assets."""
    from regionspot.shapesworld.ship import reship_example

    example = reship_example(candidates=candidates, show_progress=True)
    typer.echo(f"wrote {example['file']} (candidate {example['candidate']}; unknown: {example['unknown']})")
