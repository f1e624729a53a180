"""``regionspot export onnx``: a model as ONNX graphs for the torch-free runtime (``regionspot.runtime``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regionspot.cli.app import app, friendly
from regionspot.errors import RegionSpotError

export_app = typer.Typer(no_args_is_help=True, help="Export a model for other runtimes.")
app.add_typer(export_app, name="export")


@export_app.command("onnx")
@friendly
def export_onnx_command(
    out: Annotated[Path, typer.Option(help="Folder to write the graphs and tokenizer.json to (created).")],
    model: Annotated[str | None, typer.Option(help="Registered weights by name (see `regionspot models`): "
                                                   "shapesworld (default), BB, BL, BL@336.")] = None,
    head: Annotated[str | None, typer.Option(help="Head checkpoint (.safetensors, official .pth) or a registered name.")] = None,
    sam: Annotated[str | None, typer.Option(help="Segmenter: registered name, hub id or folder.")] = None,
    clip: Annotated[str | None, typer.Option(help="Vision-language model: registered name, hub id or folder.")] = None,
) -> None:
    """Write SAM's image encoder and prompt path, CLIP's feature map and text tower, and the head as ONNX graphs
    (fp32) that `python examples/onnx_label.py OUT IMAGE ...` runs with ONNX Runtime, without PyTorch."""
    if model is not None and head is not None:
        raise RegionSpotError("Pass --model NAME (registered weights) or --head PATH (your own head), not both.")
    if out.exists() and not out.is_dir():
        raise RegionSpotError(f"{out} is a file; pass a folder for the graphs, e.g. {out.with_suffix('')}-onnx.")
    from transformers.utils import logging as transformers_logging

    from regionspot.export.onnx import export_onnx, require_exporter
    from regionspot.model import RegionSpot

    require_exporter()
    transformers_logging.disable_progress_bar()  # its per-tensor "Loading weights" bars: noise on the terminal
    loaded = RegionSpot.from_pretrained(model if model is not None else head, segmenter=sam, vision_language=clip, device="cpu")
    paths = export_onnx(loaded, out)
    size = sum(path.stat().st_size for path in paths.values()) / 2**20
    typer.echo(f"{out}: {len(paths) - 1} ONNX graphs and tokenizer.json ({size:.1f} MiB)")
