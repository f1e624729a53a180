"""Display-temperature calibration: fitted on GT boxes, written into the head, used only for display."""

import shutil

import numpy as np
import torch
from typer.testing import CliRunner

from regionspot.checkpoint import load_head_checkpoint
from regionspot.cli import app
from regionspot.data.coco_json import CocoDetectionDataset
from regionspot.inference.predictor import RegionSpotPredictor
from regionspot.model import RegionSpot
from regionspot.modeling.postprocess import fit_temperature
from regionspot.shapesworld.generate import generate_shapesworld
from regionspot.shapesworld.world import WorldConfig


def test_calibrate_writes_the_fitted_temperature_and_changes_only_the_shown_confidence(tiny_model_dir, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    head = model_dir / "head.safetensors"
    world = WorldConfig(colours=("red", "blue"), shapes=("circle", "square", "star"), max_objects=3)
    info = generate_shapesworld(tmp_path / "sw", 0, 6, seed=0, image_size=64, progress=False, world=world)
    before_state, before_config, _ = load_head_checkpoint(head)
    assert before_config.display_temperature == 1.0

    result = CliRunner().invoke(app, ["calibrate", str(head), "--data", info["val_json"], "--images", info["image_root"]])
    assert result.exit_code == 0, result.output
    state, config, _ = load_head_checkpoint(head)
    assert all((state[k] == before_state[k]).all() for k in state)  # weights untouched
    assert "display temperature" in result.output and f"{config.display_temperature:.3f}" in result.output

    # The stored temperature is the NLL-optimal one for these regions, and only the shown confidence uses it.
    dataset = CocoDetectionDataset(info["val_json"], info["image_root"])
    predictor = RegionSpotPredictor(RegionSpot.from_pretrained(head))
    predictor.set_vocabulary(dataset.category_names)
    log_probs, labels, scores, confidence = [], [], [], []
    for index in range(len(dataset)):
        predictor.set_image(dataset.load_image(index))
        out = predictor.predict(boxes=dataset[index].boxes, return_masks=False)
        log_probs.append(np.log(out.probs))
        labels.append(dataset[index].labels)
        scores.append(out.scores)
        confidence.append(out.confidence)
    log_probs, labels = np.concatenate(log_probs), np.concatenate(labels)
    refit = fit_temperature(torch.from_numpy(log_probs), torch.from_numpy(labels))
    assert abs(refit - config.display_temperature) < 1e-3 * max(1.0, refit)
    tempered = torch.softmax(torch.from_numpy(log_probs) / config.display_temperature, -1).max(-1).values.numpy()
    assert np.allclose(np.concatenate(confidence), tempered, atol=1e-5)
    assert np.allclose(np.concatenate(scores), np.exp(log_probs).max(-1), atol=1e-6)  # the paper's softmax, as before
