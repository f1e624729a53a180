"""What ``regionspot predict`` (and ``serve``, ``eval``) check before loading a model: the device, the
typed boxes and names, the output paths and the prompts against the image's header — each problem one
``error:`` line (exit 2) within a second, not a traceback after the model has loaded. And the notes the
embedded ShapesWorld model gives when it is asked about things it cannot know.

Parsing and geometry live in the library (``backbones.typed_prompts``, ``text.templates``, ``data.images``,
``shapesworld.likeness``); this module words them for the command line.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from PIL import Image

from regionspot.backbones.typed_prompts import (
    BOX_FORMATS,
    boxes_to_xyxy,
    inverted_boxes,
    parse_numbers,
    split_prompt_items,
    xywh_suspected,
)
from regionspot.errors import ImageError, PromptError, RegionSpotError, VocabularyError, preview
from regionspot.utils.startup_gc import start_up

# How a user of the embedded model gets real weights (the `download` command and `--model` option).
REAL_WEIGHTS_HINT = "for real photos get real weights: `regionspot download BL`, then `--model BL`"
_DEVICE = re.compile(r"^(cpu|cuda|mps)(?::(\d+))?$")


class DeviceError(RegionSpotError):
    """The device asked for does not exist on this machine or in this torch build."""


# --- the device -----------------------------------------------------------------------------------
def check_device(device: str | None) -> str | None:
    """``device`` unchanged (None: the command picks the best one) when this torch build and machine have
    it; otherwise DeviceError naming what is missing and what to pass instead."""
    if device is None:
        return None
    with start_up():  # torch's import: no garbage collection while it runs
        import torch

    match = _DEVICE.match(device.strip().lower())
    if match is None:
        raise DeviceError(f"--device {device}: unknown device; use cpu, cuda, cuda:N (N: the GPU's index) or mps.")
    kind, index = match.group(1), match.group(2)
    version = torch.__version__
    if kind == "cuda":
        if torch.version.cuda is None:
            raise DeviceError(f"--device {device}: this torch build has no CUDA (torch {version}); use --device cpu "
                              "or install a CUDA build of torch (see README Install).")
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DeviceError(f"--device {device}: torch {version} (CUDA {torch.version.cuda}) sees no CUDA GPU "
                              "(no driver, or CUDA_VISIBLE_DEVICES hides them); use --device cpu.")
        if index is not None and int(index) >= count:
            gpus = "cuda:0" if count == 1 else f"cuda:0 .. cuda:{count - 1}"
            raise DeviceError(f"--device {device}: this machine has {count} CUDA GPU{'s' if count > 1 else ''} "
                              f"({gpus}); pick one of them.")
    elif kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceError(f"--device {device}: Apple MPS is not available here (torch {version}; it needs an "
                              "Apple-silicon Mac and a torch build with MPS); use --device cpu.")
        if index is not None and int(index) != 0:
            raise DeviceError(f"--device {device}: there is one MPS device; use --device mps.")
    elif index is not None and int(index) != 0:
        raise DeviceError(f"--device {device}: the CPU has no index; use --device cpu.")
    return device


# --- names ----------------------------------------------------------------------------------------
def check_names(names: list[str] | None, typed: str | None = None) -> list[str] | None:
    """The class names, checked: ';' inside a typed name (names are comma-separated), empty names and
    names that become the same once prepared (``text.templates.validate_vocabulary``). typed: the --vocab
    text they came from, quoted in the error with a corrected version."""
    if names is None:
        return None
    from regionspot.text.templates import validate_vocabulary

    source = f"--vocab {typed!r}" if typed is not None else "the class names"
    parts = [p.strip() for p in re.split(r"[,;]", typed or "")]
    fixed = ",".join(p for p in parts if p)
    if typed is not None and ";" in typed:
        raise VocabularyError(f"{source}: class names are separated by commas, not ';'; write --vocab {fixed!r}.")
    if typed is not None and not fixed:
        raise VocabularyError(f"{source} names no class; write the names to recognise, e.g. --vocab 'cat,dog'.")
    empty = [i for i, name in enumerate(names) if not name.strip()]
    if empty and typed is not None:
        raise VocabularyError(f"{source}: name {empty[0] + 1} is empty (two commas in a row, or one at an end); "
                              f"write --vocab {fixed!r}.")
    try:
        validate_vocabulary(names, style="raw")  # the model may prepare names more; it checks again then
    except VocabularyError as error:
        raise VocabularyError(f"{source}: {error}") from None
    return names


# --- boxes and points -----------------------------------------------------------------------------
def check_box_format(box_format: str) -> str:
    """``box_format`` lower-cased when it is one of ``BOX_FORMATS``."""
    if box_format.lower() not in BOX_FORMATS:
        raise PromptError(f"--box-format {box_format}: use xyxy (x1,y1,x2,y2 corners) or xywh (x,y,width,height).")
    return box_format.lower()


def check_box_orientation(boxes: list[list[float]], box_format: str, source: str,
                          items: list[str] | None = None) -> list[list[float]]:
    """``boxes`` as given (in ``box_format``) -> XYXY, refusing a box with zero or negative width or height.

    source: where they came from ('--boxes', a file name); items: the boxes as typed, quoted in the error.
    Boxes typed as XYXY that can only be XYWH (x2 <= x1 or y2 <= y1, yet every one a valid x,y,w,h) get a
    suggestion of ``--box-format xywh``.
    """
    box_format = check_box_format(box_format)
    xyxy = boxes_to_xyxy(boxes, box_format)
    bad = inverted_boxes(xyxy)
    if not bad:
        return xyxy
    i = bad[0]
    shown = repr(items[i]) if items is not None else str([round(v, 2) for v in boxes[i]])
    if box_format == "xywh":
        raise PromptError(f"{source}: box {i + 1} {shown} has zero or negative width or height "
                          "(--box-format xywh reads x,y,width,height).")
    x1, y1, x2, y2 = boxes[i]
    what = "x2 <= x1" if x2 <= x1 else "y2 <= y1"
    if xywh_suspected(boxes):
        raise PromptError(f"{source}: box {i + 1} {shown} has {what}, so it is no x1,y1,x2,y2 box; these look like "
                          "x,y,width,height boxes: add --box-format xywh.")
    raise PromptError(f"{source}: box {i + 1} {shown} has {what}; write the top-left corner, then the bottom-right "
                      "(x1,y1,x2,y2 with x2 > x1 and y2 > y1), or add --box-format xywh for x,y,width,height.")


def read_box_option(text: str, box_format: str = "xyxy") -> list[list[float]]:
    """--boxes text ("x1,y1,x2,y2; ..." or with spaces, in ``box_format``) -> XYXY boxes, checked."""
    items = split_prompt_items(text)
    if not items:
        raise PromptError(f"--boxes {text!r} holds no box; write x1,y1,x2,y2 (boxes separated by ';').")
    return check_box_orientation(parse_numbers(text, 4, "box"), box_format, "--boxes", items)


def read_point_option(text: str) -> list[list[float]]:
    """--points text ("x,y; x y") -> [[x, y], ...], checked."""
    if not split_prompt_items(text):
        raise PromptError(f"--points {text!r} holds no point; write x,y (points separated by ';').")
    return parse_numbers(text, 2, "point")


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of the image file as it will be shown (EXIF orientation applied), from its header;
    ImageError naming the file when it is missing or unreadable."""
    from regionspot.data.images import read_image_header, shown_size

    if Path(path).is_dir():
        raise ImageError(f"{path} is a folder; pass an image file (JPEG, PNG, ...).")
    return shown_size(*read_image_header(path))


def check_prompts_fit(path: Path, boxes: list[list[float]] | None, points: list[list[float]] | None) -> None:
    """Refuse boxes (XYXY) and points (xy) that lie wholly outside the image at ``path`` (its header is
    read, not its pixels). A box partly outside is clipped by the predictor, with a warning."""
    if not boxes and not points:
        return
    width, height = image_size(path)
    for i, (x1, y1, x2, y2) in enumerate(boxes or []):
        if x1 >= width or y1 >= height or x2 <= 0 or y2 <= 0:
            raise PromptError(f"box {i + 1} {_numbers(x1, y1, x2, y2)} lies outside the {width}x{height} image "
                              f"{path.name}; boxes are x1,y1,x2,y2 in its pixels.")
    for i, (x, y) in enumerate(points or []):
        if not (0 <= x <= width and 0 <= y <= height):
            raise PromptError(f"point {i + 1} {_numbers(x, y)} lies outside the {width}x{height} image {path.name}; "
                              "points are x,y in its pixels.")


def _numbers(*values: float) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


# --- flags and outputs ----------------------------------------------------------------------------
def check_writable(*paths: Path | None) -> None:
    """Each output path is no folder and its folder is writable (made now if missing, as the run would)."""
    for path in paths:
        if path is None:
            continue
        if path.is_dir():
            raise RegionSpotError(f"{path} is a folder; pass a file name to write, e.g. {path / 'result.json'}.")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=path.parent):
                pass
        except OSError as error:
            raise RegionSpotError(f"Cannot write {path} ({error.strerror or error.__class__.__name__} in {path.parent}); "
                                  "pick another path.") from None


# --- the embedded model's notes --------------------------------------------------------------------
def _key(name: str) -> str:
    return " ".join(name.lower().split())


def unknown_names_note(names: list[str]) -> str | None:
    """A note when some names are outside the embedded model's vocabulary (None when all are in it)."""
    from regionspot.text.presets import preset_vocabulary

    known = preset_vocabulary("shapesworld")
    keys = {_key(n) for n in known}
    outside = [n for n in names if _key(n) not in keys]
    if not outside:
        return None
    verb = "is" if len(outside) == 1 else "are"
    return (f"the embedded ShapesWorld model knows only {len(known)} shape names (e.g. {known[3]!r}); "
            f"{preview(outside)} {verb} not among them — {REAL_WEIGHTS_HINT}")


def unlike_image_note(picture: Image.Image, name: str) -> str | None:
    """A note when ``picture`` does not look like a ShapesWorld render (None when it does)."""
    from regionspot.shapesworld.likeness import measure_likeness

    likeness = measure_likeness(picture)
    if likeness.like:
        return None
    return (f"{name} does not look like ShapesWorld (flat shapes on a plain background): {likeness.describe()}; "
            f"the embedded model knows only such pictures — {REAL_WEIGHTS_HINT}")


def embedded_model_notes(names: list[str], picture: Image.Image | None, name: str) -> list[str]:
    """The embedded model's notes: names outside its vocabulary, and ``picture`` (None: the bundled
    example, not checked) unlike ShapesWorld."""
    notes = [unknown_names_note(names), None if picture is None else unlike_image_note(picture, name)]
    return [note for note in notes if note]


EVERYTHING_NOTE = ("no --boxes, --boxes-json or --points: labelling every region the segmenter finds (everything mode, "
                   "much slower than prompts); add --everything to ask for it, or give prompts")
