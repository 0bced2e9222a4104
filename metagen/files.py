"""Opening input files: regular files only, and never more than a limit read; JSON from them parsed
with its failures as ValueError.

A FIFO, a device or a socket given as a world, an include, a jobs file, a model or a
cache file would block a read or never end (`--model /dev/zero` hashes forever), so each
is refused by its kind before a byte is read; every read here stops at its limit.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

MAX_STDIN_BYTES = 2**20  # a prompt on standard input; a model's whole context is far less
STDIN_NAME = "<stdin>"  # what messages call an input read from standard input (a path given as '-')

_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a folder"),
)


class NotRegularFile(OSError):
    """The path names a FIFO, a device, a socket or a folder; `kind` says which."""

    def __init__(self, path: str | os.PathLike, kind: str):
        super().__init__(errno.EINVAL, f"is {kind}, not a regular file", str(path))
        self.kind = kind

    def sentence(self) -> str:
        """`is a FIFO (named pipe), not a regular file (give a file; ...)` for messages."""
        return f"{self.strerror} (give a file; metagen reads no pipes, devices or sockets)"


def _check_mode(path: str | os.PathLike, mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a file")
        raise NotRegularFile(path, kind)


def resolved(path: str | os.PathLike) -> Path:
    """The path with its links followed, or only made absolute where they loop: Python 3.11's
    Path.resolve raises RuntimeError on a loop, and opening the path then fails with ELOOP,
    which the caller reports as a file that cannot be read."""
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


def link_loops(path: str | os.PathLike) -> bool:
    """Whether following path's links leads back to one of them (ELOOP)."""
    try:
        os.stat(path)
    except OSError as error:
        return error.errno == errno.ELOOP
    return False


def looping_link(path: Path) -> Path:
    """The first part of path, from the top, whose links lead back to themselves (ELOOP)."""
    return next((part for part in (*reversed(path.parents), path) if link_loops(part)), path)


def dangling_link(path: str | os.PathLike) -> str | None:
    """Where path points when it is a symbolic link to nothing (an existing name all the same), else None."""
    try:
        return os.readlink(path) if not os.path.exists(path) else None
    except OSError:  # not a link, or not there at all
        return None


def broken_link(path: Path) -> bool:
    """Whether path is a symbolic link to nothing, or a link on its way leads back to itself."""
    return dangling_link(path) is not None or link_loops(path)


def missing_words(path: Path) -> str:
    """Why path, which os.path.exists says is not there, cannot be opened: 'PATH does not exist', or
    that a link on the way leads back to itself, or that path is a link to nothing."""
    if link_loops(path):
        looped = looping_link(path)
        where = f"{path} is" if looped == path else f"{path} cannot be reached: {looped} is"
        return f"{where} a symbolic link in a loop (it leads back to itself)"
    target = dangling_link(path)
    return f"{path} is a symbolic link to {target}, which does not exist" if target else f"{path} does not exist"


def check_regular(path: str | os.PathLike) -> os.stat_result:
    """stat path (following links); NotRegularFile unless it is a regular file."""
    info = os.stat(path)
    _check_mode(path, info.st_mode)
    return info


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open a regular file for reading in binary; NotRegularFile for anything else.

    The mode is checked before opening (opening a device can have effects) and again on the
    open descriptor, which is opened non-blocking so a FIFO swapped in between cannot hang.
    """
    check_regular(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        _check_mode(path, os.fstat(fd).st_mode)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike, limit: int) -> bytes:
    """At most limit + 1 bytes of a regular file: one byte more than limit says it is too big."""
    with open_regular(path) as handle:
        return handle.read(limit + 1)


def read_input(path: str | os.PathLike, limit: int, what: str, error: type) -> bytes:
    """The bytes of a user's input file (a jobs file, a plan), every failure one `error` naming
    the path: a missing file, a folder, not a regular file, a link to nothing or in a loop,
    unreadable, or over `limit` bytes."""
    display = str(path)
    try:
        if Path(path).is_dir():
            raise error(f"{display} is a folder, not {what}", hint="give the file itself")
        data = read_regular(path, limit)
    except NotRegularFile as problem:
        raise error(f"{display}: {problem.sentence()}") from None
    except OSError as problem:
        if broken_link(Path(path)):  # a loop on the way too: "x cannot be reached: ..."
            raise error(missing_words(Path(path)), hint="make the link name the real file") from None
        if isinstance(problem, FileNotFoundError):
            raise error(f"{display}: no such {what.split(' ', 1)[-1]}") from None
        raise error(f"{display}: cannot be read: {problem.strerror or problem}") from None
    return within_limit(display, data, limit, what, error)


def within_limit(display: str, data: bytes, limit: int, what: str, error: type) -> bytes:
    """data, read up to one byte over limit, unless it is over: then `error` naming display (a path, or
    STDIN_NAME for what came on standard input)."""
    if len(data) > limit:
        size = f"{limit // 2**20} MiB" if limit >= 2**20 else f"{limit // 1024} KiB"
        raise error(f"{display} is over the {size} limit for {what}", hint="split it into several files")
    return data


def read_regular_text(path: str | os.PathLike, limit: int) -> str:
    """A regular file of at most limit bytes as UTF-8 text; ValueError if larger or not UTF-8."""
    data = read_regular(path, limit)
    if len(data) > limit:
        raise ValueError(f"{Path(path)} is over {limit:,} bytes")
    return data.decode("utf-8")


def read_stream_text(stream: BinaryIO, limit: int) -> str:
    """At most limit bytes of a stream (standard input) as UTF-8 text; ValueError says why not.

    The read stops at limit + 1 bytes, so `< /dev/zero` or a 20 MB paste costs 1 MiB, not
    memory without end; NUL bytes and bytes that are not UTF-8 are named by their offset.
    """
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"is over {limit:,} bytes")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ValueError(f"looks like binary data or UTF-16, not UTF-8 text (NUL at byte {nul})")
    try:  # a file saved with a byte-order mark: the mark was the prompt's first character (3 more tokens)
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        raise ValueError(f"is not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})") from None


def os_reason(error: OSError) -> str:
    """The OS's words for error, also for a bare OSError(errno.ENOSPC)."""
    if error.strerror:
        return error.strerror
    code = error.errno
    if code is None and len(error.args) == 1 and isinstance(error.args[0], int):
        code = error.args[0]
    if code:
        return os.strerror(code)
    return str(error) or type(error).__name__


def lone_surrogate(text: str) -> int | None:
    """The first code point of `text` that is half of a UTF-16 pair (from a "\\ud800" escape in
    JSON or YAML), which no file or tokenizer can encode; None when it has none."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return ord(text[error.start])
    return None


def text_lines(text: str) -> list[str]:
    """text's lines, each ending at a newline (CRLF too), as a stream read a line at a time gives them:
    str.splitlines also breaks at U+2028, U+0085 and form feeds, which a line of text or a JSON
    string may hold (json.dumps(..., ensure_ascii=False) writes them as they are)."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """An object's pairs as a dict; a key given twice (json.loads kept the last, silently) is refused."""
    data = {}
    for key, value in pairs:
        if key in data:
            raise _DuplicateKey(f"the key {key!r} is given twice in one object")
        data[key] = value
    return data


def parse_json(text: str):
    """json.loads for a file a user gave; ValueError, with a reason to show, for text that is not
    JSON, that nests deeper than Python's parser recurses, that gives a key twice in one object, or
    that holds a lone surrogate escape."""
    try:  # a byte-order mark (Notepad's UTF-8) is no part of the JSON: it was Python's "decode using utf-8-sig"
        data = json.loads(text.removeprefix("\ufeff"), object_pairs_hook=_unique_keys)
    except _DuplicateKey:
        raise
    except json.JSONDecodeError as error:
        raise ValueError(error.msg + (f", line {error.lineno}" if error.lineno > 1 else "")) from None
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except ValueError as error:  # int()'s own limit: "use sys.set_int_max_str_digits()" tells a user nothing
        if "digits" not in str(error):
            raise
        raise ValueError(f"a number has more than {sys.get_int_max_str_digits():,} digits") from None
    pending = [data]  # walked without recursion: the parser took this depth, Python's stack may not
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str) and (code := lone_surrogate(item)) is not None:
            raise ValueError(f"\\u{code:04x} is half of a UTF-16 surrogate pair, not a character")
    return data


@contextmanager
def part_file(path: Path) -> Iterator[Path]:
    """`PATH.part` beside `path` to write in the block, moved onto `path` when the block ends; removed
    when it fails or is interrupted (Ctrl-C during tune's last save left a 16-48 MB .part behind)."""
    part = path.with_name(path.name + ".part")
    try:
        yield part
        part.replace(path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise

