"""load_world: a world file and its includes -> one validated World, or one WorldError."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from metagen.errors import WorldError
from metagen.files import resolved
from metagen.text import did_you_mean
from metagen.world.includes import read_part
from metagen.world.sections import SectionReader
from metagen.world.types import Content, Style, World
from metagen.world.validate import WORLD_KEYS

MAX_PROBLEMS = 200  # listed in one WorldError; the rest are counted


def load_world(path: str | os.PathLike, *, allow_outside: bool = False) -> World:
    """Load and validate a world file and its includes; raise WorldError listing every problem.

    Args:
        allow_outside: let `include:` read files outside the world file's folder.
    """
    given = Path(path)
    real = resolved(given)
    load = SectionReader(real.parent, allow_outside)
    m = read_part(load, given, str(given), (real,), main=True)
    load.file_no, load.display = 0, str(given)
    header: dict = {}
    if "world" in m:
        wm = load.mapping(m["world"], "world", WORLD_KEYS, required=("id", "name")) or {}
        header = {
            "id": load.ident(wm["id"], "world.id") if "id" in wm else None,
            "name": load.text(wm["name"], "world.name") if "name" in wm else None,
            **{k: load.opt(wm, "world", k, load.text) for k in ("genre", "tone", "era", "summary")},
        }
    style = load.read_style(m["style"]) if "style" in m else Style()
    defaults = load.read_defaults(m["defaults"]) if "defaults" in m else {}
    content = load.read_content(m["content"]) if "content" in m else Content()
    # With an include left unread, an id it would have given is not unknown: references wait until it is read
    # (one bad include had followed itself with "unknown character 'jonas' (there are none)").
    for kind, value, load.file_no, load.display, mark, path in [] if load.includes_unread else load.refs:
        if value not in load.ids[kind]:
            load.add(mark, path, f"unknown {kind} '{value}' ({did_you_mean(value, load.ids[kind])})")
    if load.problems:
        raise _world_error(str(given), load.problems)
    return World(
        **header,
        style=style,
        locations=tuple(load.sections["locations"]),
        characters=tuple(load.sections["characters"]),
        factions=tuple(load.sections["factions"]),
        lore=tuple(load.sections["lore"]),
        defaults=defaults,
        content=content,
        path=given,
        files=tuple(load.files),
        content_hash=hashlib.sha256(b"".join(load.data)).hexdigest(),
    )


def _world_error(display: str, problems: list[tuple[int, int, int, str]]) -> WorldError:
    lines = [text for *_, text in sorted(problems, key=lambda p: p[:3])]
    if len(lines) > MAX_PROBLEMS:
        lines = lines[:MAX_PROBLEMS] + [f"... and {len(lines) - MAX_PROBLEMS} more problems"]
    if len(problems) == 1:
        return WorldError(lines[0], problems=lines)
    more = f"run `metagen worlds validate {display}` to see all {len(problems)}"
    message = f"{display}: {len(problems)} problems in world"
    return WorldError(message, problems=lines, hint=f"first: {lines[0]}; {more}")

