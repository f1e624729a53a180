"""SamSegmenter on a tiny random SamModel: token extraction, caching, batching, masks, bad prompts."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import Sam2Config, Sam3Config
from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

from regionspot.backbones.base import Segmenter, SegmenterBatch, SegmenterImageState
from regionspot.backbones.segmenter import load_segmenter
from regionspot.errors import CheckpointError, PromptError, WeightsNotFoundError
from regionspot.testing.tiny_sam import save_tiny_sam, save_tiny_sam_hq

HEIGHT, WIDTH = 60, 100  # non-square: exercises resize, padding and the crop of the padding
BOXES = torch.tensor(
    [[10.0, 10.0, 50.0, 40.0], [0.0, 0.0, 100.0, 60.0], [30.5, 5.0, 90.0, 55.0], [60.0, 20.0, 70.0, 58.0]]
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny_sam(tmp_path_factory.mktemp("tiny_sam"), seed=0)


@pytest.fixture(scope="module")
def segmenter(folder):
    return load_segmenter(str(folder))


@pytest.fixture(scope="module")
def image():
    return Image.fromarray(np.random.RandomState(0).randint(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def state(segmenter, image):
    return segmenter.encode_image(image)


def _capture_queries(model):
    """Forward hook collecting the two-way transformer's queries (1, n, T, C)."""
    store = []
    handle = model.mask_decoder.transformer.register_forward_hook(lambda m, i, o: store.append(o[0]))
    return store, handle


def _to_model_frame(boxes, state):
    new_h, new_w = state.reshaped_size
    return boxes * torch.tensor([new_w / WIDTH, new_h / HEIGHT] * 2)


def test_protocol_frozen_and_properties(segmenter, folder):
    assert isinstance(segmenter, Segmenter)
    assert segmenter.model_id == str(folder)
    assert segmenter.token_dim == 32  # tiny width; 256 for released SAMs
    assert segmenter.device == torch.device("cpu")
    assert not segmenter.model.training
    assert all(not p.requires_grad for p in segmenter.model.parameters())


def test_preprocessing_matches_transformers_processor(segmenter, image, state, folder):
    processor = SamImageProcessorPil.from_pretrained(str(folder))
    reference = processor(image, return_tensors="pt")
    pixels, original, reshaped = segmenter.preprocess_image(image)
    assert original == (HEIGHT, WIDTH) == state.original_size
    assert list(reshaped) == reference["reshaped_input_sizes"][0].tolist() == list(state.reshaped_size)
    torch.testing.assert_close(pixels, reference["pixel_values"], atol=1e-5, rtol=0)
    expected = segmenter.model.get_image_embeddings(reference["pixel_values"])
    torch.testing.assert_close(state.embeddings, expected, atol=1e-5, rtol=1e-5)


def test_encode_batch_equals_one_by_one(segmenter, image, state):
    """Two images of other shapes in one encoder call: each state is the one-image state (same sizes,
    embeddings and tokens up to float noise); the CPU half travels pickled to worker processes as uint8."""
    import pickle

    portrait = Image.fromarray(np.random.RandomState(1).randint(0, 256, (90, 40, 3), dtype=np.uint8))
    prepare = pickle.loads(pickle.dumps(segmenter.input_preprocessor()))
    batch = SegmenterBatch.cat([prepare(image), prepare(portrait)])
    assert batch.pixels.shape == (2, 3, 128, 128) and batch.pixels.dtype == torch.uint8
    assert len(batch) == 2 and batch.pin_memory is not None
    states = segmenter.encode_batch(batch)
    single = [state, segmenter.encode_image(portrait)]
    for got, want in zip(states, single):
        assert (got.original_size, got.reshaped_size) == (want.original_size, want.reshaped_size)
        assert got.embeddings.shape == want.embeddings.shape == (1, 32, 8, 8)
        torch.testing.assert_close(got.embeddings, want.embeddings, atol=1e-5, rtol=1e-5)
    assert states[1].original_size == (90, 40) and not torch.allclose(states[0].embeddings, states[1].embeddings)
    boxes = torch.tensor([[5.0, 10.0, 30.0, 80.0]])
    torch.testing.assert_close(segmenter.decode_prompts(states[1], boxes=boxes).tokens,
                               segmenter.decode_prompts(single[1], boxes=boxes).tokens, atol=1e-5, rtol=1e-5)
    # the padding of the smaller image is zero after normalisation, as the one-image path pads
    pixels, _, reshaped = segmenter.preprocess_image(portrait)
    assert reshaped == (128, 57) and pixels[..., 57:].abs().max() == 0 and pixels[..., :57].abs().min() > 0


def test_tokens_equal_hand_written_decoder_path(segmenter, state):
    """prompt encoder + output tokens + two-way transformer called directly; token = queries[:, :, 1]."""
    model = segmenter.model
    boxes = _to_model_frame(BOXES, state)
    n = len(boxes)
    with torch.no_grad():
        sparse, dense = model.prompt_encoder(None, None, boxes[None], None)  # (1, n, 2, C), (1, C, h, w)
        output_tokens = torch.cat([model.mask_decoder.iou_token.weight, model.mask_decoder.mask_tokens.weight])
        queries_in = torch.cat([output_tokens.expand(1, n, -1, -1), sparse], dim=2)  # (1, n, 7, C)
        image_pe = model.get_image_wide_positional_embeddings()
        queries, _ = model.mask_decoder.transformer(
            point_embeddings=queries_in,
            image_embeddings=(state.embeddings + dense).repeat_interleave(n, 0),
            image_positional_embeddings=image_pe.repeat_interleave(n, 0),
            attention_similarity=None,
        )
        reference_iou = model.mask_decoder.iou_prediction_head(queries[0, :, 0])[:, 0]
    assert queries.shape == (1, n, 7, 32)
    out = segmenter.decode_prompts(state, boxes=BOXES)
    assert out.tokens.shape == (n, 32) and out.tokens.dtype == torch.float32
    torch.testing.assert_close(out.tokens, queries[0, :, 1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.iou, reference_iou, atol=1e-5, rtol=1e-5)
    # the token is not the IoU token nor another mask token
    assert (out.tokens - queries[0, :, 2]).abs().max() > 1e-3


def test_cached_embedding_equals_full_forward(segmenter, image, state):
    """Reusing the cached embedding == SamModel recomputing it from pixels; masks == HF post-processing."""
    model = segmenter.model
    pixels, _, _ = segmenter.preprocess_image(image)
    store, handle = _capture_queries(model)
    try:
        with torch.no_grad():
            full = model(pixel_values=pixels, input_boxes=_to_model_frame(BOXES, state)[None], multimask_output=False)
    finally:
        handle.remove()
    out = segmenter.decode_prompts(state, boxes=BOXES)
    torch.testing.assert_close(out.tokens, store[0][0, :, 1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.iou, full.iou_scores[0, :, 0], atol=1e-5, rtol=1e-5)
    processor = SamImageProcessorPil(size={"longest_edge": 128}, pad_size={"height": 128, "width": 128})
    masks = processor.post_process_masks(full.pred_masks, [[HEIGHT, WIDTH]], [list(state.reshaped_size)])[0][:, 0]
    assert out.masks.shape == masks.shape == (len(BOXES), HEIGHT, WIDTH)
    assert out.masks.dtype == torch.bool
    assert torch.equal(out.masks, masks.bool())
    # a second encode of the same image gives the same state
    again = segmenter.encode_image(image)
    assert torch.equal(again.embeddings, state.embeddings)


def test_permutation_and_chunking(segmenter, state):
    out = segmenter.decode_prompts(state, boxes=BOXES, chunk_size=100)
    perm = torch.tensor([2, 0, 3, 1])
    permuted = segmenter.decode_prompts(state, boxes=BOXES[perm], chunk_size=100)
    torch.testing.assert_close(permuted.tokens, out.tokens[perm], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(permuted.iou, out.iou[perm], atol=1e-5, rtol=1e-5)
    assert torch.equal(permuted.masks, out.masks[perm])
    for chunk in (1, 3):
        one = segmenter.decode_prompts(state, boxes=BOXES, chunk_size=chunk)
        torch.testing.assert_close(one.tokens, out.tokens, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(one.iou, out.iou, atol=1e-5, rtol=1e-5)
    # different boxes give different tokens
    assert torch.cdist(out.tokens, out.tokens).triu(1)[0, 1:].min() > 1e-3


def test_return_masks_false_keeps_tokens(segmenter, state):
    with_masks = segmenter.decode_prompts(state, boxes=BOXES, masks="full")
    without = segmenter.decode_prompts(state, boxes=BOXES, masks="none")
    assert without.masks is None
    assert torch.equal(with_masks.tokens, without.tokens)
    torch.testing.assert_close(with_masks.iou, without.iou, atol=1e-6, rtol=1e-6)
    assert with_masks.masks.shape == (len(BOXES), HEIGHT, WIDTH) and with_masks.masks.dtype == torch.bool
    # the mask branch really was skipped: the upscaling conv never ran
    calls = []
    handle = segmenter.model.mask_decoder.upscale_conv1.register_forward_hook(lambda m, i, o: calls.append(1))
    try:
        segmenter.decode_prompts(state, boxes=BOXES, masks="none")
        assert calls == []
        segmenter.decode_prompts(state, boxes=BOXES, masks="full")
        assert calls != []
    finally:
        handle.remove()


def test_points_and_box_plus_points(segmenter, state):
    model = segmenter.model
    points = torch.tensor([[[20.0, 20.0], [0.0, 0.0]], [[50.0, 30.0], [60.0, 40.0]]])
    labels = torch.tensor([[1, -1], [1, 0]])
    new_h, new_w = state.reshaped_size
    scaled = points * torch.tensor([new_w / WIDTH, new_h / HEIGHT])
    store, handle = _capture_queries(model)
    try:
        with torch.no_grad():
            model(image_embeddings=state.embeddings, input_points=scaled[None], input_labels=labels[None], multimask_output=False)
    finally:
        handle.remove()
    out = segmenter.decode_prompts(state, points=points, point_labels=labels)
    torch.testing.assert_close(out.tokens, store[0][0, :, 1], atol=1e-5, rtol=1e-5)
    both = segmenter.decode_prompts(state, boxes=BOXES[:2], points=points, point_labels=labels)
    assert both.tokens.shape == (2, 32) and both.masks.shape == (2, HEIGHT, WIDTH)
    assert (both.tokens - out.tokens).abs().max() > 1e-3
    with pytest.raises(PromptError, match="outside"):
        segmenter.decode_prompts(state, points=torch.tensor([[[150.0, 10.0]]]))
    with pytest.raises(ValueError, match="point set"):
        segmenter.decode_prompts(state, boxes=BOXES, points=points, point_labels=labels)


def test_bad_boxes(segmenter, state):
    with pytest.raises(PromptError, match="NaN"):
        segmenter.decode_prompts(state, boxes=torch.tensor([[1.0, 2.0, float("nan"), 9.0]]))
    with pytest.raises(PromptError, match="zero or negative area"):
        segmenter.decode_prompts(state, boxes=torch.tensor([[10.0, 10.0, 10.0, 30.0]]))
    with pytest.raises(PromptError, match="entirely outside"):
        segmenter.decode_prompts(state, boxes=torch.tensor([[120.0, 10.0, 150.0, 30.0]]))
    with pytest.raises(PromptError, match=r"\(N, 4\)"):
        segmenter.decode_prompts(state, boxes=torch.zeros(3, 5))
    with pytest.raises(TypeError, match="encode_image"):
        segmenter.decode_prompts("not a state", boxes=BOXES)  # type: ignore[arg-type]
    with pytest.warns(UserWarning, match="box 1 clipped to the image"):
        clipped = segmenter.decode_prompts(state, boxes=torch.tensor([[10.0, 10.0, 50.0, 40.0], [-20.0, 5.0, 130.0, 70.0]]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an inside box must not warn
        manual = segmenter.decode_prompts(state, boxes=torch.tensor([[10.0, 10.0, 50.0, 40.0], [0.0, 5.0, 100.0, 60.0]]))
    torch.testing.assert_close(clipped.tokens, manual.tokens, atol=1e-6, rtol=0)


def test_empty_prompts(segmenter, state):
    out = segmenter.decode_prompts(state, boxes=torch.zeros(0, 4))
    assert out.tokens.shape == (0, 32) and out.iou.shape == (0,)
    assert out.masks.shape == (0, HEIGHT, WIDTH) and out.masks.dtype == torch.bool
    assert segmenter.decode_prompts(state, boxes=[], masks="none").masks is None


def test_state_is_plain_dataclass(state):
    assert isinstance(state, SegmenterImageState)
    assert state.embeddings.shape == (1, 32, 8, 8)


def test_loading_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError, match="regionspot convert sam"):
        load_segmenter("regionspot-test/no-such-sam")
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        load_segmenter(str(tmp_path / "missing" / "folder"))
    Sam2Config().save_pretrained(str(tmp_path / "sam2"))  # a SAM 2 config without weights
    with pytest.raises(WeightsNotFoundError, match="regionspot convert sam2"):
        load_segmenter(str(tmp_path / "sam2"))
    Sam3Config().save_pretrained(str(tmp_path / "sam3"))  # SAM 3's detector: no promptable decoder of its own
    with pytest.raises(CheckpointError, match="without a promptable mask decoder"):
        load_segmenter(str(tmp_path / "sam3"))


def test_sam_hq_tokens(tmp_path, image):
    segmenter = load_segmenter(str(save_tiny_sam_hq(tmp_path / "hq")))
    state = segmenter.encode_image(image)
    assert state.extra is not None and len(state.extra["intermediate_embeddings"]) > 0
    out = segmenter.decode_prompts(state, boxes=BOXES)
    fast = segmenter.decode_prompts(state, boxes=BOXES, masks="none")
    assert out.masks.shape == (len(BOXES), HEIGHT, WIDTH)
    assert torch.equal(out.tokens, fast.tokens)
    torch.testing.assert_close(out.iou, fast.iou, atol=1e-6, rtol=1e-6)
    one = segmenter.decode_prompts(state, boxes=BOXES, chunk_size=1, masks="none")
    torch.testing.assert_close(one.tokens, out.tokens, atol=1e-5, rtol=1e-5)
    # batched: every state keeps its own slice of the intermediate (HQ) features
    other = Image.fromarray(np.random.RandomState(2).randint(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8))
    prepare = segmenter.input_preprocessor()
    states = segmenter.encode_batch(SegmenterBatch.cat([prepare(other), prepare(image)]))
    got = [states[1].embeddings, *states[1].extra["intermediate_embeddings"]]
    want = [state.embeddings, *state.extra["intermediate_embeddings"]]
    assert len(got) == len(want) > 1
    for a, b in zip(got, want):
        assert a.shape == b.shape and a.shape[0] == 1
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(segmenter.decode_prompts(states[1], boxes=BOXES).tokens, out.tokens, atol=1e-5, rtol=1e-5)


def test_decoder_eps_is_the_original_one_for_hub_releases_and_can_be_set(folder, segmenter, image):
    from regionspot.backbones.segmenter import default_decoder_eps

    assert default_decoder_eps("facebook/sam-vit-base", 1e-6) == 1e-5
    assert default_decoder_eps("facebook/sam-vit-huge", 1e-6) == 1e-5
    assert default_decoder_eps("syscv-community/sam-hq-vit-base", 1e-6) == 1e-5
    assert default_decoder_eps(str(folder), 1e-6) == 1e-6  # a local folder keeps its config's value
    assert segmenter.decoder_layer_norm_eps == 1e-6
    original = load_segmenter(str(folder), decoder_layer_norm_eps=1e-5)
    norms = [m for m in original.model.mask_decoder.transformer.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert original.decoder_layer_norm_eps == 1e-5 and all(m.eps == 1e-5 for m in norms)
    # Same weights, other eps: the tokens move a little, and only through those LayerNorms.
    a = segmenter.decode_prompts(segmenter.encode_image(image), boxes=BOXES, masks="none").tokens
    b = original.decode_prompts(original.encode_image(image), boxes=BOXES, masks="none").tokens
    assert 0 < (a - b).abs().max() < 1e-2 * a.abs().max()


def test_mask_size_upsamples_the_logits_straight_to_the_asked_size(segmenter, state):
    default = segmenter.decode_prompts(state, boxes=BOXES)
    big = segmenter.decode_prompts(state, boxes=BOXES, mask_size=(120, 200))
    assert default.masks.shape == (4, HEIGHT, WIDTH) and big.masks.shape == (4, 120, 200)
    torch.testing.assert_close(big.tokens, default.tokens, atol=0, rtol=0)
    # Area fractions agree up to the resampling of the mask border.
    assert torch.allclose(big.masks.float().mean((1, 2)), default.masks.float().mean((1, 2)), atol=0.05)
    assert segmenter.decode_prompts(state, boxes=BOXES[:0], mask_size=(7, 9)).masks.shape == (0, 7, 9)
    with pytest.raises(PromptError, match="mask_size"):
        segmenter.decode_prompts(state, boxes=BOXES, mask_size=(0, 5))


def test_low_res_masks_come_with_their_frame_and_the_same_tokens(segmenter, state):
    from regionspot.masks.resize import upsample_mask_logits

    dense = segmenter.decode_prompts(state, boxes=BOXES, mask_size=(120, 200))
    low = segmenter.decode_prompts(state, boxes=BOXES, mask_size=(120, 200), masks="low_res")
    side = segmenter.preprocess.pad_size // 4
    assert low.masks is None and low.low_res_masks.shape == (4, side, side) and low.low_res_masks.device == segmenter.device
    assert low.mask_frame.size == (120, 200) and low.mask_frame.reshaped_size == state.reshaped_size
    # Same chunks, same arithmetic: asking for low-resolution masks changes nothing upstream of them.
    torch.testing.assert_close(low.tokens, dense.tokens, atol=0, rtol=0)
    assert torch.equal(upsample_mask_logits(low.low_res_masks, low.mask_frame) > 0, dense.masks)
    # Other chunks give GEMMs of another batch size, which the CPU kernels may block differently (AVX2
    # machines differ by ~5e-7 here, AVX-512 ones by 0): equal up to float32 rounding, not bit for bit.
    chunked = segmenter.decode_prompts(state, boxes=BOXES, mask_size=(120, 200), masks="low_res", chunk_size=3)
    torch.testing.assert_close(chunked.tokens, dense.tokens, atol=1e-5, rtol=1e-4,
                               msg="chunk size may only change tokens by float32 GEMM rounding")
    torch.testing.assert_close(chunked.low_res_masks, low.low_res_masks, atol=1e-4, rtol=1e-4,
                               msg="chunk size may only change mask logits by float32 GEMM rounding")
    empty = segmenter.decode_prompts(state, boxes=BOXES[:0], masks="low_res")
    assert empty.low_res_masks.shape == (0, side, side) and empty.mask_frame.size == (HEIGHT, WIDTH)
    assert segmenter.decode_prompts(state, boxes=BOXES, masks="none").low_res_masks is None


def test_one_mask_mode_and_no_option_it_ignores(segmenter, state):
    """``masks`` chooses the output; an option the mode has no use for is a caller's mistake (ValueError)."""
    full = segmenter.decode_prompts(state, boxes=BOXES, masks="full")
    low = segmenter.decode_prompts(state, boxes=BOXES, masks="low_res")
    none = segmenter.decode_prompts(state, boxes=BOXES, masks="none")
    assert full.masks is not None and full.low_res_masks is None and full.mask_frame is None
    assert low.masks is None and low.low_res_masks is not None and low.mask_frame is not None
    assert none.masks is None and none.low_res_masks is None and none.mask_frame is None
    with pytest.raises(ValueError, match="masks must be one of"):
        segmenter.decode_prompts(state, boxes=BOXES, masks="dense")
    with pytest.raises(ValueError, match="full-size"):
        segmenter.decode_prompts(state, boxes=BOXES, masks="low_res", stability_offset=1.0)
    with pytest.raises(ValueError, match="drop mask_size"):
        segmenter.decode_prompts(state, boxes=BOXES, masks="none", mask_size=(10, 10))
    with pytest.raises(TypeError):
        segmenter.decode_prompts(state, BOXES, None, None, "full")  # the mode is keyword-only


def test_the_boxes_decoded_come_back_clipped(segmenter, state):
    given = torch.tensor([[10.0, 10.0, 50.0, 40.0], [-20.0, 5.0, 130.0, 70.0]])
    with pytest.warns(UserWarning, match="clipped"):
        out = segmenter.decode_prompts(state, boxes=given, masks="none")
    assert torch.equal(out.boxes, torch.tensor([[10.0, 10.0, 50.0, 40.0], [0.0, 5.0, float(WIDTH), float(HEIGHT)]]))
    assert out.boxes.dtype == torch.float32 and out.boxes.device.type == "cpu"
    assert torch.equal(given[0], torch.tensor([10.0, 10.0, 50.0, 40.0]))  # the caller's tensor is not changed
    assert segmenter.decode_prompts(state, points=torch.tensor([[[20.0, 20.0]]]), masks="none").boxes is None
    assert segmenter.decode_prompts(state, boxes=BOXES[:0], masks="none").boxes.shape == (0, 4)
