"""Bad input, damaged files and failing disks never cost the user anything (issue 7).

Every case goes through the real command line (CliRunner on metagen.cli.app, or
`python -m metagen` where a real process matters) and checks what the user sees: the
exit code, one `error:` line on stderr that names the file, field or value and says what
to do, no traceback, and no output file or temp file left behind. Library-level detail
(every line:column, every limit) lives in test_world.py, test_catalog.py, test_gguf.py and
test_output.py; docs/errors.md lists the messages.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metagen.output import is_complete, read_piece_file

from conftest import TINY_WORLD, files_in, invoke

ROOT = Path(__file__).resolve().parent.parent

HEAD = "world: {id: w, name: W}\n"
KNOWN = "smollm2-135m-instruct"


# ----------------------------------------------------------------------------- helpers


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if a command gets as far as loading a model."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("metagen.commands.pieces.load_generator", refuse)


def leftovers(root: Path) -> list[Path]:
    """Temp files of an atomic write (.tmp), a pull (.part) or a cache save (.staging-*)."""
    return [p for p in root.rglob("*") if p.name.endswith((".tmp", ".part")) or p.name.startswith(".staging-")]


def error_line(result) -> str:
    """The one `error:` line a failed command prints, last on stderr; asserts it is alone."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    return errors[0]


def assert_fails_cleanly(result, code: int, needles, out: Path | None = None, root: Path | None = None) -> str:
    assert result.exit_code == code, (result.exit_code, result.stderr)
    line = error_line(result)
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    if out is not None:
        assert files_in(out) == []
    if root is not None:
        assert leftovers(root) == []
    return line


def run_metagen(*args, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m metagen ARGS` in a real process (bytes arguments pass through as they are)."""
    argv = [a if isinstance(a, bytes) else str(a) for a in args]
    return subprocess.run([sys.executable, "-m", "metagen", *argv], cwd=cwd, capture_output=True,
                          timeout=timeout, env=dict(os.environ))


def write_files(root: Path, files: dict) -> None:
    """{relative path: text, bytes, or None for a folder}."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            path.mkdir(exist_ok=True)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def alias_bomb() -> str:
    """Billion laughs: nine levels of nine aliases each, 9**9 strings once expanded."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\nworld: {id: w, name: W, summary: *i}\n"


def merge_bomb() -> str:
    """The same growth through `<<` merge keys instead of lists."""
    lines = ["a0: &a0 {x: 1, y: 2, z: 3}"]
    for level in range(1, 10):
        refs = ", ".join(f"*a{level - 1}" for _ in range(9))
        lines.append(f"a{level}: &a{level} {{k: [{refs}]}}")
    return HEAD + "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- worlds

# (world argument, files, what the one line must contain)
WORLD_CASES = [
    pytest.param("world.yaml", {"world.yaml": ""},
                 ["world.yaml: is empty or only comments", "metagen worlds new NAME"], id="empty-file"),
    pytest.param("world.yaml", {"world.yaml": "# a world, one day\n\n   # nothing yet\n"},
                 ["world.yaml: is empty or only comments", "needs at least 'world:'"], id="only-comments"),
    pytest.param("world.yaml", {"world.yaml": "world:\n\tid: w\n\tname: W\n"},
                 ["world.yaml:2:1: invalid YAML: a tab character", "indent with spaces, not tabs"], id="tab-indent"),
    pytest.param("world.yaml", {"world.yaml": 'world:\n  id: w\n  name: "Unclosed\n'},
                 ["world.yaml:3:9: invalid YAML: a quoted string is never closed", "close the quote"],
                 id="unclosed-quote"),
    pytest.param("world.yaml", {"world.yaml": "world: {id: w, name: W\n"},
                 ["world.yaml:1:8: invalid YAML: a [list] or {mapping} that starts here is never closed"],
                 id="unclosed-brace"),
    pytest.param("world.yaml", {"world.yaml": HEAD + "---\n" + HEAD},
                 ["world.yaml:2:1: invalid YAML: a second document", "remove the extra '---'"], id="two-documents"),
    pytest.param("world.yaml", {"world.yaml": "- world\n- characters\n"},
                 ["world.yaml:1:1: the top level is a list", "expected a mapping of sections"], id="top-level-list"),
    pytest.param("world.yaml", {"world.yaml": "a world of rain\n"},
                 ["world.yaml:1:1: the top level is a single value", "expected a mapping"],
                 id="top-level-string"),
    pytest.param("world.yaml", {"world.yaml": "1234\n"},
                 ["world.yaml:1:1: the top level is a single value"], id="top-level-number"),
    pytest.param("world.yaml", {"world.yaml": HEAD + "locations: {id: well, name: Well}\n"},
                 ["world.yaml:2:12: locations: got a mapping", "expected a list of '- id: ...' entries"],
                 id="wrong-type-section"),
    pytest.param("world.yaml", {"world.yaml": HEAD + "lore:\n  - {id: a, keys: [x], text: T, priority: high}\n"},
                 ["world.yaml:3:43: lore[0].priority: got the text 'high'", "expected a whole number"],
                 id="wrong-type-field"),
    pytest.param("world.yaml", {"world.yaml": HEAD + "characters:\n  - {id: ada, name: Ada, traits: brave}\n"},
                 ["world.yaml:3:34: characters[0].traits: got the text 'brave'", "expected a list of text"], id="wrong-type-list"),
    pytest.param("world.yaml", {"world.yaml": HEAD + "style: {point_of_view: fourth}\n"},
                 ["world.yaml:2:24: style.point_of_view: 'fourth' is not allowed", "first, second, third"], id="bad-choice"),
    pytest.param("world.yaml", {"world.yaml": "world: {id: w}\n"},
                 ["world.yaml:1:8: world: missing required field 'name'"], id="missing-name"),
    pytest.param("world.yaml", {"world.yaml": "characters: []\n"},
                 ["world.yaml:1:1: missing required field 'world'"], id="missing-world"),
    pytest.param("world.yaml", {"world.yaml": HEAD + "characters:\n  - {name: Ada}\n"},
                 ["world.yaml:3:5: characters[0]: missing required field 'id'"], id="missing-id"),
    pytest.param("world.yaml", {"world.yaml": "world: {id: Big World!, name: W}\n"},
                 ["world.yaml:1:13: world.id: 'Big World!' is not a valid id", "e.g. 'big-world'"], id="bad-id"),
    pytest.param("world.yaml", {"world.yaml": HEAD + "characters:\n  - {id: ada, name: A}\n  - {id: ada, name: B}\n"},
                 ["world.yaml:4:10: characters[1].id: duplicate character id 'ada'", "first defined at line 3"],
                 id="duplicate-id"),
    pytest.param("world.yaml", {"world.yaml": HEAD + "locations:\n  - {id: well, name: W, connections: [mil]}\n"
                                "  - {id: mill, name: M}\n"},
                 ["world.yaml:3:39: locations[0].connections[0]: unknown location 'mil'", "did you mean 'mill'?"],
                 id="unknown-reference"),
    pytest.param("world.yaml", {"world.yaml": HEAD + "characters:\n  - {id: ada, name: A, relationships: [{with: zed}]}\n"},
                 ["world.yaml:3:47: characters[0].relationships[0].with: unknown character 'zed'", "expected one of: ada"],
                 id="unknown-reference-no-match"),
    pytest.param("world.yaml", {"world.yaml": "world: {id: w, name: W, nmae: X}\n"},
                 ["world.yaml:1:25: world: unknown field 'nmae'", "did you mean 'name'?"], id="unknown-key"),
    pytest.param("world.yaml", {"world.yaml": HEAD + "charactres: []\n"},
                 ["world.yaml:2:1: unknown field 'charactres'", "did you mean 'characters'?"], id="unknown-section"),
    pytest.param("world.yaml", {"world.yaml": "world: {id: w, name: Caf\xe9}\n".encode("latin-1")},
                 ["world.yaml:1:25: not UTF-8 text (byte 0xe9", "save it as UTF-8"], id="latin-1"),
    pytest.param("world.yaml", {"world.yaml": "world: {id: w, name: W}\n".encode("utf-16")},
                 ["world.yaml: looks like a binary file, not YAML text", "give a UTF-8 .yaml file"], id="utf-16"),
    pytest.param("world.yaml", {"world.yaml": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00"},
                 ["world.yaml: looks like a binary file", "NUL at byte 8"], id="binary"),
    pytest.param("world.yaml", {"world.yaml": 'world: {id: w, name: "A\x08B"}\n'},
                 ["world.yaml:1:24: the control character U+0008 is not allowed in YAML", "delete it"],
                 id="control-character"),
    pytest.param("world.yaml", {"world.yaml": None},
                 ["world.yaml: is a directory, not a world file", "give the .yaml file itself"], id="directory"),
    pytest.param("harbour", {"harbour/world.yaml": HEAD},
                 ["harbour: is a directory", "give harbour/world.yaml"], id="directory-with-world"),
    pytest.param("nowhere.yaml", {},
                 ["nowhere.yaml: no such file", "check the path"], id="missing-path"),
    pytest.param("world.yaml", {"world.yaml": HEAD + "include: [a.yaml]\n", "a.yaml": "include: [b.yaml]\n",
                                "b.yaml": "include: [a.yaml]\n"},
                 ["b.yaml:1:11: include[0]: include cycle: a.yaml -> b.yaml -> a.yaml", "remove one of these"],
                 id="include-cycle"),
    pytest.param("world.yaml", {"world.yaml": HEAD + "include: [world.yaml]\n"},
                 ["world.yaml:2:11: include[0]: include cycle: world.yaml -> world.yaml"], id="include-self"),
    pytest.param("inner/world.yaml", {"inner/world.yaml": HEAD + "include: [../secrets.yaml]\n",
                                      "secrets.yaml": "lore: []\n"},
                 ["inner/world.yaml:2:11: include[0]: '../secrets.yaml' is outside the world's folder"],
                 id="include-outside"),
    pytest.param("world.yaml", {"world.yaml": HEAD + "include: [/etc/passwd]\n"},
                 ["world.yaml:2:11: include[0]: '/etc/passwd' is outside the world's folder"], id="include-absolute"),
    pytest.param("world.yaml", {"world.yaml": HEAD + "include: [parts/nope.yaml]\n"},
                 ["world.yaml:2:11: include[0]: 'parts/nope.yaml' not found", "relative to world.yaml"], id="include-missing"),
    pytest.param("world.yaml", {"world.yaml": HEAD + "include: [part.yaml]\n", "part.yaml": b"lore:\n\t- x\n"},
                 ["part.yaml:2:1: invalid YAML: a tab character"], id="include-broken"),
    pytest.param("world.yaml", {"world.yaml": alias_bomb()},
                 ["world.yaml:5:4: aliases expand to more than 50000 nodes", "an alias bomb?"], id="alias-bomb"),
    pytest.param("world.yaml", {"world.yaml": merge_bomb()},
                 ["world.yaml:7:13: aliases expand to more than 50000 nodes"], id="merge-bomb"),
    pytest.param("world.yaml", {"world.yaml": "x: &x a\ny: [" + ", ".join(["*x"] * 101) + "]\n"},
                 ["world.yaml:2:405: more than 100 alias uses"], id="many-aliases"),
    pytest.param("world.yaml", {"world.yaml": "world: &a {id: w, name: W, more: *a}\n"},
                 ["world.yaml:1:34: an alias refers to the node that contains it"], id="recursive-alias"),
    pytest.param("world.yaml", {"world.yaml": HEAD + "lore: " + "[" * 5000 + "]" * 5000 + "\n"},
                 ["world.yaml: is nested too deeply", "flatten"], id="deep-nesting"),
    pytest.param("world.yaml", {"world.yaml": HEAD + ("# " + "x" * 1000 + "\n") * 2200},
                 ["world.yaml: is 2,206,624 bytes, over the 2 MiB limit", "split it with include:"], id="too-large"),
    pytest.param("world.yaml", {"world.yaml": "world: !!python/object:os.system {id: w}\n"},
                 ["world.yaml:1:8: YAML tag '!!python/object:os.system' is not allowed", "remove the tag"],
                 id="python-object"),
    pytest.param("world.yaml", {"world.yaml": "world: {id: w, name: !!python/object/apply:os.system [ls]}\n"},
                 ["world.yaml:1:22: YAML tag '!!python/object/apply:os.system' is not allowed"], id="python-apply"),
    pytest.param("world.yaml", {"world.yaml": "world: {id: w, name: !!python/name:os.system ''}\n"},
                 ["world.yaml:1:22: YAML tag '!!python/name:os.system' is not allowed"], id="python-name"),
    pytest.param("world.yaml", {"world.yaml": "world: {id: w, name: !!binary aGk=}\n"},
                 ["world.yaml:1:22: YAML tag '!!binary' is not allowed"], id="binary-tag"),
    pytest.param("world.yaml", {"world.yaml": 'world: {id: w, name: "\\ud800"}\n'},
                 ["world.yaml:1:22: \\ud800 is half of a UTF-16 surrogate pair", "write the character itself"],
                 id="lone-surrogate"),
    pytest.param("world.yaml", {"world.yaml": HEAD + 'content: {banned_words: ["\\udc80"]}\n'},
                 ["world.yaml:2:26: \\udc80 is half of a UTF-16 surrogate pair"], id="lone-surrogate-banned"),
]  # fmt: skip


@pytest.mark.parametrize(("arg", "files", "needles"), WORLD_CASES)
def test_broken_world_story(runner, tmp_path, no_model, arg, files, needles):
    """`metagen story WORLD`: one line naming the file (and line:column, field), exit 2, nothing written."""
    write_files(tmp_path, files)
    result = invoke(runner, "story", arg, "-c", "ada", "--out", tmp_path / "out")
    assert_fails_cleanly(result, 2, ["error: " + needles[0], *needles[1:]], out=tmp_path / "out", root=tmp_path)
    assert result.stdout == ""


@pytest.mark.parametrize(("arg", "files", "needles"), WORLD_CASES)
def test_broken_world_validate(runner, tmp_path, arg, files, needles):
    """`metagen worlds validate WORLD`: the problem on stderr (no summary for one), exit 2, no 'ok:'."""
    write_files(tmp_path, files)
    result = invoke(runner, "worlds", "validate", arg)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(needles[0]) and all(n in line for n in needles[1:]), line


def test_many_problems_are_one_line_in_story_and_all_listed_by_validate(runner, tmp_path, no_model):
    text = HEAD + "characters:\n  - {id: ada, nmae: Ada}\n  - {id: ada, name: B, traits: x}\n"
    (tmp_path / "world.yaml").write_text(text, encoding="utf-8")
    story = invoke(runner, "story", "world.yaml", "--out", tmp_path / "out")
    assert_fails_cleanly(story, 2, ["error: world.yaml: 4 problems in world",
                                    "first: world.yaml:3:5: characters[0]: missing required field 'name'",
                                    "run `metagen worlds validate world.yaml` to see all 4"], out=tmp_path / "out")
    validate = invoke(runner, "worlds", "validate", "world.yaml")
    assert validate.exit_code == 2
    assert len(validate.stderr.splitlines()) == 5 and validate.stderr.splitlines()[-1].startswith("error: ")


BOMB_PROBE = """
import resource, sys, time
from metagen.errors import WorldError
from metagen.world import load_world
start = time.perf_counter()
try:
    load_world(sys.argv[1])
    message = "loaded"
except WorldError as error:
    message = error.one_line()
# VmHWM is this process's own peak; ru_maxrss would carry the forking parent's peak over exec.
peak = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")]
print(time.perf_counter() - start, peak[0] if peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
print(message)
"""


@pytest.mark.parametrize("text", [alias_bomb(), merge_bomb()], ids=["billion-laughs", "merge-keys"])
def test_alias_bomb_is_refused_quickly_in_bounded_memory(tmp_path, text):
    """A fresh process measures its own peak memory: the bomb is never expanded."""
    path = tmp_path / "bomb.yaml"
    path.write_text(text, encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", BOMB_PROBE, str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    timing, message = done.stdout.splitlines()
    seconds, peak_kib = float(timing.split()[0]), int(timing.split()[1])
    assert "aliases expand to more than 50000 nodes" in message
    assert seconds < 10  # refused at the first level past the limit; expanding would take hours
    assert peak_kib < 300 * 1024  # the interpreter and yaml alone take about 40 MiB


# ----------------------------------------------------------------------------- requests

REQUEST_CASES = [
    pytest.param(["story", "-c", "adda"], ["world 'tinyville' has no character 'adda'", "did you mean 'ada'?"],
                 id="character-typo"),
    pytest.param(["story", "-c", "zed"], ["has no character 'zed'", "expected one of: ada, bo, cy"],
                 id="character-unknown"),
    pytest.param(["story", "-c", "ada", "-l", "wel"], ["has no location 'wel'", "did you mean 'well'?"],
                 id="location-typo"),
    pytest.param(["describe-scene", "-l", "mil"], ["has no location 'mil'", "did you mean 'mill'?"],
                 id="scene-location-typo"),
    pytest.param(["dialogue", "-c", "ada,boo"], ["has no character 'boo'", "did you mean 'bo'?"],
                 id="dialogue-character-typo"),
    pytest.param(["describe-scene"], ["a scene needs a location", "give --location ID"], id="scene-no-location"),
    pytest.param(["dialogue", "-c", "ada"], ["a dialogue needs at least two characters"], id="dialogue-one"),
    pytest.param(["dialogue", "-c", "ada,Ada"], ["names the same character twice"], id="dialogue-twice"),
    pytest.param(["dialogue", "-c", "ada,bo", "--order", "loudest"], ["--order must be one of"], id="order"),
    pytest.param(["story", "--length", "epic"], ["story length 'epic' is not known", "short, medium, long"],
                 id="length"),
    pytest.param(["story", "--premise", "caf\udce9"], ["the premise 'caf\\udce9' is not UTF-8 text", "LANG"],
                 id="premise-not-utf8"),
    pytest.param(["dialogue", "-c", "ada,bo", "--topic", "\udcff"], ["the topic '\\udcff' is not UTF-8"],
                 id="topic-not-utf8"),
    pytest.param(["describe-scene", "-l", "well", "--mood", "\udcff"], ["the mood '\\udcff' is not UTF-8"],
                 id="mood-not-utf8"),
    pytest.param(["story", "--format", "docx"], ["unknown output format 'docx'", "md, txt, json"], id="format"),
    pytest.param(["story", "--format", "yarn"], ["the yarn format holds dialogue only"], id="format-kind"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "needles"), REQUEST_CASES)
def test_bad_request(runner, tmp_path, world, no_model, args, needles):
    result = invoke(runner, args[0], world, *args[1:], "--out", tmp_path / "out")
    assert_fails_cleanly(result, 2, needles, out=tmp_path / "out")


DECODING_CASES = [
    pytest.param(["--top-p", "1.5"], "--top-p must be in (0, 1], got 1.5", id="top-p-high"),
    pytest.param(["--top-p", "0"], "--top-p must be in (0, 1], got 0.0", id="top-p-zero"),
    pytest.param(["--temperature", "-1"], "--temperature must be in [0, 100], got -1.0", id="temperature"),
    pytest.param(["--temperature", "nan"], "(--temperature) must be a finite number, got nan", id="temperature-nan"),
    pytest.param(["--temperature", "inf"], "(--temperature) must be a finite number, got inf", id="temperature-inf"),
    pytest.param(["--strategy", "beam", "--beams", "0"], "--beams must be in [1, 64], got 0", id="beams-0"),
    pytest.param(["--strategy", "beam", "--beams", "1"], "--beams must be at least 2 with --strategy beam",
                 id="beams-1"),
    pytest.param(["--strategy", "beam", "--beams", "2", "--num-return", "3"],
                 "--num-return must be at most --beams (2)", id="num-return"),
    pytest.param(["--strategy", "greedy", "--num-return", "2"], "--num-return 2 with greedy decoding",
                 id="num-return-greedy"),
    pytest.param(["--max-tokens", "0"], "--max-tokens must be at least 1, got 0", id="max-tokens-0"),
    pytest.param(["--max-tokens", "-5"], "--max-tokens must be at least 1, got -5", id="max-tokens-negative"),
    pytest.param(["--min-tokens", "9", "--max-tokens", "5"], "--min-tokens must be at most --max-tokens (5), got 9",
                 id="min-over-max"),
    pytest.param(["--seed", "-1"], "--seed must be in [0, 2**63), got -1", id="seed-negative"),
    pytest.param(["--seed", str(2**63)], f"--seed must be in [0, 2**63), got {2**63}", id="seed-huge"),
    pytest.param(["--logit-bias", "bad"], "--logit-bias 'bad' must look like WORD=BIAS or #ID=BIAS",
                 id="logit-bias-shape"),
    pytest.param(["--logit-bias", "dragon=lots"], "--logit-bias 'dragon=lots' must look like WORD=BIAS",
                 id="logit-bias-number"),
    pytest.param(["--logit-bias", "#x=1"], "--logit-bias token ids are written #123, got '#x'", id="logit-bias-id"),
    # was worded for world files: "logit_bias (--logit-bias) must be a mapping of word or #id to ..."
    pytest.param(["--logit-bias", "dragon=nan"],
                 "--logit-bias 'dragon=nan': the bias must be a finite number in [-1000, 1000], got nan",
                 id="logit-bias-nan"),
    pytest.param(["--logit-bias", "dragon=-inf"],
                 "--logit-bias 'dragon=-inf': the bias must be a finite number in [-1000, 1000], got -inf",
                 id="logit-bias-inf"),
    pytest.param(["--logit-bias", "\udcff=1"], "--logit-bias '\\udcff' is not UTF-8 text", id="logit-bias-utf8"),
    pytest.param(["--strategy", "nonsense"], "--strategy must be one of greedy, sample, beam, got 'nonsense'",
                 id="strategy"),
    pytest.param(["--strategy", "beem"], "did you mean 'beam'?", id="strategy-typo"),
    pytest.param(["--top-k", "-1"], "--top-k must be at least 0, got -1", id="top-k"),
    pytest.param(["--min-p", "1"], "--min-p must be in [0, 1), got 1.0", id="min-p"),
    pytest.param(["--typical-p", "0"], "--typical-p must be in (0, 1], got 0.0", id="typical-p"),
    pytest.param(["--repetition-penalty", "0"], "--repetition-penalty must be in [0.001, 100]", id="repetition"),
    pytest.param(["--repetition-window", "-1"], "--repetition-window must be at least 0", id="window"),
    pytest.param(["--no-repeat-ngram", "-2"], "--no-repeat-ngram must be at least 0", id="ngram"),
    pytest.param(["--xtc-threshold", "0.9"], "--xtc-threshold must be in [0, 0.5], got 0.9", id="xtc-threshold"),
    pytest.param(["--xtc-probability", "2"], "--xtc-probability must be in [0, 1], got 2.0", id="xtc-probability"),
    pytest.param(["--dry-base", "1"], "--dry-base must be in (1, 10], got 1.0", id="dry-base"),
    pytest.param(["--dry-allowed-length", "0"], "--dry-allowed-length must be at least 1", id="dry-length"),
    pytest.param(["--stop", ""], "--stop needs non-empty strings", id="stop-empty"),
    pytest.param(["--ban", ""], "--ban needs words", id="ban-empty"),
    pytest.param(["--ban", "\udcff"], "--ban '\\udcff' is not UTF-8 text", id="ban-utf8"),
    # found by test_fuzz: a list of 10**11 seeds was built before anything said no (MemoryError)
    pytest.param(["--count", "100000000000"], "--count must be 1 to 10000, got 100000000000", id="count-huge"),
    pytest.param(["--count", "0"], "--count must be 1 to 10000, got 0", id="count-zero"),  # was the parser's own wording
    # seeds S, S+1, ...: the second of these had wrapped to 0 and written story-0.md
    pytest.param(["--seed", str(2**63 - 1), "--count", "2"],
                 f"--seed {2**63 - 1} with --count 2 passes the largest seed, 2**63 - 1", id="seeds-past-the-last"),
]  # fmt: skip


@pytest.mark.parametrize(("flags", "needle"), DECODING_CASES)
def test_impossible_decoding_setting(runner, tmp_path, world, no_model, flags, needle):
    """Each names its option and the range; refused before any model is loaded."""
    result = invoke(runner, "story", world, "-c", "ada", *flags, "--out", tmp_path / "out")
    assert_fails_cleanly(result, 2, [needle], out=tmp_path / "out")


LONG = "9" * 4000  # digits: Python reads up to 4,300 of them as one int


@pytest.mark.parametrize("flags, needle", [
    (["--seed", LONG], "--seed must be in [0, 2**63), got a number of more than 40 digits"),
    (["--seed", "-" + LONG], "--seed must be in [0, 2**63), got a negative number of more than 40 digits"),
    (["--top-k", "-" + LONG], "--top-k must be at least 0, got a negative number of more than 40 digits"),
    (["--candidates", "-" + LONG], "--candidates must be in [1, 16], got a negative number of more than 40 digits"),
    (["--count", LONG], "--count must be below 2**63 (at most 19 digits), got a number of more than 40 digits"),
    (["--count", "-" + LONG], "--count must be above -2**63 (at most 19 digits), got a negative number of more than"),
])  # fmt: skip
def test_a_huge_whole_number_is_named_by_its_size(runner, tmp_path, world, no_model, flags, needle):
    """Each of these was a 4,000-character error line: the range check wrote the number out."""
    result = invoke(runner, "story", world, "-c", "ada", *flags, "--out", tmp_path / "out")
    line = assert_fails_cleanly(result, 2, [needle], out=tmp_path / "out")
    assert len(line) < 120, line


@pytest.mark.parametrize("command", [["dialogue", "{world}", "-c", "ada,bo"], ["eval", "{world}", "--kinds", "dialogue"]])
def test_too_many_dialogue_turns_name_the_flag(runner, tmp_path, world, no_model, command):
    """Said "dialogue turns must be 1 to 200, not 201", the request's words, naming no flag."""
    args = [str(world) if a == "{world}" else a for a in command]
    result = invoke(runner, *args, "--turns", 201, "--out", tmp_path / "out")
    assert_fails_cleanly(result, 2, ["--turns must be 1 to 200, got 201"], out=tmp_path / "out")


@pytest.mark.parametrize("flags, option", [
    (["--top-p", "abc"], "'--top-p'"),
    (["--max-tokens", "1.5"], "'--max-tokens'"),
    (["--seed", "x"], "'--seed'"),
    (["--temperature"], "'--temperature'"),
    (["--no-such-flag"], "--no-such-flag"),
    # an empty shell variable: these had silently meant the default ("--adapter ''": "adapter . is a folder")
    (["-c", ""], "'--characters' / '-c': is empty (leave the option out for its default)"),
    (["-c", " , "], "'--characters' / '-c': is empty"),
    (["-l", ""], "'--location' / '-l': is empty"),
    (["-f", ""], "'--format' / '-f': is empty"),
    (["--adapter", ""], "'--adapter': is empty"),
    # invisible text alone: "This happens: \u200b." and "Mood: \u200b." had reached the prompt
    (["-p", "\u200b"], "'--premise' / '-p': is empty"),
    (["-p", "\t "], "'--premise' / '-p': is empty"),
])  # fmt: skip
def test_usage_errors_exit_2_without_a_traceback(runner, tmp_path, world, no_model, flags, option):
    """Click's own usage errors (not a number, a missing value): exit 2 and the option named."""
    result = invoke(runner, "story", world, *flags, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert option in result.stderr
    assert files_in(tmp_path / "out") == []


@pytest.mark.parametrize("args, option", [
    (["story", "{world}", "-o", ""], "'--out' / '-o'"),
    (["dialogue", "{world}", "-c", "ada,bo", "--out", ""], "'--out' / '-o'"),
    (["story", ""], "'world'"),
    (["story", "{world}", "--plan", ""], "'--plan'"),
    (["eval", "{world}", "-o", ""], "'--out' / '-o'"),
    (["batch", "{world}", "-o", ""], "'--out' / '-o'"),
    (["moderate", "{world}", ""], "'files'"),
    (["worlds", "validate", ""], "'files'"),
    (["worlds", "list", ""], "'folder'"),
    (["worlds", "new", "X", "-o", ""], "'--out' / '-o'"),
    (["replay", ""], "'file'"),
    (["tune", "{world}", "-o", ""], "'--out' / '-o'"),
])  # fmt: skip
def test_a_path_given_as_empty_text_is_refused(runner, tmp_path, world, no_model, monkeypatch, args, option):
    """An empty shell variable ("$OUT") had meant the current folder: -o '' wrote pieces, and eval's
    report, into it; moderate '' and worlds list '' read it; each without a word of the mistake."""
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    result = invoke(runner, *[a.format(world=world) for a in args])
    line = assert_fails_cleanly(result, 2, [option, "is empty (give a path; . is the current folder)"])
    assert line.startswith("error: Invalid value for ")
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("args, command", [
    (["story", "{world}", "--seed"], "story"),
    (["prompt", "story", "{world}", "-c"], "prompt story"),
    (["tune", "examples.jsonl", "--out"], "tune"),
    (["worlds", "new", "X", "--id"], "worlds new"),
])  # fmt: skip
def test_a_missing_option_value_points_at_the_commands_help(runner, world, no_model, args, command):
    """click's parser raises "requires an argument" without the command it parses for, so the line
    said "(see 'metagen --help')", whose help lists no option of the command."""
    result = invoke(runner, *[a.format(world=world) for a in args])
    line = assert_fails_cleanly(result, 2, [f"'{args[-1]}' requires an argument"])
    assert line.endswith(f"(see 'metagen {command} --help')"), line


@pytest.mark.parametrize("text, needle", [
    ("defaults: {story: {top_p: 7}}\n", "--top-p must be in (0, 1], got 7.0"),
    ("defaults: {all: {tempreature: 0.5}}\n", "unknown generation setting 'tempreature'"),
    ("defaults: {all: {seed: -3}}\n", "--seed must be in [0, 2**63), got -3"),
])  # fmt: skip
def test_bad_world_defaults_fail_before_the_model(runner, tmp_path, no_model, text, needle):
    (tmp_path / "world.yaml").write_text(TINY_WORLD + text, encoding="utf-8")
    result = invoke(runner, "story", "world.yaml", "-c", "ada", "--out", tmp_path / "out")
    assert_fails_cleanly(result, 2, [needle], out=tmp_path / "out")


def test_bad_world_defaults_name_the_file_and_field(runner, tmp_path, no_model):
    (tmp_path / "world.yaml").write_text(TINY_WORLD + "defaults: {story: {top_p: 7}}\n", encoding="utf-8")
    result = invoke(runner, "story", "world.yaml", "-c", "ada", "--out", tmp_path / "out")
    assert_fails_cleanly(result, 2, ["world.yaml", "defaults.story.top_p"])


CONTEXT_CASES = [
    pytest.param(["story", "-c", "ada", "--premise", "The well sings. " * 60],
                 ["the story's plan needs about", "context is 256", "shorten the premise"], id="huge-premise"),
    pytest.param(["story", "-c", "ada", "-l", "well", "--max-tokens", "250"],
                 ["(--max-tokens 250), but the model's context is 256", "lower --max-tokens (max_new_tokens in a"],
                 id="max-tokens-250"),
    pytest.param(["dialogue", "-c", "ada,bo", "--topic", "the flood " * 80],
                 ["the prompt needs about", "shorten the premise or topic"], id="huge-topic"),
    pytest.param(["describe-scene", "-l", "well", "--mood", "grim " * 100],
                 ["the prompt needs about", "context 256"], id="huge-mood"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "needles"), CONTEXT_CASES)
def test_prompt_that_cannot_fit_the_context(runner, tmp_path, world, tiny_gguf, args, needles):
    """The tiny model's window is 256 tokens: dropping lore is not enough; the message says what to shorten."""
    result = invoke(runner, args[0], world, *args[1:], "--model", tiny_gguf, "--dtype", "float32",
                    "--out", tmp_path / "out")
    assert_fails_cleanly(result, 2, needles, out=tmp_path / "out", root=tmp_path)


# ----------------------------------------------------------------------------- models


def _installed(home: Path, content: bytes | None = None, size: int | None = None, sidecar: dict | None = None):
    from metagen.catalog import KNOWN_MODELS

    known = KNOWN_MODELS[KNOWN]
    path = home / "models" / known.filename
    path.parent.mkdir(parents=True, exist_ok=True)
    if content is not None:
        path.write_bytes(content)
    else:
        with open(path, "wb") as handle:  # a sparse file of the right size
            handle.truncate(size or known.size)
    if sidecar is not None:
        stat = path.stat()
        data = {"sha256": known.sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, **sidecar}
        path.with_name(path.name + ".json").write_text(json.dumps(data), encoding="utf-8")
    return KNOWN


def _truncated(cut):
    """The tiny model cut short: at `cut` bytes (from the end if negative), or at half its size."""
    def make(tmp_path, home, gguf):
        data = gguf.read_bytes()
        end = len(data) // 2 if cut == "half" else cut
        (tmp_path / "cut.gguf").write_bytes(data[:end])
        return str(tmp_path / "cut.gguf")
    return make


def _other_architecture(tmp_path, home, gguf):
    from conftest import tiny_args, tiny_tokenizer_data

    from metagen.gguf import write_gguf
    from metagen.model import random_weights

    data = tiny_tokenizer_data()
    args = tiny_args(len(data.tokens))
    tensors = {name: t.numpy() for name, t in random_weights(args, seed=0).items()}
    write_gguf(tmp_path / "gpt2.gguf", args, tensors, data, name="not-llama", arch="gpt2")
    return str(tmp_path / "gpt2.gguf")


def _write(name: str, content: bytes):
    def make(tmp_path, home, gguf):
        (tmp_path / name).write_bytes(content)
        return name
    return make


MODEL_CASES = [
    pytest.param(lambda t, h, g: KNOWN,
                 [f"model {KNOWN} is not in the cache", "METAGEN_OFFLINE=1 forbids downloading",
                  f"run `metagen models pull {KNOWN}` while online"], id="offline-not-installed"),
    pytest.param(lambda t, h, g: "smolm2", ["unknown model 'smolm2'", f"did you mean '{KNOWN}'?"], id="unknown-name"),
    pytest.param(lambda t, h, g: _installed(h, content=b"GGUF" + b"\0" * 60),
                 [f"model {KNOWN} at", "is damaged: size mismatch, expected 98362432 bytes, got 64",
                  f"run `metagen models pull {KNOWN} --force`"], id="installed-wrong-size"),
    pytest.param(lambda t, h, g: _installed(h, sidecar={"sha256": "0" * 64}),
                 [f"hash mismatch for model {KNOWN}", "expected b179c952", f"metagen models pull {KNOWN} --force"],
                 id="installed-hash-mismatch"),
    pytest.param(lambda t, h, g: _installed(h, content=b"GGUF" + b"\0" * 60, sidecar={"size": 98_362_432}),
                 ["is damaged: size mismatch", "--force"], id="installed-stale-sidecar"),
    pytest.param(lambda t, h, g: _installed(h, sidecar={}),  # the sidecar vouches for it; the content is zeros
                 ["is not a GGUF file (it starts with b'\\x00\\x00\\x00\\x00'"], id="installed-sidecar-lies"),
    pytest.param(_truncated(2), ["cut.gguf is not a GGUF file (it starts with b'GG'"], id="truncated-magic"),
    pytest.param(_truncated(64), ["cut.gguf is damaged or truncated", "delete it"], id="truncated-header"),
    pytest.param(_truncated(2000), ["cut.gguf is damaged or truncated"], id="truncated-metadata"),
    pytest.param(_truncated("half"), ["cut.gguf is damaged or truncated"], id="truncated-tensors"),
    pytest.param(_truncated(-10), ["cut.gguf is damaged or truncated"], id="truncated-end"),
    pytest.param(_other_architecture, ["gpt2.gguf holds a model of architecture 'gpt2'",
                                       "llama-family models only"], id="other-architecture"),
    pytest.param(_write("notes.gguf", b"these are my notes\n"),
                 ["notes.gguf is not a GGUF file (it starts with b'thes'", "give a llama-family .gguf file"],
                 id="not-gguf"),
    pytest.param(_write("model.gguf", b""), ["model.gguf is not a GGUF file (it starts with b''"], id="empty-file"),
    pytest.param(lambda t, h, g: "nowhere/model.gguf", ["model file nowhere/model.gguf does not exist"], id="missing"),
    pytest.param(lambda t, h, g: str(t), ["is a directory", "give the path of a .gguf file"], id="directory"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "needles"), MODEL_CASES)
def test_bad_model(runner, tmp_path, world, tiny_gguf, isolated_home, make, needles):
    """Missing, damaged, foreign and mismatched models: exit 2, nothing written, no temp files in the cache."""
    spec = make(tmp_path, isolated_home, tiny_gguf)
    result = invoke(runner, "story", world, "-c", "ada", "--model", spec, "--dtype", "float32",
                    "--out", tmp_path / "out")
    assert_fails_cleanly(result, 2, needles, out=tmp_path / "out", root=tmp_path)
    assert not (isolated_home / "converted").exists() or not any((isolated_home / "converted").iterdir())


def test_a_model_of_another_architecture_is_refused_before_converting_is_announced(runner, tmp_path, world,
                                                                                     tiny_gguf, isolated_home):
    """stderr said "converting gpt2.gguf to float32 (first use only)" and then that it cannot be run."""
    spec = _other_architecture(tmp_path, isolated_home, tiny_gguf)
    result = invoke(runner, "story", world, "-c", "ada", "--model", spec, "--dtype", "float32", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "holds a model of architecture 'gpt2'" in result.stderr
    assert "converting" not in result.stderr, result.stderr


@pytest.mark.parametrize("flags, needle", [
    (["--dtype", "float8"], "--dtype must be one of auto, float32, bfloat16, int8"),
    (["--device", "tpu"], "--device must be one of cpu, cuda, auto, got 'tpu'"),
])  # fmt: skip
def test_bad_model_settings(runner, tmp_path, world, tiny_gguf, flags, needle):
    result = invoke(runner, "story", world, "-c", "ada", "--model", tiny_gguf, *flags, "--out", tmp_path / "out")
    assert_fails_cleanly(result, 2, [needle], out=tmp_path / "out")


# ----------------------------------------------------------------------------- the converted-weights cache


def _story_text(runner, world, model_args, *extra):
    result = invoke(runner, "story", world, "-c", "ada", "--seed", 5, "--max-tokens", 6, "--stdout",
                    *model_args, *extra)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result


def _fail_save(monkeypatch, kind):
    if kind == "enospc":
        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr("metagen.converted.save_aligned_safetensors", full)
    else:
        def denied(folder):
            raise PermissionError(errno.EACCES, "Permission denied", str(folder.parent))

        monkeypatch.setattr("metagen.converted._make_staging", denied)


@pytest.mark.parametrize("how", ["home-under-a-file", "permission-denied", "enospc"])
def test_unwritable_cache_only_warns(runner, tmp_path, world, model_args, monkeypatch, isolated_home, how):
    """The converted cache is an optimisation: when it cannot be written the run still succeeds."""
    baseline = _story_text(runner, world, model_args).stdout
    if how == "home-under-a-file":
        (tmp_path / "a-file").write_text("x", encoding="utf-8")
        monkeypatch.setenv("METAGEN_HOME", str(tmp_path / "a-file" / "home"))
    else:
        monkeypatch.setenv("METAGEN_HOME", str(tmp_path / "other-home"))
        _fail_save(monkeypatch, how)
    result = _story_text(runner, world, model_args)
    assert result.stdout == baseline
    assert "could not cache the converted model" in result.stderr
    assert leftovers(tmp_path) == []
    written = invoke(runner, "story", world, "-c", "ada", "--seed", 5, "--max-tokens", 6, "--out", tmp_path / "out",
                     *model_args)
    assert written.exit_code == 0 and len(files_in(tmp_path / "out")) == 1


@pytest.mark.parametrize("damage", ["truncate-weights", "empty-weights", "garbage-meta", "no-tokenizer",
                                    "wrong-shapes", "flipped-bytes", "edited-meta", "edited-tokenizer-meta"])
def test_corrupted_cache_is_rebuilt(runner, tmp_path, world, model_args, isolated_home, damage):
    """A damaged converted copy is noticed, thrown away and rebuilt; the text is the same."""
    first = _story_text(runner, world, model_args)
    (folder,) = (isolated_home / "converted").iterdir()
    weights = folder / "weights.safetensors"
    size = weights.stat().st_size
    if damage == "truncate-weights":
        with open(weights, "r+b") as handle:
            handle.truncate(size // 3)
    elif damage == "empty-weights":
        weights.write_bytes(b"")
    elif damage == "garbage-meta":
        (folder / "meta.json").write_text("{not json", encoding="utf-8")
    elif damage == "no-tokenizer":
        (folder / "tokenizer.json").unlink()
    elif damage == "flipped-bytes":  # damaged in place: the same size, its mtime put back
        times = weights.stat()
        with open(weights, "r+b") as handle:
            handle.seek(size // 2)
            chunk = handle.read(4096)
            handle.seek(size // 2)
            handle.write(bytes(b ^ 0x5A for b in chunk))
        os.utime(weights, ns=(times.st_atime_ns, times.st_mtime_ns))
    elif damage == "edited-meta":  # valid JSON that says something else
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        meta["args"]["max_seq_len"] = 16
        (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    elif damage == "edited-tokenizer-meta":
        meta = json.loads((folder / "tokenizer-meta.json").read_text(encoding="utf-8"))
        meta["eos_id"] = 999999
        (folder / "tokenizer-meta.json").write_text(json.dumps(meta), encoding="utf-8")
    else:
        from safetensors.torch import save_file
        import torch

        save_file({"tok_embeddings.weight": torch.zeros(3, 3)}, str(weights))
    again = _story_text(runner, world, model_args)
    assert again.stdout == first.stdout
    assert "is unusable" in again.stderr and "rebuilding it" in again.stderr
    assert weights.stat().st_size == size and (folder / "tokenizer.json").is_file()
    third = _story_text(runner, world, model_args)
    assert "unusable" not in third.stderr and "converting" not in third.stderr


# ----------------------------------------------------------------------------- outputs


@pytest.mark.parametrize("out, needle", [
    ("a-file", "output folder a-file is a file"),
    ("a-file/stories", "cannot create output folder a-file/stories: a-file is a file"),
])  # fmt: skip
def test_output_folder_under_a_file(runner, tmp_path, world, no_model, out, needle):
    (tmp_path / "a-file").write_text("mine\n", encoding="utf-8")
    result = invoke(runner, "story", world, "-c", "ada", "--out", out)
    assert_fails_cleanly(result, 2, [needle, "choose another --out"], root=tmp_path)  # the user's input, as an output that exists
    assert (tmp_path / "a-file").read_text(encoding="utf-8") == "mine\n"


def test_a_file_where_the_worlds_output_folder_goes_fails_before_the_model_loads(runner, tmp_path, world,
                                                                                 no_model):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "tinyville").write_text("mine\n", encoding="utf-8")
    result = invoke(runner, "story", world, "-c", "ada", "--out", "o")
    assert_fails_cleanly(result, 2, ["cannot create output folder o/tinyville/story: o/tinyville is a file"],
                         root=tmp_path)


def _fail_write(monkeypatch, where: str, error: BaseException):
    """Make the atomic write fail at one step: half-way through the bytes, at fsync, or at publishing."""
    import metagen.output.writing as writing

    if where == "write":
        def half(fd, data):
            os.write(fd, data[: len(data) // 2])
            raise error

        monkeypatch.setattr(writing, "_write_all", half)
    elif where == "fsync":
        def fsync(fd):
            raise error

        monkeypatch.setattr(writing.os, "fsync", fsync)
    else:
        def link(src, dst, **kwargs):
            raise error

        monkeypatch.setattr(writing.os, "link", link)


@pytest.mark.parametrize("where, code, reason", [
    ("write", errno.ENOSPC, "No space left on device"),
    ("write", errno.EDQUOT, "Disk quota exceeded"),
    ("fsync", errno.EIO, "Input/output error"),
    ("publish", errno.EROFS, "Read-only file system"),
])  # fmt: skip
def test_write_that_fails_half_way(runner, tmp_path, world, model_args, monkeypatch, where, code, reason):
    """exit 1, one line naming the file and the reason, and no partial or temp file."""
    _fail_write(monkeypatch, where, OSError(code, os.strerror(code)))
    result = invoke(runner, "story", world, "-c", "ada", "-l", "well", "--seed", 3, "--max-tokens", 4, "--out", tmp_path / "out",
                    *model_args)
    assert_fails_cleanly(result, 1, ["cannot write", "ada-at-well-3.md", reason], out=tmp_path / "out", root=tmp_path)


def test_batch_that_runs_out_of_space_keeps_what_it_finished_and_resumes(runner, tmp_path, world, model_args,
                                                                         monkeypatch):
    import metagen.output.writing as writing

    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("world: tiny.yaml\nseed: 40\nsettings: {max_new_tokens: 3}\n"
                    "jobs:\n  - {kind: story, characters: [ada], location: well, count: 4}\n", encoding="utf-8")
    real, calls = writing._write_all, []

    def full_on_the_third(fd, data):
        calls.append(1)
        if len(calls) == 3:
            os.write(fd, data[:10])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd, data)

    monkeypatch.setattr(writing, "_write_all", full_on_the_third)
    out = tmp_path / "out"
    result = invoke(runner, "batch", jobs, "--out", out, "--batch-size", 1, *model_args)
    assert_fails_cleanly(result, 1, ["cannot write", "ada-at-well-42.md", "No space left on device"], root=tmp_path)
    assert [p.name for p in files_in(out)] == ["ada-at-well-40.md", "ada-at-well-41.md"]
    assert all(is_complete(p) for p in files_in(out))
    monkeypatch.setattr(writing, "_write_all", real)
    resumed = invoke(runner, "batch", jobs, "--out", out, "--resume", *model_args)
    assert resumed.exit_code == 0 and "written 2, skipped 2 (resume)" in resumed.stderr
    assert len(files_in(out)) == 4 and all(is_complete(p) for p in files_in(out))


HOSTILE_WORLD = r"""
world: {id: con, name: "../../Con"}
locations:
  - {id: aux, name: "../../up"}
  - {id: nul, name: "/etc"}
characters:
  - {id: ada, name: "../../evil", aliases: ["/etc/passwd", "..\\..\\win"]}
  - {id: bo, name: "C:\\Windows\\System32"}
"""


@pytest.mark.parametrize("args, name", [
    (["story", "-c", "../../evil", "-l", "/etc"], "_con/story/ada-at-nul-1.md"),
    (["story", "-c", "/etc/passwd", "-l", "../../up"], "_con/story/ada-at-aux-1.md"),
    (["story", "--premise", "../../../../etc/passwd"], "_con/story/ada-bo-at-aux-1.md"),  # the cast and place the seed drew
    (["describe-scene", "-l", "/etc", "--time", "../../../tmp/x"], "_con/scene/nul-tmp-x-1.md"),
    (["describe-scene", "-l", "../../up"], "_con/scene/_aux-1.md"),  # AUX: a device name on Windows
    (["dialogue", "-c", "..\\..\\win,C:\\Windows\\System32", "--turns", "1"], "_con/dialogue/ada-bo-1.md"),
])  # fmt: skip
def test_names_never_lead_out_of_the_output_folder(runner, tmp_path, model_args, args, name):
    (tmp_path / "hostile.yaml").write_text(HOSTILE_WORLD, encoding="utf-8")
    out = tmp_path / "deep" / "out"
    before = {p for p in tmp_path.rglob("*") if "metagen-home" not in p.parts}
    result = invoke(runner, args[0], "hostile.yaml", *args[1:], "--seed", 1, "--max-tokens", 2, "--out", out,
                    *model_args)
    assert result.exit_code == 0, result.output
    assert [p.relative_to(out).as_posix() for p in files_in(out)] == [name]
    after = {p for p in tmp_path.rglob("*") if "metagen-home" not in p.parts and out not in (p, *p.parents)}
    assert after == before | {tmp_path / "deep"}


def test_a_symlink_out_of_the_output_folder_is_refused(runner, tmp_path, world, no_model):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "tinyville").symlink_to(elsewhere, target_is_directory=True)
    result = invoke(runner, "story", world, "-c", "ada", "-l", "well", "--seed", 1, "--out", out)
    assert_fails_cleanly(result, 2, ["out/tinyville/story/ada-at-well-1.md resolves outside the output folder",
                                     "it resolves to"])
    assert files_in(elsewhere) == []


@pytest.mark.parametrize("command, loop", [
    (["story", "-c", "ada", "-l", "well"], "tinyville/story/ada-at-well-1.md"),  # the piece's own name links to itself
    (["story", "-c", "ada", "-l", "well"], "tinyville/story"),  # a folder on its way does
    (["describe-scene", "-l", "well", "--overwrite"], "tinyville/scene/well-1.md"),
    (["batch", "--resume"], "tinyville/scene/well-1.md"),
    (["batch", "--resume", "--overwrite"], "tinyville/scene"),
])  # fmt: skip
def test_a_link_loop_inside_the_output_folder_is_refused(runner, tmp_path, world, no_model, command, loop):
    """A link that leads back to itself where a piece or its folder goes stopped the run with a
    traceback (Python 3.11's Path.resolve raises RuntimeError on a loop), exit 1."""
    out = tmp_path / "out"
    link = out / loop
    link.parent.mkdir(parents=True)
    link.symlink_to(link.name)
    if command[0] == "batch":
        jobs = tmp_path / "jobs.yaml"
        jobs.write_text(f"world: {world}\nseed: 1\njobs: [{{kind: scene, location: well}}]\n", encoding="utf-8")
        result = invoke(runner, "batch", jobs, *command[1:], "--out", out)
    else:
        result = invoke(runner, command[0], world, *command[1:], "--seed", 1, "--out", out)
    line = assert_fails_cleanly(result, 2, [])
    assert line == (f"error: {link} is a symbolic link in a loop (it leads back to itself) (remove the link, "
                    "or choose another --out)")
    assert link.is_symlink()


def test_two_processes_writing_the_same_file(tmp_path, world, wide_gguf):
    """Same name: exactly one process writes it, the other exits 2 'exists'; another seed also succeeds."""
    out = tmp_path / "out"

    def start(seed):
        args = ["story", world, "-c", "ada", "-l", "well", "--seed", seed, "--max-tokens", 24, "--out", out,
                "--model", wide_gguf, "--dtype", "float32"]
        return subprocess.Popen([sys.executable, "-m", "metagen", *map(str, args)], cwd=tmp_path, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    procs = [start(1), start(1), start(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    for code, stdout, stderr in results:
        assert "Traceback" not in stdout + stderr
    same = sorted(results[:2])
    assert [same[0][0], same[1][0]] == [0, 2], results
    assert "ada-at-well-1.md exists (pass --overwrite to replace it" in same[1][2]
    assert same[1][2].splitlines()[-1].startswith("error: ")
    assert results[2][0] == 0
    names = [p.relative_to(out).as_posix() for p in files_in(out)]
    assert names == ["tinyville/story/ada-at-well-1.md", "tinyville/story/ada-at-well-2.md"]
    assert all(is_complete(p) for p in files_in(out))
    assert read_piece_file(out / "tinyville/story/ada-at-well-1.md")["seed"] == 1
    assert leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- in a real process

SUBPROCESS_CASES = [
    pytest.param(["worlds", "validate", "ctrl.yaml"], 2, "ctrl.yaml:1:24: the control character U+0008",
                 id="validate-control-character"),
    pytest.param(["story", "ctrl.yaml"], 2, "error: ctrl.yaml:1:24: the control character U+0008",
                 id="story-control-character"),
    pytest.param(["story", "bomb.yaml"], 2, "error: bomb.yaml:", id="story-alias-bomb"),
    pytest.param(["story", "tiny.yaml", "-c", "ada", "--premise", b"caf\xe9"], 2,
                 "error: the premise 'caf\\udce9' is not UTF-8 text", id="premise-latin-1"),
    pytest.param(["story", "tiny.yaml", "-c", "ada", "--top-p", "1.5"], 2, "error: --top-p must be in (0, 1]",
                 id="top-p"),
    pytest.param(["story", "tiny.yaml", "-c", "ada", "--out", "a-file/sub"], 2,
                 "error: cannot create output folder a-file/sub", id="out-under-a-file"),
    pytest.param(["story", "tiny.yaml", "-c", "ada", "--model", KNOWN], 2,
                 f"error: model {KNOWN} is not in the cache", id="model-offline"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "code", "needle"), SUBPROCESS_CASES)
def test_real_process_prints_one_line_and_no_traceback(tmp_path, world, args, code, needle):
    (tmp_path / "ctrl.yaml").write_bytes(b'world: {id: w, name: "A\x08B"}\n')
    (tmp_path / "bomb.yaml").write_text(alias_bomb(), encoding="utf-8")
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    done = run_metagen(*args, cwd=tmp_path)
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == code, stderr
    assert "Traceback" not in stderr and done.stdout == b""
    (line,) = stderr.splitlines()
    assert line.startswith(needle), line
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- round two (issue 14)

SECONDS_LIMIT = 10  # of the child's own CPU time (user + system): a loaded machine's wall clock says nothing
MEMORY_LIMIT_MB = 1024
HANG_SECONDS = 120  # wall-clock time after which a child counts as hung and is killed

FIVE_WORLD = TINY_WORLD.replace("lore:", "  - {id: dee, name: Dee}\n  - {id: eve, name: Eve}\nlore:")


# `python -m metagen ARGS` that writes its own peak memory (VmHWM, KiB) and CPU seconds to argv[1] as it exits.
_MEASURED_MAIN = """
import atexit, resource, runpy, sys
out = sys.argv.pop(1)
def report():
    peak = [l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")]
    used = resource.getrusage(resource.RUSAGE_SELF)
    with open(out, "w") as f:
        f.write(f"{peak[0] if peak else 0} {used.ru_utime + used.ru_stime}")
atexit.register(report)
sys.argv[0] = "metagen"
runpy.run_module("metagen", run_name="__main__", alter_sys=True)
"""


def run_bounded(*args, cwd: Path, stdin=None, env: dict | None = None) -> tuple[int, str, float, float]:
    """`python -m metagen ARGS` in a real process: (exit code, stderr, CPU seconds, peak MB of memory).

    The process is killed past HANG_SECONDS of wall-clock time (and its address space is capped
    at 4 GB), so a hang or a memory bomb fails the test instead of the machine.
    """
    import resource
    import time

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))

    argv = [a if isinstance(a, bytes) else str(a) for a in args]
    peak_file = cwd / f".peak-{time.monotonic_ns()}"
    proc = subprocess.Popen([sys.executable, "-c", _MEASURED_MAIN, str(peak_file), *argv], cwd=cwd,
                            stdin=stdin or subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})}, preexec_fn=cap)
    try:
        _, stderr = proc.communicate(timeout=HANG_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"metagen {args} ran for more than {HANG_SECONDS} s")
    # The child's own peak (VmHWM, KiB) and CPU time, written as it exits: getrusage's ru_maxrss for
    # children would carry the forking pytest process's peak over exec (2 GB once the real model has
    # been loaded).
    peak, seconds = (float("inf"), float("inf"))
    if peak_file.exists():
        kib, cpu = peak_file.read_text().split()
        peak, seconds = int(kib) / 1024, float(cpu)
    peak_file.unlink(missing_ok=True)
    return proc.returncode, stderr.decode("utf-8", "replace"), seconds, peak


def assert_refused_in_bounds(*args, cwd: Path, needles, stdin=None, code: int = 2) -> str:
    """exit 2, one `error:` line holding every needle, no traceback, within 10 s of CPU and 1 GB."""
    returncode, stderr, seconds, peak = run_bounded(*args, cwd=cwd, stdin=stdin)
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    prefix = "" if args[:2] == ("worlds", "validate") else "error: "  # validate lists problems bare
    # Progress lines ("metagen: converting ...") may come first; the error is the one last line.
    errors = [line for line in lines if line.startswith("error:")] if prefix else lines
    assert returncode == code and len(errors) == 1 and lines[-1] == errors[0], (returncode, stderr)
    assert lines[-1].startswith(prefix), stderr
    for needle in needles:
        assert needle in lines[-1], f"{needle!r} not in {lines[-1]!r}"
    assert seconds < SECONDS_LIMIT, f"took {seconds:.1f} s of CPU"
    assert peak < MEMORY_LIMIT_MB, f"took {peak:.0f} MB"
    return lines[-1]


# 1. silent loss and wrong files


def test_casts_that_abbreviate_alike_get_files_of_their_own(runner, tmp_path, model_args):
    (tmp_path / "five.yaml").write_text(FIVE_WORLD, encoding="utf-8")
    out = tmp_path / "out"
    story = invoke(runner, "story", "five.yaml", "-c", "ada,bo,cy,dee", "--seed", 5, "--max-tokens", 2, "--out", out,
                   *model_args)
    assert story.exit_code == 0, story.output
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("world: five.yaml\nseed: 5\nsettings: {max_new_tokens: 2}\n"
                    "jobs:\n  - {kind: story, characters: [ada, bo, cy, eve]}\n", encoding="utf-8")
    for flags in ([], ["--resume"], ["--overwrite"]):
        result = invoke(runner, "batch", jobs, "--out", out, *flags, *model_args)
        assert result.exit_code == 0, result.output
    made = {p.name: read_piece_file(p)["request"]["characters"] for p in files_in(out)}
    assert sorted(made.values()) == [["ada", "bo", "cy", "dee"], ["ada", "bo", "cy", "eve"]]
    assert all(name.startswith("ada-bo-cy-and-1-more-") for name in made)


def test_resume_never_skips_a_file_another_request_made(runner, tmp_path, world, model_args, monkeypatch):
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("world: tiny.yaml\nseed: 5\nsettings: {max_new_tokens: 2}\n"
                    "jobs:\n  - {kind: story, characters: [ada], location: well, premise: A coin.}\n", encoding="utf-8")
    assert invoke(runner, "batch", jobs, *model_args).exit_code == 0
    before = files_in(tmp_path / "out")[0].read_bytes()
    jobs.write_text(jobs.read_text(encoding="utf-8").replace("A coin.", "A ring."), encoding="utf-8")
    with monkeypatch.context() as patched:
        patched.setattr("metagen.commands.batch.load_generator", lambda *a, **k: pytest.fail("the model was loaded"))
        result = invoke(runner, "batch", jobs, "--resume", *model_args)
    assert_fails_cleanly(result, 2, ["out/tinyville/story/ada-at-well-5.md exists but was made by another request",
                                     "its request differs", "pass --overwrite"])
    assert files_in(tmp_path / "out")[0].read_bytes() == before
    replaced = invoke(runner, "batch", jobs, "--resume", "--overwrite", *model_args)  # had asked for --overwrite again
    assert replaced.exit_code == 0, replaced.output
    assert read_piece_file(files_in(tmp_path / "out")[0])["request"]["premise"] == "A ring."


def test_resume_skips_a_complete_piece_whose_text_is_empty(runner, tmp_path, world, model_args, monkeypatch):
    from metagen import pipeline

    real = pipeline.compose

    def silent(*args, on_piece, **kwargs):  # batch writes each piece through on_piece
        return real(*args, on_piece=lambda i, p: on_piece(i, replace(p, text="", finish_reason="stop")), **kwargs)

    monkeypatch.setattr(pipeline, "compose", silent)
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("world: tiny.yaml\nseed: 5\nsettings: {max_new_tokens: 2}\njobs:\n"
                    + "".join(f"  - {{kind: scene, location: well, format: {f}}}\n" for f in ("md", "txt", "json"))
                    + "  - {kind: dialogue, characters: [ada, bo], turns: 1, format: yarn}\n", encoding="utf-8")
    assert invoke(runner, "batch", jobs, *model_args).exit_code == 0
    result = invoke(runner, "batch", jobs, "--resume", *model_args)
    assert result.exit_code == 0 and "nothing to do: 4 complete already" in result.stderr, result.output


def test_a_folder_swapped_for_a_link_mid_batch_is_refused(runner, tmp_path, world, model_args, monkeypatch):
    from metagen.generator import Generator

    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    real, calls = Generator.complete, []

    def swap_after_the_first(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            (out / "tinyville").rename(tmp_path / "aside")
            (out / "tinyville").symlink_to(elsewhere, target_is_directory=True)
        return real(*args, **kwargs)

    monkeypatch.setattr(Generator, "complete", swap_after_the_first)
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("world: tiny.yaml\nseed: 5\nsettings: {max_new_tokens: 2}\n"
                    "jobs:\n  - {kind: scene, location: well, count: 3}\n", encoding="utf-8")
    result = invoke(runner, "batch", jobs, "--batch-size", 1, *model_args)
    assert_fails_cleanly(result, 2, ["out/tinyville/scene/well-6.md", "out/tinyville is a symbolic link",
                                     "never writes through a link"])
    assert files_in(elsewhere) == [] and [p.name for p in files_in(tmp_path / "aside")] == ["well-5.md"]


def test_swapping_the_output_folder_for_links_during_a_real_batch(tmp_path, world, wide_gguf):
    """Another process swaps out/ and out/tinyville for links while a batch writes: nothing lands
    outside, every piece reported written is whole, and a refused write is one line, exit 2."""
    import threading
    import time

    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("world: tiny.yaml\nseed: 1\nsettings: {max_new_tokens: 1}\n"
                    "jobs:\n  - {kind: scene, location: well, count: 400}\n", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "metagen", "batch", str(jobs), "--batch-size", "1", "--model",
                             str(wide_gguf), "--dtype", "float32"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    swaps = 0

    def swap(real: Path, aside: Path):
        real.rename(aside)
        try:
            real.symlink_to(elsewhere, target_is_directory=True)
        except FileExistsError:  # the batch made the folder again in between: it must now refuse
            return
        time.sleep(0.002)
        real.unlink()
        aside.rename(real)

    def hammer():
        nonlocal swaps
        while proc.poll() is None:
            # after the first piece is whole: a refusal before any write would leave nothing to check,
            # and on a loaded machine the hammer can win that race
            scene = out / "tinyville" / "scene"
            if scene.is_dir() and not (out / "tinyville").is_symlink() and any(scene.glob("*.md")):
                try:
                    swap(out / "tinyville", tmp_path / f"aside-world-{swaps}")
                    swap(out, tmp_path / f"aside-out-{swaps}")
                except OSError:  # a folder it meant to move was moved or made by the other side
                    pass
                swaps += 1
            time.sleep(0.005)

    thread = threading.Thread(target=hammer)
    thread.start()
    _, stderr = proc.communicate(timeout=300)
    thread.join()
    assert "Traceback" not in stderr and proc.returncode in (0, 2), stderr
    if proc.returncode == 2:
        line = stderr.splitlines()[-1]
        assert line.startswith("error: ") and ("symbolic link" in line or "replaced during the run" in line), line
    assert swaps > 0 and files_in(elsewhere) == []
    # Nothing lost: every piece reported written is whole, in out/ or where the swaps moved it.
    written = {Path(line[len("wrote "):]).name for line in stderr.splitlines() if line.startswith("wrote ")}
    kept = {p.name for p in tmp_path.rglob("*.md") if elsewhere not in p.parents and is_complete(p)}
    assert written and written <= kept
    assert leftovers(tmp_path) == []


# 3. special files: refused by their kind before a byte is read


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _piece_naming(tmp_path: Path, world_file: str) -> Path:
    """A metagen piece whose front matter points at world_file."""
    from metagen.output import Piece, render

    piece = Piece(kind="story", world_id="tinyville", world_hash="", world_files=[world_file],
                  request={"kind": "story", "characters": ["ada"]}, model={"name": "x", "path": "x.gguf"},
                  settings={"strategy": "greedy"}, seed=1, prompt_tokens=1, output_tokens=1, lore_used=[],
                  lore_left_out=[], finish_reason="eos", seconds=0.0, text="Hi.", subject="ada")
    path = tmp_path / "piece.md"
    path.write_text(render(piece, "md"), encoding="utf-8")
    return path


SPECIAL_FILE_CASES = [
    pytest.param(lambda t: ["story", _fifo(t / "w.yaml"), "-c", "ada"],
                 ["w.yaml: is a FIFO (named pipe), not a regular file", "give a file"], id="world-fifo"),
    pytest.param(lambda t: ["story", "/dev/zero", "-c", "ada"],
                 ["/dev/zero: is a character device, not a regular file"], id="world-device"),
    pytest.param(lambda t: ["worlds", "validate", "/dev/zero"], ["/dev/zero: is a character device"],
                 id="validate-device"),
    pytest.param(lambda t: (_fifo(t / "part.yaml"),
                            (t / "w.yaml").write_text(HEAD + "include: [part.yaml]\n"), ["story", "w.yaml"])[-1],
                 ["w.yaml:2:11: include[0]: 'part.yaml' is a FIFO (named pipe)"], id="include-fifo"),
    pytest.param(lambda t: ["story", "tiny.yaml", "-c", "ada", "--model", "/dev/zero"],
                 ["model file /dev/zero is a character device, not a regular file", "give the path of a .gguf"],
                 id="model-device"),
    pytest.param(lambda t: ["story", "tiny.yaml", "-c", "ada", "--model", _fifo(t / "m.gguf")],
                 ["m.gguf is a FIFO (named pipe)"], id="model-fifo"),
    pytest.param(lambda t: ["models", "info", _fifo(t / "m.gguf")], ["m.gguf is a FIFO (named pipe)"],
                 id="models-info-fifo"),
    pytest.param(lambda t: ["batch", _fifo(t / "jobs.yaml")], ["jobs.yaml: is a FIFO (named pipe)"], id="jobs-fifo"),
    pytest.param(lambda t: ["batch", "/dev/zero"], ["/dev/zero: is a character device"], id="jobs-device"),
    pytest.param(lambda t: ["replay", _fifo(t / "p.md")], ["p.md is not a metagen file (is a FIFO"],
                 id="replay-fifo"),
    pytest.param(lambda t: ["replay", _piece_naming(t, str(_fifo(t / "gone.yaml")))],
                 ["gone.yaml, which cannot be read: is a FIFO (named pipe)"], id="replay-world-files-fifo"),
    pytest.param(lambda t: ["replay", _piece_naming(t, "/dev/zero")],
                 ["piece.md records the world /dev/zero, which cannot be read: is a character device"],
                 id="replay-world-files-device"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "needles"), SPECIAL_FILE_CASES)
def test_special_files_are_refused_before_reading(tmp_path, world, make, needles):
    assert_refused_in_bounds(*make(tmp_path), cwd=tmp_path, needles=needles)


# Each input a command reads through files.read_input, as (the command with INPUT where the path goes,
# the words naming the file's kind).
INPUT_COMMANDS = [
    pytest.param(["story", "{world}", "-c", "ada", "--plan", "INPUT"], "a plan file", id="plan"),
    pytest.param(["batch", "INPUT"], "a jobs file", id="jobs"),
    pytest.param(["chat", "{world}", "--as", "ada", "--script", "INPUT"], "a chat script", id="chat-script"),
    pytest.param(["tune", "INPUT", "-o", "{tmp}/a.safetensors"], "an examples file", id="tune-data"),
    pytest.param(["moderate", "INPUT", "--rating", "pg"], None, id="moderate"),
]


@pytest.mark.parametrize("make, says, hint", [
    (lambda p: p.mkdir(), "{path} is a folder, not {what}", "give the file itself"),
    (lambda p: p.symlink_to(p.name), "{path} is a symbolic link in a loop (it leads back to itself)",
     "make the link name the real file"),
    (lambda p: p.symlink_to(p.parent / "nowhere"),
     "{path} is a symbolic link to {tmp}/nowhere, which does not exist", "make the link name the real file"),
], ids=["folder", "link-loop", "link-to-nothing"])
@pytest.mark.parametrize("command, what", INPUT_COMMANDS)
def test_an_input_that_is_no_file_is_named_so(runner, tmp_path, world, no_model, monkeypatch, command, what, make,
                                              says, hint):
    """A plan, jobs file, chat script, tune's examples or a file to check that was a link loop said
    "cannot be read: Too many levels of symbolic links", a link to nothing "no such plan file", and a folder
    gave no bracket: each now says what it is and what to do."""
    monkeypatch.setattr("metagen.generator.load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    path = tmp_path / "input.txt"
    make(path)
    args = [str(a).format(world=world, tmp=tmp_path).replace("INPUT", str(path)) for a in command]
    line = error_line(invoke(runner, *args))
    if what is None:  # moderate takes folders to check: a folder is no mistake there
        if says.startswith("{path} is a folder"):
            return
        hint += " or folder"
    assert line == f"error: {says.format(path=path, what=what, tmp=tmp_path)} ({hint})"


def test_special_cache_files_are_ignored_not_read(tmp_path, isolated_home):
    from metagen import home
    from metagen.files import NotRegularFile
    from metagen.tokenizer import Tokenizer

    with pytest.raises(NotRegularFile):
        Tokenizer.load(_fifo(tmp_path / "tokenizer.json"))
    from metagen.tokenizer import tokenizer_meta_path
    from tests.conftest import tiny_tokenizer_data

    Tokenizer.from_data(tiny_tokenizer_data()).save(tmp_path / "saved.json")
    tokenizer_meta_path(tmp_path / "saved.json").unlink()
    with pytest.raises(NotRegularFile):  # metagen's fields beside it, a FIFO too
        Tokenizer.load(_fifo(tokenizer_meta_path(tmp_path / "saved.json")).with_name("saved.json"))
    isolated_home.mkdir()
    _fifo(isolated_home / "hashes.json")
    assert home.read_json(isolated_home / "hashes.json") == {}


# 4. hostile GGUF headers: every count and length checked against the file's size first


def _gguf_header(tensor_count: int, kv: bytes, kv_count: int = 1, tail: bytes = b"") -> bytes:
    import struct

    return b"GGUF" + struct.pack("<IQQ", 3, tensor_count, kv_count) + kv + tail


def _gguf_string(text: str, length: int | None = None) -> bytes:
    import struct

    data = text.encode()
    return struct.pack("<Q", len(data) if length is None else length) + data


def _gguf_array(item_type: int, count: int, items: bytes = b"") -> bytes:
    import struct

    return _gguf_string("a") + struct.pack("<IIQ", 9, item_type, count) + items


def _nested_arrays(depth: int) -> bytes:
    import struct

    inner = struct.pack("<IQ", 0, 1) + b"\x00"  # an array of one uint8
    for _ in range(depth - 1):
        inner = struct.pack("<IQ", 9, 1) + inner  # an array of one array
    return _gguf_string("a") + struct.pack("<I", 9) + inner


def _patched_metadata(key: str, value: int):
    """The tiny model with one uint32 metadata value replaced."""
    import struct

    def make(tmp_path: Path, gguf: Path) -> Path:
        data = bytearray(gguf.read_bytes())
        at = data.index(_gguf_string(key)) + len(_gguf_string(key))
        assert struct.unpack_from("<I", data, at)[0] == 4  # uint32
        struct.pack_into("<I", data, at + 4, value)
        path = tmp_path / "patched.gguf"
        path.write_bytes(bytes(data))
        return path

    return make


def _raw(content: bytes):
    def make(tmp_path: Path, gguf: Path) -> Path:
        path = tmp_path / "hostile.gguf"
        path.write_bytes(content)
        return path

    return make


HOSTILE_GGUF_CASES = [
    pytest.param(_raw(_gguf_header(0, _gguf_array(0, 2**62))), "claims 4,611,686,018,427,387,904 array items",
                 id="uint8-array-2^62"),
    pytest.param(_raw(_gguf_header(0, _gguf_array(8, 2**62))), "array items", id="string-array-2^62"),
    pytest.param(_raw(_gguf_header(0, _gguf_array(9, 2**40))), "array items", id="array-of-arrays-2^40"),
    pytest.param(_raw(_gguf_header(0, _nested_arrays(6), tail=b"\x00" * 64)), "nested more than 4 deep",
                 id="nested-arrays"),
    pytest.param(_raw(_gguf_header(0, b"", kv_count=2**60)), "metadata entries", id="kv-count-2^60"),
    pytest.param(_raw(_gguf_header(2**60, b"", kv_count=0)), "tensors", id="tensor-count-2^60"),
    pytest.param(_raw(_gguf_header(1, b"", kv_count=0, tail=_gguf_string("t") + (2**31).to_bytes(4, "little")
                                   + b"\x00" * 64)), "claims 2147483648 dimensions", id="n-dims-2^31"),
    pytest.param(_raw(_gguf_header(0, _gguf_string("k", length=2**63), tail=b"\x00" * 64)), "a string runs past the end",
                 id="string-length-2^63"),
    pytest.param(_raw(_gguf_header(0, b"", kv_count=1)), "damaged or truncated", id="truncated"),
    pytest.param(_patched_metadata("llama.embedding_length", 2**31), "dim is 2147483648, outside 1 to 65,536",
                 id="huge-dim"),
    pytest.param(_patched_metadata("llama.attention.head_count", 0), "n_heads is 0, outside 1", id="zero-heads"),
    pytest.param(_patched_metadata("llama.context_length", 2**32 - 1), "max_seq_len is 4294967295",
                 id="huge-context"),
]  # fmt: skip


@pytest.mark.parametrize("command", ["models-info", "story"])
@pytest.mark.parametrize(("make", "needle"), HOSTILE_GGUF_CASES)
def test_hostile_gguf_headers_are_refused_in_bounded_memory(tmp_path, world, tiny_gguf, make, needle, command):
    path = make(tmp_path, tiny_gguf)
    args = ["models", "info", path] if command == "models-info" else ["story", "tiny.yaml", "-c", "ada",
                                                                        "--model", path]
    assert_refused_in_bounds(*args, cwd=tmp_path, needles=[path.name, needle])


# 7. numbers: odd YAML notations and tags, and decoding extremes, checked before allocation

LORE = "lore:\n  - {id: a, keys: [x], text: T, priority: %s}\n"
NUMBER_WORLD_CASES = [
    pytest.param(HEAD + LORE % "0b_", "world.yaml:3:43: lore[0].priority: '0b_' is not a whole number", id="0b_"),
    pytest.param(HEAD + LORE % "0x_", "lore[0].priority: '0x_' is not a whole number", id="0x_"),
    pytest.param(HEAD + LORE % "0o_", "lore[0].priority: got the text '0o_'", id="0o_"),
    pytest.param(HEAD + LORE % ("9" * 5000), "lore[0].priority: '99999", id="5000-digits"),
    pytest.param(HEAD + LORE % ("9" * 30), "is not a whole number metagen can read", id="30-digits"),
    pytest.param(HEAD + LORE % "!!int abc", "lore[0].priority: 'abc' is not a whole number", id="int-tag-text"),
    pytest.param(HEAD + LORE % "!!float abc", "lore[0].priority: got the number abc", id="float-tag-text"),
    pytest.param(HEAD + "defaults:\n  all: {temperature: !!float abc}\n",
                 "world.yaml:3:22: defaults.all.temperature: 'abc' is not a number metagen can read", id="setting-float-tag"),
    pytest.param(HEAD + "defaults:\n  all: {top_k: 0x_}\n", "defaults.all.top_k: '0x_' is not a whole number metagen can read",
                 id="setting-0x_"),
    pytest.param(HEAD + "defaults:\n  all: {early_stopping: !!bool maybe}\n",
                 "defaults.all.early_stopping: 'maybe' is not a true/false value metagen can read", id="setting-bool-tag"),
    pytest.param(HEAD + "defaults:\n  all: {temperature: " + "9" * 400 + "}\n",
                 "defaults.all.temperature: '9999", id="setting-400-digits"),
    pytest.param(HEAD + "style: {length_words: {short: !!int 0x}}\n", "style.length_words.short: '0x' is not",
                 id="length-words"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "needle"), NUMBER_WORLD_CASES)
def test_odd_numbers_in_world_files(runner, tmp_path, no_model, text, needle):
    (tmp_path / "world.yaml").write_text(text, encoding="utf-8")
    for args in (["story", "world.yaml"], ["worlds", "validate", "world.yaml"]):
        result = invoke(runner, *args)
        assert result.exit_code == 2 and needle in result.stderr, result.stderr
        assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception,
                                                                                          SystemExit)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tag=st.sampled_from(["", "!!int ", "!!float ", "!!bool ", "!!str ", "!!null "]),
       text=st.one_of(st.from_regex(r"[-+]?0[bxo]?[0-9a-f_:.]{0,6}", fullmatch=True),
                      st.from_regex(r"[-+]?[0-9_]{1,12}(\.[0-9_]*)?(e[-+]?[0-9]{1,4})?", fullmatch=True),
                      st.text(alphabet="0123456789_xbo.:+-eE", max_size=12)))
def test_any_number_notation_gives_a_world_error_not_a_traceback(tmp_path, tag, text):
    from metagen.errors import WorldError
    from metagen.world import load_world

    path = tmp_path / "n.yaml"
    body = f"priority: {tag}{text}" if text.strip() else "priority: 1"
    path.write_text(HEAD + f"lore:\n  - {{id: a, keys: [x], text: T, {body}}}\n"
                    f"defaults:\n  all: {{temperature: {tag}{text or 0}}}\n", encoding="utf-8")
    try:
        world = load_world(path)
    except WorldError as error:  # each problem names the file, then one of the two fields or the YAML syntax
        assert error.problems and all(p.startswith(f"{path}:") for p in error.problems), error.problems
        fields = (": lore[0].priority: ", ": defaults.all", ": invalid YAML: ")
        assert all(any(f in p for f in fields) for p in error.problems), error.problems
    else:
        assert type(world.lore[0].priority) is int


DECODING_EXTREMES = [
    (["--presence-penalty", "-1e308", "--penalize-prompt"], "--presence-penalty must be in [-100, 100]"),
    (["--frequency-penalty", "1e308"], "--frequency-penalty must be in [-100, 100]"),
    (["--strategy", "beam", "--length-penalty", "1e308"], "--length-penalty must be in [-10, 10]"),
    (["--strategy", "beam", "--length-penalty", "-1e308"], "--length-penalty must be in [-10, 10]"),
    (["--strategy", "beam", "--beams", "1000000"], "--beams must be in [1, 64], got 1000000"),
    (["--strategy", "beam", "--beams", "50000"], "--beams must be in [1, 64], got 50000"),
    (["--temperature", "1e-300"], "--temperature must be 0 (greedy) or at least 0.001"),
    (["--repetition-penalty", "1e-308"], "--repetition-penalty must be in [0.001, 100]"),
    (["--logit-bias", "ada=1e308"], "the bias must be in [-1000, 1000]"),
]


@pytest.mark.parametrize(("flags", "needle"), DECODING_EXTREMES)
def test_decoding_extremes_are_refused_before_anything_is_allocated(tmp_path, world, flags, needle):
    assert_refused_in_bounds("story", "tiny.yaml", "-c", "ada", "--model", "/nonexistent.gguf", *flags,
                             cwd=tmp_path, needles=[needle])


# 6. jobs files and front matter: the world loader's safeguards, types checked, nothing echoed

JOBS_HEAD = "world: tiny.yaml\n"
JOBS_BOMB = (alias_bomb().replace("world: {id: w, name: W, summary: *i}\n", "")
             + "jobs:\n  - {kind: story, characters: *i}\n")
JOBS_CASES = [
    pytest.param(JOBS_BOMB, ["jobs.yaml:5: aliases expand to more than 50000 nodes"], id="alias-bomb"),
    pytest.param(JOBS_HEAD + "jobs: !!python/object:os.system [ls]\n", ["jobs.yaml:2: YAML tag", "remove the tag"],
                 id="python-tag"),
    pytest.param(JOBS_HEAD + "seed: !!int abc\njobs: [{kind: story}]\n", ["jobs.yaml:2: seed: 'abc' is not a valid int"],
                 id="int-tag-text"),
    pytest.param(JOBS_HEAD + "seed: 0x_\njobs: [{kind: story}]\n", ["jobs.yaml:2: seed: '0x_' is not a valid int"],
                 id="0x_"),
    pytest.param(JOBS_HEAD + "jobs: " + "[" * 5000 + "]" * 5000 + "\n", ["jobs.yaml: is nested too deeply to be a jobs file"],
                 id="deep-nesting"),
    pytest.param(JOBS_HEAD + "? [a, b]\n: 1\njobs: [{kind: story}]\n", ["jobs.yaml:2: a key must be a plain name"],
                 id="list-key"),
    pytest.param(b"jobs: [{kind: story}]\x00", ["jobs.yaml: looks like a binary file"], id="binary"),
    pytest.param(b"world: caf\xe9.yaml\njobs: []\n", ["jobs.yaml:1: not UTF-8 text"], id="latin-1"),
    pytest.param(JOBS_HEAD + 'jobs: [{kind: "story\x08"}]\n', ["jobs.yaml:2: the control character U+0008"],
                 id="control-character"),
    pytest.param(JOBS_HEAD + "settings: {stop: [" + ", ".join(["*x"] * 101) + "]}\n",
                 ["jobs.yaml:2:", "alias"], id="many-aliases"),
    pytest.param(JOBS_HEAD + f"jobs: [{{kind: story, characters: [ada], seed: {2**63 - 2}, count: 3}}]\n",
                 [f"jobs.yaml:2: jobs[0].seed: {2**63 - 2} with count 3 passes the largest seed"],
                 id="seeds-past-the-last"),
    pytest.param(JOBS_HEAD + 'out: "out/\\ud800"\njobs: [{kind: story}]\n',
                 ["jobs.yaml:2: \\ud800 is half of a UTF-16 surrogate pair"], id="lone-surrogate"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "needles"), JOBS_CASES)
def test_hostile_jobs_files(tmp_path, world, text, needles):
    path = tmp_path / "jobs.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    assert_refused_in_bounds("batch", "jobs.yaml", cwd=tmp_path, needles=needles)


def _front_matter(tmp_path: Path, front: str, name: str = "piece.md") -> Path:
    path = tmp_path / name
    path.write_text(f"---\n{front}---\n\nHi.\n", encoding="utf-8")
    return path


FRONT = ("kind: story\nmetagen_version: x\nfinish_reason: eos\nseed: 1\nmodel: {name: x}\nsettings: {}\n"
         "world_files: [tiny.yaml]\n")
FRONT_MATTER_CASES = [
    pytest.param(FRONT + "request: ada\n", ["piece.md is not a metagen file (request must be a mapping, got text)"],
                 id="request-string"),
    pytest.param(FRONT.replace("seed: 1", "seed: one") + "request: {kind: story}\n",
                 ["seed must be a whole number, got text"], id="seed-string"),
    pytest.param(FRONT.replace("world_files: [tiny.yaml]", "world_files: tiny.yaml") + "request: {kind: story}\n",
                 ["world_files must be a list, got text"], id="world-files-string"),
    pytest.param(FRONT + "request: " + "[" * 5000 + "]" * 5000 + "\n", ["is nested too deeply"], id="deep-nesting"),
    pytest.param(FRONT + "request: " + "[" * 150 + "]" * 150 + "\n", ["nested more than 100 deep"],
                 id="nesting-150"),
    pytest.param(alias_bomb().replace("world: {id: w, name: W, summary: *i}\n", "") + FRONT + "request: *i\n",
                 ["aliases expand to more than 50000 nodes"], id="alias-bomb"),
    pytest.param(FRONT + "request: !!python/object/apply:os.system [ls]\n", ["YAML tag", "is not allowed"],
                 id="python-tag"),
    pytest.param(FRONT + "request: {kind: story}\nrequest: {kind: scene}\n", ["duplicate key 'request'"],
                 id="duplicate-key"),
    pytest.param(FRONT + "request: {kind: story}\nkind: story\n", ["duplicate key 'kind'"], id="duplicate-kind"),
    pytest.param(FRONT.replace("settings: {}", "settings: null") + "request: {kind: story}\n",
                 ["piece.md does not record settings, so it cannot be replayed"], id="settings-null"),
    pytest.param(FRONT.replace("model: {name: x}", "model: ~") + "request: {kind: story}\n",
                 ["does not record model"], id="model-null"),
]  # fmt: skip


@pytest.mark.parametrize(("front", "needles"), FRONT_MATTER_CASES)
def test_hostile_front_matter_in_replay(tmp_path, world, front, needles):
    _front_matter(tmp_path, front)
    assert_refused_in_bounds("replay", "piece.md", cwd=tmp_path, needles=needles)


@pytest.mark.parametrize("text, needle", [
    ("[" * 100_000 + "]" * 100_000, "piece.json is not a metagen file (invalid JSON: nested too deeply)"),
    ('{"kind": "story", "metagen_version": "x", "text": "\\udfff"}',
     "piece.json is not a metagen file (invalid JSON: \\udfff is half of a UTF-16 surrogate pair"),
])
def test_hostile_json_pieces_in_replay(tmp_path, world, text, needle):
    (tmp_path / "piece.json").write_text(text, encoding="utf-8")
    assert_refused_in_bounds("replay", "piece.json", cwd=tmp_path, needles=[needle])


def test_replay_never_prints_the_contents_of_a_file_it_points_to(tmp_path, world):
    (tmp_path / "secret.txt").write_text("root:x:0:0:hunter2-secret:/root:/bin/bash\n", encoding="utf-8")
    _front_matter(tmp_path, FRONT.replace("world_files: [tiny.yaml]", "world_files: [secret.txt]")
                  + "request: {kind: story, characters: [ada]}\n")
    line = assert_refused_in_bounds("replay", "piece.md", cwd=tmp_path, needles=["secret.txt, the world piece.md records, cannot be loaded (1 problem)"])
    assert "hunter2" not in line and "root:x" not in line


def test_resume_refuses_a_piece_with_hostile_front_matter(runner, tmp_path, world, no_model):
    folder = tmp_path / "out" / "tinyville" / "scene"
    folder.mkdir(parents=True)
    _front_matter(folder, FRONT + "request: ada\n", name="well-1.md")
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("world: tiny.yaml\nseed: 1\njobs: [{kind: scene, location: well}]\n", encoding="utf-8")
    result = invoke(runner, "batch", jobs, "--resume")
    assert_fails_cleanly(result, 2, ["well-1.md exists but is not a complete metagen piece"])


def test_a_current_folder_that_no_longer_exists_is_one_line(tmp_path):
    # torch's MKL printed "Intel oneMKL FATAL ERROR: Cannot load libtorch_cpu.so" and nothing else
    gone = tmp_path / "gone"
    script = f'mkdir "{gone}" && cd "{gone}" && rmdir "{gone}" && exec "{sys.executable}" -m metagen story w.yaml'
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 2, done.stderr
    assert done.stderr == "error: the current folder no longer exists (cd to one that does, and run the command again)\n"


# ----------------------------------------------------------------------------- standard streams

def _run_with_streams(args: list[str], cwd: Path, *, stdout=None, stdin=None, env_extra=None):
    """`python -m metagen ARGS` with the given stdout (a file descriptor, or None: captured) and stdin,
    importing this checkout's metagen (not an installed one: cwd is tmp_path)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "metagen", *args], cwd=cwd, env=env, timeout=300,
                          stdout=stdout if stdout is not None else subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=stdin if stdin is not None else subprocess.DEVNULL)


@pytest.mark.parametrize(("args", "how"), [
    (["worlds", "show", "tiny.yaml"], "closed-pipe"),
    (["worlds", "show", "tiny.yaml"], "full-disk"),
    (["--help"], "full-disk"),  # (help to a closed pipe: click's own exit 1, silent, as `cat` would be)
])  # fmt: skip
def test_stdout_that_cannot_be_written_gives_one_line_and_exit_1(tmp_path, world, how, args):
    """A shell script's `metagen ... | head` whose reader quits, or stdout on a full disk (/dev/full):
    one line naming standard output, exit 1, never Python's traceback (it was a traceback, or exit 1
    with nothing said)."""
    (tmp_path / "tiny.yaml").write_text(TINY_WORLD.replace("name: Ada", "name: 林小雨"), encoding="utf-8")
    if how == "closed-pipe":
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader is gone before metagen writes a byte
        done = _run_with_streams(args, tmp_path, stdout=write_end)
        os.close(write_end)
        needle = "error: standard output closed early"
    else:
        with open("/dev/full", "wb") as full:
            done = _run_with_streams(args, tmp_path, stdout=full.fileno())
        needle = "error: cannot write to standard output: No space left on device"
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 1, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    (line,) = stderr.splitlines()
    assert line.startswith(needle), line


def test_closed_stdout_is_refused_and_closed_stdin_reads_as_empty(tmp_path, world):
    """`>&-`: refused in one line, exit 2 (it was an AttributeError traceback); `<&-`: no input."""
    shell = f"{sys.executable} -m metagen worlds show tiny.yaml >&-"
    (tmp_path / "tiny.yaml").write_text(TINY_WORLD, encoding="utf-8")
    done = subprocess.run(["sh", "-c", shell], cwd=tmp_path, capture_output=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        "error: standard output is closed (give it somewhere to go, e.g. >/dev/null)"]
    shell = f"{sys.executable} -m metagen generate - --model missing.gguf <&-"
    done = subprocess.run(["sh", "-c", shell], cwd=tmp_path, capture_output=True, timeout=300)
    stderr = done.stderr.decode()
    assert done.returncode == 2 and "Traceback" not in stderr
    assert stderr.startswith("error: the prompt is empty (standard input held no text)"), stderr


@pytest.mark.parametrize("command", ["generate", "chat"])
def test_stdin_that_cannot_be_read_is_one_line_and_exit_2(tmp_path, world, model_args, command):
    """`0>FILE` (stdin open for writing only): an OSError traceback from the read (EBADF). A folder
    on stdin (`< DIR`) cannot be helped here: CPython stops before any code runs ("Fatal Python
    error: init_sys_streams: <stdin> is a directory"), exit 1."""
    args = {"generate": ["generate", "-"], "chat": ["chat", "tiny.yaml", "--as", "ada", "--seed", 1,
                                                     "--max-tokens", 2, "--out", "o"]}[command]
    with open(tmp_path / "write-only", "wb") as write_only:
        done = _run_with_streams([*map(str, args), *model_args], tmp_path, stdin=write_only.fileno())
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2, stderr
    assert stderr.splitlines()[-1].startswith("error: standard input cannot be read: Bad file descriptor ("), stderr
    assert "Traceback" not in stderr
    assert files_in(tmp_path / "o") == []  # (chat: no session of 0 turns)


def test_a_terminal_in_latin_1_gets_escapes_for_what_it_cannot_show(tmp_path, world):
    """PYTHONIOENCODING=latin-1 (a terminal in ISO 8859-1): 林小雨 printed as \\u escapes, not a
    UnicodeEncodeError traceback; letters latin-1 has stay as they are."""
    (tmp_path / "tiny.yaml").write_text(TINY_WORLD.replace("name: Ada", "name: 林小雨").replace(
        "name: Bo", "name: Bø"), encoding="utf-8")
    done = _run_with_streams(["worlds", "show", "tiny.yaml"], tmp_path, env_extra={"PYTHONIOENCODING": "latin-1"})
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    shown = done.stdout.decode("latin-1")
    assert "\\u6797\\u5c0f\\u96e8" in shown and "Bø" in shown
