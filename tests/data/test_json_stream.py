"""The streaming JSON reader gives what json.load gives, at every block boundary, and one clear line on
malformed files."""

from __future__ import annotations

import json

import pytest

import regionspot.data.json_stream as json_stream
from regionspot.data.json_stream import iter_json_object
from regionspot.errors import RegionSpotError

DOC = {
    "info": {"description": "tiny", "year": 2023, "nested": [1, 2.5, {"a": None}]},
    "images": [{"id": i, "file_name": f"Images/a{i:03d}/x ü {i}.jpg", "width": 640 + i, "height": 480}
               for i in range(7)],
    "empty": [],
    "annotations": [{"id": 10 + i, "image_id": i % 7, "bbox": [1.5, 2, 123456.75, 1e-3], "area": 12345678901234,
                     "iscrowd": i % 2} for i in range(11)],
    "categories": [{"id": 1, "name": "bat_(animal)"}, {"id": 2, "name": "é \"quoted\" \\ name"}],
    "number": 1234567,
}


def _collect(path, keys=("images", "annotations", "categories", "empty")):
    seen: set[str] = set()
    out: dict = {}
    for key, value in iter_json_object(path, keys, seen):
        if key in keys:
            out.setdefault(key, []).append(value)
        else:
            out[key] = value
    return out, seen


@pytest.mark.parametrize("block,ahead", [(3, 1), (7, 5), (64, 16), (1 << 22, 1 << 20)])
@pytest.mark.parametrize("indent", [None, 2])
def test_same_as_json_load_at_every_block_size(tmp_path, monkeypatch, block, ahead, indent):
    monkeypatch.setattr(json_stream, "_BLOCK_CHARS", block)
    monkeypatch.setattr(json_stream, "_AHEAD_CHARS", ahead)
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(DOC, indent=indent, ensure_ascii=False), encoding="utf-8")
    out, seen = _collect(path)
    assert seen == set(DOC)
    assert "empty" not in out  # an empty array yields nothing, but its key is seen
    expected = {k: v for k, v in DOC.items() if k != "empty"}
    assert out == expected


def test_a_number_split_by_a_block_boundary_is_read_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(json_stream, "_BLOCK_CHARS", 12)
    path = tmp_path / "n.json"
    path.write_text('{"a": 12345678901234567, "b": [1234567890123, 2]}')
    assert list(iter_json_object(path, ("b",))) == [("a", 12345678901234567), ("b", 1234567890123), ("b", 2)]


@pytest.mark.parametrize("text,where", [
    ('{"images": [{"id": 1}, {"id": 2}', "end of the file"),
    ('{"images": [{"id": 1} {"id": 2}]}', "expected ','"),
    ('{"images": []} trailing', "extra data"),
    ('[1, 2]', "expected '{'"),
    ('{"images": [{"id": 1,}]}', "not valid JSON"),
    ('{"a": tru}', "not valid JSON"),
    ('', "expected '{'"),
])
def test_malformed_files_give_one_line(tmp_path, monkeypatch, text, where):
    monkeypatch.setattr(json_stream, "_BLOCK_CHARS", 5)
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(RegionSpotError, match="not valid JSON") as info:
        list(iter_json_object(path, ("images",)))
    assert where in str(info.value) and "\n" not in str(info.value)


def test_not_utf8_and_missing_files(tmp_path):
    path = tmp_path / "latin.json"
    path.write_bytes(b'{"a": "\xff\xfe"}')
    with pytest.raises(RegionSpotError, match="not UTF-8"):
        list(iter_json_object(path, ()))
    with pytest.raises(RegionSpotError, match="Cannot read"):
        list(iter_json_object(tmp_path / "nope.json", ()))
