"""`metagen worlds ...`: validate, show, list and start world files, and print their schema.

Each command is one call into metagen.world. `validate` prints every problem itself (one a
line on stderr) and exits 2, and `list` lists the valid worlds and exits 2 after naming an
invalid one on stderr; the other commands let WorldError reach the root group in
cli.py, which prints one line. Light imports only: metagen.world (and yaml) when a command
runs, rich only on a terminal, never torch.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from metagen.commands.help import PATHS_AS_TYPED, PLAIN_HELP, PanelledCommand
from metagen.commands.terminal import clipped, escaped, plain_table, print_table, wrapped_lines
from metagen.text import json_text
from metagen.files import os_reason
from metagen.errors import EXIT_BAD_INPUT, OutputError, OutputExistsError, OutputFolderError, WorldError

if TYPE_CHECKING:
    from metagen.world import World

worlds_app = typer.Typer(
    **PLAIN_HELP,
    help="Validate, inspect, list and start world files (YAML), and print their JSON Schema.",
    no_args_is_help=True,
)

AllowOutside = Annotated[
    bool, typer.Option("--allow-outside", help="Let include: read files outside the world file's folder.")
]


def _counts(world: World) -> str:
    c = world.counts()
    parts = [
        f"{c['characters']} character{'s' * (c['characters'] != 1)}",
        f"{c['locations']} location{'s' * (c['locations'] != 1)}",
        f"{c['factions']} faction{'s' * (c['factions'] != 1)}",
        f"{c['lore']} lore entr{'ies' if c['lore'] != 1 else 'y'}",
    ]
    if len(world.files) > 1:
        parts.append(f"{len(world.files)} files")
    return ", ".join(parts)


# Columns a table cell shows at most: wider than every cell of the example worlds (82), narrow enough
# that one long name or role cannot push a table thousands of columns wide. Paths are shown whole.
MAX_CELL_COLUMNS = 100


def _print_tables(heading: list[str], tables: list[tuple[str, list[str], list[list[str]]]]) -> None:
    """Heading lines, then rich tables on a terminal, plain aligned text when piped; world text always
    escaped (a line break inside a name too), long cells cut."""
    title = "\n".join(escaped(line) for line in heading)
    tables = [
        (name, headers, [[escaped(cell) if head == "path" else clipped(escaped(cell), MAX_CELL_COLUMNS)
                          for head, cell in zip(headers, row)] for row in rows])
        for name, headers, rows in tables
    ]
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.text import Text

        console = Console()
        # Text: world text is never read as rich markup. Wrapped at words, never inside one: a
        # hash or a path longer than the terminal stays whole for the terminal to wrap (rich had
        # broken the sha256 in two and left 'files: ' alone on its line at 40 columns).
        console.print(Text(wrapped_lines(title, console.width)), soft_wrap=True)
        for name, headers, rows in tables:
            if rows:
                console.print()  # each section set apart, as when piped
                print_table(console, headers, rows, name)
        return
    typer.echo(title)
    for name, headers, rows in tables:
        if rows:
            typer.echo(f"\n{name}\n" if name else "")
            typer.echo(plain_table(headers, rows))


@worlds_app.command("validate", cls=PanelledCommand)
def validate_command(
    files: Annotated[list[Path], typer.Argument(help="World files to check.", show_default=False)],
    allow_outside: AllowOutside = False,
):
    """Check world files; print every problem as file:line:col: field: what is wrong."""
    from metagen.world import load_world

    failed = 0
    for file in files:
        try:
            world = load_world(file, allow_outside=allow_outside)
        except WorldError as error:
            failed += 1
            for line in error.problems or [error.message]:
                typer.echo(escaped(line), err=True)
            if len(error.problems) > 1:
                typer.echo(f"error: {escaped(error.message)}", err=True)
            continue
        typer.echo(f"ok: {escaped(str(file))} ({_counts(world)})")
    if failed:
        raise typer.Exit(EXIT_BAD_INPUT)


# `worlds check` is what many tools call it (and what a newcomer types first): the same command, unlisted.
worlds_app.command("check", cls=PanelledCommand, hidden=True)(validate_command)


@worlds_app.command("show", cls=PanelledCommand)
def show_command(
    file: Annotated[Path, typer.Argument(help="A world file.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole loaded world as JSON.")] = False,
    allow_outside: AllowOutside = False,
):
    """Summarise a world: its style, cast, places, factions and lore."""
    from metagen.world import load_world

    world = load_world(file, allow_outside=allow_outside)
    if as_json:
        typer.echo(json_text(dataclasses.asdict(world), indent=2, default=str))
        return
    s = world.style
    head = [f"{world.name} ({world.id})"]
    era, tone = world.era and f"era: {world.era}", world.tone and f"tone: {world.tone}"
    head += [x for x in (world.genre, era, tone) if x]
    pov, tense = s.point_of_view and f"{s.point_of_view} person", s.tense and f"{s.tense} tense"
    style = ", ".join(x for x in (pov, tense, s.rating, f"{s.length} stories") if x)
    lines = [" | ".join(head), f"{_counts(world)}; style: {style}"]
    if world.summary:
        lines.extend(world.summary.splitlines())  # a `|` block keeps its lines
    lines.append(f"files: {', '.join(str(f) for f in world.files)}")
    lines.append(f"sha256: {world.content_hash}")
    for kind, settings in world.defaults.items():
        lines.append(f"defaults.{kind}: " + ", ".join(f"{k}={v!r}" for k, v in settings.items()))
    if world.content.banned_words:
        lines.append(f"banned words: {', '.join(world.content.banned_words)}")
    names = {c.id: c.name for c in world.characters}

    def ties(c) -> str:
        return ", ".join(f"{names.get(r.other, r.other)} ({r.kind or 'tie'})" for r in c.relationships)

    def pronouns(c) -> str:  # what stories hold narration to: declared, or read from the world's words
        from metagen.grounding import pronoun_of

        read = {"she": "she/her", "he": "he/him"}.get(pronoun_of(c), "")
        return c.pronouns or (f"{read} (read)" if read else "")

    from metagen.prompts import tie_sentence

    tables = [
        ("Characters", ["id", "name", "pronouns", "role", "ties"],
         [[c.id, c.name, pronouns(c), c.role or "", ties(c)] for c in world.characters]),
        # Each tie as story prompts say it, so that one written the wrong way round shows ("Ysolde is
        # Ederyn's servant" for the queen's court mage; docs/worlds.md says which way a kind reads).
        ("Ties, as story prompts say them", ["of", "tie"], [
            [c.id, tie_sentence(c.name, names.get(r.other, r.other), r)] for c in world.characters
            for r in c.relationships
        ]),
        ("Places", ["id", "name", "leads to"], [[p.id, p.name, ", ".join(p.connections)] for p in world.locations]),
        ("Factions", ["id", "name", "members"], [
            [f.id, f.name, ", ".join(names.get(m, m) for m in f.members)] for f in world.factions
        ]),
        ("Lore", ["id", "priority", "keys"], [
            [e.id, str(e.priority), "(always)" if e.always_include else ", ".join(e.keys)] for e in world.lore
        ]),
    ]  # fmt: skip
    _print_tables(lines, tables)


def _there(path: Path) -> bool:
    """Whether a folder's world.yaml is there; a folder this user may not search is said on stderr
    (it may hold a world the list cannot show), not skipped without a word."""
    try:
        os.lstat(path)
    except PermissionError as error:
        if path.name == "world.yaml":  # once a folder, not for world.yml too
            typer.echo(f"skipped: {escaped(str(path.parent))}: cannot be searched: {os_reason(error)}", err=True)
        return False
    except OSError:
        return False
    return True


@worlds_app.command("list", cls=PanelledCommand)
def list_command(
    folder: Annotated[Path, typer.Argument(help="Where to look: *.yaml and */world.yaml.")] = Path("worlds"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
):
    """List the worlds in a folder: id, name, counts and path (invalid ones on stderr, then exit 2)."""
    from metagen.world import load_world

    try:
        is_dir, exists = folder.is_dir(), folder.exists()
    except OSError as error:  # a folder on the way this user may not search (EACCES)
        raise WorldError(f"{folder}: cannot be read: {os_reason(error)}",
                         hint="check the permissions of the folders on its way") from None
    if not is_dir:
        problem = "is a file, not a folder" if exists else "no such folder"
        raise WorldError(f"{folder}: {problem}", hint="give a folder of world files; the default is ./worlds")
    # glob's "*/world.yaml" skips a link to nothing there, where "*.yaml" lists one: both are named
    candidates = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) + sorted(
        path for sub in folder.glob("*/") for path in (sub / "world.yaml", sub / "world.yml") if _there(path)
    )
    rows, invalid = [], 0
    for path in candidates:
        try:
            world = load_world(path)
        except WorldError as error:
            invalid += 1
            typer.echo(f"invalid: {escaped(error.one_line())}", err=True)
            continue
        row = {"id": world.id, "name": world.name, **world.counts(), "path": str(path), "contents": _counts(world)}
        rows.append(row)
    if as_json:
        data = [{k: v for k, v in r.items() if k != "contents"} for r in rows]
        typer.echo(json_text(data, indent=2))
    elif rows:
        _print_tables([f"{len(rows)} world{'s' * (len(rows) != 1)} in {folder}"], [
            ("", ["id", "name", "contents", "path"], [[r["id"], r["name"], r["contents"], r["path"]] for r in rows]),
        ])  # fmt: skip
    elif not invalid:
        typer.echo(f"no worlds in {folder} (`metagen worlds new NAME` writes one)", err=True)
    if invalid:  # as `worlds validate` does, so a script notices; the valid ones are listed all the same
        raise typer.Exit(EXIT_BAD_INPUT)


@worlds_app.command("schema", cls=PanelledCommand)
def schema_command():
    """Print the JSON Schema (draft 2020-12) that editors can check world files against."""
    from metagen.world import schema_path

    typer.echo(schema_path().read_text(encoding="utf-8"), nl=False)


@worlds_app.command("new", cls=PanelledCommand)
def new_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The world's name (any script).", show_default=False)],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Where to write it; a folder (or a path ending in /) gets <id>.yaml in it [default: worlds/<id>.yaml].", show_default=False),
    ] = None,
    world_id: Annotated[
        str | None, typer.Option("--id", help="The world id [default: made from the name].", show_default=False)
    ] = None,
):
    """Write a commented starter world that validates; never overwrites a file."""
    from metagen.output import write_atomic
    from metagen.text import blank, id_from
    from metagen.world import ID_RE, schema_path, starter_world
    from metagen.world.safe_yaml import shorten

    if blank(name):  # "", spaces, or only controls and zero-width characters
        raise typer.BadParameter("the world's name is empty (give the name it is known by)", param_hint="NAME")
    if any("\ud800" <= ch <= "\udfff" for ch in name):  # argv bytes that were not UTF-8
        raise typer.BadParameter("the name is not UTF-8 text (check the terminal's encoding: LANG or LC_ALL "
                                 "should name UTF-8)", param_hint="NAME")
    if world_id is not None and not world_id.strip():  # an empty variable in a script: not "made from the name"
        raise typer.BadParameter("is empty (leave the option out for an id made from the name)", param_hint="--id")
    if world_id is None and not id_from(name, ""):  # 林小雨: every world so named would be 'world'
        raise typer.BadParameter(f"'{shorten(name)}' has no letters an id can be made of (a-z, 0-9); "
                                 "give one with --id, e.g. --id my-world", param_hint="NAME")
    world_id = id_from(name) if world_id is None else world_id
    if not ID_RE.match(world_id):
        message = (f"'{shorten(world_id)}' is not a valid id (lower-case a-z, 0-9, '-' or '_', at most 64 "
                   f"characters, e.g. '{id_from(world_id, 'x')}')")
        raise typer.BadParameter(message, param_hint="--id")
    typed = ctx.meta.get(PATHS_AS_TYPED, {}).get("out") or ""
    out = out or Path("worlds") / f"{world_id}.yaml"
    # `-o worlds/`: the folder to put it in, as cp and mv read a folder; with its "/" even before it exists
    if os.path.isdir(out) or typed.endswith(("/", os.sep)):  # not Path.is_dir: it raises in a folder without x
        out = out / f"{world_id}.yaml"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file where a folder on the way goes: the user's input, as in every command
        raise OutputFolderError(f"cannot make the folder {out.parent}: a file is in the way",
                                hint="move the file, or give another --out") from None
    except OSError as error:
        raise OutputError(f"cannot make the folder {out.parent}: {error.strerror or error}",
                          hint="give an --out in a folder you can write") from None
    try:  # relative when the schema is close by (a checkout), else absolute
        schema = os.path.relpath(schema_path(), out.parent.resolve())
    except ValueError:  # another drive (Windows)
        schema = str(schema_path())
    if Path(schema).parts[:3] == ("..",) * 3:
        schema = str(schema_path())
    text = starter_world(name, world_id=world_id, schema=schema, file=str(out))
    try:  # all at once or not at all, and never over a file
        write_atomic(out, text, overwrite=False)
    except OutputExistsError:
        hint = "choose another --out; `worlds new` never overwrites"
        raise OutputExistsError(f"{out} already exists", hint=hint) from None
    typer.echo(f"wrote {out}; check it with: metagen worlds validate {out}")


__all__ = ["worlds_app"]
