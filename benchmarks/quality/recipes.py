"""Recipe table: box AP on ShapesWorld val of heads trained with (lr, batch, steps) on train subsets of the
sizes users have, beside the embedded head and CLIP on the box crop.

Everything uses the embedded backbones (``regionspot/assets/shapesworld/{sam,clip}``) and the embedded
head's architecture (its sizes and image size), on the shipped world (v2):

1. ShapesWorld v2 with max(sizes) train and ``--val`` val images (seed 0), written once.
2. A token cache (SAM tokens of the original and mirrored image + CLIP maps) of the first n train images,
   once per size n, and one of val (unmirrored) for top-1 accuracy on GT boxes. Each cache is built once
   and reused by a rerun (a finished cache has a ``.done`` marker).
3. Per grid point: ``regionspot.engine.train.train`` (CPU, fp32, seed 0, warmup steps/20, lr ×0.1 at 75 %
   and 92 % of the steps, like ``shapesworld build``), then ``regionspot eval``'s ``evaluate_dataset`` with
   GT boxes (box AP) and top-1 accuracy on the val cache. A finished point is kept in the JSON and skipped
   on a rerun.

Prints a Markdown table and writes ``OUT/recipes.json``::

    OMP_NUM_THREADS=2 python benchmarks/quality/recipes.py --out runs/recipes --sizes 60 300 1500
    python benchmarks/quality/recipes.py --out runs/recipes --grid 60:1e-3:8:300 --grid 300:1e-3:8:800
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch

# size -> [(lr, batch, steps)]: lr x batch at the smallest size, fewer points at the larger ones (2 shared CPU
# cores: a 300-step run at batch 4-8 takes 0.5-3 min, caching takes 0.3-0.6 s per image with its mirror).
DEFAULT_GRID: dict[int, list[tuple[float, int, int]]] = {
    60: [(1e-4, 4, 300), (3e-4, 4, 300), (1e-3, 4, 300), (2e-3, 4, 300), (3e-4, 8, 300), (1e-3, 8, 300),
         (2e-3, 8, 300), (3e-4, 16, 300), (3e-4, 4, 600), (3e-4, 4, 1200)],
    300: [(1e-4, 8, 600), (3e-4, 8, 600), (1e-3, 8, 600), (2e-3, 8, 600), (3e-4, 8, 1200)],
    1500: [(3e-4, 8, 1500), (1e-3, 8, 1500)],
}


def _parse_grid(specs: list[str]) -> dict[int, list[tuple[float, int, int]]]:
    grid: dict[int, list[tuple[float, int, int]]] = {}
    for spec in specs:
        size, lr, batch, steps = spec.split(":")
        grid.setdefault(int(size), []).append((float(lr), int(batch), int(steps)))
    return grid


def _subset_json(full: Path, out: Path, n: int) -> Path:
    """The first n images (id order) of a COCO file with their annotations."""
    if out.is_file():
        return out
    data = json.loads(full.read_text())
    images = sorted(data["images"], key=lambda im: im["id"])[:n]
    keep = {im["id"] for im in images}
    subset = {**data, "images": images, "annotations": [a for a in data["annotations"] if a["image_id"] in keep]}
    out.write_text(json.dumps(subset))
    return out


class Bench:
    def __init__(self, out: Path, num_val: int, sizes: list[int]) -> None:
        from regionspot.checkpoint import load_head_checkpoint
        from regionspot.registry import assets_dir

        self.out, self.num_val = out, num_val
        self.assets = assets_dir() / "shapesworld"
        self.sam, self.clip = self.assets / "sam", self.assets / "clip"
        _state, model_config, _meta = load_head_checkpoint(self.assets / "head.safetensors")
        model_config.segmenter, model_config.vision_language = str(self.sam), str(self.clip)
        self.model_config = model_config
        self.data = out / "data"
        self.val_json = self.data / "annotations" / "val.json"
        self.text_cache = out / "text_cache"
        self.results_path = out / "recipes.json"
        self.results: dict[str, Any] = json.loads(self.results_path.read_text()) if self.results_path.is_file() else {}
        self._generate(max(sizes))

    def _generate(self, num_train: int) -> None:
        from regionspot.shapesworld.generate import generate_shapesworld
        from regionspot.shapesworld.world import world_preset

        marker = self.data / ".done"
        if marker.is_file() and json.loads(marker.read_text()) == [num_train, self.num_val]:
            return
        generate_shapesworld(self.data, num_train, self.num_val, seed=0, world=world_preset("v2"), progress=False)
        marker.write_text(json.dumps([num_train, self.num_val]))

    def cache(self, name: str, annotations: Path, flip: bool) -> tuple[Path, float]:
        """A token cache of ``annotations`` (built once); (its folder, seconds spent building it now)."""
        from regionspot.backbones.segmenter import load_segmenter
        from regionspot.backbones.vision_language import load_vision_language
        from regionspot.cache.config import CacheConfig
        from regionspot.cache.extract import extract_cache
        from regionspot.data.coco_json import CocoDetectionDataset

        folder = self.out / "caches" / name
        if (folder / ".done").is_file():
            return folder, 0.0
        start = time.perf_counter()
        dataset = CocoDetectionDataset(annotations, self.data, dataset_name=f"shapesworld-{name}")
        clip = load_vision_language(str(self.clip), image_size=self.model_config.image_size, device="cpu")
        extract_cache(dataset, load_segmenter(str(self.sam), device="cpu"), CacheConfig(out=folder, flip=flip),
                      vision_language=clip, rank=0, world_size=1, show_progress=False)
        (folder / ".done").write_text("")
        return folder, time.perf_counter() - start

    def train(self, size: int, lr: float, batch: int, steps: int, cache: Path) -> tuple[Path, float]:
        from regionspot.engine.config import DatasetSpec, TrainConfig
        from regionspot.engine.train import train

        run = self.out / "runs" / f"n{size}_lr{lr:g}_b{batch}_s{steps}"
        config = TrainConfig(
            model=self.model_config, datasets=[DatasetSpec(str(cache))], output_dir=str(run), batch_size=batch,
            lr=lr, max_iters=steps, warmup_iters=max(1, steps // 20),
            lr_steps=[int(steps * 0.75), int(steps * 0.92)], mixed_precision="no", cpu=True,
            checkpoint_every=steps, keep_checkpoints=1, log_every=max(1, steps // 20), seed=0,
            text_cache_dir=str(self.text_cache),
        )
        start = time.perf_counter()
        result = train(config, show_progress=False)
        return Path(result.final_head), time.perf_counter() - start

    def evaluate(self, name: str, head: Path | None, method: str = "regionspot") -> dict[str, float]:
        """Box AP (× 100, GT boxes) of a head (None: the embedded one) or a baseline method on val."""
        from regionspot.engine.config import EvalOptions
        from regionspot.engine.evaluate import ROW_NAMES, evaluate_dataset, load_parts

        seg, vl, model = load_parts((method,), None if head is None else str(head), str(self.sam), str(self.clip),
                                    device="cpu")
        options = EvalOptions(methods=(method,), iou_types=("bbox",), text_cache_dir=str(self.text_cache), overwrite=True)
        summary = evaluate_dataset(self.val_json, self.data, self.out / "eval" / name, segmenter=seg,
                                   vision_language=vl, model=model, options=options, show_progress=False)
        box = summary.results[ROW_NAMES.get(method, method)]["bbox"]
        row = {m: round(100 * float(getattr(box, m)), 2) for m in ("AP", "APr", "APc", "APf")}
        if model is not None:
            row["top1"] = round(100 * self.top1(model), 2)
        return row

    @torch.no_grad()
    def top1(self, model: Any) -> float:
        """Top-1 accuracy of ``model``'s head over every GT box of the val cache."""
        from regionspot.cache.store import TokenCache
        from regionspot.data.coco_json import CocoDetectionDataset

        folder, _ = self.cache("val", self.val_json, flip=False)
        cache = TokenCache(folder)
        names = CocoDetectionDataset(self.val_json, self.data).raw_category_names
        text = model.text_embeddings(names, cache_dir=str(self.text_cache), show_progress=False)
        correct = total = 0
        for i in range(cache.num_images):
            item = cache.get(i, False)
            logits = model(item.tokens[None].float(), item.feature_map[None].float(), text).logits[0]
            correct += int((logits.argmax(-1) == item.labels).sum())
            total += int(item.labels.numel())
        return correct / max(total, 1)

    def record(self, key: str, value: dict[str, Any]) -> None:
        self.results[key] = value
        tmp = self.results_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.results, indent=1))
        os.replace(tmp, self.results_path)


def table(results: dict[str, Any]) -> str:
    lines = ["| train images | lr | batch | steps | box AP | APr | APc | APf | top-1 | train s |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key in ("embedded head", "CLIP w/ box"):
        if key in results:
            r = results[key]
            lines.append(f"| {key} | | | | {r['AP']:.1f} | {r['APr']:.1f} | {r['APc']:.1f} | {r['APf']:.1f} | "
                         f"{r.get('top1', float('nan')):.1f} | |")
    runs = sorted((v for k, v in results.items() if k.startswith("n")),
                  key=lambda r: (r["size"], r["steps"], r["batch"], r["lr"]))
    for r in runs:
        lines.append(f"| {r['size']} | {r['lr']:g} | {r['batch']} | {r['steps']} | {r['AP']:.1f} | {r['APr']:.1f} | "
                     f"{r['APc']:.1f} | {r['APf']:.1f} | {r['top1']:.1f} | {r['train_seconds']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/recipes"))
    parser.add_argument("--val", type=int, default=100, help="val images (fixed: the first of seed 0)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[60, 300, 1500])
    parser.add_argument("--grid", action="append", default=[], help="SIZE:LR:BATCH:STEPS (repeatable; replaces the default grid)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    grid = _parse_grid(args.grid) if args.grid else DEFAULT_GRID
    sizes = sorted(s for s in args.sizes if s in grid)
    args.out.mkdir(parents=True, exist_ok=True)
    bench = Bench(args.out, args.val, sizes)
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; torch threads {args.threads}", flush=True)
    for key, head, method in (("embedded head", None, "regionspot"), ("CLIP w/ box", None, "clip-box")):
        if key not in bench.results:
            start = time.perf_counter()
            bench.record(key, {**bench.evaluate(key.replace(" ", "_").replace("/", ""), head, method),
                               "eval_seconds": round(time.perf_counter() - start, 1)})
        print(key, bench.results[key], flush=True)
    full_train = bench.data / "annotations" / "train.json"
    for size in sizes:
        subset = _subset_json(full_train, bench.data / "annotations" / f"train_{size}.json", size)
        cache, seconds = bench.cache(f"train_{size}", subset, flip=True)
        print(f"cache of {size} train images: {seconds:.0f} s", flush=True)
        for lr, batch, steps in grid[size]:
            key = f"n{size}_lr{lr:g}_b{batch}_s{steps}"
            if key in bench.results:
                continue
            head, train_seconds = bench.train(size, lr, batch, steps, cache)
            start = time.perf_counter()
            row = bench.evaluate(key, head)
            row.update(size=size, lr=lr, batch=batch, steps=steps, train_seconds=round(train_seconds, 1),
                       eval_seconds=round(time.perf_counter() - start, 1), load=round(os.getloadavg()[0], 2))
            bench.record(key, row)
            print(key, row, flush=True)
    print(table(bench.results), flush=True)


if __name__ == "__main__":
    main()
