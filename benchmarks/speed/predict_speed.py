"""Time `regionspot predict` for the full-size BL architecture (SAM ViT-B + CLIP ViT-L/14 @ 224).

Real weights cannot be downloaded here, so the backbones are randomly initialised at their real sizes
(random weights cost the same FLOPs). Prints a table: end-to-end CLI wall time, then a breakdown.

    python benchmarks/speed/predict_speed.py --boxes 12 [--work DIR] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

# CLIP towers of the variants (OpenAI's ViT-B/16 and ViT-L/14 shapes); the SAM is ViT-B for all three.
_CLIP_SHAPES = {
    "BB": (dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8),
           dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, image_size=224,
                patch_size=16), 512),
    "BL": (dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12),
           dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, image_size=224,
                patch_size=14), 768),
}
_CLIP_SHAPES["BL@336"] = (_CLIP_SHAPES["BL"][0], {**_CLIP_SHAPES["BL"][1], "image_size": 336}, 768)


def build_full_size(work: Path, variant: str = "BL") -> Path:
    """Write sam/, clip/ and head.safetensors for a variant's architecture ("BB", "BL", "BL@336") with random
    weights (cached in ``work``)."""
    from transformers import CLIPConfig, CLIPModel, SamConfig, SamModel

    from regionspot.backbones.constants import CLIP_MEAN, CLIP_STD
    from regionspot.backbones.convert.sam import save_sam_processor_config
    from regionspot.checkpoint import save_head_checkpoint
    from regionspot.config import variant_config
    from regionspot.modeling.head import RegionSpotHead
    from regionspot.shapesworld.tiny_models import sam_style_init_, tiny_clip_tokenizer

    root = work / ("bl-random" if variant == "BL" else f"{variant.lower().replace('@', '-')}-random")
    if (root / "head.safetensors").exists():
        return root
    torch.manual_seed(0)
    sam = sam_style_init_(SamModel(SamConfig()).eval())
    sam.save_pretrained(root / "sam")
    save_sam_processor_config(root / "sam", image_size=1024)
    del sam
    tokenizer = tiny_clip_tokenizer()  # the real BPE vocabulary is not downloadable; cost is the same per token
    n = len(tokenizer)
    text_shape, vision_shape, projection = _CLIP_SHAPES[variant]
    text = dict(vocab_size=n, max_position_embeddings=77, bos_token_id=n - 2, eos_token_id=n - 1, pad_token_id=n - 1,
                hidden_act="quick_gelu", **text_shape)
    vision = dict(hidden_act="quick_gelu", **vision_shape)
    clip = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection)).eval()
    clip.save_pretrained(root / "clip")
    tokenizer.save_pretrained(root / "clip")
    side = vision_shape["image_size"]
    (root / "clip" / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": side}, "resample": 3,
        "crop_size": {"height": side, "width": side}, "image_mean": list(CLIP_MEAN), "image_std": list(CLIP_STD)}))
    del clip
    config = variant_config(variant)
    config.segmenter, config.vision_language = "sam", "clip"
    save_head_checkpoint(root / "head.safetensors", RegionSpotHead(config.head), config)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--boxes", type=int, default=12)
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a fresh temporary one)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--vocab", type=int, default=20, help="number of class names")
    args = parser.parse_args()
    args.work = args.work or Path(tempfile.mkdtemp(prefix="regionspot-bench-"))
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    root = build_full_size(args.work)

    rng = np.random.default_rng(0)
    image_path = args.work / "image.png"
    Image.fromarray((rng.random((480, 640, 3)) * 255).astype(np.uint8)).save(image_path)
    boxes = []
    for _ in range(args.boxes):
        x1, y1 = rng.uniform(0, 500), rng.uniform(0, 360)
        boxes.append([x1, y1, x1 + rng.uniform(20, 140), y1 + rng.uniform(20, 120)])
    box_arg = ";".join(",".join(f"{v:.1f}" for v in b) for b in boxes)
    vocab = ",".join(f"class {i}" for i in range(args.vocab))

    import shutil

    text_cache = Path(tempfile.mkdtemp(prefix="text-cache-", dir=args.work))  # cold: nothing cached yet
    cmd = [sys.executable, "-m", "regionspot.cli", "predict", str(image_path), "--vocab", vocab, "--boxes", box_arg,
           "--head", str(root / "head.safetensors"), "--out", str(args.work / "r.json"), "--viz", str(args.work / "r.png"),
           "--device", "cpu"]
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "REGIONSPOT_CACHE": str(text_cache),
           "OMP_NUM_THREADS": str(args.threads)}
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    cli_cold = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    cli_warm = time.perf_counter() - start

    from regionspot.inference.predictor import RegionSpotPredictor
    from regionspot.model import RegionSpot

    rows = [("regionspot predict (CLI, end to end, cold text cache)", cli_cold),
            ("regionspot predict (CLI, end to end, text embeddings cached)", cli_warm)]
    t0 = time.perf_counter()
    model = RegionSpot.from_pretrained(root / "head.safetensors", device="cpu")
    t1 = time.perf_counter()
    predictor = RegionSpotPredictor(model, text_cache_dir=tempfile.mkdtemp(prefix="text-cache-", dir=args.work))
    from regionspot.data.images import load_image

    image = load_image(image_path)
    with torch.inference_mode():
        t2 = time.perf_counter()
        state = model.segmenter.encode_image(image)
        t3 = time.perf_counter()
        model.vision_language.feature_map([image])
        t4 = time.perf_counter()
        model.segmenter.decode_prompts(state, boxes=torch.tensor(boxes), masks="full")
        t5 = time.perf_counter()
    predictor.set_image(image)
    t6 = time.perf_counter()
    predictor.set_vocabulary([f"class {i}" for i in range(args.vocab)])
    t7 = time.perf_counter()
    predictor.predict(boxes=boxes, return_masks=True)
    t8 = time.perf_counter()
    predictor.predict(boxes=boxes, return_masks=False)
    t9 = time.perf_counter()
    rows += [
        ("load backbones + head", t1 - t0),
        ("SAM ViT-B image encoder (1024²)", t3 - t2),
        ("CLIP ViT-L/14 feature map (224²)", t4 - t3),
        (f"SAM decoder, {args.boxes} boxes, with masks", t5 - t4),
        ("set_image (SAM + CLIP)", t6 - t5),
        (f"set_vocabulary ({args.vocab} names × 81 templates, cold)", t7 - t6),
        (f"predict {args.boxes} boxes (decoder + head), masks", t8 - t7),
        (f"predict {args.boxes} boxes, no masks", t9 - t8),
    ]
    print(f"\nBL architecture, random weights, {args.boxes} boxes, 640×480 image, torch threads {args.threads}\n")
    print("| step | seconds |\n|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} |")
    shutil.rmtree(text_cache, ignore_errors=True)


if __name__ == "__main__":
    main()
