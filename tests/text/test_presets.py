import pytest

from regionspot.errors import VocabularyError
from regionspot.text.presets import PRESETS, preset_vocabulary, read_names_file, split_names
from regionspot.text.templates import validate_vocabulary


def test_presets_are_complete_and_usable():
    sizes = {"coco": 80, "lvis": 1203, "shapesworld": 64}
    assert set(PRESETS) == set(sizes)
    for name, size in sizes.items():
        names = preset_vocabulary(name)
        assert len(names) == size == len(set(names))
        for style in ("clean", "raw"):
            assert len(validate_vocabulary(names, style)) == size  # no duplicates after cleaning either
    assert preset_vocabulary("coco")[:3] == ["person", "bicycle", "car"]
    assert "bat_(animal)" in preset_vocabulary("lvis")
    with pytest.raises(VocabularyError, match="Unknown vocabulary preset"):
        preset_vocabulary("imagenet")


def test_names_files_and_typed_names(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("# my classes\ncat\n\n  dog  \n   # indented comment\n")
    assert read_names_file(path) == ["cat", "dog"]
    with pytest.raises(VocabularyError, match="not found"):
        read_names_file(tmp_path / "missing.txt")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(VocabularyError, match="UTF-8"):
        read_names_file(tmp_path / "binary.txt")
    assert split_names(" cat, dog\nred ring ,, ") == ["cat", "dog", "red ring"]
