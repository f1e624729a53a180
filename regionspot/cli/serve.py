"""``regionspot serve``: the web demo (upload, click, see) and its API, on one model instance."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regionspot.cli.app import app, best_device, friendly
from regionspot.cli.checks import check_device
from regionspot.cli.options import flag_messages
from regionspot.cli.predict import bundled_example
from regionspot.errors import RegionSpotError


@app.command()
@friendly
@flag_messages
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 7860,
    sam: Annotated[str | None, typer.Option(help="Segmenter: registered name (e.g. shapesworld, BL), hub id or folder.")] = None,
    clip: Annotated[str | None, typer.Option(help="Vision-language model: registered name, hub id or folder.")] = None,
    head: Annotated[str | None, typer.Option(help="Head checkpoint (.safetensors, official .pth) or a registered name.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1, mps (default: best available).")] = None,
    vocab_preset: Annotated[str | None, typer.Option(help="The vocabulary the page starts with: coco, lvis or "
                                                          "shapesworld (default: shapesworld for the embedded model, else coco).")] = None,
    max_vocabulary: Annotated[int, typer.Option(help="The most class names one request may use.")] = 1500,
    max_megapixels: Annotated[float, typer.Option(help="The largest image accepted, in megapixels.")] = 12.0,
    queue_size: Annotated[int, typer.Option(help="Requests that may wait in the queue (more are refused).")] = 64,
    text_cache_dir: Annotated[str | None, typer.Option(help="Keep text embeddings on disk here across restarts.")] = None,
    grid: Annotated[int, typer.Option(help="Recognise everything: a GRID x GRID point grid on the image and each crop.")] = 16,
    backend: Annotated[str, typer.Option(help="What runs the model: torch, or its exported ONNX graphs on the CPU "
                                              "(onnxruntime, onnxruntime-int8, openvino, openvino-bf16: clicked points "
                                              "and boxes only; see docs/export.md).")] = "torch",
    onnx: Annotated[Path | None, typer.Option(help="An ONNX backend: the folder of `regionspot export onnx --out DIR` (default: "
                                                   "the model's export kept in the model home).")] = None,
) -> None:
    """Serve the web demo: upload or pick an image, click points or draw boxes, name classes, see the labels."""
    check_device(device)  # before any loading: a missing GPU is one line
    from regionspot.inference.backends import backend_spec

    onnx_backend = backend_spec(backend).engine is not None
    if onnx is not None and not onnx_backend:
        raise RegionSpotError("--onnx names exported graphs for an ONNX backend: add --backend onnxruntime (or openvino).")
    if onnx_backend and device not in (None, "cpu"):
        raise RegionSpotError(f"--backend {backend} runs on the CPU; drop --device (or use --backend torch).")
    try:
        from regionspot.demo.app import build_app, launch
    except ImportError as error:
        raise RegionSpotError(f"The demo needs the [demo] extra ({error.name} is missing): pip install 'regionspot[demo]'.") from None
    from regionspot.demo.service import DemoService, ServerLimits
    from regionspot.inference.predictor import RegionSpotPredictor
    from regionspot.inference.proposals import ProposalOptions
    from regionspot.model import RegionSpot
    from regionspot.text.presets import PRESETS

    embedded = head is None and sam is None and clip is None
    preset = vocab_preset or ("shapesworld" if embedded else "coco")
    if preset not in PRESETS:
        raise RegionSpotError(f"Unknown --vocab-preset {preset!r}; choose one of {', '.join(PRESETS)}.")
    if onnx_backend:
        from regionspot.inference.backends import open_backend

        predictor = open_backend(backend, head, segmenter=sam, vision_language=clip, onnx_dir=onnx,
                                 text_cache_dir=text_cache_dir, log=lambda line: typer.echo(f"note: {line}"))
    else:
        model = RegionSpot.from_pretrained(head, segmenter=sam, vision_language=clip, device=device or best_device())
        predictor = RegionSpotPredictor(model, text_cache_dir=text_cache_dir)
    limits = ServerLimits(max_pixels=int(max_megapixels * 1e6), max_vocabulary=max_vocabulary)
    service = DemoService(predictor, limits, default_preset=preset, proposals=ProposalOptions(points_per_side=grid))
    try:
        example = bundled_example()[0]
    except RegionSpotError:  # an install without the bundled example: the page has no example button
        example = None
    page = build_app(service, example)
    typer.echo(f"regionspot demo on http://{host}:{port}  (Ctrl+C stops it)")
    launch(page, host=host, port=port, queue_size=queue_size, block=True,
           allowed_paths=[str(example.parent)] if example else None)

