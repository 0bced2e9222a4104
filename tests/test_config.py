"""GenerationConfig: its table of settings, validation messages, from_dict/to_dict, merge precedence,
context fit, and the docs/decoding.md tables drawn from the table."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metagen import config
from metagen.config import CLI_NAMES, SETTINGS, GenerationConfig, merge_settings
from metagen.errors import EXIT_BAD_INPUT, ConfigError
from metagen.setting import SECTIONS, render_doc

DOC = Path(__file__).resolve().parents[1] / "docs" / "decoding.md"


def test_defaults_are_valid_and_documented_values():
    cfg = GenerationConfig()
    assert cfg.strategy == "sample"
    assert cfg.max_new_tokens == 256
    assert cfg.temperature == 0.8
    assert cfg.top_k == 40
    assert cfg.top_p == 0.95
    assert cfg.repetition_penalty == 1.1
    assert cfg.dry_sequence_breakers == ("\n", ":", '"', "*")
    assert cfg.seed is None
    assert cfg.effective_strategy == "sample"


def test_every_field_is_declared_whole():
    names = [f.name for f in dataclasses.fields(GenerationConfig)]
    assert list(SETTINGS) == names and list(CLI_NAMES) == names
    flags = [s.flag for s in SETTINGS.values()]
    assert len(set(flags)) == len(flags) and all(flag.startswith("--") for flag in flags)
    for s in SETTINGS.values():
        assert s.type in config._TYPE_WORDS, f"{s.name}: _coerce does not know {s.type}"
        assert s.section in SECTIONS and s.doc
        assert s.help or not s.option
        assert s.default == getattr(GenerationConfig(), s.name)


def test_docs_tables_are_drawn_from_the_settings():
    text = DOC.read_text(encoding="utf-8")
    assert render_doc(text, SETTINGS.values()) == text, (
        "docs/decoding.md's settings tables differ from metagen/config.py; from the repository root run "
        "python -c \"import metagen.config as c; c.write_settings_doc()\""
    )


def test_docs_table_rows():
    table = render_doc(DOC.read_text(encoding="utf-8"), SETTINGS.values())
    assert "| `top_p` | `--top-p` | 0.95 | (0, 1] (1 = off) |" in table
    assert "| `dry_sequence_breakers` | `--dry-breaker` (repeatable) | `\\n` `:` `\"` `*` | non-empty strings |" in table
    assert "| `early_stopping` | `--early-stopping / --no-early-stopping` | on | on/off |" in table
    assert "| `script_exempt` | none (world and jobs files only) |" in table
    for name in SETTINGS:
        assert table.count(f"| `{name}` |") == 1


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        GenerationConfig().top_k = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "settings, flag, allowed",
    [
        ({"strategy": "nucleus"}, "--strategy", "greedy, sample, beam"),
        ({"max_new_tokens": 0}, "--max-tokens", "at least 1"),
        ({"min_new_tokens": -1}, "--min-tokens", "at least 0"),
        ({"min_new_tokens": 300, "max_new_tokens": 200}, "--min-tokens", "at most --max-tokens (200)"),
        ({"temperature": -0.1}, "--temperature", "[0, 100]"),
        ({"top_k": -1}, "--top-k", "at least 0"),
        ({"top_p": 0.0}, "--top-p", "(0, 1]"),
        ({"top_p": 1.5}, "--top-p", "(0, 1]"),
        ({"min_p": 1.0}, "--min-p", "[0, 1)"),
        ({"min_p": -0.1}, "--min-p", "[0, 1)"),
        ({"typical_p": 0.0}, "--typical-p", "(0, 1]"),
        ({"typical_p": 1.01}, "--typical-p", "(0, 1]"),
        ({"repetition_penalty": 0.0}, "--repetition-penalty", "[0.001, 100]"),
        ({"repetition_window": -1}, "--repetition-window", "at least 0"),
        ({"no_repeat_ngram_size": -2}, "--no-repeat-ngram", "at least 0"),
        ({"dry_multiplier": -1.0}, "--dry-multiplier", "[0, 100]"),
        ({"dry_base": 1.0}, "--dry-base", "(1, 10]"),
        ({"dry_allowed_length": 0}, "--dry-allowed-length", "at least 1"),
        ({"dry_sequence_breakers": ["\n", ""]}, "--dry-breaker", "non-empty"),
        ({"xtc_threshold": 0.6}, "--xtc-threshold", "[0, 0.5]"),
        ({"xtc_probability": 1.5}, "--xtc-probability", "[0, 1]"),
        ({"banned": [""]}, "--ban", "needs words"),
        ({"banned": ["elf", " "]}, "--ban", "needs words"),  # stripped to nothing, it had banned nothing
        ({"logit_bias": {"": 1.0}}, "--logit-bias", "word or #token-id"),
        ({"logit_bias": {"#12a": 1.0}}, "--logit-bias", "#123"),
        # a superscript digit passed isdigit() and crashed int() later; an Arabic-Indic one meant #1
        ({"logit_bias": {"#\u00b2": 1.0}}, "--logit-bias", "#123"),
        ({"logit_bias": {"#\u0661": 1.0}}, "--logit-bias", "#123"),
        ({"num_beams": 0}, "--beams", "[1, 64]"),
        ({"strategy": "beam", "num_beams": 1}, "--beams", "at least 2"),
        ({"num_return_sequences": 0}, "--num-return", "[1, 64]"),
        ({"strategy": "beam", "num_beams": 2, "num_return_sequences": 3}, "--num-return", "at most --beams (2)"),
        ({"strategy": "greedy", "num_return_sequences": 2}, "--num-return", "identical"),
        ({"temperature": 0.0, "num_return_sequences": 2}, "--num-return", "identical"),
        ({"stop": ["END", ""]}, "--stop", "non-empty"),
        ({"seed": -1}, "--seed", "[0, 2**63)"),
        ({"seed": 2**63}, "--seed", "[0, 2**63)"),
        # issue 14: extremes that overflow float32 logits or memory are refused by range
        ({"temperature": 1e-300}, "--temperature", "0 (greedy) or at least 0.001"),
        ({"temperature": 1e308}, "--temperature", "[0, 100]"),
        ({"presence_penalty": -1e308, "penalize_prompt": True}, "--presence-penalty", "[-100, 100]"),
        ({"frequency_penalty": 1e308}, "--frequency-penalty", "[-100, 100]"),
        ({"repetition_penalty": 1e-308}, "--repetition-penalty", "[0.001, 100]"),
        ({"dry_multiplier": 1e308}, "--dry-multiplier", "[0, 100]"),
        ({"dry_base": 1e308}, "--dry-base", "(1, 10]"),
        ({"length_penalty": 1e308}, "--length-penalty", "[-10, 10]"),
        ({"length_penalty": -1e308}, "--length-penalty", "[-10, 10]"),
        ({"logit_bias": {"elf": 1e308}}, "--logit-bias", "[-1000, 1000]"),
        ({"strategy": "beam", "num_beams": 50_000}, "--beams", "[1, 64]"),
        ({"strategy": "beam", "num_beams": 1_000_000}, "--beams", "[1, 64]"),
        ({"num_return_sequences": 10**6}, "--num-return", "[1, 64]"),
        ({"temperature": 10**400}, "--temperature", "must be a finite number"),
    ],
)
def test_bad_values_name_the_flag_and_the_range(settings, flag, allowed):
    with pytest.raises(ConfigError) as info:
        GenerationConfig.from_dict(settings)
    message = info.value.one_line()
    assert flag in message
    assert allowed in message
    assert "\n" not in message
    assert info.value.exit_code == EXIT_BAD_INPUT


@pytest.mark.parametrize(("field", "values", "line"), [
    ("banned", ["elf"] * 30_000 + [" "], "--ban needs words (not blank), got ' ' as value 30001 of 30001 "
     "(a blank one would do nothing: remove it)"),
    ("stop", [""], "--stop needs non-empty strings, got '' (remove it)"),
    ("dry_sequence_breakers", ["\n", "", ":"], "--dry-breaker needs non-empty strings, got '' as value 2 of 3 "
     "(remove it)"),
])
def test_an_empty_string_among_many_is_named_not_the_whole_list(field, values, line):
    """One check for empty and blank strings (it had been two near-twin classes), whose messages
    printed the whole list: 30,000 --ban words made a 240 KB line."""
    with pytest.raises(ConfigError) as info:
        GenerationConfig.from_dict({field: values})
    assert info.value.one_line() == line


@pytest.mark.parametrize(
    "key, value, expected",
    [
        # in text.kind_of's words, as the "got ..." that follows ("must be an integer, got 1.5 (a number)")
        ("max_new_tokens", "100", "must be a whole number, got '100' (text)"),
        ("max_new_tokens", 1.5, "must be a whole number, got 1.5 (a number)"),
        ("max_new_tokens", True, "must be a whole number, got True (true/false)"),
        ("temperature", "hot", "a finite number"),
        ("temperature", float("nan"), "a finite number"),
        ("top_p", float("inf"), "a finite number"),
        ("strategy", 3, "must be text, got 3 (a whole number)"),
        ("penalize_prompt", "yes", "must be true/false, got 'yes' (text)"),
        ("early_stopping", 1, "must be true/false"),
        ("banned", ["ok", 3], "a list of text"),
        ("stop", {"a": 1}, "a list of text"),
        ("logit_bias", {"dragon": "up"}, "a mapping"),
        ("logit_bias", [["dragon"]], "a mapping"),
        ("logit_bias", "dragon", "a mapping"),
        ("seed", "42", "a whole number or null"),
    ],
)
def test_wrong_types_name_the_key_and_the_type(key, value, expected):
    with pytest.raises(ConfigError) as info:
        GenerationConfig.from_dict({key: value})
    message = info.value.one_line()
    assert key in message and CLI_NAMES[key] in message
    assert expected in message
    assert f"({type(value).__name__})" not in message  # what the value is in words, not Python's class


@pytest.mark.parametrize(
    "key, suggestion",
    [("topp", "top_p"), ("temprature", "temperature"), ("max_tokens", "max_new_tokens"), ("top-k", "top_k"), ("beams", "num_beams")],
)
def test_unknown_key_did_you_mean(key, suggestion):
    with pytest.raises(ConfigError) as info:
        GenerationConfig.from_dict({key: 1})
    assert repr(key) in info.value.message
    assert f"did you mean {suggestion!r}" in info.value.one_line()


def test_unknown_key_with_nothing_close_lists_the_settings():
    with pytest.raises(ConfigError) as info:
        GenerationConfig.from_dict({"zzzzzz": 1})
    assert "known settings" in info.value.one_line()


def test_strategy_typo_gets_a_hint():
    with pytest.raises(ConfigError) as info:
        GenerationConfig(strategy="beem")
    assert "did you mean 'beam'" in info.value.one_line()


def test_from_dict_coerces_lists_and_ints():
    cfg = GenerationConfig.from_dict(
        {"stop": ["\n\n", "THE END"], "banned": "dragon", "temperature": 1, "logit_bias": {"elf": -2, "#7": 1.5}}
    )
    assert cfg.stop == ("\n\n", "THE END")
    assert cfg.banned == ("dragon",)
    assert cfg.temperature == 1.0 and isinstance(cfg.temperature, float)
    assert cfg.logit_bias == (("elf", -2.0), ("#7", 1.5))
    hash(cfg)  # all tuples: hashable


def test_logit_bias_accepts_pairs():
    cfg = GenerationConfig.from_dict({"logit_bias": [["elf", -2], ("#3", 1)]})
    assert cfg.logit_bias == (("elf", -2.0), ("#3", 1.0))


def test_to_dict_round_trips_through_json():
    cfg = GenerationConfig(
        strategy="beam", num_beams=3, num_return_sequences=2, stop=("X",), banned=("orc",),
        logit_bias=(("elf", 2.0),), seed=7,
    )
    data = json.loads(json.dumps(cfg.to_dict()))
    assert data["stop"] == ["X"] and data["logit_bias"] == [["elf", 2.0]]
    assert GenerationConfig.from_dict(data) == cfg


@given(
    top_p=st.floats(min_value=0.01, max_value=1.0),
    top_k=st.integers(min_value=0, max_value=1000),
    temperature=st.one_of(st.just(0.0), st.floats(min_value=0.001, max_value=5.0)),
    seed=st.one_of(st.none(), st.integers(min_value=0, max_value=2**63 - 1)),
    stop=st.lists(st.text(min_size=1, max_size=5), max_size=3),
)
def test_round_trip_property(top_p, top_k, temperature, seed, stop):
    cfg = GenerationConfig(top_p=top_p, top_k=top_k, temperature=temperature, seed=seed, stop=tuple(stop))
    assert GenerationConfig.from_dict(cfg.to_dict()) == cfg


def test_effective_strategy():
    assert GenerationConfig(temperature=0.0).effective_strategy == "greedy"
    assert GenerationConfig(strategy="greedy").effective_strategy == "greedy"
    assert GenerationConfig(strategy="beam", num_beams=4, temperature=0.0).effective_strategy == "beam"


def test_merge_precedence_later_layers_win():
    world = {"temperature": 0.7, "top_k": 20, "stop": ["THE END"], "seed": 1}
    job = {"temperature": 0.9, "max_new_tokens": 100}
    cli = {"temperature": None, "top_k": 5, "seed": None, "max_new_tokens": None}
    cfg = merge_settings(world, job, cli)
    assert cfg.temperature == 0.9  # job beats world; the CLI did not set it
    assert cfg.top_k == 5  # CLI beats world
    assert cfg.max_new_tokens == 100
    assert cfg.stop == ("THE END",)
    assert cfg.seed == 1
    assert cfg.top_p == GenerationConfig().top_p  # built-in default under everything


def test_merge_of_nothing_is_the_defaults():
    assert merge_settings() == GenerationConfig()
    assert merge_settings(None, {}, None) == GenerationConfig()


def test_merge_accepts_a_config_layer():
    base = GenerationConfig(top_k=3)
    assert merge_settings(base, {"top_p": 0.5}) == GenerationConfig(top_k=3, top_p=0.5)


def test_merge_validates_the_result_not_each_layer():
    # The world asks for beam with 4 beams; the CLI then only says strategy beam: fine.
    cfg = merge_settings({"num_beams": 4}, {"strategy": "beam"})
    assert cfg.num_beams == 4
    with pytest.raises(ConfigError, match="--beams"):
        merge_settings({"strategy": "beam"})


def test_merge_rejects_unknown_keys():
    with pytest.raises(ConfigError) as info:
        merge_settings({"top_pp": 0.5})
    assert "did you mean 'top_p'" in info.value.one_line()
    with pytest.raises(ConfigError, match="mapping"):
        merge_settings(["top_p"])  # type: ignore[arg-type]


def test_replace_revalidates():
    with pytest.raises(ConfigError, match="--top-p"):
        dataclasses.replace(GenerationConfig(), top_p=2.0)


def test_check_context():
    cfg = GenerationConfig(max_new_tokens=500)
    cfg.check_context(prompt_tokens=100, context_length=600)  # exactly fits
    with pytest.raises(ConfigError) as info:
        cfg.check_context(prompt_tokens=3000, context_length=3072)
    assert info.value.message == (
        "--max-tokens 500 does not fit: the prompt has 3000 tokens and the model's context "
        "is 3072; use at most 72"
    )
    with pytest.raises(ConfigError) as info:
        cfg.check_context(prompt_tokens=3072, context_length=3072)
    assert "shorten the prompt" in info.value.one_line()


@pytest.mark.parametrize("settings, message", [
    ({"candidates": 0}, "--candidates must be in"),
    ({"candidates": 17}, "--candidates must be in"),
    ({"candidates": 2, "strategy": "greedy"}, "--candidates 2 needs sampling"),
    ({"scripts": ["klingon"]}, "--scripts 'klingon' is not a script"),
])
def test_candidates_and_scripts_are_checked(settings, message):
    with pytest.raises(ConfigError, match=message):
        GenerationConfig.from_dict(settings)


def test_each_kinds_defaults_are_the_ones_help_and_docs_state():
    """pipeline.KIND_DEFAULTS holds the values; --help and docs/decoding.md state them in words
    (config's help_default and doc_default): a value changed in one place only fails here."""
    import re

    from metagen.pipeline import KIND_DEFAULTS

    for kind, defaults in KIND_DEFAULTS.items():
        for name, value in defaults.items():
            setting = SETTINGS[name]
            in_docs = re.escape("on" if value is True else str(value))  # "dialogue: on", "story, scene: 4"
            assert re.search(rf"\b{kind}\b[^:;)]*: {in_docs}\b", setting.doc_default), (kind, name, setting.doc_default)
            in_help = re.escape("yes" if value is True else str(value))  # "yes for dialogue", "0.6 for story, ..."
            assert re.search(rf"\b{in_help} for (?:(?! for )[^;])*\b{kind}\b", setting.help_default), (
                kind, name, setting.help_default)


HUGE = "99999999999999999999"  # 20 digits: past 2**63, the most any whole number in a world file holds


@pytest.mark.parametrize("source", ["flag", "jobs file", "world file"])
def test_a_whole_number_past_2_63_is_refused_from_every_source(runner, tmp_path, model_args, source):
    """--top-k 99999999999999999999 and a jobs file's top_k: 99999999999999999999 were taken (and
    recorded in every piece) while a world file's defaults refused the same number."""
    from conftest import TINY_WORLD, invoke, write_world

    defaults = f"defaults: {{all: {{top_k: {HUGE}}}}}\n" if source == "world file" else ""
    world = write_world(tmp_path, TINY_WORLD + defaults)
    settings = f"settings: {{top_k: {HUGE}}}\n" if source == "jobs file" else ""
    (tmp_path / "jobs.yaml").write_text(f"world: {world}\n{settings}jobs:\n  - {{kind: scene, location: well}}\n",
                                        encoding="utf-8")
    flag = ["--top-k", HUGE] if source == "flag" else []
    result = invoke(runner, "batch", tmp_path / "jobs.yaml", "--out", tmp_path / "out", *flag, *model_args)
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and ("top_k" in line or "--top-k" in line), line
    assert HUGE in line and "19 digits" in line and "problems in world" not in line, line
    assert not (tmp_path / "out").exists()


def test_whole_number_settings_stay_below_2_63_as_seeds_do():
    assert GenerationConfig(top_k=2**63 - 1).top_k == 2**63 - 1
    with pytest.raises(ConfigError, match=r"--repetition-window must be below 2\*\*63 \(at most 19 digits\), got 9223372036854775808"):
        GenerationConfig(repetition_window=2**63)
    with pytest.raises(ConfigError, match="got a number of more than 40 digits"):
        GenerationConfig(no_repeat_ngram_size=10**5000)
    with pytest.raises(ConfigError, match=r"--seed must be in \[0, 2\*\*63\)"):
        GenerationConfig(seed=2**63)


def test_a_word_setting_given_a_long_value_shows_it_cut_with_its_length():
    with pytest.raises(ConfigError) as refused:
        GenerationConfig(strategy="x" * 300)
    message = str(refused.value)
    assert "must be one of" in message and "(300 characters)" in message and "x" * 41 not in message
