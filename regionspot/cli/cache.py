"""``regionspot cache``: run the segmenter once over every annotated box into a sharded token cache.

Run it as several processes with ``torchrun --nproc_per_node K -m regionspot.cli cache ...`` (or
``accelerate launch``): each process reads its rank from the environment and writes its own shards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regionspot.cli.app import app, best_device, friendly
from regionspot.errors import CacheError

DTYPES = ("fp32", "fp16", "bf16")


@app.command()
@friendly
def cache(
    dataset: Annotated[Path, typer.Option(help="COCO-format annotation JSON (COCO, LVIS, Objects365, V3Det, ShapesWorld).")],
    images: Annotated[Path, typer.Option(help="Image root the JSON's file names are relative to.")],
    out: Annotated[Path, typer.Option(help="Cache folder (shards + index + manifest).")],
    sam: Annotated[str, typer.Option(help="Segmenter: a registered name (shapesworld, BB, BL, BL@336; see `regionspot models`), "
                                          "hub id or folder.")] = "facebook/sam-vit-base",
    clip: Annotated[str | None, typer.Option(help="Also cache this vision-language model's feature maps (fp16): a registered "
                                                  "name, hub id or folder.")] = None,
    image_size: Annotated[int | None, typer.Option(help="Vision-language input size (with --clip).")] = None,
    dataset_name: Annotated[str | None, typer.Option(help="Name recorded with every record (default: file stem).")] = None,
    flip: Annotated[bool, typer.Option(help="Also cache tokens of the horizontally flipped image (for consistent augmentation).")] = True,
    shard_size: Annotated[int, typer.Option(help="Images per shard.")] = 64,
    chunk_size: Annotated[int, typer.Option(help="Boxes per SAM decoder call.")] = 16,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ...")] = None,
    dtype: Annotated[str | None, typer.Option(help="fp32, fp16 or bf16 for the backbones.")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N images.")] = None,
    preprocess: Annotated[str, typer.Option(
        help="'default' (regionspot's) or 'released' (the released RegionSpot code's SAM eps 1e-5 and bilinear CLIP "
             "resize); a head trained on the cache records it (set model.preprocess in the training config to match).")] = "default",
) -> None:
    """Run SAM once over every annotated box and store the tokens in sharded, memory-mapped files (resumable)."""
    import torch

    from regionspot.backbones.segmenter import load_segmenter
    from regionspot.backbones.vision_language import load_vision_language
    from regionspot.cache.extract import cache_is_complete, distributed_rank, extract_cache
    from regionspot.cache.store import TokenCache
    from regionspot.config import preprocess_preset
    from regionspot.data.coco_json import CocoDetectionDataset
    from regionspot.registry import resolve_backbone

    if not Path(dataset).is_file():
        raise CacheError(f"Annotation file {dataset} not found; pass --dataset path/to/annotations.json.")
    if not Path(images).is_dir():
        raise CacheError(f"Image folder {images} not found; pass --images path/to/images.")
    if dtype is not None and dtype not in DTYPES:
        raise CacheError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}.")
    try:
        pre = preprocess_preset(preprocess)
    except ValueError as error:
        raise CacheError(str(error)) from None
    rank, world, local = distributed_rank()
    device = device or best_device(local)
    torch_dtype = {None: None, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    ds = CocoDetectionDataset(dataset, images, dataset_name=dataset_name)
    seg = load_segmenter(resolve_backbone(sam, "segmenter"), device=device, dtype=torch_dtype, decoder_layer_norm_eps=pre.sam_decoder_eps)
    vl = None
    if clip is not None:
        vl = load_vision_language(resolve_backbone(clip, "vision_language"), image_size=image_size, device=device, dtype=torch_dtype,
                                  resize=pre.clip_resize, antialias=pre.clip_antialias)
    stats = extract_cache(ds, seg, out, vision_language=vl, flip=flip, shard_size=shard_size, chunk_size=chunk_size,
                          rank=rank, world_size=world, limit=limit)
    typer.echo(
        f"rank {rank}/{world}: {stats.images} images, {stats.boxes} boxes in {stats.seconds:.1f} s "
        f"({stats.boxes_per_second:.2f} boxes/s), {stats.bytes_per_box:.0f} bytes/box on disk; "
        f"{stats.skipped_shards} finished shards kept, {stats.written_shards} written."
    )
    if cache_is_complete(out):
        cache = TokenCache(out, verify="size")
        typer.echo(f"cache {out} complete: {cache.num_images} images, {cache.num_regions} regions, {cache.nbytes / 1e6:.1f} MB.")
