"""``regionspot cache``: run the segmenter once over every annotated box into a sharded token cache.

Run it as several processes with ``torchrun --nproc_per_node K -m regionspot.cli cache ...`` (or
``accelerate launch``): each process reads its rank from the environment and writes its own shards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regionspot.cache.config import CacheConfig
from regionspot.cli.app import app, best_device, friendly
from regionspot.cli.options import flag_messages


@app.command()
@friendly
@flag_messages
def cache(
    dataset: Annotated[Path, typer.Option(help="COCO-format annotation JSON (COCO, LVIS, Objects365, V3Det, ShapesWorld).")],
    images: Annotated[Path, typer.Option(help="Image root the JSON's file names are relative to.")],
    out: Annotated[Path, typer.Option(help="Cache folder (shards + index + manifest).")],
    segmenter: Annotated[str, typer.Option("--sam", help="Segmenter: a registered name (shapesworld, BB, BL, BL@336; see "
                                                         "`regionspot models`), hub id or folder.")] = CacheConfig.segmenter,
    vision_language: Annotated[str | None, typer.Option("--clip", help="Also cache this vision-language model's feature "
                                                        "maps (fp16): a registered name, hub id or folder.")] = CacheConfig.vision_language,
    image_size: Annotated[int | None, typer.Option(help="Vision-language input size (with --clip).")] = CacheConfig.image_size,
    dataset_name: Annotated[str | None, typer.Option(help="Name recorded with every record (default: file stem).")] = CacheConfig.dataset_name,
    flip: Annotated[bool, typer.Option(help="Also cache tokens of the horizontally flipped image (for consistent augmentation).")] = CacheConfig.flip,
    shard_size: Annotated[int, typer.Option(help="Images per shard.")] = CacheConfig.shard_size,
    chunk_size: Annotated[int, typer.Option(help="Boxes per SAM decoder call.")] = CacheConfig.chunk_size,
    batch_size: Annotated[int, typer.Option(help="Images per SAM image-encoder / CLIP call, a flipped copy counting as "
                                                 "one (GPU: 8-32; the cached tokens agree up to float rounding).")] = CacheConfig.batch_size,
    workers: Annotated[int | None, typer.Option(
        help="Processes that decode and prepare images ahead of the model (0: threads; default: 0 on a CPU, a few on a GPU).")] = CacheConfig.workers,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ...")] = CacheConfig.device,
    dtype: Annotated[str | None, typer.Option(help="fp32, fp16 or bf16 for the backbones.")] = CacheConfig.dtype,
    limit: Annotated[int | None, typer.Option(help="Only the first N images.")] = CacheConfig.limit,
    preprocess: Annotated[str, typer.Option(
        help="'default' (regionspot's) or 'released' (the released RegionSpot code's SAM eps 1e-5 and bilinear CLIP "
             "resize); a head trained on the cache records it (set model.preprocess in the training config to match).")] = CacheConfig.preprocess,
    negatives_per_image: Annotated[int, typer.Option(
        help="Also cache this many background boxes per image (random boxes overlapping no labelled object), which "
             "training uses as negatives with all-zero targets, so the head learns to answer 'none of these' (0: none).")
    ] = CacheConfig.negatives_per_image,
    negative_max_iou: Annotated[float, typer.Option(
        help="Largest IoU a background box may have with any labelled box.")] = CacheConfig.negative_max_iou,
) -> None:
    """Run SAM once over every annotated box and store the tokens in sharded, memory-mapped files (resumable)."""
    config = CacheConfig(**locals())
    config.validate()
    stats, rank, world = _extract(config)
    typer.echo(
        f"rank {rank}/{world}: {stats.images} images, {stats.boxes} boxes in {stats.seconds:.1f} s "
        f"({stats.boxes_per_second:.2f} boxes/s), {stats.bytes_per_box:.0f} bytes/box on disk; "
        f"{stats.skipped_shards} finished shards kept, {stats.written_shards} written."
    )
    _report_if_complete(config.out)


def _extract(config: CacheConfig):
    """Load the dataset and the backbones ``config`` names; extract this process's shards."""
    import torch

    from regionspot.backbones.segmenter import load_segmenter
    from regionspot.backbones.vision_language import load_vision_language
    from regionspot.cache.extract import distributed_rank, extract_cache
    from regionspot.config import preprocess_preset
    from regionspot.data.coco_json import CocoDetectionDataset
    from regionspot.registry import resolve_backbone

    pre = preprocess_preset(config.preprocess)
    rank, world, local = distributed_rank()
    device = config.device or best_device(local)
    torch_dtype = {None: None, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[config.dtype]
    ds = CocoDetectionDataset(config.dataset, config.images, dataset_name=config.dataset_name)
    seg = load_segmenter(resolve_backbone(config.segmenter, "segmenter"), device=device, dtype=torch_dtype,
                         decoder_layer_norm_eps=pre.sam_decoder_eps)
    vl = None
    if config.vision_language is not None:
        vl = load_vision_language(resolve_backbone(config.vision_language, "vision_language"), image_size=config.image_size,
                                  device=device, dtype=torch_dtype, resize=pre.clip_resize, antialias=pre.clip_antialias)
    stats = extract_cache(ds, seg, config, vision_language=vl, rank=rank, world_size=world)
    return stats, rank, world


def _report_if_complete(out: Path) -> None:
    from regionspot.cache.extract import cache_is_complete
    from regionspot.cache.store import TokenCache

    if cache_is_complete(out):
        cache = TokenCache(out, verify="size")
        background = f" + {cache.num_negatives} background boxes" if cache.num_negatives else ""
        typer.echo(f"cache {out} complete: {cache.num_images} images, {cache.num_regions} regions{background}, "
                   f"{cache.nbytes / 1e6:.1f} MB.")
