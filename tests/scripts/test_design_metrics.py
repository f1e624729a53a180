"""scripts/design_metrics.py measures what it says, on a small tree written here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

MODEL = '''
from regionspot.engine.train import collate
from regionspot.modeling.head import region_text_logits


def forward(self, tokens, feature_map, text):
    regions = self.head(tokens, feature_map).region_embeddings
    return region_text_logits(regions, text, self.logit_scale)


def primitive(regions, text, logit_scale):
    return logit_scale * regions @ text.t()
'''
LOADER = '''
from torch.utils.data import DataLoader


def batches(dataset, size):
    return DataLoader(dataset, batch_size=size)
'''


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("design_metrics", ROOT / "scripts" / "design_metrics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tree(tmp_path):
    package = tmp_path / "regionspot"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "data" / "__init__.py").write_text("")
    (package / "model.py").write_text(MODEL)
    (package / "data" / "loader.py").write_text(LOADER)
    body = "\n".join(f"    x = {i}" for i in range(90))
    (package / "data" / "long.py").write_text(f"def long():\n{body}\n" + "\n" * 320)
    return tmp_path


def test_upward_imports_scoring_loaders_and_sizes(script, tree):
    files = script.sources(tree)
    upward = "\n".join(script.upward_imports(files))
    assert "library -> applications: **1**" in upward and "`regionspot.model` -> `regionspot.engine.train`" in upward
    scoring = script.scoring_copies(tree, files)
    assert "functions computing it: **1**" in scoring and "- regionspot/model.py:6 (forward)" in scoring
    assert "- regionspot/model.py:12 (primitive)" in scoring
    loaders = script.dataloader_users(tree, files)
    assert "- regionspot/data/loader.py:6" in loaders and any("does not exist" in line for line in loaders)
    sizes = script.sizes(tree, files)
    assert "## (e) Modules over 400 lines: **1**" in sizes and "## (f) Functions over 80 lines: **1**" in sizes
    assert "- regionspot/data/long.py:1 long: 91" in sizes


def test_options_are_counted_where_they_are_spelled(script, tree):
    (tree / "regionspot" / "data" / "opts.py").write_text(
        'class Options:\n    iou_types: tuple = ("bbox",)\n\n\ndef run(iou_types):\n    return Options(iou_types=iou_types)\n')
    rows = script.option_table(ROOT, script.sources(tree))
    row = next(line for line in rows if line.startswith("| eval | `iou_types` |"))
    assert row == "| eval | `iou_types` | 4 | 1 | 4 | 3 |"
