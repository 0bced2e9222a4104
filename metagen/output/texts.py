"""The prose of files to check (`metagen moderate`): pieces in md, json, yarn and ink, and plain text.

Each file becomes segments of prose with, for every character, its offset in the file, so a
finding names the file's own line and column: a Markdown body after its front matter, a JSON
piece's "text" value (escapes undone), the spoken lines of Yarn and ink (their backslashes
undone, metagen's `// metagen:` comments and the structure left out). Folders are walked for
those suffixes, through links but never twice into one folder; every read is bounded.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from metagen.errors import InputError
from metagen.files import STDIN_NAME, broken_link, missing_words, os_reason, read_input, within_limit

MAX_TEXT_BYTES = 8 * 2**20  # one file to check; a piece is a few KiB
MAX_FILES = 100_000  # files one check reads, folders included
STDIN = Path("-")  # the text on standard input, where a path is given (`metagen moderate -`)
TEXT_SUFFIXES = (".md", ".json", ".yarn", ".ink", ".txt")  # what a folder is searched for
_FRONT_MATTER = re.compile(r"\ufeff?---\r?\n")  # a Markdown file's YAML front matter opens ...
_FRONT_MATTER_END = re.compile(r"^---[ \t]*\r?$\n?", re.MULTILINE)  # ... and closes (as output.reading reads it)


@dataclass(frozen=True)
class Segment:
    """Prose from one file, and where each of its characters is in the file's text."""

    text: str
    offsets: tuple[int, ...] | None = None  # the file offset of each character; None: base + i
    base: int = 0

    def offset(self, i: int) -> int:
        return self.base + i if self.offsets is None else self.offsets[i]


def find_files(paths: list[Path]) -> list[Path]:
    """The files to check: each path given, and under each folder every md, json, yarn, ink and txt file.

    Hidden files and folders (metagen's temp files) are skipped in folders; a folder reached twice
    through links is walked once, and a file reached twice is checked once, standard input (STDIN) too.
    """
    found: list[Path] = []
    seen_files: set[tuple[int, int]] = set()
    for path in paths:
        if path == STDIN:
            found += [] if STDIN in found else [STDIN]
            continue
        info = _stat(path)
        if stat.S_ISDIR(info.st_mode):
            inside = _walk(path, seen_files)
            if not inside:  # a CI gate pointed at the wrong folder passed with "checked 0 files"
                raise InputError(f"{path}: a folder with no md, json, yarn, ink or txt file to check",
                                 hint="give the folder the pieces were written to")
            found += inside
        elif _first_time(info, seen_files):
            found.append(path)
        if len(found) > MAX_FILES:
            raise InputError(f"{path}: more than {MAX_FILES:,} files to check", hint="check fewer folders at a time")
    return found


def _walk(top: Path, seen_files: set[tuple[int, int]]) -> list[Path]:
    found = []
    seen_dirs: set[tuple[int, int]] = set()

    def refuse(error: OSError) -> None:
        raise InputError(f"{error.filename}: cannot be read: {os_reason(error)}") from None

    for folder, dirs, files in os.walk(top, onerror=refuse, followlinks=True):
        if not _first_time(_stat(folder), seen_dirs):  # a link back up the tree, or to a folder walked already
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or not name.lower().endswith(TEXT_SUFFIXES):
                continue
            path = Path(folder) / name
            if _first_time(_stat(path), seen_files):
                found.append(path)
        if len(found) > MAX_FILES:
            raise InputError(f"{top}: more than {MAX_FILES:,} files to check", hint="check fewer folders at a time")
    return found


def _stat(path) -> os.stat_result:
    """os.stat, following links; InputError naming the path when it fails."""
    try:
        return os.stat(path)
    except OSError as error:
        if broken_link(Path(path)):  # a link to nothing, or links in a loop (on the way too)
            raise InputError(missing_words(Path(path)), hint="make the link name the real file or folder") from None
        if isinstance(error, FileNotFoundError):
            raise InputError(f"{path}: no such file or folder") from None
        raise InputError(f"{path}: cannot be read: {os_reason(error)}") from None


def _first_time(info: os.stat_result, seen: set[tuple[int, int]]) -> bool:
    """Whether this file or folder (by device and inode) is new to `seen`; adds it."""
    key = (info.st_dev, info.st_ino)
    if key in seen:
        return False
    seen.add(key)
    return True


def shown(path: Path) -> str:
    """How findings and messages name a file to check: its path, or STDIN_NAME for standard input."""
    return STDIN_NAME if path == STDIN else str(path)


def read_text(path: Path, data: bytes | None = None) -> str:
    """A file to check as text: a regular file of at most MAX_TEXT_BYTES of UTF-8, less a leading
    byte-order mark; InputError says why not.

    Args:
        data: the bytes of standard input (read up to one byte over MAX_TEXT_BYTES) when path is STDIN.
    """
    if data is None:
        data = read_input(path, MAX_TEXT_BYTES, "a file to check", InputError)
    else:
        within_limit(shown(path), data, MAX_TEXT_BYTES, "a file to check", InputError)
    nul = data.find(b"\x00")
    if nul >= 0:
        raise InputError(f"{shown(path)} looks like a binary file, not text (NUL at byte {nul})",
                         hint="give text, Markdown, JSON, Yarn or ink files")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InputError(f"{shown(path)} is not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})",
                         hint="save it as UTF-8") from None
    return text.removeprefix("\ufeff")  # a byte-order mark (Notepad) is no column of line 1: editors hide it


def prose_segments(path: Path, text: str) -> list[Segment]:
    """The prose of a file's text, by its suffix: a piece's text, or the whole file."""
    suffix = path.suffix.lower()
    if suffix == ".md":
        opening = _FRONT_MATTER.match(text)
        closing = _FRONT_MATTER_END.search(text, opening.end()) if opening else None
        return [Segment(text[closing.end():], base=closing.end())] if closing else [Segment(text)]
    if suffix == ".json":
        return _json_text(text) or [Segment(text)]
    if suffix in (".yarn", ".ink"):
        return _script_lines(text, suffix)
    return [Segment(text)]


# ----------------------------------------------------------------------------- JSON


_TEXT_KEY = re.compile(r'"text"\s*:\s*"')
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _json_text(raw: str) -> list[Segment]:
    """A JSON piece's "text" value with each character's place in the file; [] when it is no piece."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, a number past int()'s 4,300 digits, nested past the parser
        return []
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        return []
    for match in _TEXT_KEY.finditer(raw):
        decoded = _decode_string(raw, match.end())
        if decoded is not None and decoded[0] == data["text"]:
            return [Segment(decoded[0], offsets=decoded[1])]
    return []


def _decode_string(raw: str, i: int) -> tuple[str, tuple[int, ...]] | None:
    """The JSON string whose body starts at raw[i], and the offset each of its characters comes from."""
    chars, offsets = [], []
    while i < len(raw):
        c = raw[i]
        if c == '"':
            return "".join(chars), tuple(offsets)
        if c != "\\":
            chars.append(c)
            offsets.append(i)
            i += 1
            continue
        code = raw[i + 1:i + 2]
        if code in _ESCAPES:
            chars.append(_ESCAPES[code])
            offsets.append(i)
            i += 2
        elif code == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", raw[i + 2:i + 6]):
            unit = int(raw[i + 2:i + 6], 16)
            low = raw[i + 8:i + 12] if raw[i + 6:i + 8] == "\\u" else ""
            if 0xD800 <= unit < 0xDC00 and re.fullmatch(r"[dD][c-fC-F][0-9a-fA-F]{2}", low):
                chars.append(chr(0x10000 + ((unit - 0xD800) << 10) + int(low, 16) - 0xDC00))
                offsets.append(i)
                i += 12
            else:
                chars.append(chr(unit))
                offsets.append(i)
                i += 6
        else:
            return None
    return None


# ----------------------------------------------------------------------------- Yarn and ink


_STRUCTURE = {".yarn": re.compile(r"^(?://|===$|<<)"),
              ".ink": re.compile(r"^(?://|->|===|=\s|INCLUDE\b|VAR\b|CONST\b)")}


def _script_lines(text: str, suffix: str) -> list[Segment]:
    """A Yarn or ink file's spoken lines, backslash escapes undone, structure and comments left out."""
    segments = []
    start = 0
    header = suffix == ".yarn"  # a Yarn node's header runs to its first ---
    for line in text.split("\n"):
        stripped = line.strip()
        if header:
            header = stripped != "---"
        elif stripped and not _STRUCTURE[suffix].match(stripped):
            chars, offsets = [], []
            i = 0
            while i < len(line):
                if line[i] == "\\" and i + 1 < len(line):
                    i += 1
                chars.append(line[i])
                offsets.append(start + i)
                i += 1
            segments.append(Segment("".join(chars), offsets=tuple(offsets)))
        start += len(line) + 1
    return segments


__all__ = ["MAX_FILES", "MAX_TEXT_BYTES", "STDIN", "Segment", "TEXT_SUFFIXES", "find_files", "prose_segments", "read_text",
           "shown"]
