"""A Hugging Face model repository, file by file, through :func:`regionspot.weights.transfer.fetch`.

The hub publishes each file's checksum in its API (``/api/models/REPO/revision/REV?blobs=true``): the
SHA-256 of large (LFS) files, the git blob id of the others. Every file is fetched from
``ENDPOINT/REPO/resolve/COMMIT/PATH`` — the commit the listing answered, so all files come from one
revision — and checked against its published checksum.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from regionspot.errors import DownloadError
from regionspot.version import __version__
from regionspot.weights.sources import HubRepo
from regionspot.weights.transfer import TIMEOUT_S, fetch

# What a transformers folder needs; other frameworks' weights, docs and images are left out.
_KEEP_SUFFIXES = (".json", ".txt", ".safetensors", ".model", ".bin")
_SKIP_NAMES = ("README.md", ".gitattributes", "tf_model.h5", "flax_model.msgpack", "rust_model.ot")


@dataclass(frozen=True)
class HubFile:
    """One file of a repository: path in it, size in bytes, and its published checksum."""

    path: str
    size: int | None
    sha256: str | None
    git_sha1: str | None

    def expected(self) -> dict[str, str]:
        if self.sha256:
            return {"sha256": self.sha256}
        return {"git-sha1": self.git_sha1} if self.git_sha1 else {}


def list_files(source: HubRepo, timeout: float = TIMEOUT_S) -> tuple[str, list[HubFile]]:
    """(commit id, files) of a repository at ``source.revision``. Raises DownloadError in one line."""
    url = f"{source.base()}/api/models/{source.repo}/revision/{quote(source.revision, safe='')}?blobs=true"
    request = urllib.request.Request(url, headers={"User-Agent": f"regionspot/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            info = json.loads(response.read())
    except urllib.error.HTTPError as error:
        if error.code in (401, 404):
            raise DownloadError(
                f"{source.base()} has no model {source.repo!r} at revision {source.revision!r} (HTTP {error.code}); "
                "check the id (gated and private models need a download by other means, then --from DIR)."
            ) from None
        raise DownloadError(f"{url} answered {error.code} {error.reason}: try again later, or use --from DIR.") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(
            f"Cannot reach {source.base()} to list {source.repo} ({getattr(reason, 'strerror', None) or reason}): check "
            "the connection, or fetch the files by other means and use --from DIR."
        ) from None
    except json.JSONDecodeError:
        raise DownloadError(f"{url} did not answer JSON: is {source.base()} a Hugging Face hub endpoint?") from None
    files = []
    for item in info.get("siblings") or []:
        lfs = item.get("lfs") or {}
        files.append(HubFile(item["rfilename"], item.get("size") or lfs.get("size"), lfs.get("sha256"), item.get("blobId")))
    return str(info.get("sha") or source.revision), files


def model_files(files: list[HubFile]) -> list[HubFile]:
    """The files a transformers folder needs: configs, tokenizer files and one weights format per folder
    (safetensors when the folder has them, else PyTorch ``.bin``)."""
    kept = [f for f in files if PurePosixPath(f.path).suffix in _KEEP_SUFFIXES
            and PurePosixPath(f.path).name not in _SKIP_NAMES and not PurePosixPath(f.path).name.startswith(".")]
    with_safetensors = {str(PurePosixPath(f.path).parent) for f in kept if f.path.endswith(".safetensors")}
    return [f for f in kept if not (f.path.endswith(".bin") and str(PurePosixPath(f.path).parent) in with_safetensors)]


def download_files(
    source: HubRepo, commit: str, files: list[HubFile], folder: Path, *, progress: bool = True
) -> dict[str, str]:
    """Fetch ``files`` of the repository at ``commit`` into ``folder`` (keeping their sub-paths), each verified
    against its published checksum. Files already there and matching are kept. Returns path -> sha256."""
    digests = {}
    for item in files:
        url = f"{source.base()}/{source.repo}/resolve/{commit}/{quote(item.path)}"
        digests[item.path] = fetch(
            url, folder / item.path, expected=item.expected(), size=item.size, what=f"{source.repo}/{item.path}",
            progress=progress,
        )["sha256"]
    return digests
