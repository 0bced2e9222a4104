"""Setting: what one decoding setting declares, and the docs/decoding.md tables drawn from them.

metagen.config declares each GenerationConfig field once, with `setting(...)`: its default,
limits, flag, --help line and docs line. The config's checks, the command-line options
(metagen.commands.options) and the tables of docs/decoding.md (`render_doc`) all read it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from metagen.errors import ConfigError
from metagen.text import closest, number_shown, values_shortened

# ----------------------------------------------------------------------------- limits


@dataclass(frozen=True)
class AtLeast:
    """A lower bound: value >= low."""

    low: int

    def check(self, flag: str, value: float) -> None:
        if value < self.low:
            raise ConfigError(f"{flag} must be at least {self.low}, got {number_shown(value)}")

    def __str__(self) -> str:
        return f">= {self.low}"


@dataclass(frozen=True)
class Within:
    """An interval; brackets say which ends are included: "[]", "(]", "[)"."""

    low: float
    high: float
    brackets: str = "[]"

    def check(self, flag: str, value: float) -> None:
        above = value >= self.low if self.brackets[0] == "[" else value > self.low
        below = value <= self.high if self.brackets[1] == "]" else value < self.high
        if not (above and below):
            raise ConfigError(f"{flag} must be in {self}, got {number_shown(value)}")

    def __str__(self) -> str:
        return f"{self.brackets[0]}{self.low:g}, {self.high:g}{self.brackets[1]}"


@dataclass(frozen=True)
class OneOf:
    """One of a few words."""

    choices: tuple[str, ...]

    def check(self, flag: str, value: str) -> None:
        if value not in self.choices:
            close = closest(value, self.choices)
            # a value of 300 letters is shown cut, with its length, as the parser's own errors are
            raise ConfigError(values_shortened(f"{flag} must be one of {', '.join(self.choices)}, got {value!r}"),
                              hint=f"did you mean {close!r}?" if close else None)

    def __str__(self) -> str:
        return ", ".join(f"`{choice}`" for choice in self.choices)


@dataclass(frozen=True)
class Filled:
    """Strings, none of them empty; with `words`, none only white space either (words are used stripped)."""

    words: bool = False

    def check(self, flag: str, values: tuple[str, ...]) -> None:
        for i, value in enumerate(values):
            if not (value.strip() if self.words else value):
                which = f" as value {i + 1} of {len(values)}" if len(values) > 1 else ""
                raise ConfigError(f"{flag} needs {self}, got {value!r}{which}",
                                  hint="a blank one would do nothing: remove it" if self.words else "remove it")

    def __str__(self) -> str:
        return "words (not blank)" if self.words else "non-empty strings"


NON_EMPTY = Filled()
NON_BLANK = Filled(words=True)
Limits = AtLeast | Within | OneOf | Filled

# ----------------------------------------------------------------------------- the record


@dataclass(frozen=True)
class Setting:
    """What the checks, the command line and docs/decoding.md know about one field."""

    flag: str  # the command-line flag; every message about the field names it so
    help: str  # its --help line; "{limits}" stands for the limits
    doc: str  # what it does, for its row in docs/decoding.md
    section: str  # which table of docs/decoding.md holds it (a key of SECTIONS)
    limits: Limits | None = None  # checked when a GenerationConfig is made
    note: str = ""  # the docs' Range cell adds this in brackets (or says it alone, without limits)
    help_default: bool | str = True  # [default: ...] in --help: the default, none, or this text
    doc_default: str = ""  # the docs' Default cell, where the default alone would mislead
    short: str = ""  # a one-letter alias: "-t"
    option: bool = True  # False: set in world and jobs files only, no command-line flag
    name: str = ""  # these three are filled in from the field: see config.SETTINGS
    type: str = ""  # the field's annotation, which says what config._coerce accepts
    default: Any = None


def setting(default: Any, flag: str, limits: Limits | None = None, **kw: Any) -> Any:
    """A dataclass field with this default that carries its Setting in its metadata."""
    return dataclasses.field(default=default, metadata={"setting": Setting(flag, limits=limits, **kw)})


# ----------------------------------------------------------------------------- docs/decoding.md

# The tables of docs/decoding.md, in order: key -> the heading above the table.
SECTIONS = {
    "length": "Strategy and length",
    "sampling": "Sampling: temperature and truncation",
    "penalties": "Penalties against repetition",
    "bans": "Banned words and biases",
    "scripts": "Writing systems",
    "candidates": "Candidates and the critic",
    "beams": "Beam search",
}


def doc_table(settings: Iterable[Setting], section: str) -> list[str]:
    """The Markdown table of one section of docs/decoding.md, one line a row."""
    rows = ["| Field | Flag | Default | Range | What it does |", "|---|---|---|---|---|"]
    for s in settings:
        if s.section != section:
            continue
        if not s.option:
            flag = "none (world and jobs files only)"
        elif s.type == "bool":
            flag = f"`{s.flag} / --no-{s.flag[2:]}`"
        else:
            flag = f"`{s.flag}`" + (" (repeatable)" if s.type.startswith("tuple") else "")
        limits = str(s.limits or "") + (f" ({s.note})" if s.limits and s.note else s.note)
        rows.append(f"| `{s.name}` | {flag} | {s.doc_default or _doc_value(s.default)} "
                    f"| {limits or 'on/off'} | {s.doc} |")
    return rows


def _doc_value(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, str):
        return f"`{value}`"
    if isinstance(value, tuple):
        return " ".join(f"`{v.encode('unicode_escape').decode()}`" for v in value) or "none"
    return f"{value:g}"


def render_doc(text: str, settings: Iterable[Setting]) -> str:
    """docs/decoding.md's text with the table under each SECTIONS heading drawn afresh."""
    settings = list(settings)
    lines = text.split("\n")
    for section, title in SECTIONS.items():
        start = lines.index(f"## {title}")
        while not lines[start].startswith("|"):
            start += 1
        end = start
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
        lines[start:end] = doc_table(settings, section)
    return "\n".join(lines)


__all__ = ["NON_BLANK", "NON_EMPTY", "SECTIONS", "AtLeast", "Filled", "OneOf", "Setting", "Within", "doc_table", "render_doc",
           "setting"]
