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
