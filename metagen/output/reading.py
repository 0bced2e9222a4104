"""Reading piece files back (replay, resume): front matter, recorded fields and whether a file is finished.

Only .md and .json files are read whole; Yarn and ink files are read for their `// metagen:`
comments, and a txt file records nothing. Every read is of a regular file, within a size limit.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from metagen.errors import ConfigError, OutputError
from metagen.files import NotRegularFile, broken_link, missing_words, os_reason, parse_json, read_regular
from metagen.output.piece import FINISH_REASONS, to_plain
from metagen.prompts import KINDS
from metagen.world import YamlRefused, compose_yaml, construct_plain
from metagen.text import kind_named, kind_of

MAX_PIECE_BYTES = 64 * 2**20  # a piece file read back (replay, resume) is never larger


def _split_front_matter(text: str) -> tuple[str, str] | None:
    text = text.lstrip("\ufeff")
    if text.startswith("---\r\n"):  # an editor changed the line endings; read it anyway
        text = text.replace("\r\n", "\n")
    if not text.startswith("---\n"):
        return None
    # safe_dump indents every continuation line, so a bare `---` line only closes the block.
    match = re.search(r"^---[ \t]*$\n?", text[4:], flags=re.MULTILINE)
    if match is None:
        return None
    return text[4 : 4 + match.start()], text[4 + match.end() :]


def parse_front_matter(text: str) -> dict:
    """The YAML front matter of a Markdown file as a dict; ConfigError if there is none."""
    parts = _split_front_matter(text)
    if parts is None:
        if re.match(r"---[ \t]*\r?\n", text.lstrip("\ufeff")):
            raise ConfigError("its front matter is never closed (no second --- line: the file may be cut short)")
        raise ConfigError("no YAML front matter (the file does not start with a --- block)")
    try:
        node = compose_yaml(parts[0].encode("utf-8", "surrogatepass"), "front matter")
        data = construct_plain(node) if node is not None else None
    except YamlRefused as error:
        line = f"line {error.mark.line + 2}: " if error.mark is not None else ""  # + the opening ---
        raise ConfigError(f"the front matter is not valid: {line}{error.message}") from None
    if not isinstance(data, dict):
        raise ConfigError("the front matter is not a YAML mapping")
    return data


# The type each recorded field must have when present; a replay or resume trusts them.
_RECORD_TYPES: dict[str, tuple[type, ...]] = {
    "kind": (str,), "world_id": (str,), "world_hash": (str,), "world_files": (list,), "request": (dict,),
    "model": (dict,), "settings": (dict,), "seed": (int,), "prompt_tokens": (int,), "output_tokens": (int,),
    "lore_used": (list,), "lore_left_out": (list,), "finish_reason": (str,), "seconds": (int, float),
    "text": (str,), "turns": (list,), "subject": (str,), "metagen_version": (str,), "moderation": (dict,),
}  # fmt: skip


def _check_record(path: Path, data: dict) -> None:
    """ConfigError naming the first field whose type is wrong; only the type is named, never the value."""
    for key, kinds in _RECORD_TYPES.items():
        value = data.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, kinds):
            want = " or ".join(kind_named(k) for k in kinds)
            raise ConfigError(f"{path} is not a metagen file ({key} must be {want}, got {kind_of(value)})",
                              hint="metagen reads back the files it wrote; restore or regenerate this one")
    if not all(isinstance(f, str) for f in data.get("world_files") or ()):
        raise ConfigError(f"{path} is not a metagen file (world_files must be a list of paths)")
    if data.get("kind") is not None and data["kind"] not in KINDS:
        raise ConfigError(f"{path} is not a metagen file (kind must be one of {', '.join(KINDS)})")


def _read_text(path: Path) -> str:
    try:
        data = read_regular(path, MAX_PIECE_BYTES)
    except NotRegularFile as error:
        raise ConfigError(f"{path} is not a metagen file ({error.strerror})") from None
    except OSError as error:
        raise OutputError(f"cannot read {path}: {os_reason(error)}") from None
    if len(data) > MAX_PIECE_BYTES:
        raise ConfigError(f"{path} is not a metagen file (over {MAX_PIECE_BYTES // 2**20} MiB)")
    try:
        return data.decode("utf-8")  # \r kept as written
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a metagen file (not UTF-8 text)") from None


def _refuse_no_file(path: Path) -> None:
    """ConfigError, whatever the path's suffix, for a folder, a symbolic link to nothing or one in a
    loop (on the way too): they had been "cannot read x.md: No such file or directory" (or "Too many
    levels of symbolic links"), or "x.md is not a metagen file (is a folder, ...)"."""
    if os.path.isdir(path):
        raise ConfigError(f"{path} is a folder, not a piece", hint="give one of the .md or .json files metagen wrote in it")
    if broken_link(path):
        raise ConfigError(missing_words(path), hint="make the link name the real file")


def _refuse_other(path: Path) -> None:
    """ConfigError for a path that cannot be a piece: a piece's name without its .md or .json
    (named), a file of another kind; OutputError for one that is not there."""
    if not os.path.lexists(path):
        meant = next((c for c in (path.with_name(f"{path.name}.md"), path.with_name(f"{path.name}.json"))
                      if c.is_file()), None)
        if meant is not None:
            raise ConfigError(f"{path}: no such file", hint=f"did you mean {meant}?")
        raise OutputError(f"cannot read {path}: {os.strerror(errno.ENOENT)}")
    raise ConfigError(f"{path} is not a metagen file", hint="metagen reads back .md and .json outputs")


def read_piece_file(path: str | os.PathLike) -> dict:
    """A metagen .md or .json file as its front matter plus "text"; ConfigError if it is not one."""
    path = Path(path)
    _refuse_no_file(path)
    suffix = path.suffix.lower()
    if suffix in (".yarn", ".ink"):  # metagen's own, but only its record is kept, in comments
        name = "Yarn" if suffix == ".yarn" else "ink"
        raise ConfigError(f"{path} is {name} dialogue: replay reads the .md and .json pieces metagen writes, not "
                          "Yarn or ink", hint="make the dialogue with --format md or json to replay it")
    if suffix == ".txt" and os.path.isfile(path):  # a .txt piece is its text alone: nothing to replay from
        raise ConfigError(f"{path} is plain text: replay reads the .md and .json pieces metagen writes, which "
                          "record how they were made; a .txt piece records nothing",
                          hint="make the piece with --format md or json to replay it")
    if suffix not in (".md", ".json"):
        _refuse_other(path)
    text = _read_text(path)
    if suffix == ".json":
        try:
            data = parse_json(text)
        except ValueError as error:
            raise ConfigError(f"{path} is not a metagen file (invalid JSON: {error})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path} is not a metagen file (the JSON is not an object)")
    else:
        parts = _split_front_matter(text)
        try:
            data = parse_front_matter(text)
        except ConfigError as error:
            raise ConfigError(f"{path} is not a metagen file ({error.message})") from None
        # render() writes one blank line before the body and one newline after it.
        body = parts[1][1:] if parts[1].startswith("\n") else parts[1]
        data["text"] = body[:-1] if body.endswith("\n") else body
    missing = [key for key in ("kind", "metagen_version", "text") if key not in data]
    if missing:
        raise ConfigError(f"{path} is not a metagen file (no {', '.join(missing)})")
    _check_record(path, data)
    return data


def _comment_metadata(text: str) -> dict:
    data = {}
    for line in text.split("\n"):
        if line.startswith("// metagen: "):
            key, _, value = line[len("// metagen: ") :].partition(": ")
            try:
                data[key] = parse_json(value)
            except ValueError:
                continue
    return data


def is_complete(path: str | os.PathLike) -> bool:
    """Whether path holds a finished piece, so a resumed run may skip it.

    md and json must parse and record a finish_reason and text; yarn and ink must carry
    their `// metagen:` finish_reason and closing line. A txt file has no metadata and
    counts when it ends with the newline render() always writes, even around an empty
    text: writes here are atomic, so a file at its final name is whole. A piece this user
    cannot read is ConfigError: it may be finished, and it is not for a resumed run to replace.
    """
    path = Path(path)
    if path.name.startswith(".") and path.name.endswith(".tmp"):
        return False
    if not _readable_file(path):
        return False
    suffix = path.suffix.lower()
    try:
        if suffix in (".md", ".json"):
            data = read_piece_file(path)
            return data.get("finish_reason") in FINISH_REASONS and isinstance(data.get("text"), str)
        text = _read_text(path)
    except (OutputError, ConfigError, OSError, UnicodeDecodeError):
        return False
    if suffix in (".yarn", ".ink"):
        closing = "===" if suffix == ".yarn" else "-> END"
        lines = [line for line in text.split("\n") if line.strip()]
        closed = bool(lines) and lines[-1].strip() == closing
        return closed and _comment_metadata(text).get("finish_reason") in FINISH_REASONS
    return text.endswith("\n")


def _readable_file(path: Path) -> bool:
    """Whether path is a regular file, opened for reading to be sure; False when it is not there.
    One this user may not read (another user's, or in a folder without search permission) may be a
    finished piece all the same: ConfigError, rather than "not complete, pass --overwrite"."""
    try:
        if not path.is_file():  # raises where a folder on the way may not be searched (EACCES)
            return False
        os.close(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)))
    except FileNotFoundError:  # gone since it was listed
        return False
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {os_reason(error)}",
                          hint="--resume reads each piece to tell whether it is finished: let this user read it "
                               "and search its folders, or move it away") from None
    return True


def recorded_fields(path: str | os.PathLike) -> dict | None:
    """What the piece at path records (front matter, JSON fields or a Yarn/Ink file's metadata
    comments); None for a txt file, which records nothing."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".md", ".json"):
        return read_piece_file(path)
    if suffix in (".yarn", ".ink"):
        return _comment_metadata(_read_text(path))
    return None


def recorded_difference(path: str | os.PathLike, expected: dict) -> str | None:
    """The first field of expected that the piece at path records otherwise (or not at all);
    None when all agree. A txt file records nothing, so it cannot differ."""
    data = recorded_fields(path)
    return None if data is None else field_difference(data, expected)


def field_difference(data: dict, expected: dict, *, unrecorded_agrees: bool = False,
                     within_mappings: bool = False) -> str | None:
    """The first field of expected that data holds otherwise (or not at all, unless unrecorded_agrees);
    None when all agree. With within_mappings, a mapping field is told by its first differing key:
    "settings.temperature"."""
    for key, want in expected.items():
        have = to_plain(data.get(key))
        if (key in data or not unrecorded_agrees) and have != to_plain(want):
            if within_mappings and isinstance(have, dict) and isinstance(want, dict):
                inner = next((k for k in [*want, *have] if have.get(k) != to_plain(want.get(k))), None)
                return f"{key}.{inner}" if inner else key
            return key
    return None
