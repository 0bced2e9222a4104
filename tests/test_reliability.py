"""Reliability, round two (issue 14): standard input, chat templates, world defaults,
terminal and prompt safety, slow failures.

Each command-line case runs in a real process (test_robustness.run_bounded) and must end
with exit 2, one `error:` line that names the file, flag or value and says what to do, no
traceback, within 10 s and 1 GB, and nothing written outside the output folder.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import files_in, invoke
from test_robustness import TINY_WORLD, assert_refused_in_bounds, error_line

# ----------------------------------------------------------------------------- 8. standard input

STDIN_CASES = [
    pytest.param(b"caf\xe9 au lait", ["standard input (the prompt '-') is not UTF-8 text (byte 0xe9 at offset 3)",
                                      "give UTF-8 text of at most 1 MiB"], id="latin-1"),
    pytest.param(b"\xff\xfeh\x00i\x00", ["looks like binary data or UTF-16", "NUL at byte 3"], id="utf-16"),
    pytest.param(b"a prompt\x00with a NUL", ["standard input (the prompt '-') looks like binary data",
                                             "NUL at byte 8"], id="nul"),
    pytest.param(b"x" * (2**20 + 1), ["standard input (the prompt '-') is over 1,048,576 bytes",
                                      "a prompt must fit the model's context"], id="just-over-1-mib"),
    pytest.param(b"The well sings. " * (20 * 2**16), ["is over 1,048,576 bytes"], id="20-mb"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "needles"), STDIN_CASES)
def test_bad_standard_input_is_refused_in_bounds(tmp_path, data, needles):
    (tmp_path / "prompt.bin").write_bytes(data)
    with open(tmp_path / "prompt.bin", "rb") as stdin:
        assert_refused_in_bounds("generate", "-", "--model", "/nonexistent.gguf", cwd=tmp_path, stdin=stdin,
                                 needles=needles)
    assert files_in(tmp_path) == [tmp_path / "prompt.bin"]


def test_dev_zero_on_standard_input_stops_at_the_limit(tmp_path):
    with open("/dev/zero", "rb") as stdin:
        assert_refused_in_bounds("generate", "-", cwd=tmp_path, stdin=stdin, needles=["is over 1,048,576 bytes"])


def test_a_prompt_within_the_limit_fails_on_the_context_without_tokenizing(tmp_path, tiny_gguf):
    """1 MiB of text is refused by a lower bound on its tokens: no seconds and no GB spent first."""
    (tmp_path / "prompt.txt").write_bytes(b"The well sings. " * (2**16 - 1))
    with open(tmp_path / "prompt.txt", "rb") as stdin:
        assert_refused_in_bounds("generate", "-", "--model", tiny_gguf, "--dtype", "float32", cwd=tmp_path,
                                 stdin=stdin, needles=["the prompt has at least", "the model's context is 256",
                                                       "shorten the prompt"])


@pytest.mark.parametrize("flags, needle", [
    (["\udcff"], "the prompt '\\udcff' is not UTF-8 text"),
    (["hi", "--system", "caf\udce9"], "the --system 'caf\\udce9' is not UTF-8 text"),
])  # fmt: skip
def test_prompt_arguments_that_are_not_utf8(runner, tmp_path, flags, needle):
    result = invoke(runner, "generate", *flags, "--model", "/nonexistent.gguf")
    assert result.exit_code == 2
    assert needle in error_line(result) and "LANG or LC_ALL" in result.stderr


@settings(max_examples=200, deadline=None)
@given(data=st.one_of(st.binary(max_size=64), st.text(max_size=64).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_any_bytes_on_standard_input_give_text_or_one_reason(data):
    from metagen.files import read_stream_text

    try:
        text = read_stream_text(io.BytesIO(data), 32)
    except ValueError as error:
        assert str(error).startswith(("is over 32 bytes", "looks like binary data", "is not UTF-8 text")), error
    else:
        assert text.encode("utf-8") == data and len(data) <= 32 and "\x00" not in text


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=1, max_size=40).filter(lambda b: b"\x00" in b or not _is_utf8(b)))
def test_any_bad_standard_input_through_the_cli_is_one_line(runner, data):
    from metagen.cli import app

    result = runner.invoke(app, ["generate", "-", "--model", "/nonexistent.gguf"], input=data)
    assert result.exit_code == 2
    assert error_line(result).startswith("error: standard input (the prompt '-') ")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# ----------------------------------------------------------------------------- 11. world defaults

DEFAULTS_CASES = [
    pytest.param("defaults:\n  all:\n    tempreature: 0.5\n",
                 ["w.yaml:14:5: defaults.all.tempreature: unknown generation setting 'tempreature'",
                  "did you mean 'temperature'?"], id="misspelt"),
    pytest.param("defaults: {story: {top_p: 7}}\n",
                 ["w.yaml:12:27: defaults.story.top_p: --top-p must be in (0, 1], got 7.0",
                  "fix the value in the world file"], id="top-p-7"),
    pytest.param("defaults: {all: {seed: -3}}\n", ["w.yaml:12:24: defaults.all.seed: --seed must be in [0, 2**63)"],
                 id="seed"),
    pytest.param("defaults: {dialogue: {temperature: [a]}}\n",
                 ["w.yaml:12:36: defaults.dialogue.temperature: temperature (--temperature) must be a finite number"],
                 id="list-for-number"),
    pytest.param("defaults: {scene: {strategy: beem}}\n",
                 ["w.yaml:12:30: defaults.scene.strategy: --strategy must be one of", "did you mean 'beam'?"],
                 id="strategy-typo"),
    pytest.param("defaults: {all: {strategy: beam}}\n",
                 ["w.yaml:12:28: defaults.all.strategy: --beams must be at least 2 with --strategy beam"],
                 id="beam-without-beams"),
    pytest.param("defaults: {all: {strategy: beam}, story: {num_beams: 4}}\n",
                 ["w.yaml:12:28: defaults.all.strategy: --beams must be at least 2"], id="beams-for-story-only"),
    pytest.param("defaults: {all: {num_return_sequences: 3, strategy: greedy}}\n",
                 ["w.yaml:12:17: defaults.all: --num-return 3 with greedy decoding", "every command refuses these"],
                 id="conflict-in-all"),
    pytest.param("defaults: {all: {num_return_sequences: 3}, story: {strategy: greedy}}\n",
                 ["w.yaml:12:51: defaults.story: --num-return 3 with greedy", "every story command refuses"],
                 id="conflict-across-sections"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "needles"), DEFAULTS_CASES)
def test_validate_refuses_defaults_every_command_refuses(tmp_path, text, needles):
    (tmp_path / "w.yaml").write_text(TINY_WORLD + text, encoding="utf-8")
    line = assert_refused_in_bounds("worlds", "validate", "w.yaml", cwd=tmp_path, needles=needles)
    assert "ok:" not in line


@pytest.mark.parametrize(("text", "needles"), DEFAULTS_CASES[:4])
def test_commands_name_the_same_line_as_validate(tmp_path, text, needles):
    (tmp_path / "w.yaml").write_text(TINY_WORLD + text, encoding="utf-8")
    assert_refused_in_bounds("story", "w.yaml", "-c", "ada", "--model", "/nonexistent.gguf", cwd=tmp_path,
                             needles=["error: " + needles[0], *needles[1:]])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text", [
    "defaults: {all: {strategy: beam, num_beams: 4}}\n",
    "defaults: {all: {temperature: 0.5, top_p: 0.9}, story: {max_new_tokens: 300, min_new_tokens: 20}}\n",
    "defaults: {dialogue: {stop: ['\\n\\n'], candidates: 2}}\n",
])  # fmt: skip
def test_validate_accepts_defaults_that_work(runner, tmp_path, text):
    (tmp_path / "w.yaml").write_text(TINY_WORLD + text, encoding="utf-8")
    result = invoke(runner, "worlds", "validate", "w.yaml")
    assert result.exit_code == 0 and result.stdout.startswith("ok: w.yaml"), result.output


SETTING_NAMES = ["temperature", "top_p", "top_k", "min_p", "seed", "strategy", "num_beams", "max_new_tokens",
                 "repetition_penalty", "candidates", "stop", "banned", "dry_base", "xtc_threshold", "temprature"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(SETTING_NAMES),
       value=st.one_of(st.integers(-10**6, 10**6), st.floats(-1e6, 1e6, allow_nan=False),
                       st.sampled_from(["sample", "greedy", "beam", "x", "true"]), st.lists(st.sampled_from(["a", ""]),
                                                                                               max_size=2)))
def test_validate_agrees_with_the_settings_check(tmp_path, name, value):
    """One setting in defaults: the world is refused exactly when GenerationConfig refuses it."""
    import json

    from metagen.config import GenerationConfig
    from metagen.errors import ConfigError, WorldError
    from metagen.world import load_world

    path = tmp_path / "w.yaml"
    path.write_text(TINY_WORLD + f"defaults:\n  story:\n    {name}: {json.dumps(value)}\n", encoding="utf-8")
    try:
        GenerationConfig.from_dict({name: value})
        expected = None
    except ConfigError as error:
        expected = error.message
    try:
        load_world(path)
        got = None
    except WorldError as error:
        got = error.message
    assert (got is None) == (expected is None), (got, expected)
    if got:
        assert got.startswith(f"{path}:14:") and f"defaults.story.{name}: " in got and expected in got
