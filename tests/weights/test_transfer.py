"""One verified, resumable transfer against a loopback server: resume, restart, checksum, 404, web page, refused."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import pytest

from regionspot.errors import DownloadError
from regionspot.testing.release_server import LoopbackServer
from regionspot.weights import transfer
from regionspot.weights.transfer import fetch, git_blob_sha1, looks_like_page

DATA = os.urandom(3 * transfer.CHUNK + 12345)  # several chunks, so "half way" is mid-stream
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def server(tmp_path):
    source = tmp_path / "served" / "blob.bin"
    source.parent.mkdir()
    source.write_bytes(DATA)
    with LoopbackServer(files={"/f/blob.bin": source, "/f/again.bin": source}, pages={"/f/page.bin"}) as srv:
        yield srv


def _ranges(server, path):
    return [r for method, p, r in server.requests if p == path]


def test_a_dropped_connection_is_resumed_with_range_and_verified(server, tmp_path):
    server.drop_once.add("/f/blob.bin")
    resumed = []
    dest = tmp_path / "out" / "blob.bin"
    digests = fetch(f"{server.url}/f/blob.bin", dest, expected={"sha256": SHA, "md5": hashlib.md5(DATA).hexdigest()},
                    progress=False, on_resume=resumed.append)
    assert dest.read_bytes() == DATA and digests["sha256"] == SHA
    half = len(DATA) // 2
    assert _ranges(server, "/f/blob.bin") == [None, f"bytes={half}-"] and resumed == [half]
    assert not dest.with_name("blob.bin.part").exists()


def test_an_interrupted_run_leaves_a_part_that_the_next_run_resumes(server, tmp_path):
    server.drop_once.add("/f/blob.bin")
    dest = tmp_path / "blob.bin"
    with pytest.raises(DownloadError, match=r"stopped at \d+ of \d+ bytes .*run the same command again to resume"):
        fetch(f"{server.url}/f/blob.bin", dest, expected={"sha256": SHA}, progress=False, attempts=1)
    part = dest.with_name("blob.bin.part")
    assert part.stat().st_size == len(DATA) // 2 and not dest.exists()
    fetch(f"{server.url}/f/blob.bin", dest, expected={"sha256": SHA}, progress=False)
    assert dest.read_bytes() == DATA and _ranges(server, "/f/blob.bin")[-1] == f"bytes={len(DATA) // 2}-"


def test_a_server_that_ignores_range_restarts_the_file_cleanly(server, tmp_path):
    dest = tmp_path / "again.bin"
    dest.with_name("again.bin.part").write_bytes(b"x" * 1000)  # not even a prefix of the file
    server.ignore_range.add("/f/again.bin")
    fetch(f"{server.url}/f/again.bin", dest, expected={"sha256": SHA}, progress=False)
    assert dest.read_bytes() == DATA and _ranges(server, "/f/again.bin") == ["bytes=1000-"]


def test_a_wrong_checksum_is_refused_and_nothing_is_kept(server, tmp_path):
    dest = tmp_path / "blob.bin"
    with pytest.raises(DownloadError, match=r"Checksum mismatch for blob.bin: sha256 is .* expected 0000.*deleted"):
        fetch(f"{server.url}/f/blob.bin", dest, expected={"sha256": "0" * 64}, progress=False)
    assert not dest.exists() and not dest.with_name("blob.bin.part").exists()


def test_a_404_is_one_line_naming_the_url_and_the_fix(server, tmp_path):
    with pytest.raises(DownloadError) as error:
        fetch(f"{server.url}/f/gone.bin", tmp_path / "gone.bin", progress=False, fix="use --from DIR")
    assert str(error.value) == f"{server.url}/f/gone.bin answered 404 Not Found for gone.bin: use --from DIR."
    assert not (tmp_path / "gone.bin").exists() and not (tmp_path / "gone.bin.part").exists()


def test_a_web_page_instead_of_the_file_is_refused_with_the_browser_fix(server, tmp_path):
    with pytest.raises(DownloadError, match=r"answered with a web page instead of page.bin: open it in a browser\.$"):
        fetch(f"{server.url}/f/page.bin", tmp_path / "page.bin", progress=False, page_fix="open it in a browser")
    assert not (tmp_path / "page.bin").exists() and not (tmp_path / "page.bin.part").exists()


def test_pages_are_recognised_by_type_or_first_bytes():
    assert looks_like_page("text/html; charset=utf-8", b"\x80\x02")
    assert looks_like_page("application/octet-stream", b"\n  <!DOCTYPE html><html>")
    assert looks_like_page(None, b"<html lang='en'>")
    assert not looks_like_page("application/octet-stream", b"PK\x03\x04")


def test_connection_refused_is_one_line(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DownloadError, match=r"^Cannot reach 127\.0\.0\.1:\d+ for x\.bin \(.*refused.*\): check the connection"):
        fetch(f"http://127.0.0.1:{port}/x.bin", tmp_path / "x.bin", progress=False, timeout=2)


def test_too_little_disk_space_is_said_before_the_transfer(server, tmp_path, monkeypatch):
    monkeypatch.setattr(transfer.shutil, "disk_usage", lambda path: type("U", (), {"free": 10})())
    with pytest.raises(DownloadError, match=r"No space left on the disk of .* \(the file is \d+ MB\)"):
        fetch(f"{server.url}/f/blob.bin", tmp_path / "blob.bin", size=len(DATA) * 10**3, progress=False)
    assert server.requests == []


def test_git_blob_ids_are_gits():
    assert git_blob_sha1(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"  # `git hash-object` of "hello\n"


def test_a_finished_part_is_verified_when_the_server_has_nothing_more(server, tmp_path):
    dest = tmp_path / "blob.bin"
    Path(str(dest) + ".part").write_bytes(DATA)  # the whole file, never renamed (killed just before)
    fetch(f"{server.url}/f/blob.bin", dest, expected={"sha256": SHA}, progress=False)
    assert dest.read_bytes() == DATA and _ranges(server, "/f/blob.bin") == [f"bytes={len(DATA)}-"]


def test_a_finished_file_is_kept_when_it_matches_and_replaced_when_not(server, tmp_path):
    dest = tmp_path / "blob.bin"
    fetch(f"{server.url}/f/blob.bin", dest, expected={"sha256": SHA}, progress=False)
    fetch(f"{server.url}/f/blob.bin", dest, expected={"sha256": SHA}, progress=False)
    assert len(_ranges(server, "/f/blob.bin")) == 1
    dest.write_bytes(b"damaged")
    fetch(f"{server.url}/f/blob.bin", dest, expected={"sha256": SHA}, progress=False)
    assert dest.read_bytes() == DATA and len(_ranges(server, "/f/blob.bin")) == 2
