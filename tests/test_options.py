"""The decoding options: one per command-line setting, help and defaults drawn from config.SETTINGS."""

from __future__ import annotations

import ast

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
