"""The sources table: the published locations and checksums, and the JSON form that replaces it."""

from __future__ import annotations

import base64
import json

import pytest

from regionspot.config import RELEASED_VARIANTS, VARIANTS
from regionspot.errors import DownloadError
from regionspot.weights.sources import BUILTIN, Catalog, load_catalog, onedrive_direct


def test_every_variant_has_sources_matching_its_config():
    assert set(BUILTIN.models) == set(RELEASED_VARIANTS)  # the newer-backbone variants have no released heads
    for name, source in BUILTIN.models.items():
        assert source.clip.repo == VARIANTS[name].vision_language and source.image_size == VARIANTS[name].image_size
        assert source.head.page.startswith("https://1drv.ms/u/s!") and source.head.sha256 is None  # none published
        assert source.head.url == onedrive_direct(source.head.page)


def test_sam_checksums_agree_with_the_published_name():
    sam = BUILTIN.models["BL"].sam
    assert sam.url == "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth"
    assert sam.md5.startswith(sam.filename.rsplit("_", 1)[1].removesuffix(".pth"))  # the name carries the MD5's start
    assert len(sam.sha256) == 64 and sam.checksums() == {"sha256": sam.sha256, "md5": sam.md5}


def test_onedrive_links_are_encoded_as_the_shares_api_asks():
    link = "https://1drv.ms/u/s!AgWqwlwga-5KdKXfWxTuronI6ts?e=aGhZxj"
    token = onedrive_direct(link).split("/shares/u!")[1].split("/")[0]
    assert "=" not in token and "/" not in token and "+" not in token
    assert base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode() == link


def test_a_json_table_replaces_the_builtin_one(tmp_path, monkeypatch):
    path = tmp_path / "sources.json"
    path.write_text(json.dumps(BUILTIN.to_dict()))
    monkeypatch.setenv("REGIONSPOT_SOURCES", str(path))
    assert load_catalog() == BUILTIN
    monkeypatch.delenv("REGIONSPOT_SOURCES")
    assert load_catalog() is BUILTIN
    broken = BUILTIN.to_dict()
    broken["models"]["BB"]["colour"] = "red"
    with pytest.raises(DownloadError, match=r"Sources entry 'BB' is malformed \(unknown keys \['colour'\]\)"):
        Catalog.from_dict(broken)
    path.write_text("{")
    with pytest.raises(DownloadError, match="is not valid JSON"):
        load_catalog(path)
