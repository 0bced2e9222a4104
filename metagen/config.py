"""GenerationConfig: every decoding setting in one frozen, validated dataclass.

Settings arrive in layers (built-in defaults < world defaults < batch job < command line)
and `merge_settings` is the one place they are combined. Error messages name options as
the command line spells them (`CLI_NAMES`), so a bad value reads the same wherever it
came from. docs/decoding.md describes each option.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from typing import Any, Mapping

from metagen.errors import ConfigError
from metagen.scripts import ANY, SCRIPTS

STRATEGIES = ("greedy", "sample", "beam")
MAX_SEED = 2**63  # seeds must fit a torch.Generator: 0 <= seed < 2**63
# Bounds that keep float32 logits finite and memory small; checked before anything is built.
MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-3, 100.0
MIN_REPETITION_PENALTY = 1e-3
MAX_PENALTY = 100.0  # |presence|, |frequency|, repetition, DRY multiplier
MAX_DRY_BASE = 10.0
MAX_BIAS = 1000.0  # |logit bias|
MAX_BEAMS = 64  # beams, and texts returned per request
MAX_LENGTH_PENALTY = 10.0  # |length penalty|: length ** 10 stays finite for any context

# How the command line spells each field; used in every message about a setting.
CLI_NAMES: dict[str, str] = {
    "strategy": "--strategy",
    "max_new_tokens": "--max-tokens",
    "min_new_tokens": "--min-tokens",
    "temperature": "--temperature",
    "top_k": "--top-k",
    "top_p": "--top-p",
    "min_p": "--min-p",
    "typical_p": "--typical-p",
    "repetition_penalty": "--repetition-penalty",
    "repetition_window": "--repetition-window",
    "presence_penalty": "--presence-penalty",
    "frequency_penalty": "--frequency-penalty",
    "penalize_prompt": "--penalize-prompt",
    "penalty_exempt": "--penalty-exempt",
    "no_repeat_ngram_size": "--no-repeat-ngram",
    "dry_multiplier": "--dry-multiplier",
    "dry_base": "--dry-base",
    "dry_allowed_length": "--dry-allowed-length",
    "dry_sequence_breakers": "--dry-breaker",
    "xtc_threshold": "--xtc-threshold",
    "xtc_probability": "--xtc-probability",
    "banned": "--ban",
    "logit_bias": "--logit-bias",
    "num_beams": "--beams",
    "length_penalty": "--length-penalty",
    "early_stopping": "--early-stopping",
    "num_return_sequences": "--num-return",
    "stop": "--stop",
    "seed": "--seed",
    "scripts": "--scripts",
    "script_exempt": "--script-exempt",
    "candidates": "--candidates",
}
MAX_CANDIDATES = 16  # versions of one unit (a scene, a story beat, a dialogue line) to choose from


@dataclass(frozen=True)
class GenerationConfig:
    """How to turn the model's logits into text. Build with `merge_settings` or `from_dict`."""

    strategy: str = "sample"  # greedy | sample | beam; default sample
    max_new_tokens: int = 256  # most tokens to generate (>= 1); default 256
    min_new_tokens: int = 0  # end-of-text is suppressed until this many tokens (0..max); default 0
    temperature: float = 0.8  # divides the logits (>= 0; 0 means greedy); default 0.8
    top_k: int = 40  # keep the k most likely tokens (>= 0; 0 = off); default 40
    top_p: float = 0.95  # keep the smallest set with this much probability ((0, 1]; 1 = off); default 0.95
    min_p: float = 0.0  # drop tokens below min_p * the top probability ([0, 1); 0 = off); default 0
    typical_p: float = 1.0  # locally typical sampling mass ((0, 1]; 1 = off); default 1
    repetition_penalty: float = 1.1  # divide positive / multiply negative logits of seen tokens (> 0; 1 = off); default 1.1
    repetition_window: int = 256  # penalties look at the last N tokens (>= 0; 0 = all); default 256
    presence_penalty: float = 0.0  # subtracted once from every seen token's logit (0 = off); default 0
    frequency_penalty: float = 0.0  # subtracted per occurrence of a seen token (0 = off); default 0
    penalize_prompt: bool = False  # penalties also count the prompt's tokens; default False
    penalty_exempt: tuple[str, ...] = ()  # words whose tokens the repetition/presence/frequency penalties skip; default none
    no_repeat_ngram_size: int = 0  # never repeat an n-gram of this size (>= 0; 0 = off); default 0
    dry_multiplier: float = 0.0  # DRY penalty strength (>= 0; 0 = off); default 0
    dry_base: float = 1.75  # DRY penalty growth per extra repeated token (> 1); default 1.75
    dry_allowed_length: int = 2  # repeats up to this long are not penalized by DRY (>= 1); default 2
    dry_sequence_breakers: tuple[str, ...] = ("\n", ":", '"', "*")  # strings that end a DRY match
    xtc_threshold: float = 0.1  # XTC: tokens at least this likely are "top choices" ([0, 0.5]); default 0.1
    xtc_probability: float = 0.0  # XTC: chance per token of removing top choices ([0, 1]; 0 = off); default 0
    banned: tuple[str, ...] = ()  # words/phrases never produced (case and space variants too); default none
    logit_bias: tuple[tuple[str, float], ...] = ()  # (word or "#id", bias added to its logit); default none
    num_beams: int = 1  # beams for strategy beam (>= 2 there; the CLI's --beams defaults to 4); default 1
    length_penalty: float = 1.0  # beam score = sum_logprobs / length ** length_penalty; default 1
    early_stopping: bool = True  # beam: stop once num_beams hypotheses are finished; default True
    num_return_sequences: int = 1  # texts to return (>= 1; <= num_beams with beam); default 1
    stop: tuple[str, ...] = ()  # generation ends before any of these strings; default none
    seed: int | None = None  # seed for reproducible sampling (0 <= seed < 2**63); default random
    scripts: tuple[str, ...] = ()  # writing systems the text may use (latin, cyrillic, cjk, ...; "any" or none = no guard); worlds derive it from their prose
    script_exempt: tuple[str, ...] = ()  # words whose tokens stay allowed whatever their script (a world's names)
    candidates: int = 1  # versions of each unit written and judged by the critic, the best kept (1..16); default 1

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = _coerce(field.name, getattr(self, field.name))
            object.__setattr__(self, field.name, value)
        self._check_ranges()

    @property
    def effective_strategy(self) -> str:
        """The strategy actually run: "sample" at temperature 0 is greedy."""
        if self.strategy == "sample" and self.temperature == 0:
            return "greedy"
        return self.strategy

    def check_context(self, prompt_tokens: int, context_length: int) -> None:
        """Raise ConfigError when the prompt plus max_new_tokens overflows the model's context."""
        if prompt_tokens + self.max_new_tokens <= context_length:
            return
        room = context_length - prompt_tokens
        flag = CLI_NAMES["max_new_tokens"]
        if room < 1:
            raise ConfigError(
                f"the prompt has {prompt_tokens} tokens and the model's context is "
                f"{context_length}; no room is left for {flag}",
                hint="shorten the prompt",
            )
        raise ConfigError(
            f"{flag} {self.max_new_tokens} does not fit: the prompt has {prompt_tokens} tokens "
            f"and the model's context is {context_length}; use at most {room}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON/YAML values (tuples become lists)."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "logit_bias":
                value = [[key, bias] for key, bias in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[field.name] = value
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GenerationConfig:
        """Build from a mapping of field names; unknown keys and wrong types raise ConfigError."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"generation settings must be a mapping, got {type(d).__name__}")
        for key in d:
            if key not in _FIELD_NAMES:
                raise ConfigError(f"unknown generation setting {key!r}", hint=_did_you_mean(str(key)))
        return cls(**d)

    def _check_ranges(self) -> None:
        if self.strategy not in STRATEGIES:
            close = difflib.get_close_matches(self.strategy, STRATEGIES, n=1)
            raise ConfigError(
                f"--strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}",
                hint=f"did you mean {close[0]!r}?" if close else None,
            )
        _at_least("max_new_tokens", self.max_new_tokens, 1)
        _at_least("min_new_tokens", self.min_new_tokens, 0)
        if self.min_new_tokens > self.max_new_tokens:
            raise ConfigError(
                f"--min-tokens must be at most --max-tokens ({self.max_new_tokens}), "
                f"got {self.min_new_tokens}"
            )
        _interval("temperature", self.temperature, 0, MAX_TEMPERATURE, "[]")
        if 0 < self.temperature < MIN_TEMPERATURE:
            raise ConfigError(f"--temperature must be 0 (greedy) or at least {MIN_TEMPERATURE:g}, "
                              f"got {self.temperature:g}", hint="a smaller one overflows the logits")
        _at_least("top_k", self.top_k, 0)
        _interval("top_p", self.top_p, 0, 1, "(]")
        _interval("min_p", self.min_p, 0, 1, "[)")
        _interval("typical_p", self.typical_p, 0, 1, "(]")
        _interval("repetition_penalty", self.repetition_penalty, MIN_REPETITION_PENALTY, MAX_PENALTY, "[]")
        for name in ("presence_penalty", "frequency_penalty"):
            _interval(name, getattr(self, name), -MAX_PENALTY, MAX_PENALTY, "[]")
        _at_least("repetition_window", self.repetition_window, 0)
        _at_least("no_repeat_ngram_size", self.no_repeat_ngram_size, 0)
        _interval("dry_multiplier", self.dry_multiplier, 0, MAX_PENALTY, "[]")
        _interval("dry_base", self.dry_base, 1, MAX_DRY_BASE, "(]")
        _at_least("dry_allowed_length", self.dry_allowed_length, 1)
        _non_empty_strings("dry_sequence_breakers", self.dry_sequence_breakers)
        _interval("xtc_threshold", self.xtc_threshold, 0, 0.5, "[]")
        _interval("xtc_probability", self.xtc_probability, 0, 1, "[]")
        _non_empty_strings("banned", self.banned)
        _non_empty_strings("penalty_exempt", self.penalty_exempt)
        for key, _bias in self.logit_bias:
            if not key.strip():
                raise ConfigError("--logit-bias needs a word or #token-id, got an empty one")
            if key.startswith("#") and not key[1:].isdigit():
                raise ConfigError(f"--logit-bias token ids are written #123, got {key!r}")
            if abs(_bias) > MAX_BIAS:
                raise ConfigError(f"--logit-bias {key}={_bias:g}: the bias must be in [-{MAX_BIAS:g}, {MAX_BIAS:g}]",
                                  hint="-100 already bans a word")
        _interval("num_beams", self.num_beams, 1, MAX_BEAMS, "[]")
        _interval("length_penalty", self.length_penalty, -MAX_LENGTH_PENALTY, MAX_LENGTH_PENALTY, "[]")
        if self.strategy == "beam" and self.num_beams < 2:
            raise ConfigError(f"--beams must be at least 2 with --strategy beam, got {self.num_beams}")
        _interval("num_return_sequences", self.num_return_sequences, 1, MAX_BEAMS, "[]")
        if self.strategy == "beam" and self.num_return_sequences > self.num_beams:
            raise ConfigError(
                f"--num-return must be at most --beams ({self.num_beams}) with --strategy beam, "
                f"got {self.num_return_sequences}"
            )
        if self.effective_strategy == "greedy" and self.num_return_sequences > 1:
            raise ConfigError(
                f"--num-return {self.num_return_sequences} with greedy decoding would give "
                "identical texts",
                hint="use --strategy sample with a temperature above 0, or --strategy beam",
            )
        _non_empty_strings("stop", self.stop)
        unknown = [s for s in self.scripts if s not in (*SCRIPTS, ANY)]
        if unknown:
            raise ConfigError(f"--scripts {unknown[0]!r} is not a script; use {', '.join((*SCRIPTS, ANY))}")
        _non_empty_strings("script_exempt", self.script_exempt)
        _interval("candidates", self.candidates, 1, MAX_CANDIDATES, "[]")
        if self.candidates > 1 and self.effective_strategy != "sample":
            raise ConfigError(f"--candidates {self.candidates} needs sampling: greedy and beam search write "
                              "the same text every time", hint="use --strategy sample with a temperature above 0")
        if self.seed is not None and not 0 <= self.seed < MAX_SEED:
            raise ConfigError(f"--seed must be in [0, 2**63), got {self.seed}")


def candidate_seed(seed: int, k: int) -> int:
    """The seed of a unit's k-th candidate: the unit's own seed first, so one candidate is today's text."""
    return (seed + k * 0x9E3779B97F4A7C15) % MAX_SEED  # a large odd step: candidates of seeds S, S+1 never meet


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(GenerationConfig))

# The kind of value each field holds; `_coerce` checks it and normalizes lists to tuples.
_KINDS: dict[str, str] = {
    "strategy": "str",
    "max_new_tokens": "int",
    "min_new_tokens": "int",
    "temperature": "float",
    "top_k": "int",
    "top_p": "float",
    "min_p": "float",
    "typical_p": "float",
    "repetition_penalty": "float",
    "repetition_window": "int",
    "presence_penalty": "float",
    "frequency_penalty": "float",
    "penalize_prompt": "bool",
    "penalty_exempt": "strings",
    "no_repeat_ngram_size": "int",
    "dry_multiplier": "float",
    "dry_base": "float",
    "dry_allowed_length": "int",
    "dry_sequence_breakers": "strings",
    "xtc_threshold": "float",
    "xtc_probability": "float",
    "banned": "strings",
    "logit_bias": "bias",
    "num_beams": "int",
    "length_penalty": "float",
    "early_stopping": "bool",
    "num_return_sequences": "int",
    "stop": "strings",
    "seed": "seed",
    "scripts": "strings",
    "script_exempt": "strings",
    "candidates": "int",
}

_KIND_WORDS = {
    "str": "a string",
    "int": "an integer",
    "float": "a finite number",
    "bool": "true or false",
    "strings": "a list of strings",
    "bias": "a mapping of word or #id to a finite number (or a list of [word, number] pairs)",
    "seed": "an integer or null",
}


def merge_settings(*layers: Mapping[str, Any] | GenerationConfig | None) -> GenerationConfig:
    """Merge settings layers, lowest precedence first; later non-None values win.

    The usual order is world defaults, then a batch job's settings, then command-line
    flags (pass None for a flag that was not given); built-in defaults sit under all.
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        if layer is None:
            continue
        if isinstance(layer, GenerationConfig):
            layer = layer.to_dict()
        if not isinstance(layer, Mapping):
            raise ConfigError(f"generation settings must be a mapping, got {type(layer).__name__}")
        for key, value in layer.items():
            if value is not None:
                merged[key] = value
    return GenerationConfig.from_dict(merged)


def _wrong_type(name: str, value: Any) -> ConfigError:
    return ConfigError(
        f"{name} ({CLI_NAMES[name]}) must be {_KIND_WORDS[_KINDS[name]]}, "
        f"got {value!r} ({type(value).__name__})"
    )


def _coerce(name: str, value: Any) -> Any:
    """Check `value` is of the field's kind; return it normalized (lists -> tuples, int -> float)."""
    kind = _KINDS[name]
    if kind == "str":
        if not isinstance(value, str):
            raise _wrong_type(name, value)
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise _wrong_type(name, value)
        return value
    if kind == "int" or (kind == "seed" and value is not None):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong_type(name, value)
        return int(value)
    if kind == "seed":
        return None
    if kind == "float":
        return _finite(name, value)
    if kind == "strings":
        if isinstance(value, str):
            value = (value,)
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise _wrong_type(name, value)
        return tuple(_utf8(name, v) for v in value)
    # kind == "bias": a mapping, or a sequence of (key, number) pairs
    items = list(value.items()) if isinstance(value, Mapping) else value
    if not isinstance(items, (list, tuple)):
        raise _wrong_type(name, value)
    pairs = []
    for item in items:
        if not isinstance(item, (list, tuple)) or len(item) != 2 or not isinstance(item[0], str):
            raise _wrong_type(name, value)
        pairs.append((_utf8(name, item[0]), _finite(name, item[1], whole=value)))
    return tuple(pairs)


def _utf8(name: str, text: str) -> str:
    """text, unless it holds lone surrogates (argv bytes that were not UTF-8): those cannot be tokenized."""
    if any("\ud800" <= c <= "\udfff" for c in text):
        raise ConfigError(f"{CLI_NAMES[name]} {text!r} is not UTF-8 text",
                          hint="check the terminal's encoding: LANG or LC_ALL should name UTF-8")
    return text


def _finite(name: str, value: Any, whole: Any = None) -> float:
    try:
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    except OverflowError:  # an int with hundreds of digits
        ok = False
    if not ok:
        raise _wrong_type(name, value if whole is None else whole)
    return float(value)


def _at_least(name: str, value: float, low: float) -> None:
    if value < low:
        raise ConfigError(f"{CLI_NAMES[name]} must be at least {low}, got {value}")


def _interval(name: str, value: float, low: float, high: float, brackets: str) -> None:
    above = value >= low if brackets[0] == "[" else value > low
    below = value <= high if brackets[1] == "]" else value < high
    if not (above and below):
        raise ConfigError(
            f"{CLI_NAMES[name]} must be in {brackets[0]}{low:g}, {high:g}{brackets[1]}, got {value}"
        )


def _non_empty_strings(name: str, values: tuple[str, ...]) -> None:
    if any(not v for v in values):
        raise ConfigError(f"{CLI_NAMES[name]} needs non-empty strings, got {list(values)!r}")


def _did_you_mean(key: str) -> str | None:
    """A hint naming the field closest to `key`, also matching CLI spellings like "top-p"."""
    candidates = {name: name for name in _FIELD_NAMES}
    for name, flag in CLI_NAMES.items():
        candidates.setdefault(flag.lstrip("-"), name)
        candidates.setdefault(flag.lstrip("-").replace("-", "_"), name)
    normal = key.strip().lstrip("-")
    close = difflib.get_close_matches(normal, list(candidates), n=1, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(normal.replace("-", "_"), list(candidates), n=1, cutoff=0.6)
    if not close:
        return f"known settings: {', '.join(_FIELD_NAMES)}"
    return f"did you mean {candidates[close[0]]!r}?"


__all__ = ["CLI_NAMES", "MAX_CANDIDATES", "STRATEGIES", "candidate_seed", "GenerationConfig", "merge_settings"]
