"""Random worlds and random option values never crash metagen (issue 7).

Hypothesis writes YAML-like documents (nested mappings, lists and scalars, with real field
names among random keys and random unicode), broken YAML text and raw bytes as world
files, and draws random values for the decoding flags. The loader may only raise
WorldError; the command line may only exit 0, 1 or 2, without a traceback. Nothing here
loads a model: `worlds validate` needs none, and `story` runs with a model path that does
not exist, so every request either fails before the model or at the missing file.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metagen.cli import app
from metagen.errors import EXIT_BAD_INPUT, EXIT_GENERATION_FAILED, EXIT_OK, WorldError
from metagen.world import load_world

from conftest import TINY_WORLD

FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
DOCUMENTED_EXITS = (EXIT_OK, EXIT_GENERATION_FAILED, EXIT_BAD_INPUT)

FIELD_NAMES = [
    "world", "id", "name", "genre", "tone", "summary", "style", "point_of_view", "tense", "rating", "length",
    "length_words", "short", "locations", "connections", "sights", "characters", "aliases", "traits", "voice",
    "relationships", "with", "kind", "sample_lines", "factions", "members", "lore", "keys", "text", "priority",
    "always_include", "defaults", "all", "story", "scene", "dialogue", "temperature", "top_p", "stop", "seed",
    "content", "banned_words", "include", "<<",
]  # fmt: skip
IDS = ["ada", "bo", "well", "mill", "w", "x-1", "Ada", "../up", ""]

# ----------------------------------------------------------------------------- strategies

keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=10))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=24), st.sampled_from(IDS),
    st.sampled_from(["a.yaml", "../outside.yaml", "/etc/passwd", "part.yaml", "first", "PG-13"]),
)  # fmt: skip
documents = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=6)),
    max_leaves=30,
)
# Mostly world-shaped: a world header plus random sections.
worlds = st.fixed_dictionaries(
    {"world": st.one_of(st.fixed_dictionaries({"id": st.sampled_from(IDS), "name": st.text(max_size=12)}), documents)},
    optional={section: documents for section in
              ("style", "locations", "characters", "factions", "lore", "defaults", "content", "include")},
)  # fmt: skip
yaml_tokens = st.sampled_from([
    "world:", "id:", "name:", "characters:", "include:", "- ", ": ", " ", "\n", "  ", "\t", "[", "]", "{", "}", ",",
    "&a ", "*a", "<<: *a", "!!str ", "!!python/object:os.system ", "!x ", "'", '"', "#", "---\n", "...\n", "? ",
    "|\n", ">-\n", "%YAML 1.1\n", "~", "0x1F", "1e999", ".nan", "\\", "\ufeff", "\x85", "\u2028", "\x08", "\x7f",
])  # fmt: skip
yaml_soup = st.lists(st.one_of(yaml_tokens, st.text(max_size=6)), max_size=40).map("".join)


def write_text(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    return path


def dump(document, flow: bool) -> str:
    return yaml.safe_dump(document, allow_unicode=True, default_flow_style=flow, sort_keys=False)


def assert_loader_ok_or_world_error(path: Path) -> None:
    try:
        load_world(path)
    except WorldError as error:
        assert error.problems and all(isinstance(p, str) and p for p in error.problems)
        assert "\n" not in error.one_line()


def assert_clean_exit(result) -> None:
    assert result.exit_code in DOCUMENTED_EXITS, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


# ----------------------------------------------------------------------------- the loader


@FUZZ
@given(document=st.one_of(worlds, documents), flow=st.booleans())
def test_loader_raises_only_world_errors_for_random_documents(tmp_path, document, flow):
    assert_loader_ok_or_world_error(write_text(tmp_path / "world.yaml", dump(document, flow)))


@FUZZ
@given(text=yaml_soup)
def test_loader_raises_only_world_errors_for_broken_yaml(tmp_path, text):
    assert_loader_ok_or_world_error(write_text(tmp_path / "world.yaml", text))


@FUZZ
@given(data=st.binary(max_size=64), head=st.sampled_from([b"", b"world: {id: w, name: W}\n", b"\xef\xbb\xbf"]))
def test_loader_raises_only_world_errors_for_random_bytes(tmp_path, data, head):
    path = tmp_path / "world.yaml"
    path.write_bytes(head + data)
    assert_loader_ok_or_world_error(path)


@FUZZ
@given(main=worlds, part=documents, flow=st.booleans())
def test_loader_raises_only_world_errors_with_random_includes(tmp_path, main, part, flow):
    main = {**main, "include": ["part.yaml", "world.yaml", "../outside.yaml"][: 1 + len(str(part)) % 3]}
    write_text(tmp_path / "part.yaml", dump(part, flow))
    assert_loader_ok_or_world_error(write_text(tmp_path / "world.yaml", dump(main, flow)))


# ----------------------------------------------------------------------------- the command line


@FUZZ
@given(document=st.one_of(worlds, documents, yaml_soup))
def test_validate_command_exits_0_or_2(runner, tmp_path, document):
    text = document if isinstance(document, str) else dump(document, flow=False)
    write_text(tmp_path / "world.yaml", text)
    result = runner.invoke(app, ["worlds", "validate", "world.yaml"])
    assert_clean_exit(result)
    assert result.exit_code in (EXIT_OK, EXIT_BAD_INPUT)
    assert (result.exit_code == EXIT_OK) == result.stdout.startswith("ok: world.yaml")


@FUZZ
@given(document=st.one_of(worlds, yaml_soup), character=st.sampled_from(IDS))
def test_story_command_on_random_worlds(runner, tmp_path, document, character):
    text = document if isinstance(document, str) else dump(document, flow=True)
    write_text(tmp_path / "world.yaml", text)
    result = runner.invoke(app, ["story", "world.yaml", "-c", character, "--model", "no/such/model.gguf",
                                 "--out", str(tmp_path / "out")])
    assert_clean_exit(result)
    assert result.exit_code == EXIT_BAD_INPUT  # the world, the request, or the missing model
    assert not (tmp_path / "out").exists() or not any(p.is_file() for p in (tmp_path / "out").rglob("*"))


FLOAT_FLAGS = ["--temperature", "--top-p", "--min-p", "--typical-p", "--repetition-penalty", "--presence-penalty",
               "--frequency-penalty", "--dry-multiplier", "--dry-base", "--xtc-threshold", "--xtc-probability",
               "--length-penalty"]
INT_FLAGS = ["--max-tokens", "--min-tokens", "--top-k", "--repetition-window", "--no-repeat-ngram",
             "--dry-allowed-length", "--beams", "--num-return", "--seed", "--count"]
TEXT_FLAGS = ["--strategy", "--stop", "--ban", "--logit-bias", "--dry-breaker", "--premise", "--length", "--format",
              "--location"]
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 1.0, -0.0, 0.5, 1e308]))
ints = st.one_of(st.integers(min_value=-(2**70), max_value=2**70), st.sampled_from([0, 1, -1, 2**63, 2**63 - 1]))
texts = st.one_of(
    st.text(max_size=12).filter(lambda t: "\x00" not in t),  # argv cannot hold NUL
    st.sampled_from(["beam", "greedy", "sample", "nonsense", "dragon=-5", "#12=3", "=", "a=b=c", "\udcff", "md",
                     "yarn", "short", "epic", "well", "", "-1", "--help"]),
)  # fmt: skip
option_values = st.one_of(
    st.tuples(st.sampled_from(FLOAT_FLAGS), floats.map(repr)),
    st.tuples(st.sampled_from(INT_FLAGS), ints.map(str)),
    st.tuples(st.sampled_from(FLOAT_FLAGS + INT_FLAGS), texts),  # not a number at all
    st.tuples(st.sampled_from(TEXT_FLAGS), texts),
)


@FUZZ
@given(options=st.lists(option_values, min_size=1, max_size=5))
def test_story_command_with_random_option_values(runner, tmp_path, options):
    """Random values for the decoding flags: each is refused with exit 2, or the missing model is."""
    (tmp_path / "world.yaml").write_text(TINY_WORLD, encoding="utf-8")
    flags = [f"{flag}={value}" for flag, value in options]
    result = runner.invoke(app, ["story", "world.yaml", "-c", "ada", *flags, "--model", "no/such/model.gguf",
                                 "--out", str(tmp_path / "out")])
    assert_clean_exit(result)
    assert result.exit_code == EXIT_BAD_INPUT
    if result.stderr.startswith("error:"):  # ours (not a click usage error): exactly one line
        assert len(result.stderr.splitlines()) == 1, result.stderr
    assert not (tmp_path / "out").exists() or not any(p.is_file() for p in (tmp_path / "out").rglob("*"))


@FUZZ
@given(settings_=st.dictionaries(st.sampled_from(["temperature", "top_p", "top_k", "max_new_tokens", "seed",
                                                  "strategy", "stop", "logit_bias", "num_beams", "tempreature"]),
                                 st.one_of(scalars, st.lists(scalars, max_size=3)), min_size=1, max_size=4))
def test_story_command_with_random_world_defaults(runner, tmp_path, settings_):
    """Random decoding settings in the world's defaults: never a traceback."""
    text = TINY_WORLD + dump({"defaults": {"story": settings_}}, flow=False)
    write_text(tmp_path / "world.yaml", text)
    result = runner.invoke(app, ["story", "world.yaml", "-c", "ada", "--model", "no/such/model.gguf",
                                 "--out", str(tmp_path / "out")])
    assert_clean_exit(result)
    assert result.exit_code == EXIT_BAD_INPUT


def test_a_few_finite_floats_really_pass_validation(runner, tmp_path):
    """The fuzzed flags are not all refused: a valid set reaches the (missing) model."""
    (tmp_path / "world.yaml").write_text(TINY_WORLD, encoding="utf-8")
    result = runner.invoke(app, ["story", "world.yaml", "-c", "ada", "--temperature", "0.7", "--top-p", "0.9",
                                 "--seed", "3", "--model", "no/such/model.gguf", "--out", str(tmp_path / "out")])
    assert result.exit_code == EXIT_BAD_INPUT
    assert result.stderr == "error: model file no/such/model.gguf does not exist (check the path, or run " \
                            "`metagen models list`)\n"
