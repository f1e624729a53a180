"""Ground-truth-box evaluation throughput of RegionSpot-BL on a GPU: images/s of the real evaluation loop
(``regionspot.engine.eval_loop.predict_images``) for several ``--batch-size`` values and precisions.

Full-size BL architecture with random, realistically initialised weights (``predict_speed.build_full_size``:
SAM ViT-B at 1024² with SAM-style init, CLIP ViT-L/14 at 224, the BL head); random weights cost the same
FLOPs as trained ones. The data are 640×480 JPEGs with ``--boxes`` GT boxes each and an LVIS-sized
vocabulary (1203 classes, random text embeddings: text is encoded once per dataset, not per image). Each
image goes through the whole loop: decode + resize in ``--workers`` processes, SAM encoder (one call per
batch), SAM decoder with masks, CLIP map, head, softmax / top pairs, mask RLE, the prediction store.

Precisions: fp32 (PyTorch defaults: no TF32 matmuls); bf16 = the library's bf16 fast path (autocast on
SAM's image encoder and mask decoder and the CLIP towers; prompt encoder and head fp32); fp16 = autocast
to float16 on the same modules. One warm-up pass of one batch precedes each timed pass.

    python benchmarks/speed/gpu_eval_throughput.py --device cuda --batch-sizes 1,8,32 --precisions fp32,bf16,fp16
    python benchmarks/speed/gpu_eval_throughput.py --tiny --device cpu --images 8 --batch-sizes 1,4 --precisions fp32

``--tiny`` uses the embedded ShapesWorld model instead (a CPU smoke test of this script, not a figure).
Prints a Markdown table: images/s, and per image the time the loop waited for input and the GPU's peak memory.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_speed import NUM_CLASSES, write_dataset  # noqa: E402
from predict_speed import build_full_size  # noqa: E402


def load_model(args: argparse.Namespace, precision: str):
    """The model at ``precision`` (a fresh load each time: fast paths switch a model in place)."""
    from regionspot.model import RegionSpot
    from regionspot.utils.precision import autocast_forward

    path = None if args.tiny else build_full_size(args.work) / "head.safetensors"
    model = RegionSpot.from_pretrained(path, device=args.device)
    if precision == "bf16":
        model.set_numerics("bf16")
    elif precision == "fp16":
        sam, clip = model.segmenter.model, model.vision_language.model
        for module in (sam.vision_encoder, sam.mask_decoder, sam.mask_decoder.iou_prediction_head,
                       clip.vision_model, clip.text_model):
            autocast_forward(module, torch.float16, torch.device(args.device).type)
    return model


def throughput(args: argparse.Namespace, model, records, category_ids, batch_size: int, root: Path) -> dict:
    """images/s of the loop over ``records`` (after a warm-up batch), input wait and peak GPU memory."""
    from regionspot.engine.config import EvalOptions
    from regionspot.engine.eval_loop import predict_images

    text = torch.nn.functional.normalize(torch.randn(NUM_CLASSES, model.vision_language.embed_dim), dim=-1)
    options = EvalOptions(methods=("regionspot",), iou_types=tuple(args.iou_types.split(",")), batch_size=batch_size,
                          workers=args.workers, text_cache_dir=False)
    common = dict(segmenter=model.segmenter, vision_language=model.vision_language, model=model, text=text,
                  category_ids=category_ids, options=options, show_progress=False)
    predict_images(records[:batch_size], store_root=root / f"warmup-{time.monotonic_ns()}", **common)
    cuda = torch.device(args.device).type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    stats = predict_images(records, store_root=root / f"timed-{batch_size}-{time.monotonic_ns()}", **common)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"images_per_second": stats.scored / seconds, "input_wait_ms": 1000 * stats.stage_seconds["decode"] / stats.scored,
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--precisions", default="fp32,bf16,fp16")
    parser.add_argument("--images", type=int, default=128, help="timed images per configuration")
    parser.add_argument("--boxes", type=int, default=12, help="GT boxes per image")
    parser.add_argument("--iou-types", default="bbox,segm", help="bbox,segm (masks + RLE) or bbox")
    parser.add_argument("--workers", type=int, default=None, help="input processes (default: the loop's default)")
    parser.add_argument("--tiny", action="store_true", help="the embedded ShapesWorld model (CPU smoke test)")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a fresh temporary one)")
    args = parser.parse_args()
    args.work = args.work or Path(tempfile.mkdtemp(prefix="regionspot-bench-"))
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        parser.error("CUDA is not available here; pass --device cpu (with --tiny for a smoke test).")
    args.work.mkdir(parents=True, exist_ok=True)
    from regionspot.data.coco_json import CocoDetectionDataset
    from regionspot.data.feeder import default_workers

    sizes = [int(b) for b in args.batch_sizes.split(",")]
    precisions = args.precisions.split(",")
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        root = Path(tmp)
        dataset = CocoDetectionDataset(write_dataset(root, args.images, args.boxes), root)
        records = [dataset[i] for i in range(len(dataset))]
        rows: dict[tuple[int, str], dict] = {}
        for precision in precisions:
            model = load_model(args, precision)
            for batch_size in sizes:
                rows[batch_size, precision] = throughput(args, model, records, dataset.category_ids, batch_size, root)
                print(f"# batch {batch_size} {precision}: {rows[batch_size, precision]}", file=sys.stderr, flush=True)
            del model
            if torch.device(args.device).type == "cuda":
                torch.cuda.empty_cache()
    name = torch.cuda.get_device_name() if torch.device(args.device).type == "cuda" else "CPU"
    workers = default_workers(args.device) if args.workers is None else args.workers
    model_name = "embedded ShapesWorld model (--tiny)" if args.tiny else "BL: SAM ViT-B 1024² + CLIP ViT-L/14 224, random init"
    print(f"\n## GT-box evaluation throughput: {model_name}; {name}; {args.images} images 640×480 × {args.boxes} boxes, "
          f"{NUM_CLASSES} classes, {args.iou_types}; workers {workers}; torch {torch.__version__}\n")
    print("Cells: images/s · input wait ms/image · peak GPU memory GiB.\n")
    print("| batch size | " + " | ".join(precisions) + " |\n|---:|" + "---|" * len(precisions))
    for batch_size in sizes:
        cells = []
        for precision in precisions:
            row = rows[batch_size, precision]
            peak = "" if row["peak_gib"] is None else f" · {row['peak_gib']:.1f} GiB"
            cells.append(f"{row['images_per_second']:.2f} · {row['input_wait_ms']:.1f} ms{peak}")
        print(f"| {batch_size} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
