"""Where the official files of each named model are published, with the checksums we know: one table.

``BUILTIN`` is the table: the SAM ViT-B checkpoint on Meta's download host (its name carries the first six
hex digits of its MD5; its SHA-256 is recorded here), CLIP by Hugging Face hub id (each file's SHA-256 or
git blob id is published by the hub and read at download time), and the RegionSpot heads from the links of
the released README (OneDrive; no checksum is published for them, so none is recorded).

``$REGIONSPOT_SOURCES`` (or the ``catalog`` argument of the downloader) names a JSON file of the same shape
(:meth:`Catalog.to_dict`) that replaces the table: a mirror, or a test server on 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from regionspot.errors import DownloadError

SOURCES_ENV = "REGIONSPOT_SOURCES"
HUB_ENDPOINT = "https://huggingface.co"


@dataclass(frozen=True)
class RemoteFile:
    """One published file.

    url: what is fetched. page: the link a person opens in a browser (a cloud-drive page), or None when
    ``url`` is itself the file. filename: its name on disk (and the name ``--from DIR`` looks for).
    sha256 / md5: lower-case hex digests, or None when unknown. size: bytes, or None (disk-space check only).
    """

    url: str
    filename: str
    page: str | None = None
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None

    def checksums(self) -> dict[str, str]:
        """The recorded digests by algorithm name ("sha256", "md5"); empty when none is known."""
        return {name: value for name, value in (("sha256", self.sha256), ("md5", self.md5)) if value}


@dataclass(frozen=True)
class HubRepo:
    """A Hugging Face model repository. endpoint None: ``$HF_ENDPOINT`` or https://huggingface.co."""

    repo: str
    revision: str = "main"
    endpoint: str | None = None

    def base(self) -> str:
        return (self.endpoint or os.environ.get("HF_ENDPOINT") or HUB_ENDPOINT).rstrip("/")


@dataclass(frozen=True)
class ModelSource:
    """The files of one named model (BB, BL, BL@336) and how they are converted.

    sam_model_type: "vit_b", "vit_l", "vit_h" or "auto"; sam_config: a ``SamConfig`` dict instead, for a
    checkpoint of non-standard size (a test's tiny model). image_size: the CLIP input side the head runs
    at. licence: the head's licence, shown after the download.
    """

    name: str
    head: RemoteFile
    sam: RemoteFile
    clip: HubRepo
    image_size: int
    sam_model_type: str = "vit_b"
    sam_config: dict[str, Any] | None = None
    licence: str = "CC BY-NC 4.0 (the official RegionSpot weights: non-commercial use only)"


@dataclass(frozen=True)
class Catalog:
    """Named models and their sources."""

    models: dict[str, ModelSource] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"models": {name: asdict(source) for name, source in self.models.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Catalog:
        models = {}
        for name, entry in (data.get("models") or {}).items():
            entry = dict(entry)
            try:
                entry["head"], entry["sam"] = RemoteFile(**entry["head"]), RemoteFile(**entry["sam"])
                entry["clip"] = HubRepo(**entry["clip"])
                unknown = set(entry) - {f.name for f in fields(ModelSource)}
                if unknown:
                    raise TypeError(f"unknown keys {sorted(unknown)}")
                models[name] = ModelSource(**entry)
            except (KeyError, TypeError) as error:
                raise DownloadError(f"Sources entry {name!r} is malformed ({error}); see Catalog.to_dict for the shape.") from None
        return cls(models)


def onedrive_direct(share_link: str) -> str:
    """The OneDrive API address that serves the file behind a public share link (may still ask for a browser)."""
    token = base64.urlsafe_b64encode(share_link.encode()).decode().rstrip("=")
    return f"https://api.onedrive.com/v1.0/shares/u!{token}/root/content"


def _head(variant: str, share_link: str) -> RemoteFile:
    return RemoteFile(url=onedrive_direct(share_link), page=share_link, filename=f"RegionSpot-{variant}.pth")


SAM_VIT_B = RemoteFile(
    url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
    filename="sam_vit_b_01ec64.pth",
    sha256="ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
    md5="01ec64d29a2fca3f0661936605ae66f8",
    size=375_042_383,
)

# The released README's links (the same files are also in a Google Drive folder, which cannot be fetched
# without a browser).
BUILTIN = Catalog({
    "BB": ModelSource("BB", _head("BB", "https://1drv.ms/u/s!AgWqwlwga-5Kc1WU0Q_iFsc_O-w?e=DgN1xI"), SAM_VIT_B,
                      HubRepo("openai/clip-vit-base-patch16"), 224),
    "BL": ModelSource("BL", _head("BL", "https://1drv.ms/u/s!AgWqwlwga-5KdKXfWxTuronI6ts?e=aGhZxj"), SAM_VIT_B,
                      HubRepo("openai/clip-vit-large-patch14"), 224),
    "BL@336": ModelSource("BL@336", _head("BL@336", "https://1drv.ms/u/s!AgWqwlwga-5KcrrUYKtvTFf4MGY?e=QHZd7u"),
                          SAM_VIT_B, HubRepo("openai/clip-vit-large-patch14-336"), 336),
})
RELEASE_PAGE = "https://github.com/Surrey-UP-Lab/RegionSpot#models"


def load_catalog(path: str | Path | None = None) -> Catalog:
    """The sources table: ``path``, else ``$REGIONSPOT_SOURCES``, else :data:`BUILTIN`."""
    path = path or os.environ.get(SOURCES_ENV)
    if not path:
        return BUILTIN
    path = Path(path).expanduser()
    try:
        return Catalog.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise DownloadError(f"Sources file {path} (${SOURCES_ENV}) does not exist; unset {SOURCES_ENV} to use the published locations.") from None
    except json.JSONDecodeError as error:
        raise DownloadError(f"Sources file {path} is not valid JSON ({error.msg} at line {error.lineno}).") from None
