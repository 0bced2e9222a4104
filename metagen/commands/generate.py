"""`metagen generate PROMPT`: the low-level door the other commands, tests and benchmarks use."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from metagen.commands.options import load_generator, with_decoding_options
from metagen.commands.terminal import printable, stdin_unreadable
from metagen.errors import RequestError
from metagen.files import MAX_STDIN_BYTES, read_stream_text
from metagen.text import json_text

_LOCALE_HINT = "check the terminal's encoding: LANG or LC_ALL should name UTF-8"


def _read_stdin() -> str:
    """The prompt from standard input, read up to MAX_STDIN_BYTES and checked as UTF-8."""
    try:
        return read_stream_text(sys.stdin.buffer, MAX_STDIN_BYTES)
    except OSError as error:
        raise stdin_unreadable(error, "give the prompt as the argument, or on standard input from a file or a pipe") from None
    except ValueError as error:
        limit = f"{MAX_STDIN_BYTES // 2**20} MiB"
        raise RequestError(f"standard input (the prompt '-') {error}",
                           hint=f"give UTF-8 text of at most {limit}; a prompt must fit the model's context") from None


def _utf8(what: str, text: str) -> str:
    """text unchanged, or RequestError when the shell passed bytes that are not UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise RequestError(f"the {what} {text!r} is not UTF-8 text", hint=_LOCALE_HINT) from None
    return text


@with_decoding_options
def generate(
    prompt: Annotated[str, typer.Argument(help="The prompt text ('-' reads it from stdin).")],
    chat: Annotated[bool, typer.Option("--chat/--no-chat", help="Apply the model's chat template.")] = True,
    system: Annotated[Optional[str], typer.Option("--system", help="A system message (with --chat).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object: text, tokens, prompt_tokens, logprob, finish_reason, seed, settings.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress messages.")] = False,
    *,
    settings: dict,
    model_options: dict,
):
    """Generate text from a raw prompt."""
    from metagen.config import CLI_NAMES, merge_settings
    from metagen.errors import ConfigError

    from_stdin = prompt == "-"
    prompt = _read_stdin() if from_stdin else _utf8("prompt", prompt)
    if not prompt.strip():  # the model would write from nothing at all (with --chat, from the template alone)
        raise ConfigError("the prompt is empty" + (" (standard input held no text)" if from_stdin else ""),
                          hint="give the text to continue, or '-' with text on standard input")
    system = _utf8("--system", system) if system is not None else None
    if system is not None and not chat:
        raise ConfigError("--system needs --chat: without the chat template there is no system message",
                          hint="drop --no-chat, or put the text in the prompt")
    cfg = merge_settings(settings)
    if cfg.context_contrast:
        raise ConfigError(f"{CLI_NAMES['context_contrast']}: a raw prompt has no world's facts to contrast with; "
                          "use it with story, describe-scene or dialogue")
    generator = load_generator(model_options, quiet)
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    stream = not as_json and sys.stdout.isatty()
    on_text = (lambda row, piece: (sys.stdout.write(printable(piece, True)), sys.stdout.flush())) if stream else None
    result = generator.generate([messages if chat else prompt], cfg, chat=chat, on_text=on_text)[0]
    if as_json:
        payload = {
            "text": result.text, "tokens": result.tokens, "prompt_tokens": result.prompt_tokens,
            "logprob": result.logprob, "finish_reason": result.finish_reason, "seed": result.seed,
            "seconds": round(result.seconds, 4),
            "tokens_per_second": round(result.output_tokens / result.seconds, 2) if result.seconds else None,
            "model": generator.info.to_dict(), "settings": {**cfg.to_dict(), "seed": result.seed},
        }
        if result.alternatives:
            payload["alternatives"] = result.alternatives
        typer.echo(json_text(payload))
    elif stream:
        sys.stdout.write("\n")
    else:
        typer.echo(printable(result.text, sys.stdout.isatty()))
