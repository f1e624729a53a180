"""``regionspot train``: train the head on cached tokens (or ``--dry-run``: build it all, take a few steps).

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
    config: Annotated[Path, typer.Option(help="Training recipe YAML (see configs/).")],
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
) -> None:
    """Train the head on cached tokens (CPU, one GPU, or many with `accelerate launch -m regionspot.cli train ...`).

    Rerunning the same command resumes from the run folder's latest checkpoint and says from which step; a
    finished run is reported, not retrained; a folder holding a run of another recipe is refused.
    """
    from regionspot.engine.config import TrainConfig

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
