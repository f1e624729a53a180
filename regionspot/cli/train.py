"""``regionspot train``: train the head on cached tokens (or ``--dry-run``: build it all, take a few steps), or,
with ``--data``, go from a COCO file to a head in one command (:mod:`regionspot.engine.train_from_coco`).

A rerun of the same command continues the run in its folder from the latest checkpoint (``--restart`` starts
it over). Launch several processes with ``accelerate launch -m regionspot.cli train ...`` (or torchrun).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from regionspot.cli.app import app, friendly

if TYPE_CHECKING:
    from regionspot.engine.dry_run import DryRunReport


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
@friendly
def train(
    config: Annotated[Path | None, typer.Option(help="Training recipe YAML (see configs/); not needed with --data.")] = None,
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides of the recipe (dotted keys, YAML values), e.g. lr=1e-4 max_iters=200 model.head.dropout=0.")] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder (the recipe's output_dir unless given).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the run folder's latest checkpoint. This is "
                                                           "the default: a rerun of the same command resumes, and a "
                                                           "finished run is left as it is.")] = True,
    restart: Annotated[bool, typer.Option("--restart", help="Delete the run folder's checkpoints, final head and logs, "
                                                             "and start over at step 0.")] = False,
    resume_from: Annotated[Path | None, typer.Option(help="Continue from this checkpoint folder (checkpoints/step_*).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Build everything (caches, text embeddings, head, optimizer) and take "
                                               "--dry-run-steps steps on each dataset; write nothing outside a temporary folder.")] = False,
    dry_run_steps: Annotated[int, typer.Option(help="Steps per dataset in a dry run.")] = 2,
    data: Annotated[Path | None, typer.Option(help="Train annotations (COCO json): build the cache, train with the "
                                                   "recipe measured for its number of images, write OUT/head.safetensors.")] = None,
    images: Annotated[Path | None, typer.Option(help="Image folder of --data (and of --val unless --val-images).")] = None,
    val: Annotated[Path | None, typer.Option(help="Val annotations (COCO json): box AP beside CLIP on the box crop, "
                                                  "and the display temperature fitted on it.")] = None,
    val_images: Annotated[Path | None, typer.Option(help="Image folder of --val (default: --images).")] = None,
    sam: Annotated[str | None, typer.Option(help="Segmenter with --data: a registered name, hub id or folder "
                                                 "(default: --init-head's, else shapesworld, the embedded demo pair).")] = None,
    clip: Annotated[str | None, typer.Option(help="Vision-language model with --data (default: --init-head's, else "
                                                  "shapesworld).")] = None,
    init_head: Annotated[str | None, typer.Option(help="With --data: fine-tune from this head (a head file, run folder "
                                                       "or downloaded model name); its architecture is kept.")] = None,
    eval_limit: Annotated[int | None, typer.Option(help="With --val: evaluate and calibrate on its first N images.")] = None,
) -> None:
    """Train the head on cached tokens (CPU, one GPU, or many with `accelerate launch -m regionspot.cli train ...`).

    From a COCO file in one command: regionspot train --data train.json --images DIR --val val.json --out runs/mine

    That builds the token cache, trains with the recipe measured for the number of images, and writes the head.

    With --val it also gives the val box AP beside CLIP on the box crop and fits the display temperature.

    Then: regionspot predict IMAGE --head runs/mine/head.safetensors --vocab-file runs/mine/vocabulary.txt

    Backbones default to the embedded shapesworld pair; pass --sam/--clip for others.

    A rerun of the same command resumes and says from which step; a finished run is reported, not retrained.
    """
    from regionspot.engine.config import TrainConfig

    if data is not None:
        if dry_run or resume_from is not None:
            from regionspot.errors import ConfigError

            raise ConfigError("--dry-run and --resume-from go with --config; with --data a rerun resumes by itself.")
        run_from_coco(data, images, val, val_images, sam, clip, init_head, out, list(overrides or []), restart,
                      eval_limit, config)
        return
    if config is None:
        from regionspot.errors import ConfigError

        raise ConfigError("Pass --config recipe.yaml (cached tokens), or --data train.json --images DIR (a COCO file).")
    recipe = TrainConfig.from_yaml(config, list(overrides or []))
    if out is not None:
        recipe.output_dir = str(out)
    if dry_run:
        from regionspot.engine.dry_run import dry_run as run_dry

        echo_dry_run(run_dry(recipe, steps_per_dataset=dry_run_steps), recipe.max_iters)
        return
    from regionspot.engine.train import train as run_training

    result = run_training(recipe, resume=resume_from if resume_from is not None else resume, restart=restart,
                          log=typer.echo)
    if result.final_head is not None and not result.finished:
        typer.echo(f"trained {result.step} steps; head written to {result.final_head}")


def run_from_coco(data: Path, images: Path | None, val: Path | None, val_images: Path | None, sam: str | None,
                  clip: str | None, init_head: str | None, out: Path | None, overrides: list[str], restart: bool,
                  eval_limit: int | None, config: Path | None) -> None:
    """``train --data``: every stage of :func:`regionspot.engine.train_from_coco.train_from_coco`, one line each."""
    from regionspot.engine.train_from_coco import CocoTrainOptions, train_from_coco
    from regionspot.errors import ConfigError

    if config is not None:
        raise ConfigError("--config and --data exclude each other; with --data the recipe comes from the data "
                          "(change it with key=value overrides, e.g. max_iters=300).")
    if images is None:
        raise ConfigError("--data needs --images, the folder its file names are relative to.")
    options = CocoTrainOptions(data=data, images=images, out=out or Path("runs/mine"), val=val, val_images=val_images,
                               sam=sam, clip=clip, init_head=init_head, overrides=overrides, restart=restart,
                               eval_limit=eval_limit)
    import warnings

    from regionspot.errors import CollapseWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollapseWarning)  # its lines come through the log already
        result = train_from_coco(options, log=typer.echo)
    typer.echo(f"head written: {result.head}; next: regionspot predict IMAGE --head {result.head} "
               f"--vocab-file {result.vocabulary}")


def echo_dry_run(report: DryRunReport, max_iters: int) -> None:
    """The dry run's findings as a Markdown table and two summary lines."""
    typer.echo("| dataset | cache | images | regions | vocabulary | weight | share of batches | losses |")
    typer.echo("|---|---|---:|---:|---:|---:|---:|---|")
    for d in report.datasets:
        losses = ", ".join(f"{x:.4f}" for x in d.losses)
        typer.echo(f"| {d.name} | {d.cache} | {d.images:,} | {d.regions:,} | {d.vocabulary:,} | {d.weight:g} | "
                   f"{d.probability:.0%} | {losses} |")
    typer.echo(
        f"head: {report.head_parameters:,} parameters; vision-language: {report.vision_language} "
        f"({report.feature_source} feature maps); {report.processes} process(es)"
    )
    typer.echo(
        f"dry run ok: {report.steps} steps, {report.seconds_per_step:.3f} s/step here -> {max_iters:,} iterations "
        f"would take {report.hours_for_schedule:,.1f} h on this machine; nothing written"
    )
