"""The named variants side by side: FLOPs and CPU seconds per image, full-size backbones with random weights.

    python benchmarks/speed/variants.py --threads 2 --repeats 1

Per variant (``regionspot.config.VARIANTS``; default BL — today's SAM ViT-B + CLIP-L — T-L and S-SigL): the
segmenter's image encoder on one 640×480 image (behind its adapter: ``SamSegmenter`` / ``Sam2Segmenter``, fp32),
the decoder on 12 boxes (tokens, IoU and full-size masks, ``decode_prompts(masks="full")``) and the
vision-language tower's forward at its input size (the feature map the head reads). Random weights (PyTorch's
default init, see ``_initialised``) have the released models' shapes and FLOPs; the sizes come from ``backbones.flops.backbone_config`` (offline). FLOPs
are counted on the meta device and checked against the table ``regionspot models`` prints. Each backbone is
timed once and shared by the variants that use it. The CPU, its flags and the thread count are printed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from regionspot.backbones.flops import BACKBONE_FLOPS, backbone_config, backbone_flops
from regionspot.backbones.sam_inputs import SamPreprocess
from regionspot.config import VARIANTS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_tools import best_time, cpu_flag_line, cpu_model  # noqa: E402

BOXES = 12


def _initialised(model: torch.nn.Module) -> torch.nn.Module:
    """PyTorch's default init for every Linear / conv / embedding (``sam_style_init_``), eval, frozen. transformers'
    own init of a full-size SamModel makes its image encoder 10-20x slower on a CPU (its activations go subnormal),
    which real weights do not; the same init for every backbone keeps the comparison fair."""
    from regionspot.shapesworld.tiny_models import sam_style_init_

    return sam_style_init_(model, seed=0).eval().requires_grad_(False)


def _segmenter(model_id: str):
    import transformers

    from regionspot.backbones.sam2_segmenter import Sam2Segmenter
    from regionspot.backbones.segmenter import SamSegmenter

    config = backbone_config(model_id)
    torch.manual_seed(0)
    if config.model_type == "sam":
        from regionspot.backbones.sam_attention import use_chunked_bias

        model = _initialised(transformers.SamModel(config))
        use_chunked_bias(model)  # as load_segmenter runs SAM
        return SamSegmenter(model, model_id, SamPreprocess())
    side = int(config.prompt_encoder_config.image_size)
    model = _initialised(transformers.Sam2Model(config))
    return Sam2Segmenter(model, model_id, SamPreprocess(longest_edge=side, pad_size=side, square=True))


def time_segmenter(model_id: str, image: Image.Image, boxes: torch.Tensor, repeats: int) -> tuple[float, float]:
    """(image-encoder seconds, seconds to decode the boxes with full-size masks), median of ``repeats``."""
    segmenter = _segmenter(model_id)
    state = segmenter.encode_image(image)  # warm-up
    encode = best_time(lambda: segmenter.encode_image(image), repeats, warmup=0)
    decode = best_time(lambda: segmenter.decode_prompts(state, boxes=boxes, chunk_size=16), repeats, warmup=1)
    return encode, decode


def time_vision_tower(model_id: str, repeats: int) -> float:
    import transformers

    config = backbone_config(model_id)
    torch.manual_seed(0)
    cls = transformers.CLIPVisionModel if config.model_type == "clip_vision_model" else transformers.SiglipVisionModel
    model = _initialised(cls(config))
    pixels = torch.randn(1, 3, config.image_size, config.image_size)
    with torch.no_grad():
        return best_time(lambda: model(pixel_values=pixels), repeats, warmup=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["BL", "T-L", "S-SigL"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    image = Image.fromarray(np.random.RandomState(0).randint(0, 256, (480, 640, 3), dtype=np.uint8))
    rng = np.random.RandomState(1)
    xy = rng.uniform(0, 400, (BOXES, 2))
    boxes = torch.tensor(np.concatenate([xy, np.minimum(xy + rng.uniform(20, 200, (BOXES, 2)), [640, 480])], 1),
                         dtype=torch.float32)

    configs = {name: VARIANTS[name] for name in args.variants}
    flops, seconds = {}, {}
    for model_id in dict.fromkeys(m for c in configs.values() for m in (c.segmenter, c.vision_language)):
        flops[model_id] = backbone_flops(model_id)
        if flops[model_id] != BACKBONE_FLOPS[model_id]:
            print(f"warning: {model_id} counts {flops[model_id]}, the table says {BACKBONE_FLOPS[model_id]}")
        is_segmenter = backbone_config(model_id).model_type in ("sam", "sam2")
        seconds[model_id] = (time_segmenter(model_id, image, boxes, args.repeats) if is_segmenter
                             else (time_vision_tower(model_id, args.repeats), 0.0))
        print(f"  timed {model_id}: {seconds[model_id]}", file=sys.stderr)

    print(f"Machine: {cpu_model()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads; "
          f"flags: {cpu_flag_line()}; torch {torch.__version__}; fp32; image 640×480; {BOXES} boxes; "
          f"median of {args.repeats}\n")
    print("| variant | segmenter | vision-language | encoders TFLOP/img | decoder GFLOP/box | segmenter encoder s | "
          f"{BOXES} boxes s | VL tower s | total s/img |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for name, config in configs.items():
        (enc_f, box_f), (vl_f, _) = flops[config.segmenter], flops[config.vision_language]
        (enc_s, dec_s), (vl_s, _) = seconds[config.segmenter], seconds[config.vision_language]
        print(f"| {name} | {config.segmenter} | {config.vision_language} @ {config.image_size} | "
              f"{(enc_f + vl_f) / 1e12:.2f} | {box_f / 1e9:.1f} | {enc_s:.2f} | {dec_s:.2f} | {vl_s:.2f} | "
              f"{enc_s + dec_s + vl_s:.2f} |")


if __name__ == "__main__":
    main()
