"""``regionspot download NAME``: fetch, verify, convert and register real weights (see docs/weights.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regionspot.cli.app import app, friendly


@app.command("download")
@friendly
def download(
    name: Annotated[str, typer.Argument(help="BB, BL, BL@336 (the paper's models), or a Hugging Face hub id org/name "
                                             "of a regionspot model.")],
    from_dir: Annotated[Path | None, typer.Option("--from", help="A folder with files you fetched by other means (e.g. "
                                                               "the head .pth saved from a browser); the rest is downloaded.")] = None,
    home: Annotated[Path | None, typer.Option("--home", "--dest", help="Model home (default: $REGIONSPOT_HOME or "
                                                                       "~/.cache/regionspot).")] = None,
    sources: Annotated[Path | None, typer.Option(help="A JSON sources table replacing the published locations (a "
                                                      "mirror); default: $REGIONSPOT_SOURCES or the built-in one.")] = None,
    keep_downloads: Annotated[bool, typer.Option("--keep-downloads", help="Keep the raw files in HOME/downloads "
                                                                         "after converting them.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Fetch again a model that is already downloaded.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Download NAME's official files, check their checksums, convert them and register the model, so that
    `regionspot predict --head NAME` and RegionSpot.from_pretrained(NAME) work offline afterwards."""
    from regionspot.weights.install import download_model

    model = download_model(name, home=home, from_dir=from_dir, catalog=sources, progress=progress,
                           keep_downloads=keep_downloads, force=force, log=typer.echo)
    typer.echo(f"registered {model.name} in {model.folder}")
    licence = model.manifest.get("licence")
    if licence:
        typer.echo(f"licence of these weights: {licence}")
    typer.echo(f"use it: regionspot predict IMAGE --model {model.name} --vocab 'cat,dog' --boxes 'x1,y1,x2,y2'")
