"""`metagen story | describe-scene | dialogue`, `metagen prompt ...` and `metagen replay`.

Each generating command checks everything it can before loading the model (the world,
the request's ids, the settings, the format, the output folder and file names), then
makes one call to metagen.pipeline.compose and writes the pieces with output.write_piece.
Text streams to a terminal; piped output carries only what was asked for.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer

from metagen.commands.help import PLAIN_HELP, PanelledCommand, typed_path
from metagen.commands.options import (load_generator, not_blank, progress_to_stderr, with_decoding_options,
                                      with_parameters)
from metagen.commands.terminal import escaped, printable
from metagen.errors import ConfigError, ModelError, OutputError, RequestError
from metagen.text import format_turns, json_text

WorldArg = Annotated[Path, typer.Argument(help="A world file (YAML).", show_default=False)]
Characters = Annotated[Optional[list[str]], typer.Option(
    "--characters", "-c", help="Character ids (or names: any case, accents optional), comma-separated or repeated.", show_default=False,
    callback=not_blank)]
Location = Annotated[Optional[str], typer.Option("--location", "-l", help="A location id (or name).", show_default=False,
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
Topic = Annotated[Optional[str], typer.Option("--topic", help="What they talk about; by default one of the first two speakers' goals, drawn by the seed and recorded as the request's topic; --topic '' for none.", show_default=False)]
Turns = Annotated[int, typer.Option("--turns", help="Lines in all.", min=1)]
Order = Annotated[str, typer.Option("--order", help="How the next speaker is picked: likelihood (the model's choice among the cast) | turns (in the order given).")]
Count = Annotated[int, typer.Option("--count", "-n", help="How many pieces, 1 to 10,000; seeds S, S+1, ... (S from --seed, or drawn).")]
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
    "story": [("characters", Characters, None), ("location", Location, None), ("premise", Premise, None),
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
        from metagen.plan import load_plan_file

        fields["beats"] = load_plan_file(plan_file, world)
    request = resolve_request(world, pipeline.make_request(kind, world, **fields)).request
    if kind == "dialogue":
        pipeline.check_order(order)
    return world, request, pipeline.effective_config(world, kind, None, settings, request)


def show_prompt(kind: str, world_path: Path, fields: dict, settings: dict | None, model_options: dict,
                as_json: bool, order: str = "likelihood") -> None:
    """Print the exact prompt of a request (--show-prompt and `metagen prompt`)."""
    from metagen import pipeline

    world, request, cfg = _prepare(kind, world_path, fields, settings, order)
    generator = load_generator(model_options, quiet=as_json)
    view = pipeline.prompt_view(generator, world, request, cfg)
    print_prompt(view, as_json, {"kind": kind, "world": world.id, "request": request.to_dict(),
                                 "max_new_tokens": cfg.max_new_tokens})


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
    from metagen.output import OutputFolder, check_format, render, single_file_format, write_atomic, write_piece

    if opts.stdout and typed_path("out") is not None:  # -o was given, and --stdout would ignore it
        raise ConfigError("--stdout prints the text; --out names where files go: give one")
    if opts.show_prompt:
        show_prompt(kind, world_path, fields, settings, model_options, opts.as_json, order)
        return
    from metagen import moderation

    moderation.check_mode(opts.moderation)
    world, request, cfg = _prepare(kind, world_path, fields, settings, order)
    # `-o story.md`: that one file, not a folder named story.md
    single = None if opts.stdout else single_file_format(kind, opts.out, opts.fmt, opts.count, typed_path("out"))
    fmt = single or opts.fmt or ("txt" if opts.stdout else "md")
    check_format(kind, fmt)
    seeds = pipeline.seeds_for(opts.count, cfg.seed)
    if not opts.stdout:
        _check_output_files(kind, world.id, request, opts, fmt, seeds, order, single=bool(single))

    generator = load_generator(model_options, opts.quiet)
    # Stream on a terminal, one piece at a time: a single piece, or dialogues (made in turn).
    live = sys.stdout.isatty() and not (opts.quiet or opts.as_json) and (not opts.stdout or fmt == "txt")
    streamer = _Streamer() if live and (opts.count == 1 or kind == "dialogue") else None
    refused = []

    def emit(i: int, piece) -> None:
        """Print or write one piece as soon as it is made: an interrupted -n 20 keeps what was done."""
        if streamer:
            streamer.end()
        if opts.moderation == "enforce" and piece.moderation.get("exceeds"):
            refused.append(moderation.refusal(piece))
            return
        if opts.stdout:
            if opts.as_json:
                typer.echo(json_text({**written_record(piece, None), "text": piece.text}))
            elif streamer is None:
                text = render(piece, fmt)
                typer.echo(("\n" if i else "") + printable(text, sys.stdout.isatty()), nl=False)
            return
        if single:
            path = write_atomic(opts.out, render(piece, fmt), overwrite=opts.overwrite,
                                root=OutputFolder(opts.out.parent))
        else:
            path = write_piece(piece, opts.out, fmt, overwrite=opts.overwrite)
        if opts.as_json:  # the line on stdout says it, as batch --json's do
            typer.echo(json_text(written_record(piece, path)))
        else:
            say(f"wrote {path}", opts.quiet)

    result = pipeline.compose(generator, world, [request] * opts.count, cfg, seeds=seeds, order=order,
                              on_text=streamer, on_piece=emit, moderation=opts.moderation)
    for warning in result.warnings:
        say(f"warning: {warning}", opts.quiet)
    refuse_pieces(refused, len(result.pieces))


def _check_output_files(kind: str, world_id: str, request, opts: OutputOptions, fmt: str, seeds: list[int],
                        order: str, *, single: bool) -> None:
    """Before the model loads: every file the run will write can be made and does not exist (unless
    --overwrite); the temp files a run of the same files killed with -9 left are removed."""
    from metagen.output import check_not_exists, check_writable, output_path, remove_stale_temps

    if single:  # -o story.md
        check_writable(opts.out.parent)
        check_not_exists(opts.out, opts.overwrite)
        remove_stale_temps(opts.out.parent, {opts.out.name})
        return
    check_writable(opts.out)
    recorded = {**request.to_dict(), "order": order} if kind == "dialogue" else request.to_dict()
    paths = [output_path(opts.out, world_id, kind, request.subject, seed, fmt, request=recorded) for seed in seeds]
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


def _recorded_world(path: str, piece: Path):
    """The world a piece records, loaded; the path comes from the piece's front matter, so it may
    name any file: a failure says how many problems, never what the file holds (docs/errors.md)."""
    from metagen.errors import WorldError
    from metagen.files import open_regular
    from metagen.world import load_world

    try:
        open_regular(path).close()
    except OSError:  # missing, a FIFO, unreadable: load_world says which, having read nothing
        try:
            return load_world(path)
        except WorldError as error:
            reason = error.message.removeprefix(f"{path}: ").removeprefix(f"{path} ")
            raise WorldError(f"{piece} records the world {path}, which cannot be read: {reason}",
                             hint="give --world with the world file's path now") from None
    try:
        return load_world(path)
    except WorldError as error:
        count = len(error.problems) or 1
        raise WorldError(f"{path}, the world {piece} records, cannot be loaded ({count} problem{'s' * (count > 1)})",
                         hint=f"run `metagen worlds validate {path}` to see them, or give --world") from None


def _spoken(data: dict) -> str:
    """What replay compares: the text, or for a dialogue its turns as "Name: line" lines."""
    if data.get("kind") == "dialogue" and data.get("turns"):
        return format_turns(data["turns"])
    return data.get("text", "")


def _snippet(text: str, at: int, width: int = 30) -> str:
    return json.dumps(text[max(0, at - 10): at + width], ensure_ascii=False)


def replay(
    file: Annotated[Path, typer.Argument(help="A metagen .md or .json file.", show_default=False)],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Model name or .gguf path. [default: the recorded one]", show_default=False)] = None,
    dtype: Annotated[Optional[str], typer.Option("--dtype", help="auto | float32 | bfloat16 | int8 | int4. [default: the recorded one]", show_default=False)] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="cpu | cuda | auto. [default: the recorded one]", show_default=False)] = None,
    prompt_dtype: Annotated[Optional[str], typer.Option("--prompt-dtype", help="auto | float32 | bfloat16. [default: the recorded one; float32 for a piece that records none]", show_default=False)] = None,
    world: Annotated[Optional[Path], typer.Option("--world", help="The world file, if it has moved. [default: the recorded one]", show_default=False)] = None,
    moderation: Annotated[Optional[str], typer.Option("--moderation", help="off | report | enforce. [default: the recorded one; report for a piece that records none]", show_default=False)] = None,
    quiet: Quiet = False,
):
    """Make a file's piece again from what it records and say whether the text is identical (exit 0) or not (exit 1)."""
    from metagen import __version__, pipeline
    from metagen.generator import load_model
    from metagen.output import read_piece_file
    from metagen.recipe import first_difference, recipe_from_record
    from metagen.world import load_world

    from metagen.moderation import MODES, check_mode

    try:
        data = read_piece_file(file)
    except OutputError as error:  # the file asked for cannot be read: bad input, not a failed write
        raise ConfigError(error.message, hint="give the path of a .md or .json file metagen wrote") from None
    recipe = recipe_from_record(data, str(file))
    recorded_mode = (data.get("moderation") or {}).get("mode")
    if moderation is None and recorded_mode not in (None, *MODES):  # edited: name the file, not a flag not given
        raise ConfigError(f"{file} records what cannot be replayed: moderation.mode must be one of "
                          f"{', '.join(MODES)}, got {recorded_mode!r}",
                          hint="metagen reads back the files it wrote; restore or regenerate this one")
    moderation = check_mode(moderation or recorded_mode or "report")
    loaded = load_world(world) if world else _recorded_world(recipe.world_files[0], file)
    if recipe.world_hash and loaded.content_hash != recipe.world_hash:
        say(f"warning: the world has changed since {file} was made; the text may differ", quiet)
    if data.get("metagen_version") != __version__:
        # decoding, the critic and text clean-up change between versions; within one, replay is exact
        say(f"warning: {file} was made by metagen {data.get('metagen_version')}, this is {__version__}; "
            "the text may differ", quiet)
    recorded = recipe.model
    spec = model or _recorded_model(recorded)
    if model is None and spec is not None and spec == recorded.get("path") and not Path(spec).exists():
        # load_model would say "check the path", of a path the user never gave
        raise ModelError(f"{file} was made with the model {spec}, which is not here",
                         hint="put the model file back where it was, or give --model with a model name or a .gguf "
                         "path; another model makes other text")
    device = device or recorded.get("device") or "cpu"
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            say(f"warning: {file} was made on {device}; replaying on cpu, the text may differ", quiet)
            device = "cpu"
        else:
            device = "cuda"
    generator = load_model(spec, dtype=dtype or recorded.get("dtype") or "auto", device=device,
                           prompt_dtype=prompt_dtype or recorded.get("prompt_dtype") or "float32",
                           adapter=_recorded_adapter(recorded, file, quiet), progress=progress_to_stderr(quiet))
    if recorded.get("sha256") and generator.info.sha256 != recorded["sha256"]:
        say(f"warning: the model file differs from the one {file} records; the text may differ", quiet)
    try:
        # a scene made beside others is made beside them again, in the same batch: the same sums
        batch = recipe.batch or ((recipe.request, recipe.seed),)
        result = pipeline.compose(generator, loaded, [r for r, _ in batch], recipe.cfg, seeds=[s for _, s in batch],
                                  order=recipe.order, moderation=moderation, batch_size=len(batch))
    except (ConfigError, RequestError) as error:  # a request the world no longer answers, or an edited record
        raise ConfigError(f"{file} records what cannot be replayed: {error.one_line()}",
                          hint="give --world if the world has moved, or make the piece again") from None
    new = result.pieces[recipe.row]
    before = _spoken(data)
    after = _spoken({**new.front_matter(), "text": new.text})
    at = first_difference(before, after)
    if at is None:
        typer.echo(f"identical: {file} ({new.output_tokens} tokens, seed {recipe.seed})")
        return
    typer.echo(f"differs: {file}: first difference at character {at} "
               f"(recorded {len(before)} characters, {data.get('output_tokens')} tokens; "
               f"now {len(after)} characters, {new.output_tokens} tokens)")
    typer.echo(f"  recorded: {escaped(_snippet(before, at))}")
    typer.echo(f"  now:      {escaped(_snippet(after, at))}")
    raise typer.Exit(1)


def _recorded_model(recorded: dict) -> str | None:
    """The model a piece records, as load_model takes it: a known model by its name (the cache finds
    and checks it, wherever the piece says it was), another by its recorded path."""
    from metagen.catalog import KNOWN_MODELS

    name, path = recorded.get("name"), recorded.get("path")
    return name if name in KNOWN_MODELS else path


def _recorded_adapter(recorded: dict, file: Path, quiet: bool) -> str:
    """The adapter a piece was made with: "none" when it records none (every piece made before
    adapters), else its recorded file, or the packaged one when that has the recorded hash."""
    from metagen.catalog import KNOWN_MODELS
    from metagen.home import file_sha256

    adapter = recorded.get("adapter")
    if not isinstance(adapter, dict):
        return "none"
    path, sha256 = str(adapter.get("path") or ""), str(adapter.get("sha256") or "")
    known = KNOWN_MODELS.get(str(recorded.get("name")))
    packaged = known.adapter_path if known else None
    for candidate in (path and Path(path), packaged):
        if candidate and candidate.is_file() and file_sha256(candidate) == sha256:
            return str(candidate)
    if path and Path(path).is_file():
        say(f"warning: the adapter {path} differs from the one {file} records; the text may differ", quiet)
        return path
    raise ModelError(f"{file} was made with the adapter {path or '?'} (sha256 {sha256[:12]}...), which is not here",
                     hint="put the adapter file back where it was, or make the piece again")


__all__ = ["OutputOptions", "describe_scene", "dialogue", "print_prompt", "prompt_app", "refuse_pieces",
           "replay", "run_pieces", "say", "show_prompt", "story", "written_record"]
