"""Reading a world file and the files it includes, depth first, each one at most once.

Every include is checked (inside the world's folder, no cycle, no repeat, a regular file)
before any is parsed, so one missing file fails the world without parsing the others.
"""

from __future__ import annotations

import errno
import functools
import os
from pathlib import Path

from yaml.nodes import MappingNode, Node, SequenceNode

from metagen.files import NotRegularFile, check_regular, dangling_link, link_loops, read_regular, resolved
from metagen.world.safe_yaml import YamlRefused, compose_yaml, describe_node
from metagen.world.sections import SectionReader
from metagen.world.validate import PART_KEYS, TOP_KEYS

MAX_FILE_BYTES = 2 * 1024 * 1024  # per file; split bigger worlds with include:


def _missing_tip(path: Path, main: bool) -> str:
    """What to do about a world file that is not there: the file meant, when its name lacks only
    `.yaml` (`worlds/ashenmere`, `harbour` for harbour/world.yaml) or, for a bare name given on the
    command line (`ashenmere`, `nexus-hub.yaml`), the `worlds/` folder it sits in."""
    named = path.suffix.lower() in (".yaml", ".yml")
    names = [path.name] if named else [f"{path.name}.yaml", f"{path.name}.yml", f"{path.name}/world.yaml"]
    candidates = [path.parent / name for name in names]
    if main and not path.is_absolute() and len(path.parts) == 1:
        candidates += [Path("worlds") / name for name in names]
    meant = next((c for c in candidates if c != path and _is_file(c)), None)
    if meant is not None:
        return f"did you mean {meant}?"
    return "check the path; `metagen worlds list` shows the worlds in ./worlds"


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long, a folder that cannot be searched
        return False


def _read_file(load: SectionReader, path: Path, main: bool = False) -> Node | None:
    """Read, decode and compose one file; report a file-level problem and return None."""
    try:
        if path.is_dir():
            inside = next((p.name for p in (path / "world.yaml", path / "world.yml") if p.is_file()), None)
            tip = f"give {path / inside}" if inside else "give the .yaml file itself"
            load.add(None, "", f"is a directory, not a world file ({tip})")
            return None
        size = check_regular(path).st_size
        data = read_regular(path, MAX_FILE_BYTES) if size <= MAX_FILE_BYTES else b""
        size = max(size, len(data))  # a file that grew since stat is cut at the limit + 1
        if size > MAX_FILE_BYTES:
            mib = MAX_FILE_BYTES >= 2**20
            limit = f"{MAX_FILE_BYTES / 2**20:g} MiB" if mib else f"{MAX_FILE_BYTES / 2**10:g} KiB"
            tip = "split it with include:"
            load.add(None, "", f"is {size:,} bytes, over the {limit} limit for a world file ({tip})")
            return None
    except NotRegularFile as error:
        load.add(None, "", error.sentence())
        return None
    except FileNotFoundError:
        load.add(None, "", f"no such file ({_missing_tip(path, main)})")
        return None
    except OSError as error:
        load.add(None, "", f"cannot be read: {error.strerror or error} ({_fix_for(error)})")
        return None
    load.files.append(resolved(path))
    load.data.append(data)
    try:
        node = _composed(data)
    except YamlRefused as error:
        load.add(error.mark, "", error.message)
        return None
    if node is None:
        load.add(None, "", "is empty or only comments (a world needs at least 'world:' with id and name; "
                 "`metagen worlds new NAME` writes a starter)")  # fmt: skip
        return None
    if not isinstance(node, MappingNode):
        sections = ", ".join(TOP_KEYS[:5])
        # A single value is not quoted: the path may name some other file (a replay's
        # world_files), whose first line must never be echoed.
        shown = "a list" if isinstance(node, SequenceNode) else "a single value"
        load.add(node, "", f"the top level is {shown} (expected a mapping of sections: {sections}, ...)")
        return None
    return node


@functools.lru_cache(maxsize=16)
def _composed(data: bytes) -> Node | None:
    """compose_yaml of a world file's bytes, kept for the next time the same bytes are read: `metagen
    serve` reads a request's world afresh each time, and pure-Python YAML spends about 0.1 s of each
    request on an example world. The nodes are only read once composed, never changed; a refusal is
    raised again each time."""
    return compose_yaml(data, "a world file")


def _fix_for(error: OSError) -> str:
    """What to do about a file that cannot be opened."""
    if error.errno == errno.ELOOP:
        return "its links point at each other in a loop: make the link name the real file"
    return "check its permissions"


def read_part(load: SectionReader, path: Path, display: str, stack: tuple[Path, ...], main: bool) -> dict[str, Node]:
    """Read one file, its sections into load.sections, then its includes (depth first)."""
    load.file_no, load.display = len(load.files), display
    node = _read_file(load, path, main)
    if node is None:
        return {}
    keys = TOP_KEYS if main else PART_KEYS
    extra = "" if main else "; an included file holds only locations, characters, factions, lore and include"
    m = load.mapping(node, "", keys, required=("world",) if main else (), extra=extra) or {}
    for section, read in (
        ("locations", load.read_location),
        ("characters", load.read_character),
        ("factions", load.read_faction),
        ("lore", load.read_lore),
    ):
        if section in m:
            load.sections[section].extend(load.items(m[section], section, read))
    if "include" in m:
        file_no, here = load.file_no, display
        includes = m["include"].value if isinstance(m["include"], SequenceNode) else None
        if includes is None:
            load.add(m["include"], "include", f"got {describe_node(m['include'])} (expected a list of file paths)")
        before, targets = len(load.problems), []
        for i, item in enumerate(includes or []):  # every include is checked before any is parsed
            rel = load.text(item, f"include[{i}]")
            target = rel is not None and _include_target(load, path, display, rel, item, f"include[{i}]", stack,
                                                         [t for t, _ in targets])
            if target:
                targets.append((target, os.path.normpath(os.path.join(os.path.dirname(display), rel))))
        if len(load.problems) == before:  # one missing file fails the world: parse nothing more
            for target, shown in targets:
                read_part(load, target, shown, (*stack, target), main=False)
                load.file_no, load.display = file_no, here
        else:
            load.includes_unread = True
    return m


def _include_target(load: SectionReader, parent: Path, parent_display: str, rel: str, node: Node, at: str, stack,
                    listed: list[Path]) -> Path | None:
    """The resolved file an include names, or None when it is outside, a cycle, a repeat,
    missing or not a regular file (each reported at the include's line)."""
    if "\0" in rel:  # no file system takes one; pathlib would raise ValueError
        load.add(node, at, f"{rel!r} is not a path: it holds a NUL character (write the included file's path)")
        return None
    link = parent.parent / rel
    target = resolved(link)
    # A link to nothing first: resolved, it names wherever it points, which had been reported as outside.
    # (Links in a loop are dangling to os.path too; opening one says so below.)
    broken = next((part for part in (*reversed(link.parents), link)
                   if dangling_link(part) is not None and not link_loops(part)), None)
    if broken is not None:
        what, real = ("is", "file") if broken == link else (f"cannot be reached: {broken} is", "folder")
        load.add(node, at, f"'{rel}' {what} a symbolic link to {dangling_link(broken)}, which does not exist "
                 f"(make the link name the real {real})")
    elif not load.allow_outside and not target.is_relative_to(load.root):
        tip = "move or copy it into that folder"
        load.add(node, at, f"'{rel}' is outside the world's folder {load.root} ({tip})")
    elif target in stack:
        chain = " -> ".join(p.name for p in (*stack[stack.index(target):], target))
        load.add(node, at, f"include cycle: {chain} (remove one of these includes)")
    elif target in load.files or target in listed:
        load.add(node, at, f"'{rel}' is already included (include each file once)")
    else:
        try:
            check_regular(target)
            return target
        except NotRegularFile as error:
            load.add(node, at, f"'{rel}' {error.sentence()}")
        except FileNotFoundError:
            tip = f"looked for {target}; include paths are relative to {parent_display}"
            load.add(node, at, f"'{rel}' not found ({tip})")
        except OSError as error:
            load.add(node, at, f"'{rel}' cannot be read: {error.strerror or error} ({_fix_for(error)})")
    return None
