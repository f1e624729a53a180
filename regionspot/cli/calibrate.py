"""``regionspot calibrate``: fit a head's display temperature and its "none of these" threshold on a labelled
COCO-format set."""

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
    rejection_only: Annotated[bool, typer.Option(help="Fit only the rejection threshold; keep the head's display temperature.")] = False,
) -> None:
    """Fit the temperature of the displayed confidence (temperature scaling on GT boxes) and the "none of these"
    rule (the best rejection score, and the threshold that keeps 95% of the known regions; classes held out of
    the vocabulary and background boxes pick the score). AP is unaffected."""
    from regionspot.evaluation.calibration import calibrate_head

    fitted = calibrate_head(head, data, images, limit=limit, segmenter=sam, vision_language=clip, show_progress=True,
                            rejection_only=rejection_only)
    typer.echo(
        f"{head}: display temperature {fitted['temperature']:.3f} from {fitted['regions']} regions "
        f"(top-1 {100 * fitted['top1']:.1f}%; mean shown confidence {100 * fitted['mean_confidence_before']:.1f}% → "
        f"{100 * fitted['mean_confidence_after']:.1f}%; NLL {fitted['nll_before']:.3f} → {fitted['nll_after']:.3f})"
    )
    rejection, measured = fitted["rejection"], fitted["rejection_scores"][fitted["rejection"]["score"]]
    typer.echo(
        f"{head}: rejection score {rejection['score']}, threshold {rejection['threshold']:.4f} (keeps "
        f"{100 * rejection['known_rate']:.0f}% of known regions; AUROC {measured['auroc_unknown']:.3f} on held-out "
        f"classes, {measured['auroc_background']:.3f} on background boxes)"
    )
