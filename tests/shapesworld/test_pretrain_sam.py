"""The tiny-SAM pre-training: data, loss, a few steps that lower the loss, an offline-loadable folder."""

from __future__ import annotations

import numpy as np
import torch

from regionspot.backbones.segmenter import load_segmenter
from regionspot.shapesworld import pretrain_sam as ps
from regionspot.shapesworld import streams
from regionspot.shapesworld.sam_eval import heldout_objects

TINY = dict(image_size=64, patch_size=16, vision_width=32, vision_layers=2, vision_heads=2, width=32,
            decoder_mlp=64, decoder_heads=2)


def test_mask_pool_targets_match_boxes():
    pool = ps.render_mask_pool(3, seed=0, key=streams.SAM_POOL, image_size=64)
    assert pool.images.shape[1:] == (64, 64, 3) and pool.images.dtype == np.uint8
    for boxes, masks in zip(pool.boxes, pool.masks):
        assert masks.shape[1:] == (16, 16) and len(masks) == len(boxes)
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        assert (masks.reshape(len(masks), -1).max(1) > 0).all()  # every object covers some low-res cell
    boxes, points, targets, _ = ps.sample_prompts(pool, np.array([0, 1]), 3, 0.0, np.random.default_rng(0))
    assert boxes.shape == (2, 3, 4) and points.shape == (2, 3, 1, 2) and targets.shape == (2, 3, 16, 16)
    # A sampled point lies in a foreground cell of its own target.
    cell = (points[..., 0, :] / 4).long().clamp(max=15)
    fg = targets[torch.arange(2)[:, None], torch.arange(3)[None], cell[..., 1], cell[..., 0]]
    assert (fg > 0.5).all()


def test_mask_loss_prefers_the_right_mask():
    target = torch.zeros(1, 1, 8, 8)
    target[..., 2:5, 2:5] = 1
    good = (target * 2 - 1) * 6
    iou = torch.ones(1, 1)
    assert ps.mask_loss(good, target, iou) < ps.mask_loss(-good, target, iou)


def test_sam_steps_reduce_the_loss():
    config = ps.SamPretrainConfig(**TINY)
    model = ps.build_sam_model(config, seed=0).train()
    pool = ps.render_mask_pool(2, seed=1, key=streams.SAM_POOL, image_size=64)
    boxes, _, targets, _ = ps.sample_prompts(pool, np.array([0, 1]), 2, 0.0, np.random.default_rng(0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    pixels = ps.normalise_pixels(pool.images[:2])
    losses = []
    for _ in range(12):
        out = model(pixel_values=pixels, input_boxes=boxes, multimask_output=False)
        loss = ps.mask_loss(out.pred_masks[:, :, 0], targets, out.iou_scores[:, :, 0], pos_weight=10.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.8 * losses[0]


def test_pretrain_sam_writes_a_folder_the_segmenter_loads(tmp_path):
    config = ps.SamPretrainConfig(**TINY, steps=3, warmup_steps=1, images_per_step=2, prompts_per_image=2,
                                  pool_images=3, heldout_images=2)
    result = ps.pretrain_sam(tmp_path / "sam", config, show_progress=False)
    assert result.steps == 3 and np.isfinite(result.last_loss)
    assert 0.0 <= result.miou_box <= 1.0 and 0.0 <= result.miou_point <= 1.0
    segmenter = load_segmenter(str(tmp_path / "sam"))
    assert segmenter.model.dtype == torch.float32  # fp16 on disk, upcast on load
    assert segmenter.token_dim == 32
    images, boxes, _ = heldout_objects(1, seed=0, image_size=64)
    from PIL import Image

    state = segmenter.encode_image(Image.fromarray(images[0]))
    out = segmenter.decode_prompts(state, boxes=torch.from_numpy(boxes[0]))
    assert out.tokens.shape == (len(boxes[0]), 32) and torch.isfinite(out.tokens).all()
    assert out.masks.shape == (len(boxes[0]), 64, 64)


def test_shipped_sam_loads_offline_and_segments_the_example():
    import json

    from PIL import Image

    from regionspot.registry import assets_dir

    shipped = assets_dir() / "shapesworld"
    segmenter = load_segmenter(str(shipped / "sam"))
    assert segmenter.model.dtype == torch.float32
    spec = json.loads((shipped / "example.json").read_text())
    image = Image.open(shipped / spec["image"]).convert("RGB")
    state = segmenter.encode_image(image)
    boxes = torch.tensor(spec["boxes"], dtype=torch.float32)
    out = segmenter.decode_prompts(state, boxes=boxes)
    assert out.tokens.shape == (len(boxes), segmenter.token_dim) and torch.isfinite(out.tokens).all()
    # Each mask lies mostly inside its prompt box and is not empty.
    for mask, box in zip(out.masks, boxes.round().long().tolist()):
        x0, y0, x1, y1 = box
        inside = mask[y0:y1, x0:x1].sum()
        assert mask.sum() > 0 and inside >= 0.8 * mask.sum()


def test_shape_loss_teaches_the_token_the_shape_and_leaves_no_trace(tmp_path):
    from regionspot.shapesworld.token_probe import TokenShapeProbe

    config = ps.SamPretrainConfig(**TINY)
    model = ps.build_sam_model(config, seed=0).train()
    probe = TokenShapeProbe(model, len(config.world.shape_names))
    pool = ps.render_mask_pool(4, seed=1, key=streams.SAM_POOL, image_size=64)
    prompts = ps.sample_prompts(pool, np.arange(4), 3, 0.0, np.random.default_rng(0))
    assert prompts.shapes.shape == (4, 3) and int(prompts.shapes.max()) < len(config.world.shape_names)
    optimizer = torch.optim.AdamW(list(model.parameters()) + list(probe.classifier.parameters()), lr=3e-3)
    pixels = ps.normalise_pixels(pool.images[:4])
    losses = []
    for _ in range(15):
        model(pixel_values=pixels, input_boxes=prompts.boxes, multimask_output=False)
        loss = probe.loss(prompts.shapes)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]  # the token can be made to name its object's shape
    probe.remove()
    assert not model.mask_decoder.transformer._forward_hooks

    short = ps.SamPretrainConfig(**TINY, steps=2, warmup_steps=1, images_per_step=2, prompts_per_image=2,
                                 pool_images=3, heldout_images=2, shape_loss_weight=1.0)
    result = ps.pretrain_sam(tmp_path / "sam", short, show_progress=False)
    assert 0.0 <= result.token_shape_accuracy <= 1.0
    assert load_segmenter(str(tmp_path / "sam")).token_dim == 32  # an ordinary SamModel folder
