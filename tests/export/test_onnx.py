"""`regionspot export onnx` on the tiny random model: each graph against the PyTorch module it came from, at
several sizes of every dynamic axis, its metadata, and the refusals of graphs that do not belong together.

Tolerance: 1e-4 absolute on tokens, IoU, mask logits, feature maps, text features and logits (values of order
1-10). ONNX Runtime runs the same float32 operations as PyTorch, but fuses and orders some of them differently
(LayerNorm, GELU, attention's softmax, matmul blocking), so results differ by float32 rounding — measured up to
~1.2e-5 here — never by a different computation, which would show as errors of order 1e-2 or more.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

from regionspot.cli import app
from regionspot.errors import OnnxModelError
from regionspot.export.format import FORMAT, GRAPHS, OPSET
from regionspot.model import RegionSpot
from regionspot.runtime.graphs import OnnxGraphs

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def exported(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "tiny-onnx"
    result = CliRunner().invoke(app, ["export", "onnx", "--head", str(tiny_model_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "5 ONNX graphs" in result.output
    return out


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return RegionSpot.from_pretrained(tiny_model_dir, device="cpu")


def run(folder, name, *inputs):
    session = ort.InferenceSession(str(folder / GRAPHS[name].file), providers=["CPUExecutionProvider"])
    return session.run(None, {key: value.numpy() for key, value in zip(GRAPHS[name].inputs, inputs)})


def close(onnx_output, torch_output):
    np.testing.assert_allclose(onnx_output, torch_output.detach().numpy(), rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("batch", [1, 3])
def test_image_graphs_match_torch(exported, model, batch):
    side, size = model.segmenter.preprocess.pad_size, model.vision_language.image_size
    pixels = torch.randn(batch, 3, side, side, generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        close(run(exported, "sam_image_encoder", pixels)[0], model.segmenter.model.get_image_embeddings(pixels))
    clip = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(batch))
    close(run(exported, "clip_feature_map", clip)[0], model.vision_language.feature_map(clip))


@pytest.mark.parametrize("kind,count", [("boxes", 1), ("boxes", 17), ("points", 1), ("points", 5), ("both", 4)])
def test_prompt_graph_matches_the_segmenter(exported, model, kind, count):
    """Tokens, IoU and low-resolution mask logits of SamSegmenter.decode_prompts, for boxes, points and both."""
    from regionspot.runtime.prompts import sam_prompts, validate_boxes

    segmenter, image = model.segmenter, np.random.default_rng(count).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    state = segmenter.encode_image(image)
    rng = np.random.default_rng(count)
    corner = rng.uniform(0, 50, (count, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(10, 60, (count, 2))], 1).astype(np.float32)
    boxes = boxes if kind != "points" else None
    points = rng.uniform(0, 89, (count, 2, 2)).astype(np.float32) if kind != "boxes" else None
    labels = np.tile(np.array([[1, 0]]), (count, 1)) if points is not None else None
    expected = segmenter.decode_prompts(state, boxes=None if boxes is None else torch.from_numpy(boxes),
                                        points=None if points is None else torch.from_numpy(points),
                                        point_labels=None if labels is None else torch.from_numpy(labels), masks="low_res")
    coords, codes = sam_prompts(None if boxes is None else validate_boxes(boxes, 90, 120), points, labels,
                                (90, 120), tuple(state.reshaped_size))
    tokens, iou, masks = run(exported, "sam_prompt", state.embeddings, torch.from_numpy(coords), torch.from_numpy(codes))
    close(tokens, expected.tokens)
    close(iou, expected.iou)
    close(masks, expected.low_res_masks)


def test_text_graph_matches_the_adapter(exported, model):
    vl = model.vision_language
    prompts = ["a photo of a red circle.", "a blue square", "x"]
    ids = vl.tokenize(prompts)
    length = max(map(len, ids))
    input_ids = torch.full((len(ids), length), vl.tokenizer.pad_token_id)
    mask = torch.zeros(len(ids), length, dtype=torch.long)
    for row, value in enumerate(ids):
        input_ids[row, : len(value)], mask[row, : len(value)] = torch.tensor(value), 1
    close(run(exported, "text_encoder", input_ids, mask)[0], vl.encode_text(prompts, normalize=False))


@pytest.mark.parametrize("regions,names", [(1, 1), (9, 80)])
def test_head_graph_matches_the_model(exported, model, regions, names):
    generator = torch.Generator().manual_seed(regions)
    head = model.config.head
    tokens = torch.randn(1, regions, head.token_dim, generator=generator)
    feature_map = torch.randn(1, model.vision_language.num_tokens, head.feature_dim, generator=generator)
    text = torch.nn.functional.normalize(torch.randn(names, head.embed_dim, generator=generator), dim=-1)
    logits, embeddings = run(exported, "head", tokens, feature_map, text)
    with torch.no_grad():
        expected = model(tokens, feature_map, text)
    close(logits, expected.logits)
    close(embeddings, expected.region_embeddings)


def test_every_graph_carries_format_version_and_the_heads_preprocessing(exported, model):
    keys = set()
    for name, spec in GRAPHS.items():
        graph = onnx.load(str(exported / spec.file), load_external_data=False)
        meta = {p.key: p.value for p in graph.metadata_props}
        assert meta["regionspot.format"] == str(FORMAT) and meta["regionspot.graph"] == name
        assert meta["regionspot.version"] == __import__("regionspot").__version__
        assert graph.opset_import[0].version == OPSET
        config = json.loads(meta["regionspot.config"])
        assert config["regionspot_config"]["preprocess"] == model.config.to_dict()["preprocess"]
        assert config["logit_scale"] == pytest.approx(model.logit_scale)
        keys.add(meta["regionspot.model"])
    assert len(keys) == 1


def _edit_metadata(path, **values):
    graph = onnx.load(str(path))
    for prop in graph.metadata_props:
        if prop.key in values:
            prop.value = values[prop.key]
    onnx.save(graph, str(path))


def test_a_graph_of_another_model_or_format_is_refused_in_one_line(exported, tmp_path):
    import shutil

    folder = tmp_path / "mixed"
    shutil.copytree(exported, folder)
    OnnxGraphs(folder)  # the folder as exported loads
    _edit_metadata(folder / "head.onnx", **{"regionspot.model": "0" * 32})
    with pytest.raises(OnnxModelError, match=r"another model .*regionspot export onnx") as error:
        OnnxGraphs(folder)
    assert "\n" not in str(error.value)
    shutil.copyfile(exported / "head.onnx", folder / "head.onnx")
    _edit_metadata(folder / "sam_prompt.onnx", **{"regionspot.format": "99", "regionspot.version": "9.0.0"})
    with pytest.raises(OnnxModelError, match=r"regionspot 9\.0\.0 in ONNX format 99.*export it again"):
        OnnxGraphs(folder)
    (folder / "sam_prompt.onnx").unlink()
    with pytest.raises(OnnxModelError, match="sam_prompt.onnx is missing"):
        OnnxGraphs(folder)


def test_export_cli_refuses_bad_options_in_one_line(tmp_path):
    target = tmp_path / "file.onnx"
    target.write_text("")
    result = CliRunner().invoke(app, ["export", "onnx", "--out", str(target)])
    assert result.exit_code == 2 and "is a file; pass a folder" in result.output
    result = CliRunner().invoke(app, ["export", "onnx", "--out", str(tmp_path / "x"), "--model", "BB", "--head", "h"])
    assert result.exit_code == 2 and "not both" in result.output


def test_sam_encoder_with_a_chunked_bias_keeps_its_dynamic_batch(tiny_model_dir, model, tmp_path, monkeypatch):
    """At full size SAM's global attention builds its bias in bands whose count depends on the batch; a graph
    traced at batch 2 must still run at batch 1 (the export traces one band)."""
    import regionspot.backbones.sam_attention as sam_attention

    monkeypatch.setattr(sam_attention, "CHUNK_ELEMENTS", 64)  # many bands even for the tiny SAM
    out = tmp_path / "chunked"
    result = CliRunner().invoke(app, ["export", "onnx", "--head", str(tiny_model_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    side = model.segmenter.preprocess.pad_size
    pixels = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        close(run(out, "sam_image_encoder", pixels)[0], model.segmenter.model.get_image_embeddings(pixels))


def test_models_the_export_does_not_support_are_refused_in_one_line_naming_them():
    from types import SimpleNamespace

    import pytest

    from regionspot.errors import CheckpointError
    from regionspot.export.onnx import check_exportable

    def model(segmenter_type, vl):
        return SimpleNamespace(segmenter=SimpleNamespace(model=SimpleNamespace(config=SimpleNamespace(model_type=segmenter_type))),
                               vision_language=vl)

    siglip = SimpleNamespace(has_class_token=False, model=SimpleNamespace(config=SimpleNamespace(model_type="siglip2")))
    for segmenter_type, vl, word in (("sam2", siglip, "sam2"), ("sam", siglip, "siglip2")):
        with pytest.raises(CheckpointError, match=word) as refused:
            check_exportable(model(segmenter_type, vl))
        assert "\n" not in str(refused.value) and "PyTorch backend" in str(refused.value)
