"""``regionspot train``: train the head on cached tokens.

Launch several processes with ``accelerate launch -m regionspot.cli train ...`` (or torchrun).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regionspot.cli.app import app, friendly


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
@friendly
def train(
    config: Annotated[Path, typer.Option(help="Training recipe YAML (see configs/).")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides, e.g. optim.lr=1e-4 steps=200.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the run folder's last checkpoint.")] = False,
    resume_from: Annotated[Path | None, typer.Option(help="Continue from this checkpoint file.")] = None,
) -> None:
    """Train the head on cached tokens (CPU, one GPU, or many with `accelerate launch -m regionspot.cli train ...`)."""
    from regionspot.engine.config import TrainConfig
    from regionspot.engine.train import train as run_training

    result = run_training(TrainConfig.from_yaml(config, list(overrides or [])),
                          resume=resume_from if resume_from is not None else resume)
    if result.final_head is not None:
        typer.echo(f"trained {result.step} steps; head written to {result.final_head}")

