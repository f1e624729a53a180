"""Exported folders kept in the model home: exported once and reused, a new folder when the weights change; the
int8 copy made once, its quantized graphs carrying the export's metadata."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from regionspot.export.cache import INT8_GRAPHS, cached_export, int8_folder, source_key  # noqa: E402
from regionspot.export.format import GRAPHS  # noqa: E402
from regionspot.runtime.graphs import OnnxGraphs  # noqa: E402


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def head(tiny_model_dir, tmp_path_factory):
    import shutil

    copy = tmp_path_factory.mktemp("model") / "model"
    shutil.copytree(tiny_model_dir, copy)
    return copy / "head.safetensors"


def test_an_export_is_made_once_and_reused(head, home):
    lines = []
    folder = cached_export(head, home=home, log=lines.append)
    assert len(lines) == 1 and folder.parent == home / "onnx" and folder.name == source_key(head)
    assert OnnxGraphs(folder).model  # complete, one model
    again = cached_export(head, home=home, log=lines.append)
    assert again == folder and len(lines) == 1  # reused: nothing exported


def test_changed_weights_get_another_folder(head):
    before = source_key(head)
    stat = head.stat()
    os.utime(head, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert source_key(head) != before
    assert source_key(None) != source_key(head) and source_key(None) == source_key("shapesworld")


def test_int8_copy_is_made_once_and_keeps_the_metadata(head, home):
    folder = cached_export(head, home=home)
    lines = []
    quantized = int8_folder(folder, home=home, log=lines.append)
    assert int8_folder(folder, home=home, log=lines.append) == quantized and len(lines) == 1
    graphs = OnnxGraphs(quantized)
    assert graphs.model == OnnxGraphs(folder).model
    import onnx

    for name in GRAPHS:
        ops = {node.op_type for node in onnx.load(quantized / GRAPHS[name].file).graph.node}
        assert ("MatMulInteger" in ops) == (name in INT8_GRAPHS), name  # int8 products only in the encoders
