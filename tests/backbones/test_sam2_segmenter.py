"""The SAM 2-family adapter on tiny random-weight Sam2Model / Sam3TrackerModel / EdgeTamModel: the token's index
(read by the hook = the decoder's own single-mask token), masks and IoU equal to the model's own outputs for box
and point prompts, chunked batching, low-res masks, the dynamic-multimask switch, loading and its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

from regionspot.backbones.base import SegmenterBatch
from regionspot.backbones.sam2_segmenter import SINGLE_MASK_TOKEN, Sam2Segmenter
from regionspot.backbones.sam_inputs import SamPreprocess, normalize_sam_pixels, prepare_sam_input
from regionspot.backbones.segmenter import load_segmenter
from regionspot.errors import CheckpointError
from regionspot.masks.lowres import LowResMasks
from regionspot.testing.tiny_sam2 import (
    build_tiny_edgetam,
    build_tiny_sam2,
    build_tiny_sam3_tracker,
    save_tiny_sam2_family,
)

HEIGHT, WIDTH = 90, 150
BOXES = torch.tensor([[10.0, 10, 60, 60], [20, 30, 140, 80], [100, 5, 140, 40], [0, 0, 150, 90], [70, 50, 90, 85]])
BUILDERS = {"sam2": build_tiny_sam2, "sam3_tracker": build_tiny_sam3_tracker, "edgetam": build_tiny_edgetam}


@pytest.fixture(scope="module")
def image() -> Image.Image:
    return Image.fromarray(np.random.RandomState(0).randint(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8))


def _segmenter(family: str, seed: int = 0) -> Sam2Segmenter:
    model = BUILDERS[family](seed)
    side = int(model.config.prompt_encoder_config.image_size)
    return Sam2Segmenter(model, f"tiny-{family}", SamPreprocess(longest_edge=side, pad_size=side, square=True))


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def family(request) -> tuple[str, Sam2Segmenter]:
    return request.param, _segmenter(request.param)


def _direct(segmenter: Sam2Segmenter, image: Image.Image, **prompts):
    """The model called as a user of transformers would: pixels in, prompts in the model frame, and the
    decoder's own single-mask tokens caught from its return value."""
    side = segmenter.preprocess.pad_size
    batch = prepare_sam_input(image, segmenter.preprocess)
    pixels = normalize_sam_pixels(batch.pixels, batch.reshaped_sizes, segmenter.preprocess)
    scale = torch.tensor([side / WIDTH, side / HEIGHT])
    kwargs = {}
    if "boxes" in prompts:
        kwargs["input_boxes"] = (prompts["boxes"] * scale.repeat(2))[None]
    if "points" in prompts:
        kwargs["input_points"] = (prompts["points"] * scale)[None]
        kwargs["input_labels"] = prompts["labels"][None]
    decoder_tokens = {}

    def keep(_module, _inputs, output):
        decoder_tokens["single"] = output[2]  # sam_tokens_out: (1, n, 1, C), the mask tokens of the output slice

    handle = segmenter.model.mask_decoder.register_forward_hook(keep)
    try:
        with torch.no_grad():
            out = segmenter.model(pixel_values=pixels, multimask_output=False, **kwargs)
    finally:
        handle.remove()
    masks = F.interpolate(out.pred_masks[0], (HEIGHT, WIDTH), mode="bilinear", align_corners=False)[:, 0] > 0
    return decoder_tokens["single"][0, :, 0], out.iou_scores[0, :, 0], out.pred_masks[0, :, 0], masks


def test_token_index_masks_and_iou_match_the_model(family, image):
    name, segmenter = family
    state = segmenter.encode_image(image)
    out = segmenter.decode_prompts(state, boxes=BOXES)
    tokens, iou, low_res, masks = _direct(segmenter, image, boxes=BOXES)
    # the hook's index 2 of the transformer output is the decoder's own single-mask output token
    # (bit for bit on the CPU: the same operations, the encoder called apart)
    assert torch.equal(out.tokens, tokens) and torch.equal(out.iou, iou)
    assert out.tokens.shape == (len(BOXES), 32) and out.masks.shape == (len(BOXES), HEIGHT, WIDTH)
    assert torch.equal(out.masks, masks)  # the low-res logits upsampled straight to the image, as post_process_masks
    assert 0 < out.masks.float().mean() < 1, "the tiny masks should vary"
    # not the IoU or object-score token: those are other rows of the transformer output
    assert SINGLE_MASK_TOKEN == 2
    low = segmenter.decode_prompts(state, boxes=BOXES, masks="low_res")
    assert torch.equal(low.low_res_masks, low_res)


def test_point_and_box_plus_point_prompts(family, image):
    _, segmenter = family
    state = segmenter.encode_image(image)
    points = torch.tensor([[[30.0, 30], [50, 40]], [[120, 60], [0, 0]], [[75, 70], [10, 80]]])
    labels = torch.tensor([[1, 0], [1, -1], [1, 1]])
    out = segmenter.decode_prompts(state, points=points, point_labels=labels)
    tokens, iou, _, _ = _direct(segmenter, image, points=points, labels=labels)
    torch.testing.assert_close(out.tokens, tokens, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.iou, iou, atol=1e-5, rtol=1e-5)
    both = segmenter.decode_prompts(state, boxes=BOXES[:3], points=points, point_labels=labels)
    tokens, iou, _, _ = _direct(segmenter, image, boxes=BOXES[:3], points=points, labels=labels)
    torch.testing.assert_close(both.tokens, tokens, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(both.tokens, out.tokens)


def test_chunks_modes_and_batches_agree(family, image):
    _, segmenter = family
    state = segmenter.encode_image(image)
    full = segmenter.decode_prompts(state, boxes=BOXES, chunk_size=16)
    one = segmenter.decode_prompts(state, boxes=BOXES, chunk_size=2)
    none = segmenter.decode_prompts(state, boxes=BOXES, masks="none")
    torch.testing.assert_close(one.tokens, full.tokens, atol=1e-5, rtol=1e-5)
    assert torch.equal(one.masks, full.masks) or (one.masks != full.masks).float().mean() < 1e-3
    assert torch.equal(none.tokens, full.tokens) and none.masks is None
    torch.testing.assert_close(none.iou, full.iou, atol=1e-6, rtol=1e-6)
    other = Image.fromarray(np.random.RandomState(2).randint(0, 256, (60, 40, 3), dtype=np.uint8))
    prepare = segmenter.input_preprocessor()
    states = segmenter.encode_batch(SegmenterBatch.cat([prepare(other), prepare(image)]))
    assert states[1].reshaped_size == (segmenter.preprocess.pad_size,) * 2 and states[1].original_size == (HEIGHT, WIDTH)
    for got, want in zip([states[1].embeddings, *states[1].extra["high_resolution_features"]],
                         [state.embeddings, *state.extra["high_resolution_features"]]):
        assert got.shape == want.shape and got.shape[0] == 1
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_low_res_masks_are_the_full_masks(family, image):
    _, segmenter = family
    state = segmenter.encode_image(image)
    side = int(segmenter.model.prompt_encoder.mask_input_size[0])  # 4 × the embedding side
    low = segmenter.decode_prompts(state, boxes=BOXES, masks="low_res", mask_size=(45, 75))
    assert low.low_res_masks.shape == (len(BOXES), side, side) and low.masks is None
    assert low.mask_frame.size == (45, 75) and low.mask_frame.reshaped_size == (side, side)
    full = segmenter.decode_prompts(state, boxes=BOXES, mask_size=(45, 75))
    assert np.array_equal(np.asarray(LowResMasks(low.low_res_masks, low.mask_frame)), full.masks.numpy())
    empty = segmenter.decode_prompts(state, boxes=torch.zeros(0, 4), masks="low_res")
    assert empty.low_res_masks.shape == (0, side, side) and empty.tokens.shape == (0, 32)


def test_dynamic_multimask_is_switched_off(image):
    """With the released configs' dynamic fallback on, the model's own single-mask output can come from another
    mask token; the adapter switches it off so that mask, IoU and token come from the single-mask token."""
    model = build_tiny_sam2(0)
    assert model.mask_decoder.dynamic_multimask_via_stability  # as in the released SAM 2.1 configs
    side = model.config.prompt_encoder_config.image_size
    pre = SamPreprocess(longest_edge=side, pad_size=side, square=True)
    batch = prepare_sam_input(image, pre)
    pixels = normalize_sam_pixels(batch.pixels, batch.reshaped_sizes, pre)
    boxes = (BOXES * torch.tensor([side / WIDTH, side / HEIGHT]).repeat(2))[None]
    with torch.no_grad():
        dynamic = model(pixel_values=pixels, input_boxes=boxes, multimask_output=False)
        every = model(pixel_values=pixels, input_boxes=boxes, multimask_output=True)
    segmenter = Sam2Segmenter(model, "tiny", pre)
    assert not model.mask_decoder.dynamic_multimask_via_stability
    out = segmenter.decode_prompts(segmenter.encode_image(image), boxes=BOXES, masks="low_res")
    fell_back = ~torch.isclose(dynamic.iou_scores[0, :, 0], out.iou, atol=1e-5)
    assert fell_back.any(), "the tiny model should have unstable single masks"
    best = every.iou_scores[0].max(dim=-1).values  # the fallback takes the best multimask output
    torch.testing.assert_close(dynamic.iou_scores[0, fell_back, 0], best[fell_back], atol=1e-5, rtol=1e-5)


def test_square_preprocessing(image):
    pre = SamPreprocess(longest_edge=128, pad_size=128, square=True)
    batch = prepare_sam_input(image, pre)
    assert batch.pixels.shape == (1, 3, 128, 128) and batch.reshaped_sizes == [(128, 128)]
    want = np.asarray(image.resize((128, 128), Image.Resampling.BILINEAR)).transpose(2, 0, 1)
    assert np.array_equal(batch.pixels[0].numpy(), want)


@pytest.mark.parametrize("name", ["sam2", "sam3_tracker"])
def test_load_segmenter_dispatches(tmp_path, image, name):
    model = BUILDERS[name](1)
    folder = save_tiny_sam2_family(model, tmp_path / name)
    segmenter = load_segmenter(str(folder))
    assert isinstance(segmenter, Sam2Segmenter) and segmenter.preprocess.square
    expected_mean = (0.5, 0.5, 0.5) if name.startswith("sam3") else (0.485, 0.456, 0.406)
    assert segmenter.preprocess.mean == pytest.approx(expected_mean)
    assert segmenter.decoder_layer_norm_eps == 1e-5 and segmenter.token_dim == 32
    direct = Sam2Segmenter(model, "direct", segmenter.preprocess)
    got = segmenter.decode_prompts(segmenter.encode_image(image), boxes=BOXES, masks="none")
    want = direct.decode_prompts(direct.encode_image(image), boxes=BOXES, masks="none")
    torch.testing.assert_close(got.tokens, want.tokens, atol=1e-6, rtol=1e-6)
    assert segmenter.set_numerics("bf16") == "+bf16" and segmenter.weights_fingerprint.endswith("+bf16")
    bf16 = segmenter.decode_prompts(segmenter.encode_image(image), boxes=BOXES, masks="none")
    assert bf16.tokens.dtype == torch.float32 and torch.isfinite(bf16.tokens).all()
    with pytest.raises(CheckpointError, match="fixed at 1e-5"):
        load_segmenter(str(folder), decoder_layer_norm_eps=1e-6)
    assert isinstance(load_segmenter(str(folder), decoder_layer_norm_eps=1e-5), Sam2Segmenter)


def test_edgetam_without_timm_is_one_line(tmp_path):
    try:
        import timm  # noqa: F401
        pytest.skip("timm is installed: EdgeTAM loads")
    except ImportError:
        pass
    folder = tmp_path / "edgetam"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "edgetam", "architectures": ["EdgeTamModel"]}))
    save_file({"no_memory_embedding": torch.zeros(1, 1, 256)}, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="pip install timm"):
        load_segmenter(str(folder))


def test_video_configs_load_their_image_model():
    """Hub folders of the video models (sam2_video, sam3_video) load the image model's encoder and decoder."""
    from transformers import Sam2VideoConfig, Sam3VideoConfig

    from regionspot.backbones.sam2_segmenter import image_model_config
    from regionspot.testing.tiny_sam2 import tiny_sam2_config

    tiny = tiny_sam2_config()
    video = Sam2VideoConfig(vision_config=tiny.vision_config.to_dict(), prompt_encoder_config=tiny.prompt_encoder_config.to_dict(),
                            mask_decoder_config=tiny.mask_decoder_config.to_dict())
    model_class, config = image_model_config(video, "video")
    assert model_class.__name__ == "Sam2Model" and config.model_type == "sam2"
    assert config.mask_decoder_config.hidden_size == 32 and config.prompt_encoder_config.image_size == 128
    model_class, config = image_model_config(Sam3VideoConfig(), "sam3")
    assert model_class.__name__ == "Sam3TrackerModel" and config.prompt_encoder_config.image_size == 1008
