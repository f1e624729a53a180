"""The SAM 2 video model propagator on a tiny random-weight Sam2VideoModel: propagation runs frame by frame, the
token is the decoder's single-mask output token, and the session's memory stays bounded however long the video."""

import numpy as np
import pytest
import torch
from PIL import Image

from regionspot.errors import CheckpointError
from regionspot.testing.tiny_sam2_video import save_tiny_sam2_video, tiny_sam2_video
from regionspot.video.sam2_video import SINGLE_MASK_TOKEN, VideoModelPropagator, load_video_model

BOXES = np.array([[10, 10, 50, 50], [60, 20, 120, 80]], np.float32)


def _frame(rng, size=(96, 160)):
    return Image.fromarray((rng.random((*size, 3)) * 255).astype(np.uint8))


@pytest.fixture(scope="module")
def model():
    return tiny_sam2_video(seed=0)


def test_propagation_gives_a_token_mask_and_box_per_object_on_every_frame(model):
    propagator, rng = VideoModelPropagator(model), np.random.default_rng(0)
    first = propagator.start(_frame(rng), BOXES, None)
    assert first.tokens.shape == (2, 128) and propagator.token_dim == 128
    for _ in range(5):
        objects = propagator.step(_frame(rng))
        assert objects.tokens.shape == (2, 128) and torch.isfinite(objects.tokens).all()
        assert objects.masks.size == (96, 160) and len(objects.masks) == 2
        assert objects.boxes.shape == (2, 4) and objects.present.shape == (2,) and objects.scores.shape == (2,)
    points = VideoModelPropagator(model).start(_frame(rng), None, np.array([[30, 30]], np.float32))
    assert points.tokens.shape == (1, 128)


def test_the_token_is_the_decoders_single_mask_output_token(model):
    """On the prompt frame (box prompts: one mask out) the decoder returns its single-mask token: ours equals it; and
    it is index 2 of the transformer's output tokens (object score, IoU, then the masks')."""
    returned = []
    handle = model.mask_decoder.register_forward_hook(lambda m, a, out: returned.append(out[2][:, :, 0].reshape(-1)))
    try:
        objects = VideoModelPropagator(model).start(_frame(np.random.default_rng(1)), BOXES, None)
    finally:
        handle.remove()
    assert SINGLE_MASK_TOKEN == 2 and len(returned) == 2
    assert torch.equal(objects.tokens, torch.stack(returned).float())


def test_memory_stays_bounded_over_a_long_stream(model):
    propagator, rng = VideoModelPropagator(model), np.random.default_rng(2)
    propagator.start(_frame(rng, (64, 64)), BOXES[:1] / 2, None)
    held = []
    for _ in range(propagator.keep + 8):
        propagator.step(_frame(rng, (64, 64)))
        held.append(propagator.held_frames())
    assert max(held) <= propagator.keep + 2  # one frame's pixels + the memories the model reads
    assert held[-1] == held[-5]  # flat: no growth with the video's length


def test_frames_streamed_from_a_video_file(model, tmp_path):
    pytest.importorskip("av")
    from regionspot.video.frames import open_frames, write_video

    rng = np.random.default_rng(3)
    write_video((_frame(rng, (64, 96)) for _ in range(6)), tmp_path / "v.mp4", fps=6)
    propagator, seen = VideoModelPropagator(model), 0
    for index, image in open_frames(tmp_path / "v.mp4").frames():
        objects = propagator.start(image, BOXES / 2, None) if index == 0 else propagator.step(image)
        assert objects.masks.size == (64, 96)
        seen += 1
    assert seen == 6


def test_load_from_a_folder_and_refuse_other_models(tmp_path, tiny_sam_dir):
    folder = save_tiny_sam2_video(tmp_path / "video_model")
    loaded = load_video_model(str(folder))
    assert type(loaded).__name__ == "Sam2VideoModel" and not loaded.training
    with pytest.raises(CheckpointError, match="not a video model"):
        load_video_model(str(tiny_sam_dir))
