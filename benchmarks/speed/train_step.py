"""Training step time per image: cached tokens + cached CLIP maps vs online CLIP (CLIP-L/14 size, random).

    python benchmarks/speed/train_step.py --batch 4 --regions 50 --steps 3 --mode cached
    python benchmarks/speed/train_step.py --batch 4 --regions 50 --steps 3 --mode online

Run each mode in its own process: the peak memory printed is the process's peak RSS (CPU) or the peak
allocated CUDA memory (GPU).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch
from accelerate import Accelerator
from PIL import Image
from transformers import CLIPConfig, CLIPModel

from regionspot.backbones.vision_language import ClipAdapter
from regionspot.cache.store import CachedRegions
from regionspot.config import HeadConfig
from regionspot.engine.config import TrainConfig
from regionspot.engine.optim import build_optimizer
from regionspot.engine.train import collate, step_generator, train_step
from regionspot.modeling.head import RegionSpotHead
from regionspot.modeling.losses import SigmoidFocalLoss


def clip_large() -> CLIPModel:
    config = CLIPConfig(
        vision_config={"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                       "intermediate_size": 4096, "patch_size": 14, "image_size": 224},
        text_config={"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                     "intermediate_size": 3072},
        projection_dim=768,
    )
    return CLIPModel(config).eval()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--regions", type=int, default=50)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--mode", choices=["cached", "online"], default="cached")
    parser.add_argument("--mixed-precision", default="no")
    args = parser.parse_args()
    torch.manual_seed(0)
    accelerator = Accelerator(mixed_precision=args.mixed_precision)
    vl = ClipAdapter(clip_large().to(accelerator.device), None, model_id="clip-l14-random") if args.mode == "online" else None
    head = RegionSpotHead(HeadConfig(feature_dim=1024, embed_dim=768))
    optimizer = build_optimizer(head, 2.5e-5, 1e-4)
    head, optimizer = accelerator.prepare(head, optimizer)
    text = torch.nn.functional.normalize(torch.randn(365, 768), dim=-1)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)) for _ in range(args.batch)]
    items = [CachedRegions(tokens=torch.randn(args.regions, 256).half(), boxes=torch.zeros(args.regions, 4),
                           labels=torch.randint(0, 365, (args.regions,)), image_index=i, image_id=i, file_name="",
                           width=640, height=480, flip=False,
                           feature_map=torch.randn(257, 1024).half() if args.mode == "cached" else None)
             for i in range(args.batch)]
    config = TrainConfig()
    criterion = SigmoidFocalLoss(config.focal_alpha, config.focal_gamma)
    times = []
    for step in range(args.steps + 1):
        t0 = time.perf_counter()
        batch = collate(items, 0, 100, step_generator(0, step, 0))
        if vl is not None:
            with accelerator.autocast():
                batch.feature_map = vl.feature_map(images).float()
        train_step(head, criterion, optimizer, accelerator, batch, text, 100.0, config.clip_grad_norm)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    step_s = sum(times[1:]) / args.steps  # first step is warm-up
    if torch.cuda.is_available():
        peak = f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB CUDA"
    else:
        peak = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB RSS"
    print("| mode | device | batch | regions/img | s/step | s/image | peak memory |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {args.mode} | {accelerator.device} | {args.batch} | {args.regions} | {step_s:.3f} | "
          f"{step_s / args.batch:.3f} | {peak} |")


if __name__ == "__main__":
    main()
