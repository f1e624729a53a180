"""Token-cache throughput: boxes/s and bytes per box with full-size random SAM-B on 1024² images.

    python benchmarks/data/cache_throughput.py --images 2 --boxes 20
    python benchmarks/data/cache_throughput.py --images 4 --boxes 32 --encoder tiny --flip   # the per-box part

``--encoder tiny`` keeps SAM-B's prompt encoder and mask decoder (256-d tokens, the per-box cost and the
bytes per box of the real cache) but swaps the ViT-B image encoder for a 2-block, 64-wide one, so the
run measures what the cache pays per box without the ~1 TFLOP per image of the real encoder.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image
from transformers import SamConfig, SamModel

from regionspot.backbones.segmenter import SamSegmenter, load_segmenter
from regionspot.cache.extract import extract_cache


class SyntheticDataset:
    """``n`` random 1024² images with ``boxes`` random boxes each (the CocoDetectionDataset surface)."""

    def __init__(self, root: Path, n: int, boxes: int, size: int = 1024) -> None:
        rng = np.random.default_rng(0)
        self.image_root, self.name, self.category_names = root, "synthetic", ["a", "b"]
        self._records = []
        for i in range(n):
            path = root / f"{i}.png"
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
            xy = rng.uniform(0, size * 0.7, (boxes, 2))
            wh = rng.uniform(16, size * 0.3, (boxes, 2))
            self._records.append(SimpleNamespace(
                path=path, image_id=i, width=size, height=size,
                boxes=np.concatenate([xy, xy + wh], 1).astype(np.float32), labels=np.zeros(boxes, np.int64)))

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, i: int):
        return self._records[i]

    def load_image(self, i: int) -> Image.Image:
        return Image.open(self._records[i].path).convert("RGB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--boxes", type=int, default=20)
    parser.add_argument("--chunk-size", type=int, default=10)
    parser.add_argument("--encoder", choices=["full", "tiny"], default="full")
    parser.add_argument("--flip", action="store_true", help="also cache the mirrored image, as training caches do")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "img").mkdir()
        torch.manual_seed(0)
        config = SamConfig()  # sam-vit-base size, random weights
        if args.encoder == "tiny":
            config = SamConfig(vision_config={"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                                              "mlp_dim": 128, "global_attn_indexes": [1], "output_channels": 256})
        SamModel(config).save_pretrained(tmp / "sam")
        segmenter: SamSegmenter = load_segmenter(str(tmp / "sam"))
        data = SyntheticDataset(tmp / "img", args.images, args.boxes)
        t0 = time.perf_counter()
        stats = extract_cache(data, segmenter, tmp / "cache", flip=args.flip, shard_size=64, chunk_size=args.chunk_size)
        wall = time.perf_counter() - t0
    print(f"encoder: {args.encoder}; flip: {args.flip}; torch threads: {torch.get_num_threads()}")
    print("| images | boxes (incl. mirrored) | wall s | boxes/s | images/s | bytes/box |")
    print("|---|---|---|---|---|---|")
    print(f"| {stats.images} | {stats.boxes} | {wall:.1f} | {stats.boxes_per_second:.2f} | "
          f"{stats.images / stats.seconds:.3f} | {stats.bytes_per_box:.0f} |")


if __name__ == "__main__":
    main()
