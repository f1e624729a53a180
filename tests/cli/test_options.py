"""cli/options.py: a config field's flag, and messages that name fields rewritten into flags."""

import dataclasses

import pytest
import typer.main

from regionspot.cli import app
from regionspot.cli.options import FLAGS, flag, flag_messages, name_flags
from regionspot.engine.config import EvalOptions
from regionspot.errors import ConfigError
from regionspot.evaluation.guard_options import GuardOptions
from regionspot.inference.options import PredictOptions


def test_flag_of_a_field():
    assert flag("batch_size") == "--batch-size" and flag("methods") == "--method" and flag("segmenter") == "--sam"


def test_name_flags_rewrites_only_the_fields_named():
    assert name_flags("`methods` is empty; `other` stays", ["methods"]) == "--method is empty; `other` stays"
    assert name_flags("`eval_resize` must be ...", ["eval_resize"]) == "--input-resize must be ..."
    assert name_flags("set `datasets: [...]`", ["datasets"]) == "set `datasets: [...]`"


def test_a_commands_error_names_its_flags_and_keeps_other_fields():
    @flag_messages
    def command(batch_size: int = 1) -> None:
        raise ConfigError("`batch_size` must be >= 1; `crop_batch_size` too.")

    with pytest.raises(ConfigError) as raised:
        command()
    assert str(raised.value) == "--batch-size must be >= 1; `crop_batch_size` too."


@pytest.mark.parametrize(("command", "config"), [("eval", EvalOptions), ("predict", PredictOptions)])
def test_each_option_is_a_field_and_its_flag_is_the_one_flag_says(command, config):
    """The Typer parameters are the config's field names (so ``Config(**arguments)`` builds it) and each flag is
    ``flag(field)``: cli/options.py is the one place where a flag and its field differ."""
    fields = {f.name for f in dataclasses.fields(config)}
    params = typer.main.get_command(app).commands[command].params
    assert {p.name for p in params} <= fields
    for p in params:
        if p.param_type_name == "option":
            assert flag(p.name) in p.opts, (p.name, p.opts)
    assert set(FLAGS) <= {f.name for c in (EvalOptions, PredictOptions, GuardOptions) for f in dataclasses.fields(c)}
