"""Official SAM 2.1 checkpoint -> transformers Sam2Model folder: a tiny model written in the official layout (the
inverse mapping below is written apart from the converter's), round trip to identical outputs, the released
sizes read from the weights, and one-line errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from regionspot.backbones.convert.sam2 import (
    convert_sam2_checkpoint,
    official_to_hf_state_dict,
    sam2_config_for,
)
from regionspot.backbones.segmenter import load_segmenter
from regionspot.cli import app
from regionspot.errors import CheckpointError
from regionspot.testing.tiny_sam2 import build_tiny_sam2, tiny_sam2_config

BOXES = torch.tensor([[10.0, 10, 60, 60], [20, 30, 140, 80], [100, 5, 140, 40]])
# transformers name -> facebookresearch/sam2 name (SAM 2.1 layout), applied in order
_INVERSE = [
    (r"^vision_encoder\.backbone\.", "image_encoder.trunk."),
    (r"^vision_encoder\.neck\.convs\.(\d+)\.", r"image_encoder.neck.convs.\1.conv."),
    (r"^prompt_encoder\.", "sam_prompt_encoder."),
    (r"^mask_decoder\.", "sam_mask_decoder."),
    (r"patch_embed\.projection\.", "patch_embed.proj."),
    (r"\.layer_norm([1-4])\.", r".norm\1."),
    (r"\.o_proj\.", ".out_proj."),
    (r"layer_norm_final_attn", "norm_final_attn"),
    (r"shared_embedding\.positional_embedding", "pe_layer.positional_encoding_gaussian_matrix"),
    (r"mask_embed\.conv1\.", "mask_downscaling.0."), (r"mask_embed\.layer_norm1\.", "mask_downscaling.1."),
    (r"mask_embed\.conv2\.", "mask_downscaling.3."), (r"mask_embed\.layer_norm2\.", "mask_downscaling.4."),
    (r"mask_embed\.conv3\.", "mask_downscaling.6."),
    (r"upscale_conv1\.", "output_upscaling.0."), (r"upscale_layer_norm\.", "output_upscaling.1."),
    (r"upscale_conv2\.", "output_upscaling.3."),
    (r"^no_memory_embedding$", "no_mem_embed"),
]


def to_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A transformers Sam2Model state dict in the official layout (plus two video-only tensors)."""
    heads: dict[str, int] = {}
    for key in state:  # Linear layers of each MLP: proj_in + hidden layers + proj_out
        match = re.match(r"^(.*)\.(proj_in|proj_out|layers\.\d+)\.weight$", key)
        if match and ("mlp" in key or "head" in key or "hypernetworks" in key):
            heads[match[1]] = heads.get(match[1], 0) + 1
    official = {}
    for key, tensor in state.items():
        if key == "shared_image_embedding.positional_embedding":
            continue  # the official model has one matrix, in its prompt encoder
        if key == "prompt_encoder.point_embed.weight":
            for i in range(tensor.shape[0]):
                official[f"sam_prompt_encoder.point_embeddings.{i}.weight"] = tensor[i : i + 1].clone()
            continue
        match = re.match(r"^(.*)\.(proj_in|proj_out|layers\.(\d+))\.(weight|bias)$", key)
        if match and match[1] in heads:
            index = 0 if match[2] == "proj_in" else heads[match[1]] - 1 if match[2] == "proj_out" else int(match[3]) + 1
            key = f"{match[1]}.layers.{index}.{match[4]}"
        for pattern, replacement in _INVERSE:
            key = re.sub(pattern, replacement, key)
        official[key] = tensor.clone()
    official["memory_attention.layers.0.self_attn.q_proj.weight"] = torch.zeros(4, 4)  # video-only: dropped
    official["maskmem_tpos_enc"] = torch.zeros(7, 1, 1, 4)
    return official


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sam2pt")
    model = build_tiny_sam2(seed=5)
    path = folder / "sam2.1_hiera_toy.pt"
    torch.save({"model": to_official(model.state_dict())}, path)
    tiny_sam2_config().save_pretrained(str(folder / "cfg"))
    return model, path, folder


def test_round_trip_gives_identical_outputs(written, tmp_path):
    model, path, folder = written
    out = convert_sam2_checkpoint(path, tmp_path / "converted", config=folder / "cfg")
    segmenter = load_segmenter(str(out))
    from regionspot.backbones.sam2_segmenter import Sam2Segmenter

    direct = Sam2Segmenter(model, "direct", segmenter.preprocess)
    image = Image.fromarray(np.random.RandomState(4).randint(0, 256, (90, 150, 3), dtype=np.uint8))
    got = segmenter.decode_prompts(segmenter.encode_image(image), boxes=BOXES)
    want = direct.decode_prompts(direct.encode_image(image), boxes=BOXES)
    assert torch.equal(got.tokens, want.tokens) and torch.equal(got.iou, want.iou) and torch.equal(got.masks, want.masks)
    reloaded = segmenter.model.state_dict()
    for key, tensor in model.state_dict().items():
        assert torch.equal(reloaded[key], tensor), key


def test_released_sizes_are_read_from_the_weights():
    from transformers import Sam2Config, Sam2HieraDetConfig, Sam2Model, Sam2VisionConfig

    small = Sam2HieraDetConfig(blocks_per_stage=[1, 2, 11, 2], global_attention_blocks=[7, 10, 13])
    for config, name in ((Sam2Config(), "tiny"), (Sam2Config(vision_config=Sam2VisionConfig(backbone_config=small)), "small")):
        with torch.device("meta"):
            state = Sam2Model(config).state_dict()
        official = to_official(state)
        found = sam2_config_for(official)
        hiera = found.vision_config.backbone_config
        assert hiera.blocks_per_stage == config.vision_config.backbone_config.blocks_per_stage, name
        assert hiera.global_attention_blocks == config.vision_config.backbone_config.global_attention_blocks, name
        converted, _ = official_to_hf_state_dict(official)
        assert set(converted) == set(state)
        assert all(converted[k].shape == state[k].shape for k in state)


def test_wrong_files_are_one_line(tmp_path, written):
    _, path, _ = written
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="weights-only"):
        convert_sam2_checkpoint(text, tmp_path / "out")
    with pytest.raises(CheckpointError, match="not a released SAM 2 size"):
        convert_sam2_checkpoint(path, tmp_path / "out")  # the toy size: needs its config
    sam1 = tmp_path / "sam_vit_b.pth"
    torch.save({"image_encoder.patch_embed.proj.weight": torch.zeros(8, 3, 16, 16)}, sam1)
    with pytest.raises(CheckpointError, match="patch_embed"):
        convert_sam2_checkpoint(sam1, tmp_path / "out")
    result = CliRunner().invoke(app, ["convert", "sam2", str(text), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    result = CliRunner().invoke(app, ["convert", "sam2", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "--config" in result.output
