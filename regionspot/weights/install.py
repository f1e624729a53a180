"""``regionspot download``: fetch a model's official files, verify, convert, and register it in the home.

A named model (BB, BL, BL@336) is three parts, each a step: the RegionSpot head (first: it is the file most
likely to need a browser), SAM, CLIP. Each step takes the file from ``from_dir`` when it is there, else
fetches it (:mod:`regionspot.weights.transfer`), checks the checksum the sources table records or the hub
publishes, and converts it with the existing converters (``regionspot.checkpoint`` for the head,
``regionspot.backbones.convert.sam`` for SAM; CLIP comes as a transformers folder). The parts are built in
``models/.<NAME>.partial`` — a finished step is recorded there, so a rerun after a failure skips it — and
the folder is renamed to ``models/<NAME>`` only when all three are done and the manifest is written.

A hub id ``org/name`` is a regionspot model repository (``head.safetensors``, optional ``sam/`` and
``clip/``): its files, then the backbones its head names, are fetched the same way.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from regionspot.errors import CheckpointError, DownloadError
from regionspot.utils.io import write_json_atomic
from regionspot.weights.home import (
    MANIFEST,
    MANIFEST_SCHEMA,
    InstalledModel,
    installed_models,
    model_dir,
    read_installed,
    regionspot_home,
)
from regionspot.weights.hub_files import download_files, list_files, model_files
from regionspot.weights.sources import Catalog, HubRepo, ModelSource, RemoteFile, load_catalog
from regionspot.weights.transfer import disk_error, fetch, verify

Log = Callable[[str], None]


def looks_like_hub_id(name: str) -> bool:
    """"org/name" with no path syntax."""
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "~")) and "\\" not in name


def download_model(
    name: str,
    *,
    home: str | Path | None = None,
    from_dir: str | Path | None = None,
    catalog: Catalog | str | Path | None = None,
    progress: bool = True,
    keep_downloads: bool = False,
    force: bool = False,
    log: Log | None = None,
) -> InstalledModel:
    """Fetch, verify, convert and register ``name`` (a sources-table name such as "BL", or a hub id).

    home: the model home (default ``$REGIONSPOT_HOME`` or ``~/.cache/regionspot``). from_dir: a folder with
    files fetched by other means (same checks and conversion; what it lacks is downloaded). catalog: the
    sources table or a JSON file of one (default ``$REGIONSPOT_SOURCES`` or the built-in table).
    keep_downloads: keep the raw files in ``HOME/downloads`` after converting them. force: fetch again a
    model that is already registered (else it is returned as it is). log: called with one line per step. Returns the registered model. Raises DownloadError / CheckpointError in one line.
    """
    catalog = catalog if isinstance(catalog, Catalog) else load_catalog(catalog)
    root = regionspot_home(home)
    source_dir = Path(from_dir).expanduser() if from_dir is not None else None
    if source_dir is not None and not source_dir.is_dir():
        raise DownloadError(f"--from {source_dir}: no such folder; pass the folder that holds the files you fetched.")
    log = log or (lambda line: None)
    existing = read_installed(model_dir(name, root))
    if existing is not None and existing.complete() and not force:
        log(f"{name} is already downloaded in {existing.folder} (--force fetches it again)")
        return existing
    job = _Job(root, model_dir(name, root), source_dir, progress, log)
    if name in catalog.models:
        manifest = _official(catalog.models[name], job)
    elif looks_like_hub_id(name):
        manifest = _hub_model(name, job)
    else:
        raise DownloadError(f"Unknown model {name!r}: choose one of {', '.join(catalog.models)}, or a Hugging Face hub id org/name.")
    write_json_atomic(job.staging / MANIFEST, manifest, indent=2)
    for marker in job.staging.glob(".step-*.json"):
        marker.unlink()
    _replace_folder(job.staging, job.final)
    if not keep_downloads:
        for path in job.downloaded:
            path.unlink(missing_ok=True)
    installed = read_installed(job.final)
    assert installed is not None
    return installed


class _Job:
    """Where one download builds, and what it fetched."""

    def __init__(self, home: Path, final: Path, from_dir: Path | None, progress: bool, log: Log) -> None:
        self.home, self.final, self.from_dir, self.progress, self.log = home, final, from_dir, progress, log
        self.staging = final.with_name(f".{final.name}.partial")
        self.downloads = home / "downloads"
        self.downloaded: list[Path] = []
        self.staging.mkdir(parents=True, exist_ok=True)

    def step(self, part: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run a step once: its record is kept in the staging folder until the model is registered."""
        marker = self.staging / f".step-{part}.json"
        if marker.is_file():
            self.log(f"{part}: done by an earlier run")
            return json.loads(marker.read_text())
        try:
            record = run()
        except OSError as error:  # the disk (space, permissions) while converting or moving files
            raise disk_error(error, self.staging / part, None) from None
        write_json_atomic(marker, record)
        return record

    def obtain(self, file: RemoteFile, model: str, candidates: Callable[[Path], list[Path]]) -> tuple[Path, dict[str, Any]]:
        """The file from ``--from`` (checked) or fetched (checked); with its provenance record."""
        expected = file.checksums()
        checked = sorted(expected) or ["none recorded"]
        if self.from_dir is not None:
            found = candidates(self.from_dir)
            if found:
                digests = verify(found[0], expected, found[0].name)
                self.log(f"{file.filename}: using {found[0]} (checksum: {', '.join(checked)})")
                return found[0], {"from": str(found[0]), "sha256": digests["sha256"], "checked": sorted(expected)}
        browser_fix = None
        if file.page:
            browser_fix = (f"this host wants a browser: open {file.page} , save the file into a folder DIR, then run "
                           f"`regionspot download {model} --from DIR`")
        self.log(f"{file.filename}: fetching {file.url}")
        dest = self.downloads / file.filename
        digests = fetch(file.url, dest, expected=expected, size=file.size, what=file.filename,
                        fix=browser_fix or f"fetch {file.filename} by other means and run `regionspot download {model} --from DIR`",
                        page_fix=browser_fix, progress=self.progress,
                        on_resume=lambda offset: self.log(f"{file.filename}: resuming at byte {offset}"))
        self.downloaded.append(dest)
        self.log(f"{file.filename}: verified (checksum: {', '.join(checked)})")
        return dest, {"url": file.url, "page": file.page, "sha256": digests["sha256"], "checked": sorted(expected)}


# --- the named models ---------------------------------------------------------------------------------------
def _official(source: ModelSource, job: _Job) -> dict[str, Any]:
    head = job.step("head", lambda: _head_step(source, job))
    sam = job.step("sam", lambda: _sam_step(source, job))
    clip = job.step("clip", lambda: _hub_folder_step(source.clip, job, "clip"))
    _check_head_fits(job.staging, source.name)
    return {"schema": MANIFEST_SCHEMA, "name": source.name, "head": "head.safetensors", "segmenter": "sam",
            "vision_language": "clip", "licence": source.licence, "sources": {"head": head, "sam": sam, "clip": clip}}


def _pth_files(folder: Path, exact: str, keep: Callable[[str], bool]) -> list[Path]:
    if (folder / exact).is_file():
        return [folder / exact]
    found = sorted(p for p in folder.glob("*.pth") if keep(p.name.lower()))
    return found[:1] if len(found) == 1 else []


def _head_step(source: ModelSource, job: _Job) -> dict[str, Any]:
    from regionspot.checkpoint import official_regionspot_state, save_head_checkpoint

    def candidates(folder: Path) -> list[Path]:
        found = _pth_files(folder, source.head.filename, lambda name: not name.startswith("sam_"))
        others = [p.name for p in folder.glob("*.pth") if not p.name.lower().startswith("sam_")]
        if not found and len(others) > 1:
            raise DownloadError(f"{folder} holds several RegionSpot .pth files ({', '.join(sorted(others))}): name the "
                                f"{source.name} one {source.head.filename}.")
        return found

    path, record = job.obtain(source.head, source.name, candidates)
    state, config = official_regionspot_state(path)
    if (config.image_size == 336) != (source.image_size == 336):
        found = "RegionSpot-BL@336" if config.image_size == 336 else f"a {config.image_size}-pixel RegionSpot head"
        raise DownloadError(f"{path.name} is {found}, not RegionSpot-{source.name}: pass the {source.name} file.")
    config.segmenter, config.vision_language, config.image_size = "sam", "clip", source.image_size
    save_head_checkpoint(job.staging / "head.safetensors", state, config, meta={"converted_from": path.name})
    job.log(f"head: converted {path.name} (a {config.head.feature_dim}→{config.head.embed_dim} head) to head.safetensors")
    return record


def _sam_step(source: ModelSource, job: _Job) -> dict[str, Any]:
    from transformers import SamConfig

    from regionspot.backbones.convert.sam import convert_sam_checkpoint

    out = job.staging / "sam"
    recorded = source.sam.sha256
    for other in installed_models(job.home).values():
        mine = other.manifest.get("sources", {}).get("sam", {})
        if recorded and mine.get("sha256") == recorded and other.segmenter.is_dir() and other.folder != job.final:
            _link_tree(other.segmenter, out)
            job.log(f"sam: the same checkpoint is already converted for {other.name}; linked")
            return {**mine, "linked_from": other.name}
    prefix = source.sam.filename.rsplit("_", 1)[0]
    path, record = job.obtain(source.sam, source.name, lambda folder: _pth_files(folder, source.sam.filename,
                                                                                  lambda name: name.startswith(prefix)))
    config = SamConfig.from_dict(source.sam_config) if source.sam_config else None
    if out.exists():
        shutil.rmtree(out)
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # its "Writing model shards" bar says nothing here
    try:
        convert_sam_checkpoint(path, out, model_type=source.sam_model_type, config=config)
    finally:
        if shown:
            hf_logging.enable_progress_bar()
    job.log(f"sam: converted {path.name} to a transformers folder")
    return record


def _hub_folder_step(repo: HubRepo, job: _Job, target: str) -> dict[str, Any]:
    """A transformers folder from the hub (or ``FROM/<repo name>``) into ``staging/target``."""
    out = job.staging / target
    if out.exists():
        shutil.rmtree(out)
    local = job.from_dir / repo.repo.split("/")[-1] if job.from_dir is not None else None
    if local is not None and (local / "config.json").is_file():
        _link_tree(local, out)
        job.log(f"{target}: using {local} (no checksum: the hub's are read only when fetching)")
        return {"repo": repo.repo, "from": str(local), "checked": []}
    job.log(f"{target}: fetching {repo.repo} from {repo.base()}")
    commit, files = list_files(repo)
    chosen = model_files(files)
    if not any(f.path.endswith((".safetensors", ".bin")) for f in chosen):
        raise DownloadError(f"{repo.repo} at {repo.revision} has no PyTorch weights (safetensors or .bin) to fetch.")
    cache = job.downloads / "hub" / repo.repo.replace("/", "--")
    digests = download_files(repo, commit, chosen, cache, progress=job.progress)
    for item in chosen:
        (out / item.path).parent.mkdir(parents=True, exist_ok=True)
        os.replace(cache / item.path, out / item.path)
    _safetensors_from_bin(out)
    job.log(f"{target}: {len(chosen)} files of {repo.repo}@{commit[:12]} verified (the hub's checksums)")
    return {"repo": repo.repo, "endpoint": repo.base(), "commit": commit, "files": digests, "checked": ["hub sha256/git blob"]}


def _safetensors_from_bin(folder: Path) -> None:
    """A folder with only ``pytorch_model.bin`` gets ``model.safetensors`` instead (read weights-only)."""
    from safetensors.torch import save_file

    from regionspot.backbones.convert.torch_io import read_weights_only_state_dict

    for binary in folder.rglob("pytorch_model.bin"):
        target = binary.with_name("model.safetensors")
        if target.exists():
            continue
        state = read_weights_only_state_dict(binary, "PyTorch weights (pytorch_model.bin)")
        save_file({k: v.detach().clone().contiguous() for k, v in state.items()}, str(target), metadata={"format": "pt"})
        binary.unlink()


def _check_head_fits(folder: Path, name: str) -> None:
    """The head's widths must be the CLIP's: a BB head with a ViT-L CLIP is the wrong file."""
    from regionspot.checkpoint import load_head_checkpoint

    _, config, _ = load_head_checkpoint(folder / "head.safetensors")
    clip = json.loads((folder / "clip" / "config.json").read_text())
    widths = (clip.get("vision_config", {}).get("hidden_size"), clip.get("projection_dim"))
    if widths != (config.head.feature_dim, config.head.embed_dim):
        raise DownloadError(
            f"The head is a {config.head.feature_dim}→{config.head.embed_dim} head but the CLIP of {name} gives "
            f"{widths[0]}→{widths[1]}: the head file is of another variant; pass the {name} file."
        )


# --- hub ids -----------------------------------------------------------------------------------------------
def _hub_model(repo_id: str, job: _Job) -> dict[str, Any]:
    from regionspot.checkpoint import load_head_checkpoint

    def files() -> dict[str, Any]:
        if job.from_dir is not None and (job.from_dir / "head.safetensors").is_file():
            _link_tree(job.from_dir, job.staging)
            return {"repo": repo_id, "from": str(job.from_dir), "checked": []}
        repo = HubRepo(repo_id)
        commit, listed = list_files(repo)
        if not any(f.path == "head.safetensors" for f in listed):
            raise DownloadError(f"{repo_id} holds no head.safetensors: it is not a regionspot model (backbones load by "
                                "hub id directly; official heads: `regionspot download BB|BL|BL@336`).")
        digests = download_files(repo, commit, model_files(listed), job.staging, progress=job.progress)
        job.log(f"{repo_id}: {len(digests)} files verified (the hub's checksums)")
        return {"repo": repo_id, "commit": commit, "files": digests, "checked": ["hub sha256/git blob"]}

    record = job.step("files", files)
    try:
        _, config, _ = load_head_checkpoint(job.staging / "head.safetensors")
    except CheckpointError as error:
        raise DownloadError(f"{repo_id}: {error}") from None
    parts = {"files": record}
    names = {}
    staging = job.staging.resolve()
    for part, ref, target in (("sam", config.segmenter, "sam"), ("clip", config.vision_language, "clip")):
        local = (job.staging / ref).resolve()  # a folder of the repository (the checkpoint reads it back absolute)
        if local.is_dir() and local.is_relative_to(staging):
            names[part] = local.relative_to(staging).as_posix()
        elif looks_like_hub_id(ref):
            parts[part] = job.step(part, lambda ref=ref, target=target: _hub_folder_step(HubRepo(ref), job, target))
            names[part] = target
        else:
            raise DownloadError(f"{repo_id}'s head names the backbone {ref!r}, which is neither in the repository nor a hub id.")
    return {"schema": MANIFEST_SCHEMA, "name": repo_id, "head": "head.safetensors", "segmenter": names["sam"],
            "vision_language": names["clip"], "licence": "see the repository's model card", "sources": parts}


# --- folders -----------------------------------------------------------------------------------------------
def _link_tree(source: Path, dest: Path) -> None:
    """Copy a folder's files, as hard links where the disk allows (no second copy of the bytes)."""
    for item in sorted(source.rglob("*")):
        if item.is_file() and not item.name.startswith(".step-"):
            target = dest / item.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.unlink(missing_ok=True)
            try:
                os.link(item, target)
            except OSError:
                shutil.copy2(item, target)


def _replace_folder(staging: Path, final: Path) -> None:
    """Put ``staging`` at ``final``; a model already there is replaced only once the new one is in place."""
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    if old.exists():
        shutil.rmtree(old)
