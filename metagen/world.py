"""World files: YAML -> frozen dataclasses, with validation that names file:line:column.

`load_world(path)` reads a world file and the files it includes, checks every section and
raises one WorldError that lists every problem as `file:line:col: field.path: what (expected)`.
The YAML is composed by a safe loader that keeps each node's mark, refuses object tags and
caps file size, alias uses and the expanded node count (so an alias bomb fails fast).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from metagen.config import GenerationConfig
from metagen.errors import ConfigError, RequestError, WorldError
from metagen.files import NotRegularFile, check_regular, read_regular

MAX_FILE_BYTES = 2 * 1024 * 1024  # per file; split bigger worlds with include:
MAX_ALIASES = 100  # `*name` uses per file
MAX_NODES = 50_000  # nodes per file, aliases expanded (pure-Python YAML parses ~15k nodes/s)
MAX_PROBLEMS = 200  # listed in one WorldError; the rest are counted
MAX_INT = 2**63  # whole numbers in a world file stay below this in size
MAX_DEPTH = 100  # lists and mappings inside each other, when YAML is built into plain data

ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SETTING_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
POINTS_OF_VIEW = ("first", "second", "third")
TENSES = ("past", "present")
RATINGS = ("G", "PG", "PG-13", "R")
LENGTHS = ("short", "medium", "long")
DEFAULT_LENGTH_WORDS = {"short": 150, "medium": 350, "long": 700}
DEFAULTS_KINDS = ("all", "story", "scene", "dialogue")

_YAML = "tag:yaml.org,2002:"
_PLAIN_TAGS = {_YAML + t for t in ("str", "int", "float", "bool", "null", "timestamp", "seq", "map", "merge")}


# ----------------------------------------------------------------------------- the format


@dataclass(frozen=True)
class Style:
    """How the world's texts are written."""

    point_of_view: str | None = None  # first | second | third
    tense: str | None = None  # past | present
    voice: str | None = None  # free text: "wry, sensory, short sentences"
    rating: str | None = None  # G | PG | PG-13 | R
    preferred_words: tuple[str, ...] = ()
    avoided_words: tuple[str, ...] = ()  # named in prompts as words to avoid
    length: str = "medium"  # the default story length: short | medium | long
    length_words: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_LENGTH_WORDS), hash=False)


@dataclass(frozen=True)
class Location:
    id: str
    name: str
    description: str | None = None
    sights: tuple[str, ...] = ()
    sounds: tuple[str, ...] = ()
    smells: tuple[str, ...] = ()
    connections: tuple[str, ...] = ()  # location ids
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Relationship:
    other: str  # a character id (`with:` in YAML)
    kind: str | None = None  # "sister", "rival", "owes money to"
    description: str | None = None


@dataclass(frozen=True)
class Character:
    id: str
    name: str
    aliases: tuple[str, ...] = ()
    role: str | None = None
    description: str | None = None
    traits: tuple[str, ...] = ()
    voice: str | None = None  # how they speak
    goals: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    relationships: tuple[Relationship, ...] = ()
    sample_lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class Faction:
    id: str
    name: str
    description: str | None = None
    members: tuple[str, ...] = ()  # character ids
    goals: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoreEntry:
    id: str
    text: str
    keys: tuple[str, ...] = ()  # trigger words, matched case-insensitively on word boundaries
    priority: int = 0  # higher first when the token budget is short
    always_include: bool = False


@dataclass(frozen=True)
class Content:
    banned_words: tuple[str, ...] = ()  # become decoding bans
    banned_topics: tuple[str, ...] = ()  # named in prompts as topics to stay away from


@dataclass(frozen=True)
class World:
    """A loaded, validated world. Sections are tuples in file order (includes after)."""

    id: str
    name: str
    genre: str | None = None
    tone: str | None = None
    era: str | None = None
    summary: str | None = None
    style: Style = field(default_factory=Style)
    locations: tuple[Location, ...] = ()
    characters: tuple[Character, ...] = ()
    factions: tuple[Faction, ...] = ()
    lore: tuple[LoreEntry, ...] = ()
    # kind (all|story|scene|dialogue) -> decoding setting name -> scalar or list of text
    defaults: dict[str, dict[str, object]] = field(default_factory=dict, hash=False)
    content: Content = field(default_factory=Content)
    path: Path | None = None  # the world file as given
    files: tuple[Path, ...] = ()  # every file read, resolved, in the order read
    content_hash: str = ""  # sha256 over the bytes of `files`, concatenated in order

    def character(self, ref: str) -> Character:
        """The character with this id (or, failing that, this exact name or alias)."""
        return _lookup(self.characters, ref, "character", self.id)

    def location(self, ref: str) -> Location:
        """The location with this id (or, failing that, this exact name)."""
        return _lookup(self.locations, ref, "location", self.id)

    def faction(self, ref: str) -> Faction:
        """The faction with this id (or, failing that, this exact name)."""
        return _lookup(self.factions, ref, "faction", self.id)

    def generation_defaults(self, kind: str) -> dict[str, object]:
        """The world's decoding settings for a command kind: `all` overlaid by `kind`."""
        return {**self.defaults.get("all", {}), **self.defaults.get(kind, {})}

    def counts(self) -> dict[str, int]:
        """How many characters, locations, factions and lore entries the world has."""
        return {
            "characters": len(self.characters),
            "locations": len(self.locations),
            "factions": len(self.factions),
            "lore": len(self.lore),
        }


def did_you_mean(word: str, options) -> str:
    """A hint: "did you mean 'x'?" for a close match, else the valid options."""
    options = list(options)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    if not options:
        return "there are none"
    shown = ", ".join(options[:12]) + (f", ... ({len(options)} in all)" if len(options) > 12 else "")
    return f"expected one of: {shown}"


def _lookup(items, ref: str, what: str, world_id: str):
    for item in items:
        if item.id == ref:
            return item
    folded = ref.casefold()
    matches = [
        item
        for item in items
        if folded in {item.id, item.name.casefold(), *(a.casefold() for a in getattr(item, "aliases", ()))}
    ]
    if len(matches) == 1:
        return matches[0]
    hint = did_you_mean(ref, [i.id for i in items])
    if "did you mean" in hint:
        hint += f" valid {what} ids: {', '.join(i.id for i in items)}"
    raise RequestError(f"world '{world_id}' has no {what} '{ref}'", hint=hint)


def slugify(text: str, fallback: str = "world", limit: int | None = 64) -> str:
    """An ASCII id from free text: "Aoife Ní Bhriain" -> "aoife-ni-bhriain"; cut at limit characters."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:limit].strip("-")
    return slug or fallback


# ----------------------------------------------------------------------------- safe YAML


class YamlRefused(Exception):
    """A file-level refusal while reading YAML (syntax, limits, tags); carries the mark or None."""

    def __init__(self, mark, message: str):
        super().__init__(message)
        self.mark = mark
        self.message = message


class _WorldLoader(yaml.SafeLoader):
    """SafeLoader that composes nodes only (marks kept) and refuses tags and alias bombs.

    Each node's expanded size (aliases counted in full) is summed bottom-up as it is
    composed, so the first node past MAX_NODES stops the parse before anything is built.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self.alias_uses = 0
        self.composed = 0  # distinct nodes, so a huge flat list stops early too
        self.sizes: dict[int, int] = {}

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self.alias_uses += 1
            if self.alias_uses > MAX_ALIASES:
                raise YamlRefused(
                    event.start_mark,
                    f"more than {MAX_ALIASES} alias uses (*name) in one file (write the values out instead)",
                )
        else:
            self.composed += 1
            if self.composed > MAX_NODES:
                message = f"more than {MAX_NODES} values in one file (split it with include:)"
                raise YamlRefused(event.start_mark, message)
            if event.tag not in (None, "!") and event.tag not in _PLAIN_TAGS:
                shown = event.tag.replace(_YAML, "!!")
                raise YamlRefused(
                    event.start_mark,
                    f"YAML tag '{shown}' is not allowed (metagen's YAML files hold only text, numbers, "
                    "true/false, lists and mappings; remove the tag)",
                )
        node = super().compose_node(parent, index)
        if isinstance(event, yaml.AliasEvent):
            if id(node) not in self.sizes:
                message = "an alias refers to the node that contains it (recursive data is not allowed)"
                raise YamlRefused(event.start_mark, message)
            return node
        if isinstance(node, SequenceNode):
            children = node.value
        elif isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        size = 1 + sum(self.sizes[id(c)] for c in children)
        if size > MAX_NODES:
            raise YamlRefused(
                node.start_mark,
                f"aliases expand to more than {MAX_NODES} nodes here (an alias bomb?); write the values out",
            )
        self.sizes[id(node)] = size
        return node


def compose_yaml(data: bytes, what: str):
    """Decode and compose one YAML document with every safeguard of the world loader: UTF-8
    only, no control characters, object tags, alias bombs, duplicate documents or deep
    nesting. Returns the root node (marks kept) or None when empty; YamlRefused otherwise.

    Args:
        what: names the kind of file in messages ("a world file", "a jobs file").
    """
    if b"\x00" in data:
        offset = data.index(b"\x00")
        raise YamlRefused(None, f"looks like a binary file, not YAML text (NUL at byte {offset}; give a UTF-8 .yaml file)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start)
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1)  # in bytes: the line is not text
        mark = yaml.Mark("", error.start, line, column, None, None)
        message = f"not UTF-8 text (byte 0x{data[error.start]:02x} cannot be decoded; save it as UTF-8)"
        raise YamlRefused(mark, message) from None
    try:
        loader = _WorldLoader(text)  # checks every character up front
    except yaml.reader.ReaderError as error:  # a control character, e.g. a stray backspace
        at = error.position
        mark = yaml.Mark("", at, text.count("\n", 0, at), at - (text.rfind("\n", 0, at) + 1), None, None)
        code = error.character
        tip = f"delete it, or write it as \\u{code:04x} inside double quotes"
        kind = "control character" if code < 0x20 or 0x7F <= code < 0xA0 else "character"
        raise YamlRefused(mark, f"the {kind} U+{code:04X} is not allowed in YAML ({tip})") from None
    try:
        return loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        mark, message = _yaml_problem(error)
        raise YamlRefused(mark, "invalid YAML: " + message) from None
    except yaml.YAMLError as error:
        raise YamlRefused(None, f"invalid YAML: {error}") from None
    except RecursionError:
        raise YamlRefused(None, f"is nested too deeply to be {what} (flatten the lists and mappings)") from None
    finally:
        loader.dispose()


def construct_plain(node, depth: int = 0):
    """Plain Python data (dict, list, str, int, float, bool, None) from a composed node;
    YamlRefused for a duplicate or non-text key, a value no constructor can build, or
    nesting past MAX_DEPTH."""
    if depth > MAX_DEPTH:
        raise YamlRefused(node.start_mark, f"nested more than {MAX_DEPTH} deep (flatten the lists and mappings)")
    if isinstance(node, SequenceNode):
        return [construct_plain(item, depth + 1) for item in node.value]
    if isinstance(node, MappingNode):
        out: dict = {}
        for key, value in node.value:
            if not isinstance(key, ScalarNode):
                raise YamlRefused(key.start_mark, "a key must be a plain name, not a list or mapping")
            if key.value in out:
                raise YamlRefused(key.start_mark, f"duplicate key '{_short(key.value)}' (keep one)")
            out[key.value] = construct_plain(value, depth + 1)
        return out
    if node.tag in (_YAML + "int", _YAML + "float", _YAML + "bool"):
        value = construct_scalar(node)
        if value is None:
            raise YamlRefused(node.start_mark, f"'{_short(node.value)}' is not a valid {node.tag[len(_YAML):]}")
        return value
    return None if _is_null(node) else node.value


def construct_scalar(node: ScalarNode):
    """The int, float or bool a scalar's tag names; None when its text is not one of those
    (`!!int abc`, `0b_`, `0x_`, more digits than Python converts)."""
    try:
        return yaml.constructor.SafeConstructor().construct_object(node)
    except (ValueError, KeyError, IndexError, TypeError, OverflowError, yaml.YAMLError):
        return None


def _yaml_problem(error: yaml.MarkedYAMLError) -> tuple[object, str]:
    """The mark and a readable sentence (with what to do) for a YAML syntax error."""
    problem = error.problem or ""
    context = error.context or ""
    mark = error.problem_mark or error.context_mark
    start = error.context_mark or mark
    if "\\t" in problem or "\t" in problem:
        return mark, "a tab character (indent with spaces, not tabs)"
    if "quoted scalar" in context:
        return start, "a quoted string is never closed (close the quote that starts here)"
    if "undefined alias" in problem:
        return mark, f"{problem} (define '&name' before using '*name')"
    if "single document" in context:
        return error.problem_mark, "a second document (one world per file; remove the extra '---')"
    if "flow" in context:
        return start, f"a [list] or {{mapping}} that starts here is never closed ({problem})"
    sentence = f"{context}, {problem}" if context else problem
    return mark, f"{sentence} (check the indentation and quoting around here)"


# ----------------------------------------------------------------------------- validation

_TOP_KEYS = ("world", "style", "locations", "characters", "factions", "lore", "defaults", "content", "include")
_PART_KEYS = ("include", "locations", "characters", "factions", "lore")
_WORLD_KEYS = ("id", "name", "genre", "tone", "era", "summary")
_STYLE_KEYS = (
    "point_of_view", "tense", "voice", "rating", "preferred_words", "avoided_words", "length", "length_words",
)  # fmt: skip
_LOCATION_KEYS = ("id", "name", "description", "sights", "sounds", "smells", "connections", "tags")
_CHARACTER_KEYS = (
    "id", "name", "aliases", "role", "description", "traits", "voice", "goals", "secrets",
    "relationships", "sample_lines",
)  # fmt: skip
_RELATIONSHIP_KEYS = ("with", "kind", "description")
_FACTION_KEYS = ("id", "name", "description", "members", "goals")
_LORE_KEYS = ("id", "keys", "text", "priority", "always_include")
_CONTENT_KEYS = ("banned_words", "banned_topics")


def _describe(node: Node) -> str:
    if isinstance(node, SequenceNode):
        return "a list"
    if isinstance(node, MappingNode):
        return "a mapping"
    kind = node.tag.replace(_YAML, "")
    return {
        "int": f"the number {_short(node.value)}",
        "float": f"the number {_short(node.value)}",
        "bool": f"the true/false value '{node.value}'",
        "null": "an empty value",
        "timestamp": f"the date {node.value}",
    }.get(kind, f"the text '{_short(node.value)}'")


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _YAML + "null"


class _Load:
    """State of one load_world call: problems, ids seen, references to check, files read."""

    def __init__(self, root: Path, allow_outside: bool):
        self.root = root  # the world's folder (resolved)
        self.allow_outside = allow_outside
        self.problems: list[tuple[int, int, int, str]] = []  # (file no., line, col, text)
        self.files: list[Path] = []
        self.data: list[bytes] = []
        self.ids: dict[str, dict[str, tuple]] = {k: {} for k in ("character", "location", "faction", "lore")}
        self.refs: list[tuple] = []  # (kind, id, file no., display, mark, field path), checked at the end
        self.sections: dict[str, list] = {k: [] for k in ("locations", "characters", "factions", "lore")}
        self.file_no = 0
        self.display = ""

    # a. reporting
    def add(self, node_or_mark, path: str, message: str) -> None:
        mark = getattr(node_or_mark, "start_mark", node_or_mark)
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        where = f"{self.display}:{line}:{col}" if mark is not None else self.display
        self.problems.append((self.file_no, line, col, f"{where}: {path + ': ' if path else ''}{message}"))

    # b. readers for one kind of value each; each returns None (and reports) when wrong
    def mapping(self, node: Node, path: str, keys, required=(), extra: str = "") -> dict[str, Node] | None:
        if not isinstance(node, MappingNode):
            self.add(node, path, f"got {_describe(node)} (expected a mapping with {', '.join(keys[:4])}, ...)")
            return None
        pairs, merged = [], []
        for key, value in node.value:
            if key.tag == _YAML + "merge":
                sources = value.value if isinstance(value, SequenceNode) else [value]
                for source in sources:
                    if isinstance(source, MappingNode):
                        merged.extend(source.value)
                    else:
                        self.add(source, path, f"'<<' merges {_describe(source)} (expected a mapping)")
            else:
                pairs.append((key, value))
        found: dict[str, Node] = {}
        first: dict[str, Node] = {}
        for key, value in pairs:
            if not isinstance(key, ScalarNode):
                self.add(key, path, f"a key is {_describe(key)} (expected a field name)")
                continue
            name = key.value
            if name in first:
                line = first[name].start_mark.line + 1
                self.add(key, path, f"duplicate key '{name}' (first at line {line}; keep one)")
                continue
            first[name] = key
            if name not in keys:
                self.add(key, path, f"unknown field '{name}' ({did_you_mean(name, keys)}{extra})")
                continue
            found[name] = value
        for key, value in merged:
            if isinstance(key, ScalarNode) and key.value in keys:
                found.setdefault(key.value, value)
        for name in required:
            if name not in found:
                self.add(node, path, f"missing required field '{name}'")
            elif _is_null(found[name]):
                self.add(found[name], _join(path, name), "is empty (expected a value)")
        return {k: v for k, v in found.items() if not _is_null(v)}

    def text(self, node: Node, path: str) -> str | None:
        if isinstance(node, ScalarNode) and not _is_null(node):  # yes/no/1920 are text here
            value = node.value.strip()
            if value:
                return value
            self.add(node, path, "is empty (expected text)")
            return None
        self.add(node, path, f"got {_describe(node)} (expected text)")
        return None

    def texts(self, node: Node, path: str) -> tuple[str, ...]:
        if not isinstance(node, SequenceNode):
            self.add(node, path, f"got {_describe(node)} (expected a list of text, e.g. [a, b] or '- a' lines)")
            return ()
        values = (self.text(item, f"{path}[{i}]") for i, item in enumerate(node.value))
        return tuple(v for v in values if v is not None)

    def ident(self, node: Node, path: str) -> str | None:
        value = self.text(node, path)
        if value is not None and not ID_RE.match(value):
            self.add(
                node,
                path,
                f"'{_short(value)}' is not a valid id (expected lower-case a-z, 0-9, '-' or '_', "
                f"at most 64 characters, e.g. '{slugify(value, 'x')}')",
            )
            return None
        return value

    def refs_to(self, node: Node, path: str, kind: str) -> tuple[str, ...]:
        if not isinstance(node, SequenceNode):
            self.add(node, path, f"got {_describe(node)} (expected a list of {kind} ids)")
            return ()
        values = []
        for i, item in enumerate(node.value):
            value = self.ident(item, f"{path}[{i}]")
            if value is not None:
                self.ref(kind, value, item, f"{path}[{i}]")
                values.append(value)
        return tuple(values)

    def ref(self, kind: str, value: str, node: Node, path: str) -> None:
        self.refs.append((kind, value, self.file_no, self.display, node.start_mark, path))

    def choice(self, node: Node, path: str, options) -> str | None:
        value = self.text(node, path)
        if value is None:
            return None
        for option in options:
            if value.casefold() == option.casefold():
                return option
        self.add(node, path, f"'{_short(value)}' is not allowed (expected one of: {', '.join(options)})")
        return None

    def integer(self, node: Node, path: str) -> int | None:
        if isinstance(node, ScalarNode) and node.tag == _YAML + "int":
            value = construct_scalar(node)
            if isinstance(value, int) and abs(value) < MAX_INT:
                return value
            self.add(node, path, f"'{_short(node.value)}' is not a whole number metagen can read "
                     f"(expected digits, at most {len(str(MAX_INT))} of them)")
            return None
        self.add(node, path, f"got {_describe(node)} (expected a whole number)")
        return None

    def boolean(self, node: Node, path: str) -> bool | None:
        if isinstance(node, ScalarNode) and node.tag == _YAML + "bool":
            return node.value.lower() in ("true", "yes", "on", "y")
        self.add(node, path, f"got {_describe(node)} (expected true or false)")
        return None

    def entity_id(self, node: Node, path: str, kind: str) -> str | None:
        value = self.ident(node, path)
        if value is None:
            return None
        if value in self.ids[kind]:
            display, line, col = self.ids[kind][value]
            first = f"line {line}" if display == self.display else f"{display}:{line}:{col}"
            self.add(node, path, f"duplicate {kind} id '{value}' (first defined at {first}; ids must be unique)")
            return None
        self.ids[kind][value] = (self.display, node.start_mark.line + 1, node.start_mark.column + 1)
        return value

    def items(self, node: Node, path: str, read) -> list:
        if not isinstance(node, SequenceNode):
            self.add(node, path, f"got {_describe(node)} (expected a list of '- id: ...' entries)")
            return []
        return [x for x in (read(item, f"{path}[{i}]") for i, item in enumerate(node.value)) if x is not None]

    # c. one reader per section
    def read_location(self, node: Node, path: str) -> Location | None:
        m = self.mapping(node, path, _LOCATION_KEYS, required=("id", "name"))
        if m is None:
            return None
        out = dict(
            id=self.entity_id(m["id"], _join(path, "id"), "location") if "id" in m else None,
            name=self.text(m["name"], _join(path, "name")) if "name" in m else None,
            description=self.opt(m, path, "description", self.text),
        )
        for key in ("sights", "sounds", "smells", "tags"):
            out[key] = self.opt(m, path, key, self.texts, ())
        out["connections"] = self.opt(m, path, "connections", lambda n, p: self.refs_to(n, p, "location"), ())
        return Location(**out) if out["id"] and out["name"] else None

    def read_relationship(self, node: Node, path: str) -> Relationship | None:
        m = self.mapping(node, path, _RELATIONSHIP_KEYS, required=("with",))
        if m is None or "with" not in m:
            return None
        other = self.ident(m["with"], _join(path, "with"))
        if other is not None:
            self.ref("character", other, m["with"], _join(path, "with"))
        kind, description = self.opt(m, path, "kind", self.text), self.opt(m, path, "description", self.text)
        return Relationship(other, kind, description) if other else None

    def read_character(self, node: Node, path: str) -> Character | None:
        m = self.mapping(node, path, _CHARACTER_KEYS, required=("id", "name"))
        if m is None:
            return None
        out = dict(
            id=self.entity_id(m["id"], _join(path, "id"), "character") if "id" in m else None,
            name=self.text(m["name"], _join(path, "name")) if "name" in m else None,
        )
        for key in ("role", "description", "voice"):
            out[key] = self.opt(m, path, key, self.text)
        for key in ("aliases", "traits", "goals", "secrets", "sample_lines"):
            out[key] = self.opt(m, path, key, self.texts, ())
        rels = self.opt(m, path, "relationships", lambda n, p: self.items(n, p, self.read_relationship), [])
        if out["id"] and any(rel.other == out["id"] for rel in rels):
            where = _join(path, "relationships")
            self.add(m["relationships"], where, f"'{out['id']}' is related to itself (name another character)")
        out["relationships"] = tuple(rels)
        return Character(**out) if out["id"] and out["name"] else None

    def read_faction(self, node: Node, path: str) -> Faction | None:
        m = self.mapping(node, path, _FACTION_KEYS, required=("id", "name"))
        if m is None:
            return None
        out = dict(
            id=self.entity_id(m["id"], _join(path, "id"), "faction") if "id" in m else None,
            name=self.text(m["name"], _join(path, "name")) if "name" in m else None,
            description=self.opt(m, path, "description", self.text),
            goals=self.opt(m, path, "goals", self.texts, ()),
            members=self.opt(m, path, "members", lambda n, p: self.refs_to(n, p, "character"), ()),
        )
        return Faction(**out) if out["id"] and out["name"] else None

    def read_lore(self, node: Node, path: str) -> LoreEntry | None:
        m = self.mapping(node, path, _LORE_KEYS, required=("id", "text"))
        if m is None:
            return None
        out = dict(
            id=self.entity_id(m["id"], _join(path, "id"), "lore") if "id" in m else None,
            text=self.text(m["text"], _join(path, "text")) if "text" in m else None,
            keys=self.opt(m, path, "keys", self.texts, ()),
            priority=self.opt(m, path, "priority", self.integer, 0),
            always_include=self.opt(m, path, "always_include", self.boolean, False),
        )
        keys_broken = isinstance(m.get("keys"), (ScalarNode, MappingNode))  # already reported
        if not out["keys"] and not out["always_include"] and not keys_broken:
            self.add(
                node, path, "has no keys and is not always_include, so it is never used "
                "(add keys: [...] or always_include: true)",
            )  # fmt: skip
        return LoreEntry(**out) if out["id"] and out["text"] else None

    def read_style(self, node: Node) -> Style:
        m = self.mapping(node, "style", _STYLE_KEYS) or {}
        out = dict(
            point_of_view=self.opt(m, "style", "point_of_view", lambda n, p: self.choice(n, p, POINTS_OF_VIEW)),
            tense=self.opt(m, "style", "tense", lambda n, p: self.choice(n, p, TENSES)),
            voice=self.opt(m, "style", "voice", self.text),
            rating=self.opt(m, "style", "rating", lambda n, p: self.choice(n, p, RATINGS)),
            preferred_words=self.opt(m, "style", "preferred_words", self.texts, ()),
            avoided_words=self.opt(m, "style", "avoided_words", self.texts, ()),
            length=self.opt(m, "style", "length", lambda n, p: self.choice(n, p, LENGTHS), "medium"),
        )
        words = dict(DEFAULT_LENGTH_WORDS)
        lw = self.mapping(m["length_words"], "style.length_words", LENGTHS) if "length_words" in m else None
        for key, value_node in (lw or {}).items():
            value = self.integer(value_node, f"style.length_words.{key}")
            if value is not None and not 10 <= value <= 5000:
                where = f"style.length_words.{key}"
                self.add(value_node, where, f"{value} is out of range (expected 10 to 5000 words)")
            elif value is not None:
                words[key] = value
        return Style(**out, length_words=words)

    def read_defaults(self, node: Node) -> dict[str, dict[str, object]]:
        m = self.mapping(node, "defaults", DEFAULTS_KINDS) or {}
        out: dict[str, dict[str, object]] = {}
        marks: dict[tuple[str, str], tuple[Node, Node]] = {}  # (section, name) -> (key, value)
        for kind, settings in m.items():
            path = f"defaults.{kind}"
            if not isinstance(settings, MappingNode):
                expected = "expected a mapping of setting: value, e.g. temperature: 0.8"
                self.add(settings, path, f"got {_describe(settings)} ({expected})")
                continue
            values: dict[str, object] = {}
            for key, value in settings.value:
                name = key.value if isinstance(key, ScalarNode) else None
                if not name or not SETTING_RE.match(name):
                    shown = _short(str(name))
                    self.add(key, path, f"'{shown}' is not a setting name (expected lower_case_with_underscores)")
                    continue
                values[name] = self.setting(value, f"{path}.{name}")
                marks[kind, name] = (key, value)
            out[kind] = {k: v for k, v in values.items() if v is not None}
        self.check_defaults(m, marks, out)
        return out

    def check_defaults(self, sections: dict[str, Node], marks: dict, out: dict[str, dict[str, object]]) -> None:
        """Refuse what every command would (GenerationConfig.from_dict), by file:line and field.

        Each command kind merges `all` under its own section. A setting that fails alone is
        reported at its line unless every merge it takes part in is valid (strategy: beam
        with num_beams beside it); a merge that fails with no such setting is reported at its
        section. max_new_tokens, when no section gives it, follows the kind and the story
        length in the commands; here it is taken as large as min_new_tokens asks.
        """
        merges = {}
        for kind in DEFAULTS_KINDS[1:]:
            merged = {**out.get("all", {}), **out.get(kind, {})}
            if "max_new_tokens" not in merged and isinstance(merged.get("min_new_tokens"), int):
                merged["max_new_tokens"] = max(1, merged["min_new_tokens"])
            merges[kind] = _config_problem(merged)
        blamed = set()
        for (section, name), (key, value) in marks.items():
            alone = _config_problem({name: out[section][name]}) if name in out.get(section, {}) else None
            kinds = [section] if section != "all" else [k for k in merges if name not in out.get(k, {})]
            if alone and any(merges[k] for k in kinds):
                where = key if alone.message.startswith("unknown generation setting") else value
                hint = "" if alone.hint else " (fix the value in the world file)"
                self.add(where, f"defaults.{section}.{name}", alone.one_line() + hint)
                blamed.update(kinds)
        reported: set[str] = set()
        for kind, problem in merges.items():
            if problem and kind not in blamed and problem.message not in reported:
                reported.add(problem.message)
                section = kind if kind in sections else "all"
                who = "every command" if section == "all" else f"every {kind} command"
                self.add(sections[section], f"defaults.{section}",
                         f"{problem.one_line()} ({who} refuses these settings together; change one)")

    def setting(self, node: Node, path: str) -> object:
        if isinstance(node, SequenceNode):  # e.g. stop: ["\n\n"]; kept unstripped
            bad = [i for i in node.value if not isinstance(i, ScalarNode) or i.tag != _YAML + "str"]
            for item in bad:
                self.add(item, path, f"got {_describe(item)} in the list (expected text; quote it)")
            return None if bad else [item.value for item in node.value]
        if isinstance(node, ScalarNode) and not _is_null(node):
            if node.tag in (_YAML + "int", _YAML + "float", _YAML + "bool"):
                value = construct_scalar(node)
                if value is None or (isinstance(value, int) and abs(value) >= MAX_INT):
                    kind = node.tag.replace(_YAML, "")
                    self.add(node, path, f"'{_short(node.value)}' is not a {kind} value metagen can read "
                             "(write a plain number such as 0.8 or 40, or true/false)")
                return value
            return node.value
        self.add(node, path, f"got {_describe(node)} (expected a number, true/false, text or a list of text)")
        return None

    def read_content(self, node: Node) -> Content:
        m = self.mapping(node, "content", _CONTENT_KEYS) or {}
        return Content(
            banned_words=self.opt(m, "content", "banned_words", self.texts, ()),
            banned_topics=self.opt(m, "content", "banned_topics", self.texts, ()),
        )

    @staticmethod
    def opt(m: dict, path: str, key: str, read, default=None):
        if key not in m:
            return default
        value = read(m[key], _join(path, key))
        return default if value is None else value


def _config_problem(settings: dict[str, object]) -> ConfigError | None:
    try:
        GenerationConfig.from_dict(settings)
    except ConfigError as error:
        return error
    return None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# ----------------------------------------------------------------------------- loading


def _read_file(load: _Load, path: Path) -> Node | None:
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
        load.add(None, "", "no such file (check the path; `metagen worlds list` shows the worlds in ./worlds)")
        return None
    except OSError as error:
        load.add(None, "", f"cannot be read: {error.strerror or error} (check its permissions)")
        return None
    load.files.append(path.resolve())
    load.data.append(data)
    try:
        node = compose_yaml(data, "a world file")
    except YamlRefused as error:
        load.add(error.mark, "", error.message)
        return None
    if node is None:
        load.add(None, "", "is empty or only comments (a world needs at least 'world:' with id and name; "
                 "`metagen worlds new NAME` writes a starter)")  # fmt: skip
        return None
    if not isinstance(node, MappingNode):
        sections = ", ".join(_TOP_KEYS[:5])
        # A single value is not quoted: the path may name some other file (a replay's
        # world_files), whose first line must never be echoed.
        shown = "a list" if isinstance(node, SequenceNode) else "a single value"
        load.add(node, "", f"the top level is {shown} (expected a mapping of sections: {sections}, ...)")
        return None
    return node


def _read_part(load: _Load, path: Path, display: str, stack: tuple[Path, ...], main: bool) -> dict[str, Node]:
    """Read one file, its sections into load.sections, then its includes (depth first)."""
    load.file_no, load.display = len(load.files), display
    node = _read_file(load, path)
    if node is None:
        return {}
    keys = _TOP_KEYS if main else _PART_KEYS
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
            load.add(m["include"], "include", f"got {_describe(m['include'])} (expected a list of file paths)")
        before, targets = len(load.problems), []
        for i, item in enumerate(includes or []):  # every include is checked before any is parsed
            rel = load.text(item, f"include[{i}]")
            target = rel is not None and _include_target(load, path, display, rel, item, f"include[{i}]", stack,
                                                         [t for t, _ in targets])
            if target:
                targets.append((target, os.path.normpath(os.path.join(os.path.dirname(display), rel))))
        if len(load.problems) == before:  # one missing file fails the world: parse nothing more
            for target, shown in targets:
                _read_part(load, target, shown, (*stack, target), main=False)
                load.file_no, load.display = file_no, here
    return m


def _include_target(load: _Load, parent: Path, parent_display: str, rel: str, node: Node, at: str, stack,
                    listed: list[Path]) -> Path | None:
    """The resolved file an include names, or None when it is outside, a cycle, a repeat,
    missing or not a regular file (each reported at the include's line)."""
    target = (parent.parent / rel).resolve()
    if not load.allow_outside and not target.is_relative_to(load.root):
        tip = "move it inside, or load with allow_outside=True"
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
            load.add(node, at, f"'{rel}' cannot be read: {error.strerror or error} (check its permissions)")
    return None


def load_world(path: str | os.PathLike, *, allow_outside: bool = False) -> World:
    """Load and validate a world file and its includes; raise WorldError listing every problem.

    Args:
        allow_outside: let `include:` read files outside the world file's folder.
    """
    given = Path(path)
    load = _Load(given.resolve().parent, allow_outside)
    m = _read_part(load, given, str(given), (given.resolve(),), main=True)
    load.file_no, load.display = 0, str(given)
    header: dict = {}
    if "world" in m:
        wm = load.mapping(m["world"], "world", _WORLD_KEYS, required=("id", "name")) or {}
        header = {
            "id": load.ident(wm["id"], "world.id") if "id" in wm else None,
            "name": load.text(wm["name"], "world.name") if "name" in wm else None,
            **{k: load.opt(wm, "world", k, load.text) for k in ("genre", "tone", "era", "summary")},
        }
    style = load.read_style(m["style"]) if "style" in m else Style()
    defaults = load.read_defaults(m["defaults"]) if "defaults" in m else {}
    content = load.read_content(m["content"]) if "content" in m else Content()
    for kind, value, load.file_no, load.display, mark, path in load.refs:
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


def schema_path() -> Path:
    """Where the world JSON Schema (draft 2020-12) is installed."""
    return Path(__file__).with_name("data") / "world.schema.json"


def starter_world(
    name: str, *, world_id: str | None = None, schema: str | None = None, file: str = "FILE"
) -> str:
    """A commented starter world (YAML text) that validates; `schema` goes in its schema line."""
    world_id = world_id or slugify(name)
    text = (Path(__file__).with_name("data") / "starter-world.yaml").read_text(encoding="utf-8")
    replacements = {
        "__SCHEMA__": schema or str(schema_path()),
        "__FILE__": file,
        "__WORLD_ID__": world_id,
        "__WORLD_NAME__": json.dumps(" ".join(name.split()), ensure_ascii=False),  # JSON strings are YAML
    }
    for marker, value in replacements.items():
        text = text.replace(marker, value)
    return text


def _world_error(display: str, problems: list[tuple[int, int, int, str]]) -> WorldError:
    lines = [text for *_, text in sorted(problems, key=lambda p: p[:3])]
    if len(lines) > MAX_PROBLEMS:
        lines = lines[:MAX_PROBLEMS] + [f"... and {len(lines) - MAX_PROBLEMS} more problems"]
    if len(problems) == 1:
        return WorldError(lines[0], problems=lines)
    more = f"run `metagen worlds validate {display}` to see all {len(problems)}"
    message = f"{display}: {len(problems)} problems in world"
    return WorldError(message, problems=lines, hint=f"first: {lines[0]}; {more}")


__all__ = [
    "Character",
    "Content",
    "Faction",
    "Location",
    "LoreEntry",
    "Relationship",
    "Style",
    "World",
    "did_you_mean",
    "load_world",
    "schema_path",
    "slugify",
    "starter_world",
]
