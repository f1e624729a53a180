"""Reading a large JSON object one top-level array element at a time, in bounded memory.

COCO-format files of the paper's training sets are big (V3Det: 1.75 M boxes; OpenImages converted: 14.6 M):
``json.load`` turns every annotation into a Python dict at once, several GB for the boxes alone. Here the
file is read in blocks and each element of the top-level arrays (``images``, ``annotations``, ...) is
decoded on its own with the C decoder of the standard library, so at most one block plus one element is
held in memory, whatever the order of the keys in the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from regionspot.errors import RegionSpotError

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_BLOCK_CHARS = 1 << 22
_MAX_ELEMENT_CHARS = 1 << 28  # an element larger than this is taken as malformed, not as unfinished
_AHEAD_CHARS = 1 << 20  # array elements are decoded in place while this much text is buffered ahead


class _Cursor:
    """A window onto a text file: ``buffer[pos:]`` is what has been read but not consumed."""

    def __init__(self, handle: TextIO, path: Path) -> None:
        self.handle = handle
        self.path = path
        self.buffer = ""
        self.pos = 0
        self.eof = False
        self.consumed = 0  # characters dropped from the front of the buffer so far
        self._decoder = json.JSONDecoder()

    def _fill(self) -> None:
        chunk = self.handle.read(_BLOCK_CHARS)
        if not chunk:
            self.eof = True
        self.consumed += self.pos
        self.buffer = self.buffer[self.pos :] + chunk
        self.pos = 0

    def error(self, message: str) -> RegionSpotError:
        return RegionSpotError(
            f"{self.path} is not valid JSON ({message} near character {self.consumed + self.pos}); "
            "is it a COCO-format file?"
        )

    def peek(self) -> str:
        """The next non-whitespace character ('' at the end of the file), not consumed."""
        while True:
            self.pos = _WHITESPACE.match(self.buffer, self.pos).end()
            if self.pos < len(self.buffer) or self.eof:
                return self.buffer[self.pos] if self.pos < len(self.buffer) else ""
            self._fill()

    def expect(self, char: str) -> None:
        found = self.peek()
        if found != char:
            raise self.error(f"expected {char!r}, found {found or 'the end of the file'!r}")
        self.pos += 1

    def value(self) -> Any:
        """Decode the next JSON value; more of the file is read while the value is unfinished."""
        self.peek()
        while True:
            try:
                obj, end = self._decoder.raw_decode(self.buffer, self.pos)
                # A number at the end of the buffer may continue in the next block.
                if end < len(self.buffer) or self.eof:
                    self.pos = end
                    return obj
            except json.JSONDecodeError as error:
                if self.eof or len(self.buffer) - self.pos > _MAX_ELEMENT_CHARS:
                    raise self.error(error.msg) from None
            self._fill()


def _array_elements(cursor: _Cursor) -> Iterator[Any]:
    """The elements of the array whose ``[`` was just consumed, and the closing ``]``.

    The fast path decodes an element straight from the buffer (C scanner, no refill); an element that
    may reach past the buffered text goes through :meth:`_Cursor.value`.
    """
    scan = cursor._decoder.scan_once
    skip = _WHITESPACE.match
    if cursor.peek() == "]":
        cursor.pos += 1
        return
    while True:
        if len(cursor.buffer) - cursor.pos < _AHEAD_CHARS and not cursor.eof:
            cursor._fill()
        buffer = cursor.buffer
        pos = skip(buffer, cursor.pos).end()
        try:
            element, end = scan(buffer, pos)
            fast = end < len(buffer)
        except (StopIteration, json.JSONDecodeError):
            fast = False
        if fast:
            cursor.pos = end
        else:
            cursor.pos = pos
            element = cursor.value()
        yield element
        if cursor.pos < len(cursor.buffer) and cursor.buffer[cursor.pos] == ",":
            cursor.pos += 1
            continue
        if cursor.peek() == "]":
            cursor.pos += 1
            return
        cursor.expect(",")


def iter_json_object(
    path: str | Path, stream_keys: tuple[str, ...], seen: set[str] | None = None
) -> Iterator[tuple[str, Any]]:
    """Yield ``(key, element)`` for each element of the top-level arrays named in ``stream_keys``, and
    ``(key, value)`` once for every other top-level key, in file order.

    The file must hold one JSON object. A streamed key whose value is not an array is yielded whole.
    seen: when given, every top-level key is added to it as it is reached (an empty array yields nothing).
    Raises RegionSpotError (one line naming the file and the position) on malformed JSON.
    """
    path = Path(path)
    try:
        handle = open(path, encoding="utf-8")
    except OSError as error:
        raise RegionSpotError(f"Cannot read {path} ({error.strerror}); check the path.") from None
    with handle:
        cursor = _Cursor(handle, path)
        try:
            yield from _iter_object(cursor, stream_keys, set() if seen is None else seen)
        except UnicodeDecodeError as error:
            raise RegionSpotError(f"{path} is not valid JSON (not UTF-8: {error.reason}); is it a COCO-format file?") from None


def _iter_object(cursor: _Cursor, stream_keys: tuple[str, ...], seen: set[str]) -> Iterator[tuple[str, Any]]:
    cursor.expect("{")
    if cursor.peek() == "}":
        return
    while True:
        key = cursor.value()
        if not isinstance(key, str):
            raise cursor.error("an object key must be a string")
        cursor.expect(":")
        seen.add(key)
        if key in stream_keys and cursor.peek() == "[":
            cursor.pos += 1
            for element in _array_elements(cursor):
                yield key, element
        else:
            yield key, cursor.value()
        if cursor.peek() == "}":
            cursor.pos += 1
            break
        cursor.expect(",")
    if cursor.peek() != "":
        raise cursor.error("extra data after the top-level object")
