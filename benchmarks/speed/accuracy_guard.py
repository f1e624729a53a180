"""The accuracy-guard table of the fast paths, and this machine's verdicts for `regionspot predict --fast`.

1. A labelled COCO set — by default ShapesWorld val (the CI subset's first ``--images`` images, every GT box, its
   vocabulary) with the embedded, really trained tiny models; ``--data FILE --image-root DIR [--model NAME]``
   for any other: logit error and top-1/top-5 agreement of each path against fp32, and GT top-1 accuracy of
   the path and of fp32 on the same regions. Verdicts are recorded (``regionspot.inference.fast.verdicts_path``).
2. ``--ap``: box AP of the embedded RegionSpot on those images, per path, and its change against fp32.
3. ``--full-size``: the BL architecture at full size (SAM ViT-B with SAM-style init, CLIP ViT-L/14, random
   head; built by ``benchmarks/speed/predict_speed.py``) on one image with ``--boxes`` boxes against ``--vocab``
   random class names — the numerics of the real sizes, where a trained tiny model cannot say.

    nice -n 10 env OMP_WAIT_POLICY=PASSIVE python benchmarks/speed/accuracy_guard.py --images 60 --ap --full-size
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _guard_table(paths: list[str], images: int, data: Path | None, image_root: Path | None,
                 model: str | None, work: Path) -> list[str]:
    from regionspot.evaluation.guard import guard_table, run_guard
    from regionspot.shapesworld.guard import run_ci_subset_guard

    if data is None:
        title = f"ShapesWorld val, first {images} CI-subset images, all GT boxes, embedded models; reference: fp32."
        rows = run_ci_subset_guard(paths, num_images=images)
    else:
        title = f"{data.name}, first {images} labelled images, all GT boxes, {model or 'embedded model'}; reference: fp32."
        rows = run_guard(paths, data, image_root, images, weights=model, text_cache_dir=work / "guard-text")
    return [title, "", *guard_table(rows)]


def _ap_table(paths: list[str], images: int, work: Path) -> list[str]:
    """Box AP of the embedded RegionSpot on the first ``images`` CI-subset val images, per path."""
    from regionspot.engine.config import EvalOptions
    from regionspot.engine.evaluate import evaluate_dataset
    from regionspot.model import RegionSpot
    from regionspot.shapesworld.guard import regenerate_ci_subset
    from regionspot.shapesworld.report import table_rows

    info = regenerate_ci_subset(work / "ap" / "data", images)
    lines = [f"ShapesWorld val, first {images} CI-subset images, GT boxes, embedded models: box AP × 100 per path.", "",
             "| path | AP | APr | APc | APf | ΔAP vs fp32 |", "|---|---|---|---|---|---|"]
    base = None
    for path in ["fp32", *[p for p in paths if p != "fp32"]]:
        model = RegionSpot.from_pretrained(device="cpu", fast_path=path)
        options = EvalOptions(methods=("regionspot",), iou_types=("bbox",), overwrite=True,
                              text_cache_dir=str(work / "ap" / f"text-{path}"))
        summary = evaluate_dataset(Path(info["val_json"]), Path(info["image_root"]), work / "ap" / f"eval-{path}",
                                   segmenter=model.segmenter, vision_language=model.vision_language, model=model,
                                   options=options, show_progress=False)
        row = {k: 100 * v for k, v in table_rows(summary, {"regionspot": "RegionSpot"})["RegionSpot"].items()}
        base = row["AP"] if base is None else base
        lines.append(f"| {path} | {row['AP']:.2f} | {row['APr']:.2f} | {row['APc']:.2f} | {row['APf']:.2f} | "
                     f"{row['AP'] - base:+.2f} |")
    return lines


def _full_size_table(paths: list[str], work: Path, boxes: int, vocab: int) -> list[str]:
    from predict_speed import build_full_size
    from speed import _boxes, _smooth_image

    from regionspot.inference.fast import compare_logits, passes_guard
    from regionspot.model import RegionSpot

    root = build_full_size(work)
    image, box_tensor = _smooth_image(640, 480), _boxes(boxes, 640, 480, seed=1)
    names = [f"class {i}" for i in range(vocab)]

    def run(path: str) -> tuple[torch.Tensor, torch.Tensor]:
        model = RegionSpot.from_pretrained(root / "head.safetensors", device="cpu", fast_path=path)
        with torch.inference_mode():
            text = model.text_embeddings(names, templates="single", cache_dir=False, show_progress=False)
            state = model.segmenter.encode_image(image)
            tokens = model.segmenter.decode_prompts(state, boxes=box_tensor, masks="none").tokens
            logits = model(tokens[None], model.vision_language.feature_map([image]), text).logits[0]
        return tokens, logits

    ref_tokens, ref_logits = run("fp32")
    lines = [f"Full-size BL (SAM-style init, random head), one 640×480 image, {boxes} boxes, {vocab} names; reference: fp32.", "",
             "| path | token rel. error | max abs Δlogit | top-1 agree | top-1 agree up to ties | top-5 overlap | guard |",
             "|---|---|---|---|---|---|---|"]
    for path in paths:
        tokens, logits = run(path)
        r = compare_logits(ref_logits, logits)
        rel = float((tokens - ref_tokens).norm() / ref_tokens.norm())
        lines.append(f"| {path} | {rel:.4f} | {r.max_abs:.4f} | {100 * r.top1:.1f} % | {100 * r.top1_up_to_ties:.1f} % | "
                     f"{100 * r.top5:.1f} % | "
                     f"{'pass' if passes_guard(r) else 'FAIL'} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--paths", default="eager,bf16,int8")
    parser.add_argument("--images", type=int, default=60, help="first N labelled images of the set")
    parser.add_argument("--data", type=Path, help="a labelled COCO file to guard on (default: the ShapesWorld CI subset)")
    parser.add_argument("--image-root", type=Path, help="the folder of --data's images")
    parser.add_argument("--model", help="the model for --data (a registered name or head; default: the embedded one)")
    parser.add_argument("--ap", action="store_true", help="also box AP per path on the first --images CI-subset images "
                        "(without --data)")
    parser.add_argument("--full-size", action="store_true")
    parser.add_argument("--boxes", type=int, default=50)
    parser.add_argument("--vocab", type=int, default=20)
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a fresh temporary one)")
    args = parser.parse_args()
    if (args.data is None) != (args.image_root is None) or (args.model is not None and args.data is None):
        parser.error("--data and --image-root go together (and --model needs them)")
    if args.ap and args.data is not None:
        parser.error("--ap measures the ShapesWorld CI subset; drop --data (or --ap)")
    args.work = args.work or Path(tempfile.mkdtemp(prefix="regionspot-bench-"))
    torch.set_num_threads(args.threads)
    paths = args.paths.split(",")
    lines = _guard_table(paths, args.images, args.data, args.image_root, args.model, args.work)
    if args.ap:
        lines += [""] + _ap_table(paths, args.images, args.work)
    if args.full_size:
        lines += [""] + _full_size_table(paths, args.work, args.boxes, args.vocab)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
