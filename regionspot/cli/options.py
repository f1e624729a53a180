"""From a command's config fields to its flags: the one place that knows both spellings.

Each command's options are one config dataclass (``EvalOptions``, ``PredictOptions``, ...) whose field names
are the Typer parameter names, so ``Config(**arguments)`` builds it. A flag is ``--field-name`` unless
``FLAGS`` says otherwise. Messages raised below the CLI name a field in backticks (`` `batch_size` must be
>= 1``); :func:`flag_messages` rewrites the names of a command's parameters into the flags the user typed
(``--batch-size``); a field that is no option of the command keeps its name.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Iterable

from regionspot.errors import RegionSpotError

# Config field -> flag, where the flag is not the field's name with dashes.
FLAGS = {
    "methods": "--method",
    "eval_resize": "--input-resize",
    "segmenter": "--sam",
    "vision_language": "--clip",
    "prompts_file": "--prompts",
    "output_format": "--format",
    "paths": "--path",
    "backends": "--backend",
}
_FIELD = re.compile(r"`(\w+)`")


def flag(field: str) -> str:
    """The flag of a config field: ``batch_size`` -> ``--batch-size``, ``methods`` -> ``--method``."""
    return FLAGS.get(field, "--" + field.replace("_", "-"))


def name_flags(message: str, fields: Iterable[str]) -> str:
    """``message`` with each backticked name of ``fields`` written as its flag (other backticked text kept)."""
    known = set(fields)
    return _FIELD.sub(lambda m: flag(m[1]) if m[1] in known else m[0], message)


def flag_messages(command: Callable) -> Callable:
    """Decorator of a command whose parameters are its config's fields: a ``RegionSpotError`` raised inside that
    names one of them (in backticks) is re-raised naming its flag instead."""
    fields = list(inspect.signature(command).parameters)

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except RegionSpotError as error:
            if error.args and isinstance(error.args[0], str):
                error.args = (name_flags(error.args[0], fields), *error.args[1:])
            raise

    return wrapper
