"""The ``regionspot`` command line: predict | models | download | serve | convert | data | cache | train | propose |
eval | calibrate | guard | track | shapesworld.

One module per command; this package is the only code that parses CLI strings or prints. Commands parse
their arguments and call library functions.
"""

from regionspot.backbones.typed_prompts import parse_numbers
from regionspot.cli import (  # noqa: F401  (registers the commands)
    cache,
    calibrate,
    convert,
    data,
    download,
    evaluate,
    export,
    guard,
    predict,
    propose,
    serve,
    shapesworld,
    track,
    train,
)
from regionspot.cli.app import app, main
from regionspot.cli.predict import read_boxes_json, read_vocabulary

__all__ = ["app", "main", "parse_numbers", "read_boxes_json", "read_vocabulary"]
