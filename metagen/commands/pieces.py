"""`metagen story | describe-scene | dialogue` and `metagen prompt ...` (replay: commands/replay.py).

Each generating command checks everything it can before loading the model (the world,
the request's ids, the settings, the format, the output folder and file names), then
makes one call to metagen.pipeline.compose and writes the pieces with output.write_piece.
Text streams to a terminal; piped output carries only what was asked for.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer

from metagen.commands.help import PLAIN_HELP, PanelledCommand, typed_path
from metagen.commands.options import (dialogue_turns, load_generator, not_blank, topic_text, whole_number,
                                      with_decoding_options, with_parameters)
from metagen.commands.terminal import escaped, printable
from metagen.errors import ConfigError
from metagen.text import json_text

WorldArg = Annotated[Path, typer.Argument(help="A world file (YAML).", show_default=False)]
_CHARACTERS_HELP = "Character ids (or names: any case, accents optional), comma-separated or repeated."
Characters = Annotated[Optional[list[str]], typer.Option(
    "--characters", "-c", help=_CHARACTERS_HELP, show_default=False, callback=not_blank)]
StoryCharacters = Annotated[Optional[list[str]], typer.Option(
    "--characters", "-c", help=f"{_CHARACTERS_HELP} None: two of the world's, drawn by the seed.", show_default=False,
    callback=not_blank)]
Location = Annotated[Optional[str], typer.Option("--location", "-l", help="A location id (or name).", show_default=False,
                                                 callback=not_blank)]
StoryLocation = Annotated[Optional[str], typer.Option(
    "--location", "-l", help="A location id (or name). None: one of the world's, drawn by the seed.", show_default=False,
    callback=not_blank)]
Premise = Annotated[Optional[str], typer.Option("--premise", "-p", help="What happens, in a sentence or two.", show_default=False,
                                                callback=not_blank)]
PlanFile = Annotated[Optional[Path], typer.Option("--plan", help="Your own beats (YAML: beats: a list of texts, or of {text, characters, location}); default: metagen plans from the world by seed.", show_default=False)]
Length = Annotated[Optional[str], typer.Option(
    "--length", help="short | medium | long; sets the words asked for and, without --max-tokens, the token budget. [default: the world's style.length]", show_default=False)]
Time = Annotated[Optional[str], typer.Option("--time", help="When: 'dusk', 'the night of the festival'.", show_default=False,
                                             callback=not_blank)]
Weather = Annotated[Optional[str], typer.Option("--weather", help="The weather.", show_default=False, callback=not_blank)]
Mood = Annotated[Optional[str], typer.Option("--mood", help="The mood of the place.", show_default=False, callback=not_blank)]
Opening = Annotated[bool, typer.Option(
    "--opening/--no-opening",
    help="Start the scene with the place's name alone, written by metagen. Off by default: each candidate "
    "then opens on the place's name and a verb of a sound or smell it has ('The Container Docks rang "
    "with'), also written by metagen (docs/quality.md).")]
Start = Annotated[Optional[str], typer.Option(
    "--start", help="The words the scene opens with ('The Container Docks smelled of'), written by metagen. "
    "[default: each candidate opens with the place's name and a verb of a sound or smell its facts give (else its "
    "verb of being), in an order drawn by the seed; the critic records each one's]", show_default=False)]
# Stories are planned (metagen.plan) and have no opening; the flag stays for scripts that pass it.
StoryOpening = Annotated[bool, typer.Option("--opening/--no-opening", hidden=True)]
Topic = Annotated[Optional[str], typer.Option("--topic", help="What they talk about; by default one of the first two speakers' goals, drawn by the seed and recorded as the request's topic; --topic '' for none.", show_default=False, callback=topic_text)]
Turns = Annotated[int, typer.Option("--turns", help="Lines in all.", min=1, callback=dialogue_turns)]
Order = Annotated[str, typer.Option("--order", help="How the next speaker is picked: likelihood (the model's choice among the cast) | turns (in the order given).")]
Count = Annotated[int, typer.Option("--count", "-n", callback=whole_number, help="How many pieces, 1 to 10,000; seeds S, S+1, ... (S from --seed, or drawn).")]
Out = Annotated[Path, typer.Option("--out", "-o", help="Output folder: files go to OUT/<world>/<kind>/<subject>-<seed>.<ext>. "
                                   "A path ending in .md, .txt, .json, .yarn or .ink that is not a folder (-o story.md) "
                                   "is the one file written instead (with -n 1).")]


def format_option(value: str | None) -> str | None:
    """--format as typed (MD, Markdown, Text) by its name in output.FORMATS; "" is refused (not_blank)."""
    from metagen.output import format_name

    return None if not_blank(value) is None else format_name(value)


Format = Annotated[Optional[str], typer.Option(
    "--format", "-f", help="md | txt | json (dialogue also yarn | ink), in any case; markdown and text too. [default: md; txt with --stdout]", show_default=False,
    callback=format_option)]
Stdout = Annotated[bool, typer.Option("--stdout", help="Print the text instead of writing a file.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace files that exist.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Nothing on stderr but errors; no streaming.")]
AsJson = Annotated[bool, typer.Option("--json", help="One JSON line per written file on stdout, instead of 'wrote PATH' on stderr: path, kind, world, seed, tokens, prompt_tokens, finish_reason, seconds, tokens_per_second.")]
ShowPrompt = Annotated[bool, typer.Option("--show-prompt", help="Print the exact prompt, its token count and the lore used/left out; run nothing.")]
Moderation = Annotated[str, typer.Option(
    "--moderation", help="off | report: candidates over the world's rating lose, the verdict goes into the front matter "
    "| enforce: the same, and a piece still over the rating is not written (exit 1). See docs/moderation.md.")]


@dataclass(frozen=True)
class OutputOptions:
    """What a generating command does with its pipeline."""

    count: int = 1
    out: Path = Path("out")
    fmt: str | None = None
    stdout: bool = False
    overwrite: bool = False
    quiet: bool = False
    as_json: bool = False
    show_prompt: bool = False
    moderation: str = "report"


# The output flags of story, describe-scene and dialogue, in --help's order, as OutputOptions' fields.
OUTPUT_PARAMETERS: list[tuple[str, object]] = [
    ("count", Count), ("out", Out), ("fmt", Format), ("stdout", Stdout), ("overwrite", Overwrite),
    ("quiet", Quiet), ("as_json", AsJson), ("show_prompt_", ShowPrompt), ("moderation", Moderation),
]


# The request flags of each kind, in --help's order: (name, annotation, default).
REQUEST_PARAMETERS: dict[str, list[tuple[str, object, object]]] = {
    "story": [("characters", StoryCharacters, None), ("location", StoryLocation, None), ("premise", Premise, None),
              ("length", Length, None), ("opening", StoryOpening, True), ("plan", PlanFile, None)],
    "scene": [("location", Location, None), ("time", Time, None), ("weather", Weather, None), ("mood", Mood, None),
              ("characters", Characters, None), ("start", Start, None), ("opening", Opening, False)],
    "dialogue": [("characters", Characters, None), ("location", Location, None), ("topic", Topic, None),
                 ("turns", Turns, 6)],
}


def with_request_options(kind: str) -> Callable[[Callable], Callable]:
    """Add a kind's request flags after the world argument; the command receives them as `fields`."""

    def decorate(command: Callable) -> Callable:
        def receive(kwargs: dict) -> dict:
            from metagen.pipeline import split_ids

            fields = {name: kwargs.pop(name) for name, _, _ in REQUEST_PARAMETERS[kind]}
            return {"fields": {**fields, "characters": split_ids(fields["characters"])}}

        return with_parameters(command, REQUEST_PARAMETERS[kind], receive, replaced=("fields",), after="world")

    return decorate


def with_output_options(command: Callable) -> Callable:
    """Add the output flags after the command's own; the command receives them as `opts`."""
    defaults = OutputOptions()
    fields = [(name, annotation, getattr(defaults, name.rstrip("_"))) for name, annotation in OUTPUT_PARAMETERS]

    def receive(kwargs: dict) -> dict:
        return {"opts": OutputOptions(*(kwargs.pop(name) for name, _, _ in fields))}

    return with_parameters(command, fields, receive, replaced=("opts",))


def say(message: str, quiet: bool = False) -> None:
    """One line on stderr, unless quiet."""
    if not quiet:
        typer.echo(escaped(message), err=True)


def written_record(piece, path) -> dict:
    """The JSON line printed for a written piece (--json)."""
    seconds = piece.seconds
    return {"path": None if path is None else str(path), "kind": piece.kind, "world": piece.world_id,
            "seed": piece.seed, "tokens": piece.output_tokens, "prompt_tokens": piece.prompt_tokens,
            "finish_reason": piece.finish_reason, "seconds": seconds,
            "tokens_per_second": round(piece.output_tokens / seconds, 2) if seconds else None}


def print_prompt(view, as_json: bool, header: dict | None = None) -> None:
    """A PromptView: the prompt text on stdout, its token count and lore on stderr (or one JSON object)."""
    if as_json:
        typer.echo(json_text({**(header or {}), **view.to_dict()}))
        return
    typer.echo(view.text, nl=not view.text.endswith("\n"))
    typer.echo(f"prompt tokens: {view.tokens}", err=True)
    typer.echo(f"lore used: {', '.join(view.lore_used) or 'none'}", err=True)
    typer.echo(f"lore left out: {', '.join(view.lore_left_out) or 'none'}", err=True)
    for number, beat in enumerate(view.plan, 1):
        typer.echo(f"plan {number}. {beat['beat']}: {beat['instruction']}", err=True)
    if len(set(view.starts)) > 1:  # metagen writes these words first, one set a candidate
        counts = {start: view.starts.count(start) for start in view.starts}
        typer.echo("candidates start with: " + "; ".join(f"{start} ({n})" for start, n in counts.items()), err=True)
    for warning in view.warnings:
        typer.echo(f"warning: {warning}", err=True)


def _prepare(kind: str, world_path: Path, fields: dict, settings: dict | None, order: str):
    """Load the world, build and resolve the request, settle the settings; all before any model."""
    from metagen import pipeline
    from metagen.prompts import resolve_request
    from metagen.world import load_world

    world = load_world(world_path)
    fields = dict(fields)
    plan_file = fields.pop("plan", None)
    if plan_file is not None:
        from metagen.plan_file import load_plan_file

        fields["beats"] = load_plan_file(plan_file, world)
    request = resolve_request(world, pipeline.make_request(kind, world, **fields)).request
    if kind == "dialogue":
        pipeline.check_order(order)
    return world, request, pipeline.effective_config(world, kind, None, settings, request)


def show_prompt(kind: str, world_path: Path, fields: dict, settings: dict | None, model_options: dict,
                as_json: bool, order: str = "likelihood", count: int = 1) -> None:
    """Print the exact prompt of a request (--show-prompt and `metagen prompt`); `count` is --show-prompt's
    --count, checked with the seed as the run checks it, and the prompt shown is its first piece's."""
    from metagen import pipeline

    world, request, cfg = _prepare(kind, world_path, fields, settings, order)
    # Without --seed a run draws its seed, and the seed draws a story's cast, place and plan: show the
    # prompt of a seed drawn the same way, and say which, so that --seed N writes from this very prompt.
    drawn, seed = cfg.seed is None, pipeline.seeds_for(count, cfg.seed)[0]
    cfg = replace(cfg, seed=seed)
    request = pipeline.seeded_request(world, request, seed)  # shown as the piece would record it
    generator = load_generator(model_options, quiet=as_json)
    view = pipeline.prompt_view(generator, world, request, cfg)
    print_prompt(view, as_json, {"kind": kind, "world": world.id, "seed": seed, "request": request.to_dict(),
                                 "max_new_tokens": cfg.max_new_tokens})
    if not as_json:
        how = f" (drawn at random: give --seed {seed} to write from this prompt)" if drawn else ""
        typer.echo(f"seed: {seed}{how}", err=True)


class _Streamer:
    """Writes text to stdout as it is generated, one piece after another, a blank line between."""

    def __init__(self) -> None:
        self.row: int | None = None  # the piece being written, None between pieces
        self.started = False

    def __call__(self, row: int, text: str) -> None:
        if self.row is not None and row != self.row:
            sys.stdout.write("\n\n")
        elif self.row is None and self.started:  # the last piece was ended (its file written)
            sys.stdout.write("\n")
        self.row, self.started = row, True
        sys.stdout.write(printable(text, True))  # streaming happens on a terminal only
        sys.stdout.flush()

    def end(self) -> None:
        """The piece's text is done: end its line (before "wrote PATH" on stderr)."""
        if self.row is not None:
            sys.stdout.write("\n")
            sys.stdout.flush()
        self.row = None


def run_pieces(kind: str, world_path: Path, fields: dict, opts: OutputOptions, settings: dict | None,
               model_options: dict, order: str = "likelihood") -> None:
    """The body of story, describe-scene and dialogue: check, load, compose, write, report."""
    from metagen import pipeline
    from metagen.output import check_format, single_file_format

    from metagen import moderation

    # The output flags are checked with --show-prompt too, which had printed a prompt and exited 0
    # for a --format, --moderation or --count that the run it shows would refuse.
    if opts.stdout and typed_path("out") is not None:  # -o was given, and --stdout would ignore it
        raise ConfigError("--stdout prints the text; --out names where files go: give one")
    moderation.check_mode(opts.moderation)
    # `-o story.md`: that one file, not a folder named story.md
    single = None if opts.stdout else single_file_format(kind, opts.out, opts.fmt, opts.count, typed_path("out"))
    fmt = single or opts.fmt or ("txt" if opts.stdout else "md")
    check_format(kind, fmt)
    if opts.show_prompt:
        show_prompt(kind, world_path, fields, settings, model_options, opts.as_json, order, opts.count)
        return
    world, request, cfg = _prepare(kind, world_path, fields, settings, order)
    seeds = pipeline.seeds_for(opts.count, cfg.seed)
    if not opts.stdout:
        _check_output_files(kind, world, request, opts, fmt, seeds, order, single=bool(single))

    generator = load_generator(model_options, opts.quiet)
    streamer = _live_streamer(kind, opts, fmt)
    refused = []

    def emit(i: int, piece) -> None:
        """Print or write one piece as soon as it is made: an interrupted -n 20 keeps what was done."""
        if streamer:
            streamer.end()
        if opts.moderation == "enforce" and piece.moderation.get("exceeds"):
            refused.append(moderation.refusal(piece))
            return
        if opts.stdout:
            _print_piece(i, piece, fmt, opts.as_json, streamed=streamer is not None)
            return
        path = _write_piece_file(piece, opts, fmt, single=bool(single))
        if opts.as_json:  # the line on stdout says it, as batch --json's do
            typer.echo(json_text(written_record(piece, path)))
        else:
            say(f"wrote {path}", opts.quiet)

    result = pipeline.compose(generator, world, [request] * opts.count, cfg, seeds=seeds, order=order,
                              on_text=streamer, on_piece=emit, moderation=opts.moderation)
    for warning in result.warnings:
        say(f"warning: {warning}", opts.quiet)
    refuse_pieces(refused, len(result.pieces))


def _live_streamer(kind: str, opts: OutputOptions, fmt: str) -> _Streamer | None:
    """A streamer when text can stream: on a terminal, without --quiet or --json, into files or as
    txt on stdout, and one piece at a time (a single piece, or dialogues, made in turn)."""
    live = sys.stdout.isatty() and not (opts.quiet or opts.as_json) and (not opts.stdout or fmt == "txt")
    return _Streamer() if live and (opts.count == 1 or kind == "dialogue") else None


def _print_piece(i: int, piece, fmt: str, as_json: bool, *, streamed: bool) -> None:
    """--stdout: the i-th piece as one JSON line, or rendered in `fmt` unless its text was streamed."""
    from metagen.output import render

    if as_json:
        typer.echo(json_text({**written_record(piece, None), "text": piece.text}))
    elif not streamed:
        text = render(piece, fmt)
        typer.echo(("\n" if i else "") + printable(text, sys.stdout.isatty()), nl=False)


def _write_piece_file(piece, opts: OutputOptions, fmt: str, *, single: bool) -> Path:
    """Write a piece: to the one file -o names (`single`), else under the output folder; its path."""
    from metagen.output import OutputFolder, render, write_atomic, write_piece

    if single:
        return write_atomic(opts.out, render(piece, fmt), overwrite=opts.overwrite, root=OutputFolder(opts.out.parent))
    return write_piece(piece, opts.out, fmt, overwrite=opts.overwrite)


def _check_output_files(kind: str, world, request, opts: OutputOptions, fmt: str, seeds: list[int],
                        order: str, *, single: bool) -> None:
    """Before the model loads: every file the run will write can be made and does not exist (unless
    --overwrite); the temp files a run of the same files killed with -9 left are removed. Each file is
    named by its piece's request as recorded, with what its seed draws (a story's cast and place)."""
    from metagen.output import check_not_exists, check_writable, output_path, remove_stale_temps
    from metagen.pipeline import seeded_request

    if single:  # -o story.md
        check_writable(opts.out.parent)
        check_not_exists(opts.out, opts.overwrite)
        remove_stale_temps(opts.out.parent, {opts.out.name})
        return
    check_writable(opts.out)
    paths = []
    for seed in seeds:
        seeded = seeded_request(world, request, seed)
        recorded = {**seeded.to_dict(), "order": order} if kind == "dialogue" else seeded.to_dict()
        paths.append(output_path(opts.out, world.id, kind, seeded.subject, seed, fmt, request=recorded))
    for folder in dict.fromkeys(path.parent for path in paths):  # OUT/<world>/<kind>: a file there, read-only
        check_writable(folder)
    for path in paths:
        check_not_exists(path, opts.overwrite)
    for folder in dict.fromkeys(path.parent for path in paths):
        remove_stale_temps(folder, {path.name for path in paths if path.parent == folder})


def refuse_pieces(refused: list[str], total: int) -> None:
    """ModerationRefused (exit 1) naming what --moderation enforce did not write, if anything."""
    from metagen.errors import ModerationRefused

    if refused:
        more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        raise ModerationRefused(f"not written, {len(refused)} of {total}: {refused[0]}{more}",
                                hint="its candidates all exceeded the rating; try other seeds, more --candidates, "
                                     "or --moderation report to write it anyway")


# ----------------------------------------------------------------------------- commands


@with_decoding_options
@with_output_options
@with_request_options("story")
def story(world: WorldArg, *, fields: dict, opts: OutputOptions, settings: dict, model_options: dict):
    """Write a short story set in a world."""
    run_pieces("story", world, fields, opts, settings, model_options)


@with_decoding_options
@with_output_options
@with_request_options("scene")
def describe_scene(world: WorldArg, *, fields: dict, opts: OutputOptions, settings: dict, model_options: dict):
    """Describe one place of a world at a time, in some weather and mood."""
    run_pieces("scene", world, fields, opts, settings, model_options)


@with_decoding_options
@with_output_options
@with_request_options("dialogue")
def dialogue(world: WorldArg, order: Order = "likelihood",
             *, fields: dict, opts: OutputOptions, settings: dict, model_options: dict):
    """Write a conversation between two or more characters, one line a turn (--max-tokens is per line)."""
    run_pieces("dialogue", world, fields, opts, settings, model_options, order)


prompt_app = typer.Typer(
    **PLAIN_HELP,
    help="Print the exact prompt a request gives (chat template applied), its token count and the "
    "lore used or left out, without running the model.",
    no_args_is_help=True,
)
PromptJson = Annotated[bool, typer.Option("--json", help="Print one JSON object: prompt, prompt_tokens, messages, lore.")]


@prompt_app.command("story", cls=PanelledCommand)
@with_decoding_options
@with_request_options("story")
def prompt_story(world: WorldArg, as_json: PromptJson = False, *, fields: dict, settings: dict, model_options: dict):
    """The prompt of `metagen story`."""
    show_prompt("story", world, fields, settings, model_options, as_json)


@prompt_app.command("scene", cls=PanelledCommand)
@with_decoding_options
@with_request_options("scene")
def prompt_scene(world: WorldArg, as_json: PromptJson = False, *, fields: dict, settings: dict, model_options: dict):
    """The prompt of `metagen describe-scene`."""
    show_prompt("scene", world, fields, settings, model_options, as_json)


@prompt_app.command("dialogue", cls=PanelledCommand)
@with_decoding_options
@with_request_options("dialogue")
def prompt_dialogue(world: WorldArg, as_json: PromptJson = False,
                    *, fields: dict, settings: dict, model_options: dict):
    """The opening prompt of `metagen dialogue` (each turn then adds the lines so far)."""
    show_prompt("dialogue", world, fields, settings, model_options, as_json)


__all__ = ["OutputOptions", "describe_scene", "dialogue", "print_prompt", "prompt_app", "refuse_pieces",
           "run_pieces", "say", "show_prompt", "story", "written_record"]
