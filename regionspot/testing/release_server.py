"""Fabricated release files in the published formats, served over HTTP on 127.0.0.1, for download tests.

``make_release(folder)`` writes a tiny SAM ``.pth`` in segment-anything's key layout, a tiny CLIP as a
Hugging Face repository folder, and a tiny RegionSpot ``.pth`` in the released (detectron2) layout.
``LoopbackServer`` serves them like the real hosts: plain files with HTTP ``Range``, the hub's file listing
(``/api/models/...?blobs=true``, with each file's SHA-256 / git blob id) and ``resolve`` URLs — and can
misbehave on request: drop the connection half way, ignore ``Range``, answer a web page, or 404.
``release_catalog`` is the sources table pointing at it (see ``regionspot.weights.sources``).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import torch

from regionspot.backbones.convert.sam import sam_state_dict_to_official
from regionspot.config import HeadConfig
from regionspot.modeling.head import RegionSpotHead
from regionspot.testing.tiny_clip import save_tiny_clip
from regionspot.testing.tiny_sam import build_tiny_sam, tiny_sam_config
from regionspot.weights.sources import Catalog, HubRepo, ModelSource, RemoteFile
from regionspot.weights.transfer import git_blob_sha1

CLIP_IMAGE_SIZE = 32
HEAD_WIDTHS = (32, 48, 24)  # token_dim (tiny SAM), feature_dim (tiny CLIP vision width), embed_dim (projection)
PAGE = b"<!DOCTYPE html>\n<html><head><title>OneDrive</title></head><body>Sign in to download</body></html>\n"


def write_official_head(path: Path, seed: int = 0) -> Path:
    """A RegionSpot head in the released layout: {'model': {'model.to_clip.*', 'model.decoder.*', 'model.projector.*',
    'model.sam.*', 'model.clip_model.*'}} with the tiny SAM / CLIP widths; random weights."""
    token, feature, embed = HEAD_WIDTHS
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = RegionSpotHead(HeadConfig(token_dim=token, feature_dim=feature, embed_dim=embed, ffn_dim=64))
        state = {f"model.{k}": v.clone() for k, v in head.state_dict().items()}
        state["model.sam.mask_decoder.iou_token.weight"] = torch.randn(1, token)
        grid = CLIP_IMAGE_SIZE // 8
        state["model.clip_model.visual.positional_embedding"] = torch.randn(1 + grid * grid, feature)
        state["model.clip_model.logit_scale"] = torch.tensor(4.6052)
    torch.save({"model": state, "iteration": 449999}, path)
    return path


def make_release(folder: str | Path) -> dict[str, Path]:
    """Write the fabricated release into ``folder``: {"sam": .pth, "head": .pth, "clip": hub repo folder}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sam = folder / "sam_vit_b_01ec64.pth"
    torch.save(sam_state_dict_to_official(build_tiny_sam(seed=3).state_dict()), sam)
    head = write_official_head(folder / "RegionSpot-tiny.pth")
    clip = save_tiny_clip(folder / "clip-repo", image_size=CLIP_IMAGE_SIZE)
    return {"sam": sam, "head": head, "clip": clip}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class LoopbackServer:
    """An HTTP server on 127.0.0.1 (a free port) serving ``files`` (URL path -> file) and hub ``repos``
    (repo id -> folder). Misbehaviour per URL path: ``drop_once`` (send half, then close the connection; once),
    ``ignore_range`` (always answer the whole file with 200), ``pages`` (answer an HTML page). Unknown paths
    get 404. ``requests`` records (method, path, Range header)."""

    files: dict[str, Path] = field(default_factory=dict)
    repos: dict[str, Path] = field(default_factory=dict)
    drop_once: set[str] = field(default_factory=set)
    ignore_range: set[str] = field(default_factory=set)
    pages: set[str] = field(default_factory=set)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def hub_listing(self, repo: str) -> dict:
        root = self.repos[repo]
        siblings = []
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            name = path.relative_to(root).as_posix()
            entry = {"rfilename": name, "size": path.stat().st_size, "blobId": git_blob_sha1(path)}
            if path.suffix in (".safetensors", ".bin"):
                entry["lfs"] = {"sha256": sha256_of(path), "size": path.stat().st_size, "pointerSize": 134}
            siblings.append(entry)
        return {"id": repo, "sha": "0123456789abcdef0123456789abcdef01234567", "siblings": siblings}

    def resolve(self, path: str) -> Path | None:
        if path in self.files:
            return self.files[path]
        match = re.fullmatch(r"/hub/(.+?/.+?)/resolve/[^/]+/(.+)", path)
        if match and match.group(1) in self.repos:
            candidate = self.repos[match.group(1)] / match.group(2)
            return candidate if candidate.is_file() else None
        return None


def _handler(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split("?")[0]
            server.requests.append(("GET", path, self.headers.get("Range")))
            api = re.fullmatch(r"/hub/api/models/(.+?/.+?)/revision/[^/]+", path)
            if api and api.group(1) in server.repos:
                return self._send(200, json.dumps(server.hub_listing(api.group(1))).encode(), "application/json")
            if path in server.pages:
                return self._send(200, PAGE, "text/html; charset=utf-8")
            target = server.resolve(path)
            if target is None:
                return self._send(404, b"Not Found", "text/plain")
            data = target.read_bytes()
            start = 0
            ranged = self.headers.get("Range")
            if ranged and path not in server.ignore_range:
                start = int(re.fullmatch(r"bytes=(\d+)-", ranged).group(1))
                if start >= len(data):
                    return self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{len(data)}"})
            body = data[start:]
            if path in server.drop_once:
                server.drop_once.discard(path)
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return None
            if start:
                return self._send(206, body, "application/octet-stream",
                                  {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"})
            return self._send(200, body, "application/octet-stream")

    return Handler


def release_server(release: dict[str, Path]) -> LoopbackServer:
    """A server for :func:`make_release`'s files, at the paths :func:`release_catalog` names."""
    return LoopbackServer(
        files={"/dl/segment_anything/sam_vit_b_01ec64.pth": release["sam"], "/onedrive/RegionSpot-BB.pth": release["head"],
               "/onedrive/RegionSpot-BL@336.pth": release["head"]},
        repos={"openai/clip-vit-base-patch16": release["clip"], "openai/clip-vit-large-patch14": release["clip"],
               "openai/clip-vit-large-patch14-336": release["clip"]},
        pages={"/onedrive/RegionSpot-BL.pth"},
    )


def release_catalog(base: str, release: dict[str, Path], sam_sha256: str | None = None) -> Catalog:
    """The sources table for :func:`release_server` at ``base``: BB downloads whole; BL's head link answers a web
    page (like a cloud drive asking for a browser); BL@336's head is the 224-pixel one (a wrong file).
    The SAM entry records the fabricated file's SHA-256 and MD5 (or ``sam_sha256`` instead, to test a mismatch)."""
    sam_bytes = release["sam"].read_bytes()
    sam = RemoteFile(url=f"{base}/dl/segment_anything/sam_vit_b_01ec64.pth", filename="sam_vit_b_01ec64.pth",
                     sha256=sam_sha256 or hashlib.sha256(sam_bytes).hexdigest(), md5=hashlib.md5(sam_bytes).hexdigest(),
                     size=len(sam_bytes))
    sam_config = tiny_sam_config().to_dict()
    models = {}
    for name, repo, size in (("BB", "openai/clip-vit-base-patch16", CLIP_IMAGE_SIZE),
                             ("BL", "openai/clip-vit-large-patch14", CLIP_IMAGE_SIZE),
                             ("BL@336", "openai/clip-vit-large-patch14-336", 336)):
        head = RemoteFile(url=f"{base}/onedrive/RegionSpot-{name}.pth", page=f"{base}/share/RegionSpot-{name}",
                          filename=f"RegionSpot-{name}.pth")
        models[name] = ModelSource(name, head, sam, HubRepo(repo, endpoint=f"{base}/hub"), size,
                                   sam_model_type="auto", sam_config=sam_config)
    return Catalog(models)
