"""The road from the public files to a trained head, in miniature and through the command line:

Objects365 v2 (patch folders), OpenImages (CSVs -> convert) and V3Det (nested paths) made in their
published layouts -> `data check --strict` -> `cache` by two processes each -> `train --dry-run` ->
stage 1 on Objects365 -> stage 2 on all three, each with its own vocabulary, from stage 1's head ->
checkpoint -> `propose` boxes with a tiny OWLv2 -> `eval --boxes` with them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from regionspot.backbones.segmenter import load_segmenter
from regionspot.backbones.vision_language import load_vision_language
from regionspot.cache.store import TokenCache
from regionspot.cli import app
from regionspot.engine.checkpointing import load_training_checkpoint
from regionspot.testing.public_formats import make_objects365, make_openimages, make_v3det

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

CACHE_BY_RANK = """
import sys
from regionspot.cli import app
for dataset, images, out, sam, clip in (line.split("|") for line in sys.argv[1:]):
    app(["cache", "--dataset", dataset, "--images", images, "--out", out, "--sam", sam, "--clip", clip,
         "--shard-size", "1", "--device", "cpu", "--no-flip"], standalone_mode=False)
"""


def _ok(result):
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_sam_dir, tiny_clip_dir):
    root = tmp_path_factory.mktemp("public")
    o365 = make_objects365(root / "objects365", version=2, num_images=3)
    v3det = make_v3det(root / "v3det", num_images=3)
    oi = make_openimages(root / "openimages", num_images=3)
    oi_json = root / "openimages" / "openimages_train.json"
    output = _ok(runner.invoke(app, ["data", "convert", "openimages", "--boxes", str(oi.boxes_csv), "--classes",
                                     str(oi.classes_csv), "--images", str(oi.images_dir), "--out", str(oi_json),
                                     "--image-list", str(oi.image_list), "--workers", "1"]))
    assert "3 images" in output
    sets = {"o365": o365, "openimages": (oi_json, oi.images_dir), "v3det": v3det}
    for path, images in sets.values():
        assert "problems: none" in _ok(runner.invoke(app, ["data", "check", str(path), "--images", str(images),
                                                           "--strict", "--workers", "1"]))
    # Two processes share each cache: rank r writes only its own shards (RANK / WORLD_SIZE).
    jobs = [f"{path}|{images}|{root / 'caches' / name}|{tiny_sam_dir}|{tiny_clip_dir}" for name, (path, images) in sets.items()]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), WORLD_SIZE="2",
               HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c", CACHE_BY_RANK, *jobs], env=dict(env, RANK=str(r), LOCAL_RANK=str(r)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outputs]
    assert "complete" in outputs[0][0] + outputs[1][0]
    return {"root": root, "sets": sets, "sam": str(tiny_sam_dir), "clip": str(tiny_clip_dir)}


def test_caches_were_written_by_both_ranks_with_their_own_vocabularies(world):
    names = {}
    for name in world["sets"]:
        cache = TokenCache(world["root"] / "caches" / name)
        ranks = {s["rank"] for s in cache.manifest["shards"]}
        assert ranks == {0, 1} and cache.num_images == 3
        names[name] = cache.category_names
    assert names["o365"][:2] == ["Person", "Sneakers"] and "Kobe Bryant" in names["v3det"]
    assert set(names["openimages"]) <= {"Person", "Car", "Tree", "Dog", "Horse"}
    assert len({tuple(v) for v in names.values()}) == 3


def _recipes(world) -> tuple[Path, Path]:
    vl, seg = load_vision_language(world["clip"]), load_segmenter(world["sam"])
    root = world["root"]
    stage1 = {
        "model": {"segmenter": world["sam"], "vision_language": world["clip"], "image_size": vl.image_size,
                  "templates": ["a {}."],
                  "head": {"token_dim": seg.token_dim, "feature_dim": vl.feature_dim, "embed_dim": vl.embed_dim,
                           "depth": 1, "num_heads": 2, "ffn_dim": 32, "dropout": 0.0}},
        "datasets": [{"cache": str(root / "caches" / "o365")}],
        "output_dir": str(root / "runs" / "stage1"), "feature_source": "cached", "batch_size": 2,
        "max_iters": 3, "warmup_iters": 1, "lr_steps": [100], "lr": 1e-3, "mixed_precision": "no", "cpu": True,
        "checkpoint_every": 3, "log_every": 1, "text_cache_dir": str(root / "text"), "seed": 2,  # seed 2 draws all three datasets in 9 steps
    }
    (root / "stage1.yaml").write_text(json.dumps(stage1))  # JSON is YAML
    stage2 = {"base": "stage1.yaml", "init_head": str(root / "runs" / "stage1" / "final_head.safetensors"),
              "output_dir": str(root / "runs" / "stage2"), "max_iters": 9,
              "datasets": [{"cache": str(root / "caches" / n), "weight": 1.0} for n in ("o365", "openimages", "v3det")]}
    (root / "stage2.yaml").write_text(json.dumps(stage2))
    return root / "stage1.yaml", root / "stage2.yaml"


def test_dry_run_then_two_stages_then_proposals_and_eval(world, tiny_owlv2_dir):
    stage1, stage2 = _recipes(world)
    _ok(runner.invoke(app, ["train", "--config", str(stage1)]))
    dry = _ok(runner.invoke(app, ["train", "--config", str(stage2), "--dry-run", "--dry-run-steps", "1"]))
    rows = [line for line in dry.splitlines() if "/caches/" in line]
    assert len(rows) == 3 and all("| 33% |" in r for r in rows), dry
    vocabularies = [int(r.split("|")[5].replace(",", "")) for r in rows]
    assert vocabularies == [len(TokenCache(world["root"] / "caches" / n).category_names) for n in ("o365", "openimages", "v3det")]
    assert "dry run ok: 3 steps" in dry and not (world["root"] / "runs" / "stage2").exists()

    first = load_file(str(world["root"] / "runs" / "stage1" / "final_head.safetensors"))
    assert "trained 9 steps" in _ok(runner.invoke(app, ["train", "--config", str(stage2)]))
    run = world["root"] / "runs" / "stage2"
    _, _, state = load_training_checkpoint(sorted((run / "checkpoints").glob("step_*"))[-1])
    assert state["step"] == 9 and all(c > 0 for c in state["sampler"][0]["cursors"])  # every dataset was drawn
    final = load_file(str(run / "final_head.safetensors"))
    assert set(final) == set(first) and any(not torch.equal(final[k], first[k]) for k in final)

    val_json, val_images = make_objects365(world["root"] / "val", version=1, num_images=3, seed=7)
    boxes = world["root"] / "owl_boxes.json"
    owl = tiny_owlv2_dir
    _ok(runner.invoke(app, ["propose", "--data", str(val_json), "--images", str(val_images), "--out", str(boxes),
                            "--detector", str(owl), "--max-per-image", "8", "--device", "cpu"]))
    entries = json.loads(boxes.read_text())
    assert entries and max(sum(e["image_id"] == i for e in entries) for i in {e["image_id"] for e in entries}) <= 8
    out = world["root"] / "eval"
    report = _ok(runner.invoke(app, ["eval", "--data", str(val_json), "--images", str(val_images), "--boxes", str(boxes),
                                     "--head", str(run / "final_head.safetensors"), "--iou-types", "bbox",
                                     "--out", str(out), "--device", "cpu", "--text-cache-dir", str(world["root"] / "text")]))
    meta = json.loads((out / "report.json").read_text())["meta"]
    assert "| RegionSpot | owl_boxes.json |" in report and meta["num_images_scored"] == 3
    assert meta["detections"]["read"] == len(entries) and meta["this_run"]["boxes"] == meta["detections"]["kept"] > 0
