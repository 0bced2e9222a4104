"""Options shared by every generating command: decoding settings and the model.

`with_decoding_options` appends the decoding flags to a command's signature and hands
them to the command as one `settings` dict (None for each flag not given), so that the
flags are declared once and `config.merge_settings` sees exactly what the user typed.
"""

from __future__ import annotations

import functools
import inspect
import sys
from typing import Annotated, Callable, Optional

import typer

from metagen.errors import ConfigError

PANEL = "Decoding"
MODEL_PANEL = "Model"


def _opt(*names: str, help: str, **kw):
    return typer.Option(*names, help=help, rich_help_panel=PANEL, show_default=False, **kw)


# (field name, annotation) pairs; order is the order shown in --help.
DECODING_PARAMETERS: list[tuple[str, object]] = [
    ("strategy", Annotated[Optional[str], _opt("--strategy", help="greedy | sample | beam. [default: sample]")]),
    ("max_new_tokens", Annotated[Optional[int], _opt("--max-tokens", help="Most tokens to generate.")]),
    ("min_new_tokens", Annotated[Optional[int], _opt("--min-tokens", help="End-of-text is suppressed until this many tokens. [default: 0]")]),
    ("temperature", Annotated[Optional[float], _opt("--temperature", "-t", help="Sampling temperature, >= 0; 0 = greedy. [default: 0.8]")]),
    ("top_k", Annotated[Optional[int], _opt("--top-k", help="Keep the k most likely tokens; 0 = off. [default: 40]")]),
    ("top_p", Annotated[Optional[float], _opt("--top-p", help="Nucleus: smallest set with this probability mass, (0, 1]. [default: 0.95]")]),
    ("min_p", Annotated[Optional[float], _opt("--min-p", help="Drop tokens below min-p x the top probability, [0, 1). [default: 0]")]),
    ("typical_p", Annotated[Optional[float], _opt("--typical-p", help="Locally typical sampling mass, (0, 1]. [default: 1 = off]")]),
    ("repetition_penalty", Annotated[Optional[float], _opt("--repetition-penalty", help="Penalize seen tokens (> 0; 1 = off). [default: 1.1]")]),
    ("repetition_window", Annotated[Optional[int], _opt("--repetition-window", help="Penalties look at the last N tokens; 0 = all. [default: 256]")]),
    ("presence_penalty", Annotated[Optional[float], _opt("--presence-penalty", help="Subtracted once from each seen token's logit. [default: 0]")]),
    ("frequency_penalty", Annotated[Optional[float], _opt("--frequency-penalty", help="Subtracted per occurrence of a seen token. [default: 0]")]),
    ("penalize_prompt", Annotated[Optional[bool], _opt("--penalize-prompt/--no-penalize-prompt", help="Penalties also count the prompt's tokens. [default: no; yes for dialogue, whose earlier lines are prompt]")]),
    ("penalty_exempt", Annotated[Optional[list[str]], _opt("--penalty-exempt", help="A word the repetition, presence and frequency penalties never count (repeatable). [default: none]")]),
    ("no_repeat_ngram_size", Annotated[Optional[int], _opt("--no-repeat-ngram", help="Never repeat an n-gram of this size; 0 = off.")]),
    ("dry_multiplier", Annotated[Optional[float], _opt("--dry-multiplier", help="DRY repetition penalty strength; 0 = off.")]),
    ("dry_base", Annotated[Optional[float], _opt("--dry-base", help="DRY growth per extra repeated token (> 1). [default: 1.75]")]),
    ("dry_allowed_length", Annotated[Optional[int], _opt("--dry-allowed-length", help="Repeats this long are free under DRY. [default: 2]")]),
    ("dry_sequence_breakers", Annotated[Optional[list[str]], _opt("--dry-breaker", help="A string that ends a DRY match (repeatable).")]),
    ("xtc_threshold", Annotated[Optional[float], _opt("--xtc-threshold", help="XTC: tokens this likely are top choices, [0, 0.5]. [default: 0.1]")]),
    ("xtc_probability", Annotated[Optional[float], _opt("--xtc-probability", help="XTC: chance per token of excluding top choices; 0 = off.")]),
    ("banned", Annotated[Optional[list[str]], _opt("--ban", help="A word or phrase never to produce, any case (repeatable).")]),
    ("logit_bias", Annotated[Optional[list[str]], _opt("--logit-bias", help="WORD=BIAS or #ID=BIAS added to a token's logit (repeatable).")]),
    ("num_beams", Annotated[Optional[int], _opt("--beams", help="Beams for --strategy beam. [default: 4]")]),
    ("length_penalty", Annotated[Optional[float], _opt("--length-penalty", help="Beam score = logprob / length ** this. [default: 1]")]),
    ("early_stopping", Annotated[Optional[bool], _opt("--early-stopping/--no-early-stopping", help="Beam: stop once enough hypotheses are done. [default: yes]")]),
    ("num_return_sequences", Annotated[Optional[int], _opt("--num-return", help="Beam: how many of the n-best to return. [default: 1]")]),
    ("stop", Annotated[Optional[list[str]], _opt("--stop", help="End the text before this string (repeatable).")]),
    ("seed", Annotated[Optional[int], _opt("--seed", "-s", help="Seed for reproducible output; drawn at random and recorded if omitted.")]),
    ("candidates", Annotated[Optional[int], _opt("--candidates", help="Write this many versions of each scene, story beat or dialogue line and keep the one the critic scores best, 1..16. [default: per kind, see docs/quality.md]")]),
    ("scripts", Annotated[Optional[list[str]], _opt("--scripts", help="A writing system the text may use: latin, greek, cyrillic, hebrew, arabic, indic, thai, hangul, cjk, ... (repeatable); 'any' turns the guard off. [default: the world's prose's scripts; names keep their own]")]),
]

MODEL_PARAMETERS: list[tuple[str, object]] = [
    ("model", Annotated[Optional[str], typer.Option("--model", "-m", help="Known model name or path to a llama-family .gguf. [default: smollm2-135m-instruct]", rich_help_panel=MODEL_PANEL, show_default=False)]),
    ("dtype", Annotated[str, typer.Option("--dtype", help="auto | float32 | bfloat16 | int8 | int4. float32 is exact; auto is int4 on CPU, bfloat16 on CUDA.", rich_help_panel=MODEL_PANEL)]),
    ("device", Annotated[str, typer.Option("--device", help="cpu | cuda | auto.", rich_help_panel=MODEL_PANEL)]),
]
MODEL_DEFAULTS = {"model": None, "dtype": "auto", "device": "cpu"}


def parse_logit_bias(items: list[str] | None) -> list[tuple[str, float]] | None:
    if not items:
        return None
    pairs = []
    for item in items:
        key, sep, value = item.rpartition("=")
        try:
            if not sep or not key:
                raise ValueError
            pairs.append((key, float(value)))
        except ValueError:
            raise ConfigError(f"--logit-bias {item!r} must look like WORD=BIAS or #ID=BIAS, e.g. dragon=-5") from None
    return pairs


def cli_settings(raw: dict) -> dict:
    """The decoding flags as given (None when absent), in GenerationConfig's field names."""
    settings = dict(raw)
    settings["logit_bias"] = parse_logit_bias(settings.get("logit_bias"))
    for key in ("banned", "stop", "dry_sequence_breakers", "penalty_exempt", "scripts"):
        if not settings.get(key):
            settings[key] = None
    if settings.get("strategy") == "beam" and settings.get("num_beams") is None:
        settings["num_beams"] = 4
    return settings


def with_decoding_options(command: Callable) -> Callable:
    """Add the decoding and model flags; the command receives `settings` and `model_options`."""
    signature = inspect.signature(command, eval_str=True)  # resolve string annotations
    params = [p for name, p in signature.parameters.items() if name not in ("settings", "model_options")]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=MODEL_DEFAULTS.get(name), annotation=annotation)
        for name, annotation in MODEL_PARAMETERS + DECODING_PARAMETERS
    ]

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        model_options = {name: kwargs.pop(name) for name, _ in MODEL_PARAMETERS}
        raw = {name: kwargs.pop(name) for name, _ in DECODING_PARAMETERS}
        return command(*args, settings=cli_settings(raw), model_options=model_options, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=params + added)
    wrapper.__annotations__ = {p.name: p.annotation for p in params + added}
    del wrapper.__wrapped__  # Typer must read the new signature, not the original's
    return wrapper


def progress_to_stderr(quiet: bool) -> Callable[[str], None] | None:
    """A progress callback for model pulls and conversion: stderr lines, none when quiet."""
    if quiet:
        return None

    def report(message: str) -> None:
        print(f"metagen: {message}", file=sys.stderr, flush=True)

    return report


def load_generator(model_options: dict, quiet: bool = False):
    """Load the model the options name (imports torch: call inside a command only)."""
    from metagen.generate import load_model

    return load_model(model_options["model"], dtype=model_options["dtype"], device=model_options["device"],
                      progress=progress_to_stderr(quiet))
