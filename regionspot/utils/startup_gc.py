"""Python's cyclic garbage collector around a command's start-up and its exit.

Importing torch and transformers' model classes and loading a model leave the collector some 375,000 objects
to track, which live until the process ends. The collector walks every tracked object in each full
collection; it runs one each time the heap has grown by a quarter (so several while those imports run) and
again while the interpreter shuts down. On a 2-core Xeon that was about 0.4 s of CPU during
`regionspot predict`'s imports and 1 s at its exit, spent on objects that never become garbage
(docs/performance.md, "Start-up").

- :func:`start_up` — a context manager (or decorator) for the imports and the model load: no automatic
  collection inside; on leaving, every object then alive is frozen (``gc.freeze``: left out of later
  collections) and collection resumes as it was, so a long run still collects its own garbage.
- :func:`freeze_at_exit` — for the command line as it ends: the interpreter's collections at shutdown then
  skip everything alive. atexit handlers run as usual; what only a reference cycle keeps alive is not
  finalised (its memory goes back to the system with the process).

Only the command line calls these; Python users keep the collector as they set it.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["freeze_at_exit", "start_up"]


@contextlib.contextmanager
def start_up() -> Iterator[None]:
    """No automatic garbage collection inside; on leaving, freeze what is alive and resume collecting (nested
    uses resume once, when the outermost one leaves)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.freeze()
            gc.enable()


def freeze_at_exit() -> None:
    """Leave every object alive out of the collections the interpreter runs while shutting down."""
    gc.freeze()
