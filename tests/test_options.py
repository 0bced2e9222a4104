"""The decoding options: one per command-line setting, help and defaults drawn from config.SETTINGS."""

from __future__ import annotations

import ast
import inspect
import re
from typing import Annotated, get_args, get_origin

import pytest
import typer
from typer.testing import CliRunner

from metagen.commands import options
from metagen.config import CLI_BEAMS, SETTINGS


def test_one_option_per_command_line_setting_in_field_order():
    assert [name for name, _ in options.DECODING_PARAMETERS] == [s.name for s in SETTINGS.values() if s.option]
    assert "script_exempt" not in dict(options.DECODING_PARAMETERS)  # world and jobs files only


@pytest.mark.parametrize("name, help_text", [
    ("top_p", "Nucleus: smallest set with this probability mass, (0, 1]. [default: 0.95]"),
    ("min_p", "Drop tokens below min-p x the top probability, [0, 1). [default: 0 = off; 0.1 for story, scene and dialogue]"),
    ("typical_p", "Locally typical sampling mass, (0, 1]. [default: 1 = off]"),
    ("penalty_exempt", "A word the repetition, presence and frequency penalties never count (repeatable). "
                       "[default: none]"),
    ("early_stopping", "Beam: stop once enough hypotheses are done. [default: yes]"),
    ("length_penalty", "Beam score = logprob / length ** this. [default: 1]"),
    ("num_beams", f"Beams for --strategy beam. [default: {CLI_BEAMS}]"),
    ("max_new_tokens", "Most tokens to generate, counting the words metagen opens a scene or story paragraph with."),
    ("strategy", "greedy | sample | beam. [default: sample]"),
])
def test_help_text_carries_limits_and_default(name, help_text):
    assert options._help(SETTINGS[name]) == help_text


def _app():
    app = typer.Typer()

    @app.command()
    @options.with_decoding_options
    def show(*, settings: dict, model_options: dict):
        typer.echo(repr(settings))

    app.command("other")(lambda: None)
    return app


@pytest.mark.parametrize("args, expected", [
    ([], {}),
    (["--strategy", "beam"], {"strategy": "beam", "num_beams": CLI_BEAMS}),
    (["--strategy", "beam", "--beams", "2"], {"strategy": "beam", "num_beams": 2}),
    (["-t", "0", "-s", "5"], {"temperature": 0.0, "seed": 5}),
    (["--no-penalize-prompt", "--early-stopping"], {"penalize_prompt": False, "early_stopping": True}),
    (["--ban", "a", "--ban", "b", "--logit-bias", "#3=-2.5"], {"banned": ["a", "b"], "logit_bias": [("#3", -2.5)]}),
])
def test_flags_reach_the_command_as_settings(args, expected):
    result = CliRunner().invoke(_app(), ["show", *args])
    assert result.exit_code == 0, result.output
    given = {k: v for k, v in ast.literal_eval(result.output).items() if v is not None}
    assert given == expected


def _commands(app: typer.Typer, words: tuple[str, ...] = ()):
    """(command words, function) for every command of a Typer app and of the apps added to it."""
    for info in app.registered_commands:
        yield (*words, info.name), info.callback
    for group in app.registered_groups:
        yield from _commands(group.typer_instance, (*words, group.name))


def whole_number_flags() -> list[tuple[tuple[str, ...], str]]:
    """(command words, flag) for every whole-number option of metagen's commands that is not a decoding
    setting (those are checked as settings, config.check_setting)."""
    from metagen.cli import app

    decoding = dict(options.DECODING_PARAMETERS)
    root = typer.main.get_command(app)
    found = []
    for words, function in _commands(app):
        command = root
        for word in words:
            command = command.commands[word]
        flags = {param.name: max(param.opts, key=len) for param in command.params}
        for name, param in inspect.signature(function, eval_str=True).parameters.items():
            if get_origin(param.annotation) is not Annotated or decoding.get(name) == param.annotation:
                continue
            kind = get_args(param.annotation)[0]
            if int in (kind, *get_args(kind)):
                found.append((words, flags[name]))
    return found


WHOLE_NUMBER_FLAGS = whole_number_flags()


def test_the_whole_number_flags_are_found():
    """The test below sees every int option; these are some it must see."""
    for words, flag in [(("eval",), "--story-cast"), (("eval",), "--batch-size"), (("batch",), "--batch-size"),
                        (("story",), "--count"), (("dialogue",), "--turns"), (("tune",), "--seed")]:
        assert (words, flag) in WHOLE_NUMBER_FLAGS


# Every int option, the decoding settings' among them, as (command words, flag).
INT_FLAGS = [*WHOLE_NUMBER_FLAGS, (("story",), "--seed"), (("story",), "--max-tokens"), (("batch",), "--top-k")]


@pytest.mark.parametrize("words, flag", INT_FLAGS, ids=[" ".join((*w, f)) for w, f in INT_FLAGS])
@pytest.mark.parametrize("value, shown", [
    ("9" * 5000, "'" + "9" * 37 + "...' (5,000 digits)"),
    ("-" + "9" * 5000, "'-" + "9" * 36 + "...' (5,000 digits)"),
    ("x" * 300, "'" + "x" * 37 + "...' (300 characters)"),
    ("abc", "'abc'"),
], ids=["5000-digits", "negative-5000-digits", "300-letters", "abc"])
def test_an_int_option_past_what_int_reads_shows_its_value_cut_short(runner, words, flag, value, shown):
    """More than 4,300 digits, past what int() reads, got Click's "'999...' is not a valid int." with all
    5,000 digits written out: the CLI's one error handler cuts the value short and gives its length."""
    from conftest import invoke

    result = invoke(runner, *words, flag, value)
    assert result.exit_code == 2, result.output
    line = result.stderr
    assert line.startswith("error: Invalid value for '--") and line.count("\n") == 1, line
    assert re.search(f": {re.escape(shown)} is not a valid int( range)?\\. \\(see '", line) and len(line) < 200, line


@pytest.mark.parametrize("words, flag", WHOLE_NUMBER_FLAGS, ids=[" ".join((*w, f)) for w, f in WHOLE_NUMBER_FLAGS])
@pytest.mark.parametrize("value, shown", [("9" * 23, "9" * 23), ("9" * 4000, "a number of more than 40 digits")],
                         ids=["23-digits", "4000-digits"])
def test_every_whole_number_flag_stays_below_2_63(runner, words, flag, value, shown):
    """eval --story-cast and --batch-size took 99999999999999999999999 and wrote it into report.json, where a
    decoding flag refused it; a range check further on echoed a 4,000-digit --count whole. Every int option
    refuses it in one line as the flags are read, before any file is."""
    from conftest import invoke

    result = invoke(runner, *words, flag, value)
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: {flag} must be below 2**63 (at most 19 digits), got {shown}\n"
