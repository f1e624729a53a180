"""A tiny random-weight ``Sam2VideoModel`` (≈0.5 M parameters, 128-pixel input) for the video tracker's tests:
the real class and its memory, with sizes that run in a second on a CPU."""

from __future__ import annotations

from pathlib import Path


def tiny_sam2_video_config(hidden: int = 128):
    """A ``Sam2VideoConfig``: Hiera with 5 blocks in 4 stages (16..128 wide), 128² input, ``hidden``-wide decoder."""
    from transformers import Sam2VideoConfig
    from transformers.models.sam2.configuration_sam2 import Sam2HieraDetConfig, Sam2VisionConfig

    backbone = Sam2HieraDetConfig(
        hidden_size=16, num_attention_heads=1, image_size=[128, 128], blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[16, 32, 64, 128], num_attention_heads_per_stage=[1, 1, 1, 1],
        window_size_per_stage=[4, 4, 4, 4], global_attention_blocks=[3], window_positional_embedding_background_size=[4, 4])
    vision = Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=[128, 64, 32, 16],
                              backbone_feature_sizes=[[32, 32], [16, 16], [8, 8]], fpn_hidden_size=hidden)
    return Sam2VideoConfig(
        vision_config=vision, prompt_encoder_config={"hidden_size": hidden, "image_size": 128, "patch_size": 16},
        mask_decoder_config={"hidden_size": hidden, "mlp_dim": 128, "num_attention_heads": 2, "iou_head_hidden_dim": hidden},
        image_size=128, memory_attention_hidden_size=hidden, memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64, memory_attention_rope_feat_sizes=[8, 8],
        memory_encoder_hidden_size=hidden, memory_encoder_output_channels=64, mask_downsampler_embed_dim=hidden,
        memory_fuser_embed_dim=hidden, memory_fuser_intermediate_dim=64)


def tiny_sam2_video(seed: int = 0, hidden: int = 128):
    """A random ``Sam2VideoModel`` of :func:`tiny_sam2_video_config`, eval mode."""
    import torch
    from transformers import Sam2VideoModel

    torch.manual_seed(seed)
    return Sam2VideoModel(tiny_sam2_video_config(hidden)).eval()


def save_tiny_sam2_video(folder: str | Path, seed: int = 0, hidden: int = 128) -> Path:
    """Write a tiny random ``Sam2VideoModel`` to ``folder`` (``save_pretrained``); returns the folder."""
    tiny_sam2_video(seed, hidden).save_pretrained(folder)
    return Path(folder)
