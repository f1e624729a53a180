"""The evaluation loop end to end on a tiny ShapesWorld with tiny random backbones: report files, resume
after an interruption, sharding + merge, undecodable images, detector boxes, and the store's safety."""

import json
import shutil

import numpy as np
import pytest
import torch

from regionspot.engine.config import EvalOptions
from regionspot.engine.evaluate import evaluate_dataset, merge_and_evaluate
from regionspot.errors import RegionSpotError
from regionspot.evaluation import predictions as store_lib

NUM_IMAGES = 4


@pytest.fixture(scope="module")
def model(tmp_path_factory, tiny_sam_dir, tiny_clip_dir):
    from regionspot.backbones.segmenter import load_segmenter
    from regionspot.backbones.vision_language import load_vision_language
    from regionspot.checkpoint import save_head_checkpoint
    from regionspot.config import HeadConfig, RegionSpotConfig
    from regionspot.model import RegionSpot
    from regionspot.modeling.head import RegionSpotHead

    vl = load_vision_language(str(tiny_clip_dir))
    seg = load_segmenter(str(tiny_sam_dir))
    config = RegionSpotConfig(
        segmenter=str(tiny_sam_dir), vision_language=str(tiny_clip_dir), image_size=vl.image_size, templates="single",
        head=HeadConfig(token_dim=seg.token_dim, feature_dim=vl.feature_dim, embed_dim=vl.embed_dim, ffn_dim=64,
                        num_heads=4, depth=2),
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("eval_model") / "head.safetensors"
    save_head_checkpoint(path, RegionSpotHead(config.head), config)
    return RegionSpot.from_pretrained(path)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from regionspot.shapesworld.generate import generate_shapesworld
    from regionspot.shapesworld.world import WorldConfig

    info = generate_shapesworld(tmp_path_factory.mktemp("sw"), 0, NUM_IMAGES, seed=0, image_size=64, progress=False,
                                world=WorldConfig(max_objects=3, max_distractors=1))
    return info["val_json"], info["image_root"]


def evaluate(model, world, out, on_image=None, rank=None, world_size=None, **kw):
    methods = kw.pop("methods", ("regionspot",))
    options = EvalOptions(methods=methods, text_cache_dir=False, **kw)
    return evaluate_dataset(
        world[0], world[1], out, segmenter=model.segmenter, vision_language=model.vision_language, model=model,
        options=options, on_image=on_image, rank=rank, world_size=world_size, show_progress=False,
    )


def numbers(summary):
    return {row: {t: r.to_dict() for t, r in by_type.items()} for row, by_type in summary.results.items()}


@pytest.fixture(scope="module")
def reference(model, world, tmp_path_factory):
    """One uninterrupted single-process run (box + mask AP) that other tests compare against."""
    return evaluate(model, world, tmp_path_factory.mktemp("ref"))


def test_end_to_end_all_methods_write_the_report(model, world, tmp_path):
    summary = evaluate(model, world, tmp_path, methods=("regionspot", "clip-box", "clip-mask"), max_dets_per_image=5)
    assert list(summary.results) == ["RegionSpot", "CLIP w/ box", "CLIP w/ mask"]
    for by_type in summary.results.values():
        assert set(by_type) == {"bbox", "segm"}
        for result in by_type.values():
            assert 0.0 <= result.AP <= 1.0 and result.num_images == NUM_IMAGES
            assert result.num_detections <= 5 * NUM_IMAGES
    for name in ("report.md", "report.json", "per_category.csv", "ap_by_frequency.png"):
        assert (tmp_path / name).is_file() and (tmp_path / name).stat().st_size > 0
    table = (tmp_path / "report.md").read_text()
    assert "| CLIP w/ mask | GT boxes |" in table and "## Mask AP" in table
    assert summary.meta["this_run"]["scored"] == NUM_IMAGES and summary.meta["num_images_failed"] == 0
    # Several labels per box: the cap (5) is reached with fewer boxes than detections.
    merged = store_lib.merge(tmp_path / "predictions")
    record = merged.records[0]
    assert len(record["methods"]["regionspot"]) == min(5, len(record["boxes"]) * 144)
    assert len({b for b, _, _ in record["methods"]["regionspot"]}) < len(record["methods"]["regionspot"])
    scores = [s for _, _, s in record["methods"]["clip-box"]]
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)


class Interrupt(Exception):
    pass


def test_resume_after_interruption_gives_the_same_numbers(model, world, reference, tmp_path):
    finished = []

    def stop_after_two(image_id):
        finished.append(image_id)
        if len(finished) == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        evaluate(model, world, tmp_path, on_image=stop_after_two)
    assert store_lib.done_image_ids(tmp_path / "predictions") == set(finished)
    # A crash in the middle of a write leaves a truncated line: it is dropped and that image recomputed.
    shard = tmp_path / "predictions" / "rank00000.jsonl"
    with shard.open("a") as handle:
        handle.write('{"image_id": 99, "boxes": [[1, 2')
    summary = evaluate(model, world, tmp_path)
    assert summary.meta["this_run"]["scored"] == NUM_IMAGES - 2
    assert summary.meta["this_run"]["skipped_done"] == 2
    assert numbers(summary) == numbers(reference)
    assert all(line.endswith("}") for line in shard.read_text().splitlines())


def test_two_ranks_then_merge_equal_one_process(model, world, reference, tmp_path):
    for rank in (1, 0):
        assert evaluate(model, world, tmp_path, rank=rank, world_size=2) is None
    shards = {p.name: [r["image_id"] for r in store_lib.read_records(p)]
              for p in sorted((tmp_path / "predictions").glob("rank*.jsonl"))}
    ids = sorted(i for v in shards.values() for i in v)
    assert shards == {"rank00000.jsonl": ids[0::2], "rank00001.jsonl": ids[1::2]}
    merged = merge_and_evaluate(world[0], tmp_path, EvalOptions(), ids)
    assert numbers(merged) == numbers(reference)
    assert store_lib.shard_ids([5, 6, 7, 8, 9], 1, 2) == [6, 8]
    with pytest.raises(ValueError):
        store_lib.shard_ids([1], 2, 2)


def test_undecodable_image_is_skipped_counted_and_listed(model, world, tmp_path):
    data = json.loads(open(world[0]).read())
    root = tmp_path / "data"
    shutil.copytree(world[1], root)
    bad = data["images"][1]
    (root / bad["file_name"]).write_bytes(b"not a png")
    summary = evaluate(model, (world[0], str(root)), tmp_path / "out", methods=("clip-box",), iou_types=("bbox",))
    assert summary.meta["num_images_failed"] == 1 and summary.meta["num_images_scored"] == NUM_IMAGES - 1
    assert summary.meta["failed_images"][0]["image_id"] == bad["id"]
    assert summary.results["CLIP w/ box"]["bbox"].num_images == NUM_IMAGES - 1
    assert f"- {bad['id']}: " in (tmp_path / "out" / "report.md").read_text()
    again = evaluate(model, (world[0], str(root)), tmp_path / "out", methods=("clip-box",), iou_types=("bbox",))
    assert again.meta["this_run"]["scored"] == 0 and again.meta["this_run"]["skipped_done"] == NUM_IMAGES


def test_detector_boxes_score_is_detector_score_times_probability(model, world, reference, tmp_path):
    data = json.loads(open(world[0]).read())
    dets = [{"image_id": a["image_id"], "bbox": a["bbox"], "score": 0.5} for a in data["annotations"]]
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(dets))
    gt = reference
    det = evaluate(model, world, tmp_path / "det", iou_types=("bbox",), boxes=str(path))
    gt_records = store_lib.merge(reference.out_dir / "predictions").records
    det_records = store_lib.merge(tmp_path / "det" / "predictions").records
    for g, d in zip(gt_records, det_records):
        g_scores = sorted(s for _, _, s in g["methods"]["regionspot"])
        d_scores = sorted(s for _, _, s in d["methods"]["regionspot"])
        np.testing.assert_allclose(d_scores, [0.5 * s for s in g_scores], rtol=1e-5)
    # Halving every score keeps the ranking, so AP is unchanged.
    assert det.results["RegionSpot"]["bbox"].AP == pytest.approx(gt.results["RegionSpot"]["bbox"].AP)
    assert det.meta["proposals"] == "dets.json"


def test_a_different_run_in_the_same_folder_is_refused(model, world, tmp_path):
    evaluate(model, world, tmp_path, methods=("clip-box",), iou_types=("bbox",), limit=1)
    with pytest.raises(store_lib.PredictionStoreError, match="another run"):
        evaluate(model, world, tmp_path, methods=("clip-mask",), iou_types=("bbox",), limit=1)
    summary = evaluate(model, world, tmp_path, methods=("clip-mask",), iou_types=("bbox",), limit=1, overwrite=True)
    assert list(summary.results) == ["CLIP w/ mask"] and summary.meta["num_images"] == 1


def test_run_evaluation_baselines_only(tiny_sam_dir, tiny_clip_dir, world, tmp_path):
    """The whole `eval` run from its options: backbones by name, no head; then merge-only scores the same store."""
    from regionspot.engine.evaluate import run_evaluation

    options = EvalOptions(data=world[0], images=world[1], methods=("clip-box", "clip-mask"), segmenter=str(tiny_sam_dir),
                          vision_language=str(tiny_clip_dir), iou_types=("bbox",), out=tmp_path, limit=2, device="cpu",
                          templates="single", text_cache_dir=str(tmp_path / "t"))
    summary = run_evaluation(options, show_progress=False)
    assert summary.meta["num_images"] == 2 and set(summary.results) == {"CLIP w/ box", "CLIP w/ mask"}
    assert "| CLIP w/ box | GT boxes |" in (tmp_path / "report.md").read_text()
    again = run_evaluation(EvalOptions(data=world[0], images=world[1], methods=("clip-box", "clip-mask"),
                                       iou_types=("bbox",), out=tmp_path, limit=2, merge_only=True), show_progress=False)
    assert numbers(again) == numbers(summary)
    with pytest.raises(ValueError, match="options.data"):
        run_evaluation(EvalOptions(out=tmp_path))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"methods": ()}, "No method"),
        ({"methods": ("regionspot", "clip")}, "Unknown method"),
        ({"iou_types": ("box",)}, "`iou_types`"),
        ({"evaluator": "coco"}, "evaluator"),
        ({"boxes": "/nonexistent/dets.json"}, "Detections file not found"),
        ({"limit": 0}, "limit"),
        ({"mask_return": "bilinear"}, "`mask_return`"),
        ({"eval_resize": "longest-edge"}, "`eval_resize`"),
        ({"workers": -1}, "`workers`"),
        ({"batch_size": 0}, "`batch_size`"),
        ({"data": "/nonexistent/gt.json"}, "Annotation file not found: .*`data`"),
        ({"images": "/nonexistent/"}, "Image folder not found: .*`images`"),
    ],
)
def test_bad_options_raise_one_clear_error(kwargs, message):
    with pytest.raises(RegionSpotError, match=message):
        EvalOptions(**kwargs).validate()


class SizeSpy:
    """Forwards to a segmenter and records the size of every image it encodes and the boxes it decodes."""

    def __init__(self, inner):
        self.inner, self.sizes, self.boxes = inner, [], []
        self.model_id, self.token_dim = inner.model_id, inner.token_dim
        self.decoder_layer_norm_eps = inner.decoder_layer_norm_eps

    def input_preprocessor(self):
        return self.inner.input_preprocessor()

    def encode_batch(self, batch):
        self.sizes.extend((w, h) for h, w in batch.original_sizes)  # (width, height) as PIL's image.size
        return self.inner.encode_batch(batch)

    def decode_prompts(self, state, boxes=None, **kwargs):
        self.boxes.append(torch.as_tensor(boxes).clone())
        return self.inner.decode_prompts(state, boxes=boxes, **kwargs)


def test_paper_protocol_resizes_inputs_and_returns_masks_by_nearest(model, world, tmp_path):
    from PIL import Image
    from pycocotools import mask as mask_utils

    from regionspot.data.coco_json import CocoDetectionDataset
    from regionspot.data.images import load_image

    spy = SizeSpy(model.segmenter)
    options = EvalOptions(methods=("regionspot",), text_cache_dir=False, limit=1, paper_protocol=True)
    summary = evaluate_dataset(world[0], world[1], tmp_path, segmenter=spy, vision_language=model.vision_language,
                               model=model, options=options, show_progress=False)
    # ShapesWorld images are 64x64: detectron2's ResizeShortestEdge(800, 1333) makes them 800x800.
    assert spy.sizes == [(800, 800)]
    record = CocoDetectionDataset(world[0], world[1])[0]
    torch.testing.assert_close(spy.boxes[0], torch.as_tensor(record.boxes, dtype=torch.float32) * 12.5)

    # Independent reference: SAM masks at the 800 scale, torch's legacy nearest back to 64x64.
    resized = load_image(record.path).resize((800, 800), Image.Resampling.BILINEAR)
    seg = model.segmenter.decode_prompts(model.segmenter.encode_image(resized),
                                         boxes=torch.as_tensor(record.boxes, dtype=torch.float32) * 12.5)
    expected = torch.nn.functional.interpolate(seg.masks[:, None].float(), size=(64, 64), mode="nearest")[:, 0].bool()
    stored = store_lib.merge(tmp_path / "predictions").records[0]["segm"]
    got = np.stack([mask_utils.decode(rle) for rle in stored]).astype(bool)
    assert np.array_equal(got, expected.numpy())

    report = (tmp_path / "report.md").read_text()
    assert "paper_protocol: True" in report and "shortest edge 800, long side <= 1333" in report
    assert "nearest-neighbour to the original size (released)" in report
    assert summary.meta["mask_return"].startswith("masks at the input scale")


def test_default_protocol_follows_the_heads_recorded_input_resize(model, world, tmp_path):
    import dataclasses

    spy = SizeSpy(model.segmenter)
    original = model.config.preprocess
    model.config.preprocess = dataclasses.replace(original, eval_resize="shortest-edge", eval_min_size=96, eval_max_size=100)
    try:
        summary = evaluate(model, world, tmp_path / "head", limit=1)
        evaluate_dataset(world[0], world[1], tmp_path / "override", segmenter=spy, vision_language=model.vision_language,
                         model=model, options=EvalOptions(text_cache_dir=False, limit=1, eval_resize="none"),
                         show_progress=False)
        assert spy.sizes == [(64, 64)]  # the option overrides the head
        spy.sizes.clear()
        evaluate_dataset(world[0], world[1], tmp_path / "head2", segmenter=spy, vision_language=model.vision_language,
                         model=model, options=EvalOptions(text_cache_dir=False, limit=1), show_progress=False)
        assert spy.sizes == [(96, 96)]
    finally:
        model.config.preprocess = original
    assert summary.meta["input_resize"].startswith("shortest edge 96") and not summary.meta["paper_protocol"]
    assert summary.meta["mask_return"].startswith("SAM logits")  # our mask return stays the default
