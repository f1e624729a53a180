"""Prompts as a user types them: strings of numbers read into boxes and points, one clear error per bad
item quoting it as typed, and the list geometry the command line checks before any model loads (boxes XYXY
or XYWH, points xy, original-image pixels).

Imports no torch (nor numpy until XYWH boxes are converted), so the command line and the demo check typed
prompts at once; the tensors a segmenter decodes are checked in ``backbones/prompts.py``.
"""

from __future__ import annotations

import math
import re

from regionspot.errors import PromptError

BOX_FORMATS: tuple[str, ...] = ("xyxy", "xywh")  # corners (x1, y1, x2, y2) or COCO's (x, y, width, height)


def split_prompt_items(text: str) -> list[str]:
    """The items of a typed prompt string, as typed: separated by ';' or new lines, outer spaces stripped,
    empty items dropped ("10,20,30,40; 50 60 70 80" -> ["10,20,30,40", "50 60 70 80"])."""
    return [item.strip() for item in text.replace("\n", ";").split(";") if item.strip()]


def _plural(name: str) -> str:
    return name + ("es" if name.endswith("x") else "s")


def parse_numbers(text: str, width: int, name: str) -> list[list[float]]:
    """Typed prompts: "x1,y1,x2,y2; x1 y1 x2 y2" -> [[...], [...]] with exactly ``width`` numbers per item.

    Items are separated by ';' or new lines (:func:`split_prompt_items`); the numbers of an item by commas
    and/or spaces, so "10 20 30 40" is one box. Raises PromptError quoting the item as typed, for a word
    that is not a finite number or a wrong count (a multiple of ``width`` suggests the missing ';').
    """
    out = []
    for item in split_prompt_items(text):
        tokens = [t for t in re.split(r"[,\s]+", item) if t]
        try:
            values = [float(v) for v in tokens]
        except ValueError:
            bad = next(t for t in tokens if not _is_number(t))
            raise PromptError(f"Cannot read {name} {item!r}: {bad!r} is not a number; write {width} numbers per {name} "
                              f"(commas or spaces between them), {_plural(name)} separated by ';'.") from None
        if not all(math.isfinite(v) for v in values):
            raise PromptError(f"{name} {item!r} has a NaN or infinite number; write {width} finite pixel coordinates.")
        if len(values) != width:
            if len(values) > width and len(values) % width == 0:
                fixed = "; ".join(",".join(tokens[i:i + width]) for i in range(0, len(tokens), width))
                raise PromptError(f"{name} {item!r} has {len(values)} numbers, {len(values) // width} {_plural(name)}? "
                                  f"Separate {_plural(name)} with ';': {fixed!r}.")
            raise PromptError(f"{name} {item!r} has {len(values)} numbers; each {name} needs {width} "
                              f"(separate {_plural(name)} with ';').")
        out.append(values)
    return out


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def boxes_to_xyxy(boxes: list[list[float]], box_format: str) -> list[list[float]]:
    """(N, 4) boxes in ``box_format`` ("xyxy" or "xywh", image pixels) -> (N, 4) XYXY, same frame."""
    if box_format not in BOX_FORMATS:
        raise PromptError(f"Unknown box format {box_format!r}; use one of {', '.join(BOX_FORMATS)}.")
    if box_format == "xyxy" or not boxes:
        return [list(map(float, box)) for box in boxes]
    import numpy as np

    from regionspot.data.transforms import xywh_to_xyxy

    return xywh_to_xyxy(np.asarray(boxes, dtype=np.float64)).tolist()


def inverted_boxes(boxes_xyxy: list[list[float]]) -> list[int]:
    """Indices of the XYXY boxes with x2 <= x1 or y2 <= y1 (zero or negative area)."""
    return [i for i, (x1, y1, x2, y2) in enumerate(boxes_xyxy) if x2 <= x1 or y2 <= y1]


def xywh_suspected(boxes_as_typed: list[list[float]]) -> bool:
    """Whether boxes given as XYXY are likely XYWH: some have x2 <= x1 or y2 <= y1 (impossible as corners),
    and every one reads as a valid XYWH box (width and height > 0, corner not negative)."""
    return bool(inverted_boxes(boxes_as_typed)) and all(
        w > 0 and h > 0 and x >= 0 and y >= 0 for x, y, w, h in boxes_as_typed
    )
