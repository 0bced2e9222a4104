"""Text from world files, model files and the model, made safe to print on a terminal.

A world or a GGUF is written by someone else: an escape sequence in a character's name
would move the cursor, retitle the window or hide the rest of a line. Messages and tables
show such characters escaped (`\\x1b`); generated text keeps its words, newlines and tabs
and loses only control characters, and only when it goes to a terminal.
The standard streams and the signals that end a command are made ready here too: light
enough for metagen.client to use before the commands are imported.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import os
import re
import signal
import sys
import unicodedata
from pathlib import Path

from metagen.errors import EXIT_HUNG_UP, EXIT_TERMINATED, Terminated

# C0 controls, DEL, C1 controls, and the Unicode line/paragraph separators and bidi controls.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROLS_BUT_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def escaped(text: str) -> str:
    """Untrusted text for a message or a table: every control character written as an escape."""
    return _CONTROLS.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


def columns(text: str) -> int:
    """The terminal columns text takes: a wide character (林) two, a combining or zero-width one none."""
    return sum(_width(c) for c in text)


def _width(ch: str) -> int:
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def clipped(text: str, limit: int) -> str:
    """text cut to at most limit columns, ending in "..." when cut."""
    if columns(text) <= limit:
        return text
    kept, used = [], 0
    for ch in text:
        used += _width(ch)
        if used > limit - 3:
            break
        kept.append(ch)
    return "".join(kept).rstrip() + "..."


def plain_table(headers: list[str], rows: list[list[str]]) -> str:
    """Aligned columns for a pipe or a file, measured as a terminal shows them (林小雨 takes six)."""
    widths = [max(columns(str(cell)) for cell in column) for column in zip(headers, *rows)]
    return "\n".join(
        "  ".join(str(cell) + " " * (width - columns(str(cell))) for cell, width in zip(line, widths)).rstrip()
        for line in [headers, *rows]
    )


def rich_table(headers: list[str], rows: list[list[str]], title: str = "", whole: tuple[str, ...] = ()):
    """A rich Table for a terminal: cells as plain Text (world text is never read as markup). A cell too
    long for a narrow terminal folds onto more lines rather than being cut ("smollm2-1..."); the
    columns named in `whole` (ids, paths) never wrap, so they fold only where print_table would not
    have shown the table."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title or None, title_justify="left")
    for header in headers:
        table.add_column(header, overflow="fold", no_wrap=header in whole)
    for row in rows:
        table.add_row(*(Text(str(cell)) for cell in row))
    return table


WHOLE_COLUMNS = ("id", "path")  # copied into the next command: never broken across lines
MIN_VALUE_COLUMNS = 16  # narrower beside its label, a value goes on the line under it


def print_table(console, headers: list[str], rows: list[list[str]], title: str = "",
                whole: tuple[str, ...] = WHOLE_COLUMNS) -> None:
    """A table on a terminal, in the first layout that fits its width with the `whole` columns unbroken
    and every other column at least a word wide: a rich table; else plain_table's aligned columns;
    else one `header: value` line a cell, a blank line between rows (at 40 columns a rich table had
    broken "ashenme/re" and worlds/ash/enmere.yaml, at 20 it gave each column one character).
    A line still wider than the terminal is left for the terminal to wrap, so a copied path is whole."""
    from rich.measure import Measurement
    from rich.text import Text

    table = rich_table(headers, rows, title, whole)
    if Measurement.get(console, console.options.update_width(10**6), table).minimum <= console.width:
        console.print(table)
        return
    plain = plain_table(headers, rows)
    if max(columns(line) for line in plain.splitlines()) > console.width:
        label = max(columns(h) for h in headers) + 2
        if console.width - label < MIN_VALUE_COLUMNS:  # too narrow beside the labels: each value under its own
            label = 0
        plain = "\n\n".join("\n".join(_field_line(h, str(cell), label, console.width, h in whole)
                                       for h, cell in zip(headers, row)) for row in rows)
    # A blank line after the title, as piped output has it: in these layouts it is no table's
    # caption, and ran into the rows under it ('Places' / 'id: ember-keep').
    console.print(Text((f"{title}\n\n" if title else "") + plain), soft_wrap=True)


def _field_line(header: str, value: str, label: int, width: int, whole: bool) -> str:
    """`header: value` for print_table's narrowest layout: the value from column `label` (on the next
    line when label is 0), its words wrapped to `width` unless it must stay whole (an id, a path)."""
    start = " " * (label - 1 - columns(header)) if label else "\n"
    lines = [value] if whole else _words_in_lines(value, width - label)
    return f"{header}:{start}" + ("\n" + " " * label).join(lines)


def wrapped_lines(text: str, width: int) -> str:
    """text with each line wider than width broken at spaces (see _words_in_lines); lines that fit
    are kept as they are."""
    return "\n".join(line if columns(line) <= width else "\n".join(_words_in_lines(line, width))
                     for line in text.split("\n"))


def _words_in_lines(text: str, width: int) -> list[str]:
    """text's words in lines of at most width columns; a longer word alone on its line, whole."""
    lines = [""]
    for word in text.split():
        if lines[-1] and columns(lines[-1]) + 1 + columns(word) > width:
            lines.append(word)
        else:
            lines[-1] = f"{lines[-1]} {word}" if lines[-1] else word
    return lines


def printable(text: str, terminal: bool) -> str:
    """Generated text for stdout: on a terminal without C0/C1 controls but newline and tab."""
    return _CONTROLS_BUT_LINES.sub("", text) if terminal else text


# The signals that end a command as SIGTERM does, with the message and exit code of each
# (Windows has no SIGHUP).
TERMINATING = {signal.SIGTERM: (Terminated().message, EXIT_TERMINATED)}
if hasattr(signal, "SIGHUP"):
    TERMINATING[signal.SIGHUP] = ("terminated by SIGHUP (the terminal was closed)", EXIT_HUNG_UP)


def _raise_terminated(signum, frame):  # pragma: no cover - exercised through a subprocess
    raise Terminated(*TERMINATING[signum])


_raise_terminated.raises_terminated = True  # a block inside another leaves it in place


@contextlib.contextmanager
def terminating_raised():
    """SIGTERM and SIGHUP raise Terminated inside the block; their handlers are put back after it. A
    signal set to be ignored stays ignored (`nohup metagen batch ...` must outlive its terminal), and
    `metagen serve`'s handler stays: it raises Terminated itself, told apart by whose signal it is."""
    previous = {}
    for signum in TERMINATING:
        try:
            handler = signal.getsignal(signum)
            if handler is signal.SIG_IGN or getattr(handler, "raises_terminated", False):
                continue
            signal.signal(signum, _raise_terminated)
        except ValueError:  # not the main thread (some test runners)
            continue
        if handler is not None:  # one set outside Python cannot be put back
            previous[signum] = handler
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def ready_standard_streams() -> str | None:
    """Make this process's standard streams safe for a command; returns why one cannot run, or None.

    A closed stdin (`<&-`) reads as empty, as a command given no input. A closed stdout (`>&-`)
    is refused: a command's text, table or JSON would be lost with exit 0. A stdout or stderr in
    an encoding without some characters (latin-1 for 林小雨) writes those as escapes (`\\u6797`)
    instead of failing on them; the files metagen writes are UTF-8 whatever the terminal's encoding.
    """
    if sys.stdin is None:
        sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - the process's own stdin
    if sys.stdout is None:
        return "standard output is closed (give it somewhere to go, e.g. >/dev/null)"
    for stream in (sys.stdout, sys.stderr):
        if stream is not None and _lacks_characters(stream) and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    return None


def _lacks_characters(stream) -> bool:
    """Whether the stream's encoding cannot write every character (latin-1, cp1252; not UTF-8)."""
    try:
        return codecs.lookup(stream.encoding or "ascii").name not in ("utf-8", "utf-16", "utf-32")
    except LookupError:
        return True


def stdin_or_path(text: str) -> Path:
    """A path argument in which '-' stands for standard input (Typer's parser= for it): '-' is Path('-');
    another text pathlib folds to that ('./-', '-/') is made absolute, so it names the file called '-'."""
    path = Path(text)
    return path.absolute() if text != "-" and path == Path("-") else path


def read_stdin(limit: int, hint: str) -> bytes:
    """Standard input's bytes, read up to one byte over limit (so the reader can say it is too large);
    InputError, with hint, when it cannot be read."""
    try:
        return sys.stdin.buffer.read(limit + 1)
    except OSError as error:
        raise stdin_unreadable(error, hint) from None


def stdin_unreadable(error: OSError, hint: str):
    """The InputError (exit 2) for standard input that cannot be read: a descriptor opened for
    writing only (`0>FILE`, EBADF), or a folder where the platform lets one through (EISDIR)."""
    from metagen.errors import InputError

    return InputError(f"standard input cannot be read: {error.strerror or error}", hint=hint)


def stdout_failed(error: OSError) -> str | None:
    """One line for a failed write to stdout (its reader quit, a full disk, /dev/full), or None when
    `error` is not one; after it, stdout goes to os.devnull, so that Python's own flush at exit
    does not fail again with a traceback."""
    if error.filename is not None or error.errno not in (errno.EPIPE, errno.ENOSPC, errno.EIO, errno.EDQUOT):
        return None
    with contextlib.suppress(OSError, ValueError, AttributeError):  # no stdout file descriptor to point elsewhere
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    if error.errno == errno.EPIPE:
        return "standard output closed early: the command reading metagen's output quit (files written so far are kept)"
    return f"cannot write to standard output: {error.strerror} (free space where it goes, or redirect it)"
