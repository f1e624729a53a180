"""The Typer application, its sub-apps, and what every command shares: one-line errors and the device.

User errors (RegionSpotError) print one red ``error:`` line to stderr and exit with status 2, without a
traceback.
"""

from __future__ import annotations

import functools
import sys
from typing import Annotated

import typer

from regionspot.errors import RegionSpotError
from regionspot.version import __version__

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Recognize any region of an image with an open vocabulary.")
convert_app = typer.Typer(no_args_is_help=True, help="Convert official checkpoints (SAM, OpenAI CLIP, RegionSpot) to our formats.")
shapes_app = typer.Typer(no_args_is_help=True, help="ShapesWorld: the synthetic world we measure on.")
app.add_typer(convert_app, name="convert")
app.add_typer(shapes_app, name="shapesworld")


def fail(message: str) -> None:
    """Print ``error: message`` in red to stderr and exit with status 2."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def friendly(func):
    """Turn user errors into one red line and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except RegionSpotError as error:
            fail(str(error))
        except KeyboardInterrupt:
            typer.secho("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


def best_device(local_rank: int = 0) -> str:
    """The device a command runs on when none is given: CUDA (this process's GPU), then Apple MPS, then CPU."""
    import torch

    if torch.cuda.is_available():
        return f"cuda:{local_rank % torch.cuda.device_count()}" if local_rank else "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"regionspot {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool | None, typer.Option("--version", callback=_version_callback, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    """Recognize any region of an image with an open vocabulary (RegionSpot)."""


def main() -> None:
    from regionspot.utils.allocator import keep_freed_memory
    from regionspot.utils.startup_gc import freeze_at_exit

    keep_freed_memory()
    try:
        app()
    except RegionSpotError as error:  # errors raised outside a command body
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    finally:
        freeze_at_exit()  # the shutdown's garbage collections would walk every torch/transformers object (~1 s)
