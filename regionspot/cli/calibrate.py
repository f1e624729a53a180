"""``regionspot calibrate``: fit a head's display temperature on a labelled COCO-format set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regionspot.cli.app import app, friendly


@app.command("calibrate")
@friendly
def calibrate(
    head: Annotated[Path, typer.Argument(help="Head checkpoint (.safetensors) to write the temperature into.")],
    data: Annotated[Path, typer.Option(help="COCO-format annotations with ground-truth boxes (e.g. a val split).")],
    images: Annotated[Path, typer.Option(help="Image root of the annotations.")],
    limit: Annotated[int | None, typer.Option(help="Use only the first N images.")] = 200,
    sam: Annotated[str | None, typer.Option(help="Segmenter: registered name, hub id or folder (default: the head's).")] = None,
    clip: Annotated[str | None, typer.Option(help="Vision-language model: registered name, hub id or folder (default: the head's).")] = None,
) -> None:
    """Fit the temperature of the displayed confidence (temperature scaling on GT boxes); AP is unaffected."""
    from regionspot.evaluation.calibration import calibrate_head

    fitted = calibrate_head(head, data, images, limit=limit, segmenter=sam, vision_language=clip, show_progress=True)
    typer.echo(
        f"{head}: display temperature {fitted['temperature']:.3f} from {fitted['regions']} regions "
        f"(top-1 {100 * fitted['top1']:.1f}%; mean shown confidence {100 * fitted['mean_confidence_before']:.1f}% → "
        f"{100 * fitted['mean_confidence_after']:.1f}%; NLL {fitted['nll_before']:.3f} → {fitted['nll_after']:.3f})"
    )
