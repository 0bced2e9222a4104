"""Options shared by every generating command: decoding settings and the model.

`with_decoding_options` appends the decoding flags to a command's signature and hands
them to the command as one `settings` dict (None for each flag not given), so that
`config.merge_settings` sees exactly what the user typed. The flags, their help and the
defaults it shows come from the one declaration of each setting, `config.SETTINGS`.
"""

from __future__ import annotations

import functools
import inspect
import math
import sys
from typing import Annotated, Callable, Optional

import typer

from metagen.config import CLI_BEAMS, MAX_BIAS, SETTINGS, Setting, check_whole_number
from metagen.errors import ConfigError
from metagen.text import blank

PANEL = "Decoding"
MODEL_PANEL = "Model"


# The option type of each GenerationConfig field type: None when the flag is not given.
_OPTION_TYPES = {
    "str": Optional[str],
    "int": Optional[int],
    "float": Optional[float],
    "bool": Optional[bool],
    "tuple[str, ...]": Optional[list[str]],
    "tuple[tuple[str, float], ...]": Optional[list[str]],  # WORD=BIAS, parsed by parse_logit_bias
    "int | None": Optional[int],
}


def not_blank(value):
    """An option given as "" (in a script, a variable that was empty) is a mistake, not its default; so is
    one of spaces, commas or invisible characters alone (U+200B), which a prompt would show as nothing."""
    given = value if isinstance(value, list) else [value]
    if any(v is not None and blank(v.replace(",", " ")) for v in given):
        raise typer.BadParameter("is empty (leave the option out for its default)")
    return value


def topic_text(value: str | None) -> str | None:
    """--topic: "" is no topic, as documented; spaces or invisible characters alone had made the prompt's
    "about ." """
    if value and blank(value):
        raise typer.BadParameter("shows nothing (give a topic, or --topic '' for none)")
    return value


def whole_number(param: typer.CallbackParam, value: int | None) -> int | None:
    """A whole-number flag's value, refused in one line from 2**63 up in size before anything reads it,
    as a decoding setting's is (config.check_whole_number): a range check that comes later then never
    echoes more than 19 digits. Each int option that is not a decoding setting names it as its callback."""
    return value if value is None else check_whole_number(max(param.opts, key=len), value)


def dialogue_turns(param: typer.CallbackParam, value: int | None) -> int | None:
    """--turns, a whole number and at most request.MAX_TURNS, refused as the flag: the request's own
    check (for jobs files and Python callers) says "dialogue turns", which names no flag."""
    from metagen.request import MAX_TURNS

    value = whole_number(param, value)
    if value is not None and value > MAX_TURNS:
        raise ConfigError(f"--turns must be 1 to {MAX_TURNS}, got {value}",
                          hint="write a longer conversation as several dialogues")
    return value


def _help(setting: Setting) -> str:
    """The setting's help line, its limits and default filled in: "... (0, 1]. [default: 0.95]"."""
    text = setting.help.replace("{limits}", str(setting.limits))
    if setting.help_default is True:
        return f"{text} [default: {_shown(setting.default)}]"
    return f"{text} [default: {setting.help_default}]" if setting.help_default else text


def _shown(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple):
        return ", ".join(value) or "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _option(setting: Setting):
    """The setting's typer option: --flag (and -x), or --flag/--no-flag for a yes/no setting."""
    names = [f"{setting.flag}/--no-{setting.flag[2:]}" if setting.type == "bool" else setting.flag]
    names += [setting.short] if setting.short else []
    option = typer.Option(*names, help=_help(setting), rich_help_panel=PANEL, show_default=False)
    return Annotated[_OPTION_TYPES[setting.type], option]


# (field name, annotation) pairs, in GenerationConfig's field order, which is --help's.
DECODING_PARAMETERS: list[tuple[str, object]] = [(s.name, _option(s)) for s in SETTINGS.values() if s.option]

MODEL_PARAMETERS: list[tuple[str, object]] = [
    ("model", Annotated[Optional[str], typer.Option("--model", "-m", help="Known model name or path to a llama-family .gguf. [default: smollm2-135m-instruct]", rich_help_panel=MODEL_PANEL, show_default=False)]),
    ("dtype", Annotated[str, typer.Option("--dtype", help="auto | float32 | bfloat16 | int8 | int4. float32 is exact; auto is int4 on CPU, bfloat16 on CUDA.", rich_help_panel=MODEL_PANEL)]),
    ("device", Annotated[str, typer.Option("--device", help="cpu | cuda | auto.", rich_help_panel=MODEL_PANEL)]),
    ("prompt_dtype", Annotated[str, typer.Option("--prompt-dtype", help="auto | float32 | bfloat16: what a prompt's matmuls run in on the CPU. auto is bfloat16 where the CPU has bfloat16 units (avx512_bf16, AMX) that torch uses (ATEN_CPU_CAPABILITY not below avx512) and the model is not float32, else float32.", rich_help_panel=MODEL_PANEL)]),
    ("adapter", Annotated[str, typer.Option("--adapter", help="default | none | PATH: a LoRA adapter merged into the model (`metagen tune`); default is the model's own, where it ships one.", rich_help_panel=MODEL_PANEL, callback=not_blank)]),
]
MODEL_DEFAULTS = {"model": None, "dtype": "auto", "device": "cpu", "prompt_dtype": "auto", "adapter": "default"}


def parse_logit_bias(items: list[str] | None) -> list[tuple[str, float]] | None:
    if not items:
        return None
    flag = SETTINGS["logit_bias"].flag
    pairs = []
    for item in items:
        key, sep, value = item.rpartition("=")
        try:
            if not sep or not key:
                raise ValueError
            bias = float(value)
        except ValueError:
            raise ConfigError(f"{flag} {item!r} must look like WORD=BIAS or #ID=BIAS, e.g. dragon=-5") from None
        if not math.isfinite(bias):  # nan, inf, 1e999: said here, where the flag's own words are known
            raise ConfigError(f"{flag} {item!r}: the bias must be a finite number in [-{MAX_BIAS:g}, {MAX_BIAS:g}], "
                              f"got {bias:g}", hint="-100 already bans a word")
        pairs.append((key, bias))
    return pairs


def cli_settings(raw: dict) -> dict:
    """The decoding flags as given (None when absent), in GenerationConfig's field names."""
    settings = dict(raw)
    settings["logit_bias"] = parse_logit_bias(settings.get("logit_bias"))
    for key, _ in DECODING_PARAMETERS:
        if SETTINGS[key].type == "tuple[str, ...]" and not settings.get(key):
            settings[key] = None  # a list flag not given: no value, not an empty list
    if settings.get("strategy") == "beam" and settings.get("num_beams") is None:
        settings["num_beams"] = CLI_BEAMS
    return settings


def with_parameters(command: Callable, added: list[tuple[str, object, object]], receive: Callable[[dict], dict],
                    replaced: tuple[str, ...], after: str | None = None) -> Callable:
    """Add (name, annotation, default) parameters to a command's signature for Typer.

    They go at the end, keyword-only, or right after the parameter `after` names. The wrapper
    hands the command `receive(kwargs)` (which pops the added names) in place of them;
    `replaced` names the command's own parameters that `receive` fills.
    """
    signature = inspect.signature(command, eval_str=True)  # resolve string annotations
    params = [p for name, p in signature.parameters.items() if name not in replaced]
    kind = inspect.Parameter.KEYWORD_ONLY if after is None else inspect.Parameter.POSITIONAL_OR_KEYWORD
    at = len(params) if after is None else [p.name for p in params].index(after) + 1
    params[at:at] = [inspect.Parameter(name, kind, default=default, annotation=annotation)
                     for name, annotation, default in added]

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        received = receive(kwargs)  # pops the added names out of kwargs
        return command(*args, **received, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=params)
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    del wrapper.__wrapped__  # Typer must read the new signature, not the original's
    return wrapper


def with_decoding_options(command: Callable) -> Callable:
    """Add the decoding and model flags; the command receives `settings` and `model_options`."""
    added = [(name, annotation, MODEL_DEFAULTS.get(name)) for name, annotation in MODEL_PARAMETERS + DECODING_PARAMETERS]

    def receive(kwargs: dict) -> dict:
        model_options = {name: kwargs.pop(name) for name, _ in MODEL_PARAMETERS}
        raw = {name: kwargs.pop(name) for name, _ in DECODING_PARAMETERS}
        return {"settings": cli_settings(raw), "model_options": model_options}

    return with_parameters(command, added, receive, replaced=("settings", "model_options"))


def progress_to_stderr(quiet: bool) -> Callable[[str], None] | None:
    """A progress callback for model pulls and conversion: stderr lines, none when quiet."""
    if quiet:
        return None

    def report(message: str) -> None:
        print(f"metagen: {message}", file=sys.stderr, flush=True)

    return report


def load_generator(model_options: dict, quiet: bool = False):
    """Load the model the options name (imports torch: call inside a command only)."""
    from metagen.generator import load_model

    return load_model(model_options["model"], dtype=model_options["dtype"], device=model_options["device"],
                      adapter=model_options.get("adapter", "default"), prompt_dtype=model_options.get("prompt_dtype", "auto"),
                      progress=progress_to_stderr(quiet))
