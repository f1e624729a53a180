"""The one home of progress bars: a tqdm bar on a terminal, periodic plain lines in a redirected log.

Every long loop makes its bar with :func:`progress_bar` (same arguments as ``tqdm``). Where the bar is drawn
is chosen by ``REGIONSPOT_PROGRESS``:

- ``bars``: a live tqdm bar (``tqdm.auto``: a widget in notebooks);
- ``lines``: one plain line (``desc: 40% 400/1000 [00:12<00:18, 33.1it/s, loss=0.41]``) when the bar
  starts, each time it passes another 10 %, at most every ``REGIONSPOT_PROGRESS_INTERVAL`` seconds
  (default 30) in between, and when it ends; never a carriage return;
- ``off``: nothing.

Unset (the default): ``bars`` when the bar's stream (stderr unless ``file=`` says otherwise) is a
terminal, ``lines`` when it is redirected to a file or a pipe. A bar the caller disables stays off.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from typing import IO, Any

from tqdm.std import tqdm as _std_tqdm

MODES = ("bars", "lines", "off")
DEFAULT_INTERVAL_S = 30.0
_STEPS = 10  # lines mode: one line per tenth of the total


def progress_mode(file: IO[str] | None = None) -> str:
    """``bars``, ``lines`` or ``off``: ``$REGIONSPOT_PROGRESS`` when set, else by whether the stream is a terminal."""
    wanted = os.environ.get("REGIONSPOT_PROGRESS", "").strip().lower()
    if wanted in MODES:
        return wanted
    stream = file if file is not None else sys.stderr
    try:
        return "bars" if stream is not None and stream.isatty() else "lines"
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return "lines"


def line_interval() -> float:
    """Seconds between two lines of a redirected bar (``$REGIONSPOT_PROGRESS_INTERVAL``, default 30)."""
    try:
        return max(0.0, float(os.environ.get("REGIONSPOT_PROGRESS_INTERVAL", DEFAULT_INTERVAL_S)))
    except ValueError:
        return DEFAULT_INTERVAL_S


class LineProgress(_std_tqdm):
    """A tqdm whose display is a plain line ended by a newline, written only at milestones (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._line_at = -float("inf")  # monotonic time of the last line
        self._line_n: float | None = None  # count shown by the last line
        self._tenth = -1  # last tenth of the total a line was written for
        self._interval = line_interval()
        kwargs.setdefault("mininterval", min(1.0, self._interval) if self._interval else 0.1)
        kwargs.setdefault("bar_format", _line_format(kwargs.get("desc")))
        kwargs["dynamic_ncols"] = False
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if msg is not None:  # tqdm clearing or overriding the bar: nothing to erase in a log
            return False
        now = time.monotonic()
        tenth = int(_STEPS * self.n / self.total) if self.total else -1
        due = self._line_n is None or tenth > self._tenth or now - self._line_at >= self._interval
        if self._line_n is None or (due and self.n != self._line_n):
            self._write_line(now, tenth)
        return True

    def _write_line(self, now: float, tenth: int) -> None:
        self.fp.write(self.__str__() + "\n")
        self.fp.flush()
        self._line_at, self._line_n, self._tenth = now, self.n, max(tenth, self._tenth)

    def clear(self, nolock: bool = False) -> None:
        """Lines are never erased."""

    def moveto(self, n: int) -> None:
        """Lines do not move the cursor."""

    def close(self) -> None:
        if not getattr(self, "disable", True) and self._line_n != self.n:
            self._write_line(time.monotonic(), int(_STEPS * self.n / self.total) if self.total else -1)
        self.leave = False  # tqdm would end a kept bar with a newline of its own
        super().close()


def _line_format(desc: str | None) -> str:
    head = "{desc}: " if desc else ""
    return head + "{percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


def progress_bar(iterable: Iterable[Any] | None = None, **kwargs: Any) -> _std_tqdm:
    """A progress bar over ``iterable`` (or updated by hand): ``tqdm``'s arguments, drawn per :func:`progress_mode`.

    In lines mode a bar with no total writes its count, elapsed time and rate.
    """
    mode = progress_mode(kwargs.get("file"))
    if mode == "off":
        kwargs["disable"] = True
    if mode == "bars" or kwargs.get("disable"):
        from tqdm.auto import tqdm

        return tqdm(iterable, **kwargs)
    total = kwargs.get("total")
    if total is None and iterable is not None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    if not total:
        kwargs.setdefault("bar_format", ("{desc}: " if kwargs.get("desc") else "")
                          + "{n_fmt}{unit} [{elapsed}, {rate_fmt}{postfix}]")
    return LineProgress(iterable, **kwargs)


def progress_write(message: str, file: IO[str] | None = None) -> None:
    """Print a line without breaking a live bar (``tqdm.write``); a plain print in lines mode."""
    stream = file if file is not None else sys.stderr
    if progress_mode(stream) == "bars":
        _std_tqdm.write(message, file=stream)
    else:
        stream.write(message + "\n")
        stream.flush()
