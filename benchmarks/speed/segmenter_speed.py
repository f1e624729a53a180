"""Time SAM ViT-B (random weights, default ``SamConfig()`` sizes) behind ``SamSegmenter`` on this machine.

Prints the image-encoder time for one image (resized to 1024 on its longest side) and the decoder time
for N boxes with and without masks. Random weights give the same FLOPs as the released model.

    python benchmarks/speed/segmenter_speed.py --boxes 12 --repeats 3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import SamConfig, SamModel

from regionspot.backbones.segmenter import SamPreprocess, SamSegmenter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_tools import best_time  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxes", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model = SamModel(SamConfig()).eval().requires_grad_(False)
    segmenter = SamSegmenter(model, "random-sam-vit-base", SamPreprocess())
    image = Image.fromarray(np.random.RandomState(0).randint(0, 256, (480, 640, 3), dtype=np.uint8))
    rng = np.random.RandomState(1)
    xy = rng.uniform(0, 400, (args.boxes, 2))
    wh = rng.uniform(20, 200, (args.boxes, 2))
    boxes = torch.tensor(np.concatenate([xy, np.minimum(xy + wh, [640, 480])], axis=1), dtype=torch.float32)

    segmenter.encode_image(image)  # warm-up
    encode_s = best_time(lambda: segmenter.encode_image(image), max(1, args.repeats - 1), warmup=0)
    state = segmenter.encode_image(image)

    def decode(masks: bool):
        return lambda: segmenter.decode_prompts(state, boxes=boxes, masks="full" if masks else "none",
                                              chunk_size=args.chunk_size)

    decode(False)()  # warm-up
    no_masks_s = best_time(decode(False), args.repeats, warmup=0)
    masks_s = best_time(decode(True), args.repeats, warmup=0)
    n = args.boxes
    print(f"torch threads: {torch.get_num_threads()}, image 640x480 -> 1024, {n} boxes, chunk_size {args.chunk_size}")
    print("| step | total (s) | per box (ms) |\n|---|---|---|")
    print(f"| image encoder (ViT-B, 1024²) | {encode_s:.2f} | – |")
    print(f"| decode, tokens + IoU only | {no_masks_s:.3f} | {1000 * no_masks_s / n:.1f} |")
    print(f"| decode, + masks at original size | {masks_s:.3f} | {1000 * masks_s / n:.1f} |")


if __name__ == "__main__":
    main()
