"""Many images with one model: find the files, give each a unique output name, run the ones not finished,
and assemble a COCO results file from the per-image parts.

The unit of work and of resuming is one image: its result JSON ``OUT/<name>.json`` (``regionspot.result/1``,
see ``inference.results``) is written atomically after its picture, and records a fingerprint of everything
that made it — the run's options, the vocabulary, the image file's bytes and its prompts. A rerun skips an
image whose JSON carries the same fingerprint (and whose picture exists when pictures are asked for); the
model is loaded only when some image is left to do. A file that cannot be read or predicted is reported
through ``on_outcome`` and skipped; the others finish. The COCO file is built from the JSON files, so a run
that was killed loses nothing already written.

Coordinates: boxes and points are XYXY / xy in original-image pixels everywhere.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regionspot.data.images import load_image
from regionspot.errors import ImageError, PromptError, RegionSpotError
from regionspot.inference.proposal_options import ProposalOptions
from regionspot.inference.region_filter import RegionFilter
from regionspot.utils.io import atomic_path, write_json_atomic

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_GLOB_CHARS = set("*?[")


def is_glob(text: str | Path) -> bool:
    """Whether ``text`` is a glob pattern (``*``, ``?`` or ``[``) rather than a plain path."""
    return bool(_GLOB_CHARS & set(str(text)))


# --- which files ----------------------------------------------------------------------------------
def discover_images(inputs: Sequence[str | Path]) -> list[Path]:
    """The image files named by ``inputs``, in order, each once.

    An input is a file (taken whatever its suffix: a bad one fails on its own later), a folder (its files
    with an image suffix, sorted; not its subfolders) or a glob pattern such as ``photos/*.jpg`` or
    ``data/**/*.png`` (its matches, sorted). Raises ImageError naming an input that gives nothing.
    """
    found: dict[Path, None] = {}
    for entry in inputs:
        text = str(entry)
        path = Path(text)
        if path.is_file():
            matches = [path]
        elif path.is_dir():
            matches = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not matches:
                raise ImageError(f"{path} holds no image files ({', '.join(IMAGE_SUFFIXES)}).")
        elif is_glob(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not matches:
                raise ImageError(f"No file matches {text!r}; check the pattern.")
        else:
            raise ImageError(f"Image not found: {path}; check the path.")
        found.update(dict.fromkeys(matches))
    return list(found)


def output_names(paths: Sequence[Path]) -> list[str]:
    """A unique output name per path: its stem, or where stems clash, the stem prefixed with as many parent
    folders as it takes (``a__x``, ``b__x``), or suffixed with the extension (``x_jpg``, ``x_png``)."""
    def candidate(path: Path, level: int) -> str:
        parents = list(path.resolve().parent.parts[1:])
        if level <= len(parents):
            return "__".join([*parents[len(parents) - level:], path.stem])
        return "__".join([*parents, path.stem]) + "_" + path.suffix.lstrip(".").lower()

    levels = [0] * len(paths)
    for _ in range(64):
        names = [candidate(p, level) for p, level in zip(paths, levels)]
        counts: dict[str, int] = {}
        for name in names:
            counts[name.lower()] = counts.get(name.lower(), 0) + 1  # case-insensitive file systems
        clashing = [i for i, name in enumerate(names) if counts[name.lower()] > 1]
        if not clashing:
            return names
        for i in clashing:
            levels[i] += 1
    raise ImageError(f"Cannot give {len(paths)} images unique output names; are some listed twice?")


# --- which prompts ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImagePrompts:
    """The prompts of one image: boxes (N, 4) XYXY and/or points (N, 2) xy (one foreground point per region,
    same N when both), original-image pixels; neither means everything mode (the segmenter proposes)."""

    boxes: tuple[tuple[float, ...], ...] | None = None
    points: tuple[tuple[float, ...], ...] | None = None

    @property
    def everything(self) -> bool:
        return self.boxes is None and self.points is None

    def to_json(self) -> dict[str, Any]:
        if self.everything:
            return {"everything": True}
        return {key: [list(v) for v in value] for key, value in (("boxes", self.boxes), ("points", self.points))
                if value is not None}


def _numbers(value: Any, size: int, what: str) -> tuple[tuple[float, ...], ...]:
    if not isinstance(value, list) or not all(isinstance(v, list) and len(v) == size for v in value):
        raise PromptError(f"{what}: expected a list of {size}-number lists.")
    try:
        rows = tuple(tuple(float(x) for x in v) for v in value)
    except (TypeError, ValueError):
        raise PromptError(f"{what}: every entry must be numbers.") from None
    if not all(math.isfinite(x) for row in rows for x in row):
        raise PromptError(f"{what}: numbers must be finite.")
    return rows


def image_prompts(boxes: Any = None, points: Any = None, where: str = "prompts") -> ImagePrompts:
    """Checked prompts of one image from JSON-like lists ([[x1, y1, x2, y2], ...], [[x, y], ...])."""
    box_rows = None if boxes is None else _numbers(boxes, 4, f"{where} boxes")
    point_rows = None if points is None else _numbers(points, 2, f"{where} points")
    if box_rows is not None and point_rows is not None and len(box_rows) != len(point_rows):
        raise PromptError(f"{where}: {len(box_rows)} boxes but {len(point_rows)} points; give one point per box, "
                          "or put them in separate entries.")
    for x1, y1, x2, y2 in box_rows or ():
        if not (x2 > x1 and y2 > y1):
            raise PromptError(f"{where}: box {[x1, y1, x2, y2]} needs x2 > x1 and y2 > y1 (XYXY pixels).")
    return ImagePrompts(box_rows, point_rows)


def coco_box_prompts(data: dict[str, Any], where: str) -> dict[str, ImagePrompts]:
    """The boxes of a COCO detection file as prompts: {image file_name: its annotations' boxes, XYXY pixels}
    (COCO's ``bbox`` is [x, y, width, height]); images without annotations get no entry."""
    names = {image.get("id"): image.get("file_name") for image in data["images"] if isinstance(image, dict)}
    boxes: dict[str, list[list[float]]] = {}
    for annotation in data["annotations"]:
        name = names.get(annotation.get("image_id")) if isinstance(annotation, dict) else None
        bbox = annotation.get("bbox") if name is not None else None
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise PromptError(f"{where}: annotation {annotation!r:.80} has no image of this file or no [x, y, w, h] bbox.")
        x, y, w, h = (float(v) for v in bbox)
        boxes.setdefault(name, []).append([x, y, x + w, y + h])
    return {name: image_prompts(rows, None, f"{where}[{name!r}]") for name, rows in boxes.items()}


def read_prompts_file(path: str | Path) -> dict[str, ImagePrompts]:
    """A prompts file: JSON {image file name or path: {"boxes": [[x1, y1, x2, y2], ...], "points": [[x, y], ...]}},
    or a COCO detection file (its ``images`` and ``annotations``: each image's boxes)."""
    path = Path(path)
    if not path.is_file():
        raise PromptError(f"Prompts file not found: {path}.")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PromptError(f"{path} is not valid JSON ({error}).") from None
    if isinstance(data, dict) and isinstance(data.get("images"), list) and isinstance(data.get("annotations"), list):
        return coco_box_prompts(data, path.name)
    if not isinstance(data, dict):
        raise PromptError(f'{path}: expected {{"image.jpg": {{"boxes": [[x1, y1, x2, y2]], "points": [[x, y]]}}, ...}}.')
    table = {}
    for key, entry in data.items():
        if not isinstance(entry, dict) or not set(entry) <= {"boxes", "points"}:
            raise PromptError(f'{path}: the entry of {key!r} must be {{"boxes": [...], "points": [...]}}.')
        table[key] = image_prompts(entry.get("boxes"), entry.get("points"), f"{path.name}[{key!r}]")
    return table


def match_prompts(images: Sequence[Path], table: dict[str, ImagePrompts]) -> tuple[list[ImagePrompts | None], list[str]]:
    """Each image's entry of a prompts table (None: none) and the keys that matched no image.

    A key matches an image whose path, as given, equals it or ends with it at a folder boundary
    (``x.jpg`` matches ``photos/x.jpg``). Raises PromptError when a key matches several images.
    """
    found: list[ImagePrompts | None] = [None] * len(images)
    unmatched = []
    posix = [p.as_posix() for p in images]
    for key, prompts in table.items():
        want = Path(key).as_posix()
        hits = [i for i, p in enumerate(posix) if p == want or p.endswith("/" + want)]
        if len(hits) > 1:
            raise PromptError(f"Prompts entry {key!r} matches {len(hits)} images ({posix[hits[0]]}, {posix[hits[1]]}, ...); "
                              "name it by its folder too.")
        if not hits:
            unmatched.append(key)
        else:
            found[hits[0]] = prompts
    return found, unmatched


# --- the plan and the run ---------------------------------------------------------------------------
def fingerprint(*parts: Any) -> str:
    """16 hex digits of sha256 over the canonical JSON of ``parts``."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class BatchItem:
    """One image of a batch: its file, its output name, its prompts, and the fingerprint of its result."""

    path: Path
    name: str
    prompts: ImagePrompts
    fingerprint: str


def plan_batch(images: Sequence[Path], prompts: Sequence[ImagePrompts], options: dict[str, Any],
               vocabulary: Sequence[str], proposals: dict[str, Any] | None = None) -> list[BatchItem]:
    """The items of a batch; each fingerprint covers ``options`` (JSON-able: everything that changes a
    result), the vocabulary, the image file's bytes, its prompts and, in everything mode, ``proposals``
    (the proposal options as a dict)."""
    items = []
    for path, name, prompt in zip(images, output_names(images), prompts):
        try:
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as error:
            content = f"unreadable: {error}"
        own = proposals if prompt.everything else None
        items.append(BatchItem(path, name, prompt, fingerprint(options, list(vocabulary), content, prompt.to_json(), own)))
    return items


@dataclass
class BatchSettings:
    """How each image is predicted and written.

    top_k: classes kept per region. proposals / region_filter: everything mode's options and which of its
    regions are kept. masks: masks as RLE in the JSON.
    pictures: also write ``<name>.png``. decode_limit: the most pixels an image file may have (None: the
    default of ``data.images.load_image``). record: extra JSON-able fields of every result (model, options).
    """

    top_k: int = 3
    proposals: ProposalOptions = field(default_factory=ProposalOptions)
    region_filter: RegionFilter = field(default_factory=RegionFilter)
    masks: bool = False
    pictures: bool = True
    decode_limit: int | None = None
    record: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImageOutcome:
    """What became of one item: status "done", "skipped" (finished before) or "failed" (with error)."""

    item: BatchItem
    status: str
    error: str | None = None
    regions: int = 0


@dataclass
class BatchSummary:
    outcomes: list[ImageOutcome]
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(outcome.status == status for outcome in self.outcomes)

    @property
    def failed(self) -> list[ImageOutcome]:
        return [outcome for outcome in self.outcomes if outcome.status == "failed"]


def result_path(out_dir: Path, item: BatchItem) -> Path:
    return Path(out_dir) / f"{item.name}.json"


def picture_path(out_dir: Path, item: BatchItem) -> Path:
    return Path(out_dir) / f"{item.name}.png"


def is_finished(item: BatchItem, out_dir: Path, pictures: bool) -> bool:
    """Whether ``item``'s result JSON exists with its fingerprint (and its picture, when asked for)."""
    path = result_path(out_dir, item)
    try:
        done = json.loads(path.read_text()).get("fingerprint") == item.fingerprint
    except (OSError, ValueError, AttributeError):
        return False
    return done and (not pictures or picture_path(out_dir, item).is_file())


def predict_item(predictor: Any, item: BatchItem, picture: Any, settings: BatchSettings) -> tuple[Any, dict[str, Any]]:
    """Predict one item's decoded image (``picture``, RGB PIL) with a predictor that has its vocabulary set;
    returns (RegionResult, result JSON)."""
    start = time.perf_counter()
    predictor.set_image(picture)
    want_masks = settings.masks or settings.pictures
    if item.prompts.everything:
        result = predictor.predict_everything(settings.proposals, top_k=settings.top_k, return_masks=want_masks,
                                              region_filter=settings.region_filter)
    else:
        result = predictor.predict(boxes=item.prompts.boxes, points=item.prompts.points, top_k=settings.top_k,
                                   return_masks=want_masks)
    payload = result.to_dict(image_path=item.path, masks=settings.masks)
    payload.update(settings.record)
    payload.update({"fingerprint": item.fingerprint, "timing_s": {"predict": round(time.perf_counter() - start, 3)}})
    return result, payload


def run_batch(
    items: Sequence[BatchItem], out_dir: str | Path, settings: BatchSettings, make_predictor: Callable[[], Any],
    on_outcome: Callable[[ImageOutcome], None] | None = None, progress: bool = True,
) -> BatchSummary:
    """Predict every unfinished item into ``out_dir``; skip finished ones; report and skip failing ones.

    make_predictor: called once, at the first unfinished item whose file decodes, for a predictor with its
    vocabulary set (its errors end the run). on_outcome: called with each item's outcome as it comes.
    progress: show a progress bar (stderr; plain lines when redirected).
    """
    from regionspot.utils.progress import progress_bar

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start, predictor, outcomes = time.perf_counter(), None, []
    for item in progress_bar(items, desc="predict", unit="image", disable=not progress):
        if is_finished(item, out_dir, settings.pictures):
            outcome = ImageOutcome(item, "skipped")
        else:
            try:
                picture = load_image(item.path, decode_limit=settings.decode_limit)
            except RegionSpotError as error:  # before the model: a batch of bad files loads nothing
                picture, outcome = None, ImageOutcome(item, "failed", error=str(error))
            if picture is not None:
                predictor = predictor or make_predictor()
                outcome = _predict_and_write(predictor, item, picture, out_dir, settings)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return BatchSummary(outcomes, time.perf_counter() - start)


def _predict_and_write(predictor: Any, item: BatchItem, picture: Any, out_dir: Path, settings: BatchSettings) -> ImageOutcome:
    """Predict one decoded image and write its picture, then its JSON (last: it marks the item done)."""
    from regionspot.inference.visualize import draw_result

    try:
        result, payload = predict_item(predictor, item, picture, settings)
        if settings.pictures:
            with atomic_path(picture_path(out_dir, item)) as tmp:
                draw_result(predictor.image, result).save(tmp, format="PNG")
        write_json_atomic(result_path(out_dir, item), payload, indent=1)
    except (RegionSpotError, OSError) as error:
        return ImageOutcome(item, "failed", error=str(error))
    return ImageOutcome(item, "done", regions=len(result))


# --- COCO -------------------------------------------------------------------------------------------
