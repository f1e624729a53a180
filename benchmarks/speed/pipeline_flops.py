"""FLOPs of each step of the pipeline at full size (random weights), counted by torch's FlopCounterMode.

    python benchmarks/speed/pipeline_flops.py

Counts multiply-accumulates x 2 of matmuls and convolutions (what GPUs are rated in), per image or per
box: SAM-B's image encoder at 1024², its prompt encoder + decoder per box (tokens only, as the cache
runs it), the CLIP vision towers at their input sizes (the online feature map of a training step), and
the head's forward + backward for 100 regions against each training vocabulary. docs/reproduce.md turns
these into GPU-hours. OWLv2 B/16 at 960² is what ``regionspot propose`` runs per image.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode
from transformers import CLIPVisionConfig, CLIPVisionModel, SamConfig, SamModel

from regionspot.backbones.segmenter import load_segmenter
from regionspot.config import HeadConfig
from regionspot.modeling.head import RegionSpotHead
from regionspot.modeling.losses import SigmoidFocalLoss
from regionspot.modeling.scoring import score_regions


def flops(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def sam_rows(folder: str) -> list[tuple[str, float]]:
    torch.manual_seed(0)
    sam = SamModel(SamConfig()).eval().requires_grad_(False)
    with torch.no_grad():
        encoder = flops(lambda: sam.get_image_embeddings(torch.randn(1, 3, 1024, 1024)))
    # The decoder's cost does not depend on the encoder: a 2-block encoder with SAM-B's 256-d neck.
    small = SamConfig(vision_config={"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                                     "mlp_dim": 128, "global_attn_indexes": [1], "output_channels": 256})
    SamModel(small).save_pretrained(folder)
    segmenter = load_segmenter(folder)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8))
    state = segmenter.encode_image(image)
    boxes = torch.tensor([[10.0, 10.0, 200.0, 200.0]] * 10)
    decoder = flops(lambda: segmenter.decode_prompts(state, boxes=boxes, masks="none", chunk_size=10)) / 10
    return [("SAM-B image encoder, 1024², per image variant", encoder),
            ("SAM-B prompt encoder + decoder (token only), per box", decoder)]


def clip_rows() -> list[tuple[str, float]]:
    rows = []
    for name, width, layers, heads, patch, size in (("CLIP-B/16 vision, 224", 768, 12, 12, 16, 224),
                                                     ("CLIP-L/14 vision, 224", 1024, 24, 16, 14, 224),
                                                     ("CLIP-L/14 vision, 336", 1024, 24, 16, 14, 336)):
        config = CLIPVisionConfig(hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads,
                                  intermediate_size=4 * width, patch_size=patch, image_size=size)
        model = CLIPVisionModel(config).eval().requires_grad_(False)
        with torch.no_grad():
            rows.append((f"{name}, per image", flops(lambda m=model, s=size: m(pixel_values=torch.randn(1, 3, s, s)))))
    return rows


def owlv2_rows() -> list[tuple[str, float]]:
    """OWLv2 B/16 at 960² (google/owlv2-base-patch16-ensemble's sizes): image tower + box/objectness heads."""
    from transformers import Owlv2Config, Owlv2ForObjectDetection

    model = Owlv2ForObjectDetection(Owlv2Config(vision_config={"image_size": 960})).eval().requires_grad_(False)

    def detect() -> None:
        feature_map = model.image_embedder(pixel_values=torch.randn(1, 3, 960, 960))[0]
        feats = feature_map.reshape(1, -1, feature_map.shape[-1])
        model.box_predictor(feats, feature_map)
        model.objectness_predictor(feats)

    with torch.no_grad():
        return [("OWLv2 B/16 at 960² (propose), per image", flops(detect))]


def head_rows() -> list[tuple[str, float]]:
    rows = []
    torch.manual_seed(0)
    head = RegionSpotHead(HeadConfig(feature_dim=1024, embed_dim=768))
    tokens, fmap = torch.randn(1, 100, 256), torch.randn(1, 257, 1024)
    for name, vocabulary in (("Objects365", 365), ("OpenImages", 601), ("V3Det", 13_204)):
        text = torch.nn.functional.normalize(torch.randn(vocabulary, 768), dim=-1)
        labels, valid = torch.randint(0, vocabulary, (1, 100)), torch.ones(1, 100, dtype=torch.bool)

        def step(text=text, labels=labels, valid=valid) -> None:
            logits = score_regions(head, tokens, fmap, text, 100.0).logits
            SigmoidFocalLoss()(logits, labels, valid).backward()

        rows.append((f"BL head fwd + bwd, 100 regions, {name} ({vocabulary} names), per image", flops(step)))
    return rows


def main() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        rows = sam_rows(tmp) + clip_rows() + owlv2_rows() + head_rows()
    print("| step | GFLOP |")
    print("|---|---:|")
    for name, value in rows:
        print(f"| {name} | {value / 1e9:,.1f} |")


if __name__ == "__main__":
    main()
