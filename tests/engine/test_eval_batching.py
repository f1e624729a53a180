"""Batched evaluation and worker processes give the plain loop's predictions, on ShapesWorld val images of
the CI subset with the embedded (trained) models: the same top-1 class per region and the same AP; a
corrupt image in a batch fails alone; a stopped or killed run resumes to the same numbers."""

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from regionspot.engine.config import EvalOptions
from regionspot.engine.evaluate import evaluate_dataset
from regionspot.evaluation import predictions as store_lib
from regionspot.shapesworld.guard import regenerate_ci_subset

NUM_IMAGES = 6  # batches of 4: one full batch and one partial


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The first CI-subset val images (seed and world of the shipped metrics.json), regenerated."""
    info = regenerate_ci_subset(tmp_path_factory.mktemp("ci_subset"), NUM_IMAGES)
    return info["val_json"], info["image_root"]


@pytest.fixture(scope="module")
def model():
    from regionspot.model import RegionSpot

    return RegionSpot.from_pretrained()


def evaluate(model, world, out, segmenter=None, on_image=None, **kw):
    options = EvalOptions(methods=("regionspot",), text_cache_dir=False, **kw)
    return evaluate_dataset(world[0], world[1], out, segmenter=segmenter or model.segmenter,
                            vision_language=model.vision_language, model=model, options=options, on_image=on_image,
                            show_progress=False)


def top1(out) -> dict[tuple[int, int], tuple[int, float]]:
    """(image id, box index) -> (category id, probability) of each region's best stored pair."""
    best: dict[tuple[int, int], tuple[int, float]] = {}
    for record in store_lib.merge(Path(out) / "predictions").records:
        for box, category, score in record["methods"]["regionspot"]:
            key = (record["image_id"], box)
            if key not in best or score > best[key][1]:
                best[key] = (category, score)
    return best


def aps(summary) -> dict[str, float]:
    return {t: r.AP for t, r in summary.results["RegionSpot"].items()}


@pytest.fixture(scope="module")
def plain(model, world, tmp_path_factory):
    """The plain path: one image per encoder call, decoded in this process."""
    out = tmp_path_factory.mktemp("plain")
    summary = evaluate(model, world, out, batch_size=1, workers=0)
    assert summary.meta["this_run"]["scored"] == NUM_IMAGES
    return summary, top1(out)


@pytest.mark.parametrize(("batch_size", "workers"), [(4, 0), (1, 2), (4, 2)])
def test_batches_and_workers_give_the_plain_top1_and_ap(model, world, plain, tmp_path, batch_size, workers):
    reference, reference_top1 = plain
    summary = evaluate(model, world, tmp_path, batch_size=batch_size, workers=workers)
    got = top1(tmp_path)
    assert len(got) == len(reference_top1) >= 2 * NUM_IMAGES
    assert {k: c for k, (c, _) in got.items()} == {k: c for k, (c, _) in reference_top1.items()}
    np.testing.assert_allclose([s for _, s in got.values()], [s for _, s in reference_top1.values()], atol=1e-5)
    assert set(aps(summary)) == {"bbox", "segm"} and aps(reference)["bbox"] > 0
    for iou_type, ap in aps(summary).items():
        assert abs(ap - aps(reference)[iou_type]) <= 1e-6
    assert summary.meta["options"]["batch_size"] == batch_size and summary.meta["options"]["workers"] == workers
    if batch_size == 1:  # the same computation, prepared in other processes: the very same lines
        assert store_lib.merge(tmp_path / "predictions").records == store_lib.merge(
            reference.out_dir / "predictions").records


def test_the_device_mask_path_stores_the_same_lines(model, world, tmp_path, monkeypatch):
    """A GPU's mask path (full-size masks a chunk of regions at a time on the device, runs found there,
    crops for clip-mask), forced on the CPU in chunks of 2 regions, stores the CPU path's very lines."""
    from regionspot.engine import eval_loop
    from regionspot.masks import regions as masks_lib

    def run(out):
        options = EvalOptions(methods=("regionspot", "clip-mask"), text_cache_dir=False, batch_size=4, workers=0)
        evaluate_dataset(world[0], world[1], out, segmenter=model.segmenter, vision_language=model.vision_language,
                         model=model, options=options, show_progress=False)
        return store_lib.merge(Path(out) / "predictions").records

    calls = []
    host_path = eval_loop.region_masks

    def spy(*args, **kwargs):
        calls.append(kwargs.get("on_device"))
        return host_path(*args, **kwargs)

    monkeypatch.setattr(eval_loop, "region_masks", spy)
    reference = run(tmp_path / "host")
    assert calls and set(calls) == {None}  # the logits are on the CPU: LowResMasks, one region at a time
    monkeypatch.setattr(eval_loop, "region_masks", functools.partial(host_path, on_device=True))
    monkeypatch.setattr(masks_lib, "MASK_CHUNK_PIXELS", 2 * model.segmenter.preprocess.pad_size**2)
    records = run(tmp_path / "device")
    assert records == reference and all(r["segm"] for r in records)
    assert any(len(r["methods"]["clip-mask"]) for r in records)


def test_a_corrupt_image_in_a_batch_fails_alone(model, world, plain, tmp_path):
    data = json.loads(Path(world[0]).read_text())
    root = tmp_path / "images"
    shutil.copytree(world[1], root)
    bad = data["images"][1]
    path = root / bad["file_name"]
    path.write_bytes(path.read_bytes()[:100])  # a truncated file: the header reads, the pixels do not
    summary = evaluate(model, (world[0], str(root)), tmp_path / "out", batch_size=4, workers=2)
    assert summary.meta["num_images_failed"] == 1 and summary.meta["num_images_scored"] == NUM_IMAGES - 1
    (failure,) = summary.meta["failed_images"]
    assert failure["image_id"] == bad["id"] and "\n" not in failure["reason"] and failure["reason"]
    got = top1(tmp_path / "out")
    expected = {k: v[0] for k, v in plain[1].items() if k[0] != bad["id"]}
    assert {k: c for k, (c, _) in got.items()} == expected


class Stop(Exception):
    pass


class FailingSecondBatch:
    """Forwards to a segmenter; its second ``encode_batch`` raises (a crash while the first batch is
    computed but not stored yet)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0
        self.model_id, self.token_dim = inner.model_id, inner.token_dim
        self.decoder_layer_norm_eps = inner.decoder_layer_norm_eps

    def input_preprocessor(self):
        return self.inner.input_preprocessor()

    def encode_batch(self, batch):
        self.calls += 1
        if self.calls == 2:
            raise Stop
        return self.inner.encode_batch(batch)

    def decode_prompts(self, state, **kwargs):
        return self.inner.decode_prompts(state, **kwargs)


def test_a_stopped_run_keeps_what_it_computed_and_resumes_to_the_same_numbers(model, world, plain, tmp_path):
    ids = [image["id"] for image in json.loads(Path(world[0]).read_text())["images"]]
    with pytest.raises(Stop):
        evaluate(model, world, tmp_path, segmenter=FailingSecondBatch(model.segmenter), batch_size=2, workers=2)
    assert store_lib.done_image_ids(tmp_path / "predictions") == set(sorted(ids)[:2])
    finished = []

    def stop_after_three(image_id):
        finished.append(image_id)
        if len(finished) == 3:
            raise Stop

    with pytest.raises(Stop):
        evaluate(model, world, tmp_path, on_image=stop_after_three, batch_size=4, workers=2)
    assert len(store_lib.done_image_ids(tmp_path / "predictions")) == 2 + 3
    summary = evaluate(model, world, tmp_path, batch_size=4, workers=2)
    assert summary.meta["this_run"]["scored"] == 1 and summary.meta["this_run"]["skipped_done"] == NUM_IMAGES - 1
    assert {k: c for k, (c, _) in top1(tmp_path).items()} == {k: c for k, (c, _) in plain[1].items()}
    assert all(abs(ap - aps(plain[0])[t]) <= 1e-6 for t, ap in aps(summary).items())


KILLED_RUN = """
import os, signal, sys
from regionspot.engine.config import EvalOptions
from regionspot.engine.evaluate import evaluate_dataset
from regionspot.model import RegionSpot

done = []
def kill_after_three(image_id):
    done.append(image_id)
    if len(done) == 3:
        os.kill(os.getpid(), signal.SIGKILL)

model = RegionSpot.from_pretrained()
evaluate_dataset(sys.argv[1], sys.argv[2], sys.argv[3], segmenter=model.segmenter, vision_language=model.vision_language,
                 model=model, options=EvalOptions(text_cache_dir=False, batch_size=4, workers=2), on_image=kill_after_three,
                 show_progress=False)
"""


def test_a_killed_run_resumes_to_the_same_numbers(model, world, plain, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", KILLED_RUN, world[0], world[1], str(tmp_path)], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == -9, result.stderr[-2000:]
    assert len(store_lib.done_image_ids(tmp_path / "predictions")) == 3
    summary = evaluate(model, world, tmp_path, batch_size=4, workers=2)
    assert summary.meta["this_run"]["scored"] == NUM_IMAGES - 3
    assert {k: c for k, (c, _) in top1(tmp_path).items()} == {k: c for k, (c, _) in plain[1].items()}
    assert all(abs(ap - aps(plain[0])[t]) <= 1e-6 for t, ap in aps(summary).items())

