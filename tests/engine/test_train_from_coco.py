"""From a COCO file to a head: a few ShapesWorld images, the embedded backbones, a handful of steps."""

from __future__ import annotations

import json

import pytest
import torch

from regionspot.checkpoint import load_head_checkpoint
from regionspot.engine.train_from_coco import CocoTrainOptions, model_section, train_from_coco
from regionspot.errors import ConfigError
from regionspot.inference.predictor import RegionSpotPredictor
from regionspot.model import RegionSpot
from regionspot.registry import list_pretrained


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from regionspot.shapesworld.generate import generate_shapesworld

    root = tmp_path_factory.mktemp("sw")
    generate_shapesworld(root, num_train=4, num_val=2, seed=0, image_size=96, progress=False)
    return root


def _options(world, out, **kw):
    return CocoTrainOptions(data=world / "annotations" / "train.json", images=world,
                            val=world / "annotations" / "val.json", out=out, show_progress=False, **kw)


@pytest.mark.filterwarnings("ignore::regionspot.engine.collapse.CollapseWarning")
def test_coco_to_head_predicts_and_a_rerun_skips_finished_stages(world, tmp_path):
    lines: list[str] = []
    out = tmp_path / "run"
    result = train_from_coco(_options(world, out, overrides=["max_iters=4"]), log=lines.append)
    assert result.head == out / "head.safetensors" and result.head.is_file()
    stages = [line.split(":")[0] for line in lines if not line.startswith("collapse check")]
    assert stages == ["recipe", "cache", "train", "train", "eval", "calibrate"]
    assert (result.warning in lines) if result.warning else not any("collapse" in line for line in lines)
    assert "4 train images -> lr 0.0003, batch 4, 4 steps" in lines[0]
    assert result.ap is not None and result.crop_ap is not None and 0 <= result.ap <= 100
    _, config, meta = load_head_checkpoint(result.head)
    assert meta["steps"] == 4
    assert config.display_temperature == pytest.approx(result.stages["calibrate"]["metrics"]["temperature"])
    assert config.segmenter == "shapesworld" and config.vision_language == "shapesworld"

    names = [n for n in result.vocabulary.read_text().splitlines() if n]
    assert names == [c["name"] for c in json.loads((world / "annotations" / "train.json").read_text())["categories"]]
    predictor = RegionSpotPredictor(RegionSpot.from_pretrained(str(result.head), device="cpu"))
    image = sorted((world / "val").iterdir())[0]
    predictor.set_image(str(image))
    predictor.set_vocabulary(names)
    out_pred = predictor.predict(boxes=[[10, 10, 60, 60]], top_k=1, return_masks=False)
    assert len(out_pred.labels) == 1 and out_pred.labels[0] in names

    lines.clear()
    again = train_from_coco(_options(world, out, overrides=["max_iters=4"]), log=lines.append)
    assert [again.stages[s]["ran"] for s in ("cache", "eval", "calibrate")] == [False, False, False]
    assert not again.stages["train"]["metrics"]["trained_now"]
    assert any("is finished (step 4 of 4)" in line for line in lines)
    _, config_again, _ = load_head_checkpoint(again.head)
    assert config_again.display_temperature == config.display_temperature  # the calibrated head is kept

    lines.clear()
    longer = train_from_coco(_options(world, out, overrides=["max_iters=6"]), log=lines.append)
    assert any("resuming from step 4 of 6" in line for line in lines)
    assert longer.stages["train"]["metrics"]["steps"] == 6
    assert longer.stages["eval"]["ran"] and longer.stages["calibrate"]["ran"]  # a new head is evaluated again


@pytest.mark.filterwarnings("ignore::regionspot.engine.collapse.CollapseWarning")
@pytest.mark.filterwarnings("ignore::regionspot.engine.collapse.CollapseWarning")
def test_a_folder_holding_a_cache_of_other_data_is_refused(world, tmp_path):
    out = tmp_path / "run"
    train_from_coco(_options(world, out, overrides=["max_iters=1"]))
    other = CocoTrainOptions(data=world / "annotations" / "val.json", images=world, out=out, show_progress=False,
                             overrides=["max_iters=1"])
    with pytest.raises(ConfigError, match="cache of other data"):
        train_from_coco(other)


@pytest.mark.filterwarnings("ignore::regionspot.engine.collapse.CollapseWarning")
def test_init_head_starts_from_its_weights_and_keeps_its_architecture(world, tmp_path):
    shipped = list_pretrained()["shapesworld"].head
    result = train_from_coco(CocoTrainOptions(data=world / "annotations" / "train.json", images=world,
                                              out=tmp_path / "ft", init_head=shipped, show_progress=False,
                                              overrides=["max_iters=2", "lr=0", "weight_decay=0"]))
    assert set(result.stages) == {"cache", "train"}  # no val: no eval, no calibration
    start, start_config, _ = load_head_checkpoint(shipped)
    state, config, _ = load_head_checkpoint(result.head)
    assert config.head == start_config.head
    assert all(torch.equal(state[k], start[k]) for k in start)  # lr 0: the head is exactly the one given

    moved = train_from_coco(CocoTrainOptions(data=world / "annotations" / "train.json", images=world,
                                             out=tmp_path / "ft2", init_head=shipped, show_progress=False,
                                             overrides=["max_iters=2", "lr=1e-3"]))
    state2, _, _ = load_head_checkpoint(moved.head)
    assert any(not torch.equal(state2[k], start[k]) for k in start)


def test_backbones_default_to_the_init_heads_then_shapesworld(tmp_path):
    opts = CocoTrainOptions(data=tmp_path / "x.json", images=tmp_path)
    model, sam, clip = model_section(opts)
    assert (sam, clip) == ("shapesworld", "shapesworld") and model["head"]["depth"] >= 1
    model, sam, clip = model_section(CocoTrainOptions(data=tmp_path / "x.json", images=tmp_path, sam="some/sam"))
    assert (sam, clip) == ("some/sam", "shapesworld") and "head" not in model  # sizes from the backbones


def test_bad_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="--data"):
        train_from_coco(CocoTrainOptions(data=tmp_path / "missing.json", images=tmp_path))
    (tmp_path / "a.json").write_text("{}")
    with pytest.raises(ConfigError, match="--images"):
        train_from_coco(CocoTrainOptions(data=tmp_path / "a.json", images=tmp_path / "nope"))
    with pytest.raises(ConfigError, match="--init-head"):
        model_section(CocoTrainOptions(data=tmp_path / "a.json", images=tmp_path, init_head=str(tmp_path / "none")))


def test_cli_train_data_needs_images_and_no_config(tmp_path):
    from typer.testing import CliRunner

    from regionspot.cli import app

    (tmp_path / "a.json").write_text("{}")
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--data", str(tmp_path / "a.json")])
    assert result.exit_code == 2 and "--images" in result.output
    result = runner.invoke(app, ["train", "--data", str(tmp_path / "a.json"), "--images", str(tmp_path),
                                 "--config", str(tmp_path / "a.json")])
    assert result.exit_code == 2 and "exclude each other" in result.output
    result = runner.invoke(app, ["train", "--data", str(tmp_path / "a.json"), "--images", str(tmp_path), "--dry-run"])
    assert result.exit_code == 2 and "--dry-run" in result.output
    result = runner.invoke(app, ["train"])
    assert result.exit_code == 2 and "--data" in result.output
