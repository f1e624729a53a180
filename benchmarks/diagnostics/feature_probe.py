"""Diagnostic: how much region class information do the cached inputs of the head carry?

Linear probes on a token cache built with ``--clip`` (feature maps cached): (a) the vision-language
feature map mean-pooled inside each box, (b) the segmenter token, (c) both. Trained on the first 80% of
the cached regions, tested on the rest. If (a) is weak, the head cannot do better than the crop
baselines, whatever its attention learns.

    python benchmarks/diagnostics/feature_probe.py CACHE_DIR [--steps 400] [--attributes]

--attributes (ShapesWorld): also probe the two parts of a "<colour> <shape>" class name separately.
"""

from __future__ import annotations

import argparse

import torch

from regionspot.cache.store import TokenCache


def pooled_features(cache: TokenCache) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(R, C) box-pooled map features, (R, token_dim) tokens, (R,) labels over all cached regions."""
    maps, tokens, labels = [], [], []
    for i in range(cache.num_images):
        item = cache.get(i)
        if item.feature_map is None:
            raise SystemExit(f"{cache.root} holds no feature maps; rebuild it with `regionspot cache ... --clip ID`.")
        fmap = item.feature_map.float()
        side = int((fmap.shape[0] - 1) ** 0.5)
        grid = fmap[1:].reshape(side, side, -1)  # (g, g, C), class token dropped
        scale = torch.tensor([item.width, item.height, item.width, item.height], dtype=torch.float32) / side
        for box, label, token in zip(item.boxes, item.labels, item.tokens.float()):
            x1, y1, x2, y2 = (box / scale).tolist()
            c0, r0 = int(x1), int(y1)
            c1, r1 = max(c0 + 1, round(x2)), max(r0 + 1, round(y2))
            maps.append(grid[r0:r1, c0:c1].reshape(-1, grid.shape[-1]).mean(0))
            tokens.append(token)
            labels.append(int(label))
    return torch.stack(maps), torch.stack(tokens), torch.tensor(labels)


def probe(x: torch.Tensor, y: torch.Tensor, steps: int) -> tuple[float, float]:
    n = int(0.8 * len(y))
    x = (x - x[:n].mean(0)) / (x[:n].std(0) + 1e-6)
    torch.manual_seed(0)
    linear = torch.nn.Linear(x.shape[1], int(y.max()) + 1)
    optimizer = torch.optim.AdamW(linear.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(linear(x[:n]), y[:n]).backward()
        optimizer.step()
    with torch.no_grad():
        return [(linear(a).argmax(1) == b).float().mean().item() for a, b in ((x[:n], y[:n]), (x[n:], y[n:]))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cache")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--attributes", action="store_true", help="also probe colour and shape separately")
    args = parser.parse_args()
    cache = TokenCache(args.cache, verify="size")
    maps, tokens, labels = pooled_features(cache)
    targets = {"class": labels}
    if args.attributes:
        for part, name in ((0, "colour"), (1, "shape")):
            values = [n.split(" ", 1)[part] for n in cache.category_names]
            vocabulary = sorted(set(values))
            targets[name] = torch.tensor([vocabulary.index(values[int(y)]) for y in labels])
    print(f"\n{len(labels)} regions, {int(labels.max()) + 1} classes, cache {args.cache}\n")
    print("| probe input | target | train top-1 | held-out top-1 |\n|---|---|---:|---:|")
    for name, x in (("feature map pooled in box", maps), ("segmenter token", tokens),
                    ("both", torch.cat([maps, tokens], 1))):
        for target, y in targets.items():
            train, held_out = probe(x, y, args.steps)
            print(f"| {name} | {target} | {train:.3f} | {held_out:.3f} |")


if __name__ == "__main__":
    main()
