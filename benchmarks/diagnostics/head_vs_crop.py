"""Diagnostic: a fast head-versus-crop check on one token cache (minutes, not a full build).

Trains the paper's head (``RegionSpotHead``, sigmoid focal loss, frozen backbones: only cached SAM
tokens and cached CLIP maps are read) on the regions of the first 80% of the cached images, then
compares, on the regions of the other 20%, the top-1 class of

- the head (region token attending to the CLIP feature map), and
- CLIP on the plain box crop (the ``clip-box`` baseline of ``regionspot eval``),

against the cache's whole vocabulary. The held-out regions belong to classes the head was trained on,
so this is the head's *easiest* case: if it loses here, it loses the AP table too.

    python benchmarks/diagnostics/head_vs_crop.py BUILD_DIR [--iters 1500] [--lr 1e-3] [--batch 8] [--token-only]

BUILD_DIR is a ``regionspot shapesworld build`` output (``cache/``, ``clip/``; the cache must hold
CLIP maps and its manifest the image root).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from regionspot.backbones.vision_language import load_vision_language
from regionspot.cache.store import CachedRegions, TokenCache
from regionspot.config import HeadConfig
from regionspot.data.images import load_image
from regionspot.engine.train import collate
from regionspot.evaluation.baselines import crop_logits, region_crops
from regionspot.modeling.head import RegionSpotHead
from regionspot.modeling.losses import sigmoid_focal_loss
from regionspot.modeling.scoring import score_regions
from regionspot.text.embeddings import class_text_embeddings


def batch_inputs(items: list[CachedRegions]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The training loop's padding (every region kept): (B, N, token_dim) tokens, (B, T, C) maps, (B, N) labels,
    (B, N) valid."""
    batch = collate(items, 0, max_regions=max(len(it.labels) for it in items), generator=torch.Generator())
    return batch.tokens, batch.feature_map, batch.labels, batch.valid


def train_head(config: HeadConfig, train: list[CachedRegions], text: torch.Tensor, scale: float,
               args: argparse.Namespace) -> tuple[RegionSpotHead, float]:
    """The paper's head on the cached regions (warm-up, one decay step at 80%); returns (head, seconds)."""
    torch.manual_seed(0)
    head = RegionSpotHead(config)
    optimizer = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=1e-4)
    start = time.perf_counter()
    head.train()
    for step in range(args.iters):
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, (step + 1) / max(1, args.iters // 20)) * (0.1 if step > 0.8 * args.iters else 1.0)
        index = torch.randint(len(train), (args.batch,))
        tokens, maps, labels, valid = batch_inputs([train[i] for i in index])
        logits = score_regions(head, tokens, maps, text, scale, ~valid).logits
        loss = sigmoid_focal_loss(logits, labels, valid)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
        optimizer.step()
    return head.eval(), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("build_dir", type=Path)
    parser.add_argument("--iters", type=int, default=1500)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--token-only", action="store_true", help="also train the SAM-token-only ablation")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cache = TokenCache(args.build_dir / "cache", verify="size")
    if cache.image_root is None:
        raise SystemExit(f"{cache.root} records no image root; the crop baseline needs the images.")
    vl = load_vision_language(str(args.build_dir / "clip"))
    text = class_text_embeddings(vl, cache.category_names, templates="imagenet", cache_dir=False,
                                 show_progress=False).float()
    items = [cache.get(i) for i in range(cache.num_images)]
    if items[0].feature_map is None:
        raise SystemExit(f"{cache.root} holds no feature maps; rebuild it with `regionspot cache ... --clip ID`.")
    split = int(0.8 * len(items))
    train, held_out = items[:split], items[split:]

    width = items[0].feature_map.shape[-1]
    config = HeadConfig(token_dim=items[0].tokens.shape[-1], feature_dim=width, embed_dim=text.shape[1],
                        depth=args.depth, num_heads=4, ffn_dim=4 * width, dropout=0.1)
    heads = {"head": train_head(config, train, text, vl.logit_scale, args)}
    if args.token_only:
        heads["token"] = train_head(replace(config, use_feature_map=False), train, text, vl.logit_scale, args)

    correct: dict[str, int] = {}
    top5: dict[str, int] = {}
    total = 0
    with torch.no_grad():
        for it in held_out:
            tokens, maps, labels, valid = batch_inputs([it])
            image = load_image(Path(cache.image_root) / it.file_name)
            scores = {name: score_regions(head, tokens, maps, text, vl.logit_scale, ~valid).logits[0]
                      for name, (head, _) in heads.items()}
            scores["crop"] = crop_logits(vl, region_crops(image, it.boxes), text)  # (N, V) each
            for name, logits in scores.items():
                ranked = logits.topk(5, dim=-1).indices  # (N, 5)
                correct[name] = correct.get(name, 0) + int((ranked[:, 0] == it.labels).sum())
                top5[name] = top5.get(name, 0) + int((ranked == it.labels[:, None]).any(-1).sum())
            total += len(it.labels)
    print(f"\n{cache.num_images} images: heads trained on {split} ({args.iters} steps, "
          f"{heads['head'][1]:.0f} s each), {total} held-out regions of trained classes, "
          f"{len(cache.category_names)}-way\n")
    print("| region classifier | held-out top-1 | top-5 |\n|---|---:|---:|")
    titles = {"head": f"RegionSpot head (depth {args.depth})", "token": "SAM token only (no CLIP map)",
              "crop": "CLIP on the box crop"}
    for name in correct:
        print(f"| {titles[name]} | {correct[name] / total:.3f} | {top5[name] / total:.3f} |")


if __name__ == "__main__":
    main()
