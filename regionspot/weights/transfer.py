"""One HTTP(S) file transfer: resumable, verified, atomic, with a progress bar and one-line errors.

The bytes go to ``DEST.part``; an interrupted transfer is resumed with an HTTP ``Range`` request (within
the call, and by the next call); a server that ignores ``Range`` (answers 200) restarts the file cleanly.
When complete, the file's digests are checked against the expected ones, and only then is it renamed to
``DEST``. A web page served instead of the file (a cloud-drive link that wants a browser) is recognised by
its content type or its first bytes and refused. Every failure is a ``DownloadError`` of one line.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from regionspot.errors import DownloadError
from regionspot.utils.progress import progress_bar
from regionspot.version import __version__

CHUNK = 1 << 20
TIMEOUT_S = 30.0
_ATTEMPTS = 3
_PAGE_STARTS = (b"<!doctype", b"<html", b"<?xml", b"<head")


def git_blob_sha1(data_or_path: bytes | Path) -> str:
    """The git blob id of a file: SHA-1 of ``b"blob <size>\\0" + content`` (what the hub publishes for small files)."""
    data = Path(data_or_path).read_bytes() if isinstance(data_or_path, Path) else data_or_path
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def file_digests(path: Path, algorithms: list[str]) -> dict[str, str]:
    """Hex digests of ``path`` for "sha256", "md5" and/or "git-sha1"."""
    hashers = {name: hashlib.new(name) for name in algorithms if name != "git-sha1"}
    if "git-sha1" in algorithms:
        hashers["git-sha1"] = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            for hasher in hashers.values():
                hasher.update(block)
    return {name: hasher.hexdigest() for name, hasher in hashers.items()}


def verify(path: Path, expected: dict[str, str], what: str) -> dict[str, str]:
    """Check ``path`` against ``expected`` {algorithm: hex}; return its SHA-256 (and the checked digests).

    Raises DownloadError naming both digests on a mismatch.
    """
    digests = file_digests(path, sorted(set(expected) | {"sha256"}))
    for name, value in expected.items():
        if digests[name] != value.lower():
            raise DownloadError(
                f"Checksum mismatch for {what}: {name} is {digests[name][:16]}..., expected {value[:16]}...; the file "
                "is corrupt or not the published one."
            )
    return digests


def looks_like_page(content_type: str | None, first_bytes: bytes) -> bool:
    """True for an HTML answer: by its content type or its first bytes."""
    if content_type and content_type.split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml"):
        return True
    return first_bytes.lstrip()[:16].lower().startswith(_PAGE_STARTS)


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    headers = {"User-Agent": f"regionspot/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _reason(error: BaseException) -> str:
    reason = getattr(error, "reason", None) or error
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason).strip() or type(reason).__name__


def disk_error(error: OSError, path: Path, needed: int | None) -> DownloadError:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        size = f" (the file is {needed / 1e6:.0f} MB)" if needed else ""
        return DownloadError(f"No space left on the disk of {path.parent}{size}: free some space or set REGIONSPOT_HOME to a larger disk.")
    return DownloadError(f"Cannot write {path} ({error.strerror or error}): check the folder's permissions or set REGIONSPOT_HOME.")


def fetch(
    url: str,
    dest: Path,
    *,
    expected: dict[str, str] | None = None,
    size: int | None = None,
    what: str | None = None,
    fix: str = "fetch the file by other means and pass its folder with --from DIR",
    page_fix: str | None = None,
    progress: bool = True,
    timeout: float = TIMEOUT_S,
    attempts: int = _ATTEMPTS,
    on_resume: Callable[[int], None] | None = None,
) -> dict[str, str]:
    """Download ``url`` to ``dest`` (through ``dest.part``), verify ``expected`` digests, rename into place.

    expected: {"sha256"|"md5"|"git-sha1": hex}; the file is refused (and its ``.part`` deleted) on a
    mismatch. size: the expected size in bytes, for the free-space check, or None. what: the file's name
    in messages. fix: the remedy appended to network errors; page_fix: the one for a web page answer.
    attempts: transfers tried when the connection drops (each resumes where the last stopped).
    on_resume(offset) is called before each resumed request. A ``dest`` already there is kept when it matches
    ``expected`` (replaced otherwise). Returns the file's digests (sha256 always).
    """
    dest = Path(dest)
    what = what or dest.name
    expected = expected or {}
    part = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise disk_error(error, dest, size) from None
    if dest.is_file():  # a finished transfer of an earlier run (renamed only once complete)
        try:
            return verify(dest, expected, what)
        except DownloadError:
            dest.unlink()
    host = urlsplit(url).netloc
    transfer = _Transfer(url, part, size, what, fix, page_fix, progress)
    for attempt in range(attempts):
        offset = part.stat().st_size if part.is_file() else 0
        if offset and on_resume is not None:
            on_resume(offset)
        if size and shutil.disk_usage(dest.parent).free < size - offset:
            raise disk_error(OSError(errno.ENOSPC, "No space left on device"), dest, size)
        try:
            response = _open(url, offset, timeout)
        except urllib.error.HTTPError as error:
            if error.code == 416 and offset:  # nothing after offset: the .part is complete, or wrong (checked below)
                break
            raise DownloadError(f"{url} answered {error.code} {error.reason} for {what}: {fix}.") from None
        except (urllib.error.URLError, OSError) as error:
            raise DownloadError(f"Cannot reach {host} for {what} ({_reason(error)}): check the connection, or {fix}.") from None
        with response:
            if _receive(transfer, response, offset, last=attempt + 1 == attempts):
                break
    digests = verify_or_discard(part, expected, what)
    os.replace(part, dest)
    return digests


@dataclass(frozen=True)
class _Transfer:
    """What stays the same over the attempts of one :func:`fetch`: the source, the ``.part`` file, the
    expected size (or None) and the words of its messages."""

    url: str
    part: Path
    size: int | None
    what: str
    fix: str
    page_fix: str | None
    progress: bool


def _receive(transfer: _Transfer, response: http.client.HTTPResponse, offset: int, last: bool) -> bool:
    """Write one answer's bytes to the ``.part`` file (appended when the server resumed at ``offset``). True
    when the file is complete; False when the connection dropped and another attempt may resume (on the
    ``last`` attempt that raises DownloadError instead)."""
    url, part, size, what = transfer.url, transfer.part, transfer.size, transfer.what
    fix, page_fix = transfer.fix, transfer.page_fix
    host = urlsplit(url).netloc
    resumed = response.status == 206 and offset > 0
    content_type = response.headers.get("Content-Type")
    try:
        first = response.read(min(CHUNK, 512))
    except (OSError, http.client.HTTPException) as error:
        if not last:
            return False
        raise DownloadError(f"The transfer of {what} from {host} failed ({_reason(error)}): run the command again to resume.") from None
    if looks_like_page(content_type, first if not resumed else b""):
        raise DownloadError(f"{url} answered with a web page instead of {what}: {page_fix or fix}.")
    length = response.headers.get("Content-Length")
    total = (offset if resumed else 0) + int(length) if length and length.isdigit() else None
    try:
        handle = open(part, "ab" if resumed else "wb")
    except OSError as error:
        raise disk_error(error, part, size) from None
    bar = progress_bar(total=total, initial=offset if resumed else 0, unit="B", unit_scale=True, unit_divisor=1024,
               desc=what, disable=not transfer.progress, leave=False, dynamic_ncols=True)
    interrupted: BaseException | None = None
    with handle, bar:
        try:
            block = first
            while block:
                handle.write(block)
                bar.update(len(block))
                block = response.read(CHUNK)
        except (http.client.HTTPException, ConnectionError, TimeoutError) as error:
            interrupted = error
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS):
                raise disk_error(error, part, size) from None
            interrupted = error
    done = part.stat().st_size
    if interrupted is None and (total is None or done >= total):
        return True
    if last:
        of = f" of {total}" if total else ""
        reason = _reason(interrupted) if interrupted else "connection closed early"
        raise DownloadError(
            f"The transfer of {what} stopped at {done}{of} bytes ({reason}): run the same command again to resume."
        )
    return False


def verify_or_discard(path: Path, expected: dict[str, str], what: str) -> dict[str, str]:
    """:func:`verify`, deleting ``path`` when it fails (a bad file is never kept or registered)."""
    try:
        return verify(path, expected, what)
    except DownloadError as error:
        path.unlink(missing_ok=True)
        raise DownloadError(f"{error} It was deleted; run the command again to fetch it anew.") from None
