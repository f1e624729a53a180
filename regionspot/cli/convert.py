"""``regionspot convert regionspot|sam|sam2|clip``: official checkpoints to our formats (offline, weights only)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regionspot.cli.app import convert_app, friendly
from regionspot.cli.options import flag_messages


@convert_app.command("regionspot")
@friendly
def convert_regionspot(
    checkpoint: Annotated[Path, typer.Argument(help="Official RegionSpot .pth (BB, BL or BL@336).")],
    out: Annotated[Path, typer.Option(help="Output .safetensors head checkpoint.")] = Path("head.safetensors"),
    variant: Annotated[str | None, typer.Option(help="Check it is this variant: BB, BL or BL@336.")] = None,
) -> None:
    """Official RegionSpot checkpoint → regionspot head checkpoint (frozen backbone weights dropped)."""
    from regionspot.checkpoint import convert_official_regionspot, load_head_checkpoint

    path = convert_official_regionspot(checkpoint, out, variant)
    _, config, _ = load_head_checkpoint(path)
    typer.echo(f"wrote {path}  (segmenter {config.segmenter}, vision-language {config.vision_language} @ {config.image_size})")


@convert_app.command("sam")
@friendly
def convert_sam(
    checkpoint: Annotated[Path, typer.Argument(help="Official segment-anything checkpoint, e.g. sam_vit_b_01ec64.pth.")],
    out: Annotated[Path, typer.Option(help="Output folder (transformers SamModel).")] = Path("sam-vit-base"),
    model_type: Annotated[str, typer.Option(help="vit_b, vit_l, vit_h or auto.")] = "auto",
) -> None:
    """Official SAM .pth → a transformers SamModel folder usable with --sam."""
    from regionspot.backbones.convert.sam import convert_sam_checkpoint

    path = convert_sam_checkpoint(checkpoint, out, model_type=model_type)
    typer.echo(f"wrote {path}")


@convert_app.command("sam2")
@friendly
@flag_messages
def convert_sam2(
    checkpoint: Annotated[Path, typer.Argument(help="Official SAM 2 / 2.1 checkpoint, e.g. sam2.1_hiera_tiny.pt.")],
    out: Annotated[Path, typer.Option(help="Output folder (transformers Sam2Model).")] = Path("sam2.1-hiera"),
    config: Annotated[Path | None, typer.Option(
        help="transformers config.json (or its folder) for a size other than the released tiny/small/base_plus/large; "
             "default: read from the weights.")] = None,
) -> None:
    """Official SAM 2 / 2.1 .pt → a transformers Sam2Model folder usable with --sam (image model; video weights dropped)."""
    from regionspot.backbones.convert.sam2 import convert_sam2_checkpoint

    path = convert_sam2_checkpoint(checkpoint, out, config=config)
    typer.echo(f"wrote {path}")


@convert_app.command("clip")
@friendly
def convert_clip(
    checkpoint: Annotated[Path, typer.Argument(help="OpenAI CLIP checkpoint, e.g. ViT-L-14.pt.")],
    out: Annotated[Path, typer.Option(help="Output folder (transformers CLIPModel).")] = Path("clip"),
    tokenizer: Annotated[Path | None, typer.Option(help="Folder with a CLIP tokenizer to copy alongside.")] = None,
) -> None:
    """OpenAI CLIP .pt → a transformers CLIPModel folder usable with --clip."""
    from regionspot.backbones.convert.clip import convert_openai_clip

    path = convert_openai_clip(checkpoint, out, tokenizer=tokenizer)
    typer.echo(f"wrote {path}")


