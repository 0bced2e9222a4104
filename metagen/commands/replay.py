"""`metagen replay FILE`: make a piece again from what its file records and say whether the text
is identical (exit 0) or where it differs (exit 1).

The record is read back by metagen.recipe; this command finds the world, model and adapter the
piece names (or the ones given instead), decodes the piece's batch again with pipeline.compose
and compares its own row.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from metagen.commands.options import not_blank, progress_to_stderr
from metagen.commands.pieces import Quiet, say
from metagen.commands.terminal import escaped
from metagen.errors import ConfigError, ModelError, OutputError, RequestError
from metagen.text import format_turns


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
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Model name or .gguf path. [default: the recorded one]", show_default=False, callback=not_blank)] = None,
    dtype: Annotated[Optional[str], typer.Option("--dtype", help="auto | float32 | bfloat16 | int8 | int4. [default: the recorded one]", show_default=False, callback=not_blank)] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="cpu | cuda | auto. [default: the recorded one]", show_default=False, callback=not_blank)] = None,
    prompt_dtype: Annotated[Optional[str], typer.Option("--prompt-dtype", help="auto | float32 | bfloat16. [default: the recorded one; float32 for a piece that records none]", show_default=False, callback=not_blank)] = None,
    world: Annotated[Optional[Path], typer.Option("--world", help="The world file, if it has moved. [default: the recorded one]", show_default=False)] = None,
    adapter: Annotated[Optional[str], typer.Option("--adapter", help="none | PATH: the adapter file, if it has moved. [default: the recorded one]", show_default=False, callback=not_blank)] = None,
    moderation: Annotated[Optional[str], typer.Option("--moderation", help="off | report | enforce. [default: the recorded one; report for a piece that records none]", show_default=False, callback=not_blank)] = None,
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
                           adapter=_given_adapter(adapter, recorded, file, quiet) if adapter else
                           _recorded_adapter(recorded, file, quiet), progress=progress_to_stderr(quiet))
    if recorded.get("sha256") and generator.info.sha256 != recorded["sha256"]:
        say(f"warning: the model file differs from the one {file} records; the text may differ", quiet)
    try:
        # a scene made beside others is made beside them again, in the same batch: the same sums
        batch = recipe.batch or ((recipe.request, recipe.seed),)
        result = pipeline.compose(generator, loaded, [r for r, _ in batch], recipe.cfg, seeds=[s for _, s in batch],
                                  order=recipe.order, moderation=moderation, batch_size=len(batch),
                                  passed_over={recipe.row: recipe.passed_over})
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
                     hint="put the adapter file back where it was, or give --adapter with its new path")


def _given_adapter(given: str, recorded: dict, file: Path, quiet: bool) -> str:
    """--adapter as load_model takes it (a path, or "none"), with a warning when it is not the adapter the
    piece records: other weights make other text."""
    from metagen.home import file_sha256
    from metagen.lora import existing_adapter

    adapter = recorded.get("adapter")
    sha256 = str(adapter.get("sha256") or "") if isinstance(adapter, dict) else ""
    if given == "none":
        if sha256:
            say(f"warning: {file} was made with an adapter and --adapter none leaves it out; the text may differ", quiet)
        return given
    if not sha256 or file_sha256(existing_adapter(given)) != sha256:
        say(f"warning: the adapter {given} is not the one {file} records; the text may differ", quiet)
    return given


__all__ = ["replay"]
