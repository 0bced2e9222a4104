"""Checking one YAML value at a time: the state of one load_world call and its value readers.

Each reader takes a composed node and a field path, returns the value or None, and reports
what is wrong as `file:line:col: field.path: what (expected)`. The readers of whole sections
build on these in sections.py.
"""

from __future__ import annotations

from pathlib import Path

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from metagen.config import MAX_INT  # whole numbers in a world file stay below this in size, as settings do
from metagen.text import blank, did_you_mean, id_from, shorten
from metagen.world.safe_yaml import YAML_TAG, construct_scalar, describe_node, is_null
from metagen.world.types import ID_RE

TOP_KEYS = ("world", "style", "locations", "characters", "factions", "lore", "defaults", "content", "include")
PART_KEYS = ("include", "locations", "characters", "factions", "lore")
WORLD_KEYS = ("id", "name", "genre", "tone", "era", "summary")
STYLE_KEYS = (
    "point_of_view", "tense", "voice", "rating", "allows", "preferred_words", "avoided_words", "length",
    "length_words",
)  # fmt: skip
LOCATION_KEYS = ("id", "name", "description", "sights", "sounds", "smells", "connections", "tags")
CHARACTER_KEYS = (
    "id", "name", "aliases", "pronouns", "role", "description", "traits", "voice", "goals", "secrets",
    "relationships", "sample_lines",
)  # fmt: skip
RELATIONSHIP_KEYS = ("with", "kind", "description")
FACTION_KEYS = ("id", "name", "description", "members", "goals")
LORE_KEYS = ("id", "keys", "text", "priority", "always_include")
CONTENT_KEYS = ("banned_words", "banned_topics", "descriptor_words", "allowed_words")


class Validator:
    """State of one load_world call: problems, ids seen, references to check, files read."""

    def __init__(self, root: Path, allow_outside: bool):
        self.root = root  # the world's folder (resolved)
        self.allow_outside = allow_outside
        self.problems: list[tuple[int, int, int, str]] = []  # (file no., line, col, text)
        self.files: list[Path] = []
        self.data: list[bytes] = []
        self.ids: dict[str, dict[str, tuple]] = {k: {} for k in ("character", "location", "faction", "lore")}
        self.refs: list[tuple] = []  # (kind, id, file no., display, mark, field path), checked at the end
        self.includes_unread = False  # a bad include stopped the others: their ids are unknown
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
            self.add(node, path, f"got {describe_node(node)} (expected a mapping with {', '.join(keys[:4])}, ...)")
            return None
        pairs, merged = [], []
        for key, value in node.value:
            if key.tag == YAML_TAG + "merge":
                sources = value.value if isinstance(value, SequenceNode) else [value]
                for source in sources:
                    if isinstance(source, MappingNode):
                        merged.extend(source.value)
                    else:
                        self.add(source, path, f"'<<' merges {describe_node(source)} (expected a mapping)")
            else:
                pairs.append((key, value))
        found: dict[str, Node] = {}
        first: dict[str, Node] = {}
        for key, value in pairs:
            if not isinstance(key, ScalarNode):
                self.add(key, path, f"a key is {describe_node(key)} (expected a field name)")
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
            elif is_null(found[name]):
                self.add(found[name], join_path(path, name), "is empty (expected a value)")
        return {k: v for k, v in found.items() if not is_null(v)}

    def text(self, node: Node, path: str) -> str | None:
        if isinstance(node, ScalarNode) and not is_null(node):  # yes/no/1920 are text here
            value = node.value.strip()
            if not blank(value):
                return value
            if value:  # "\u200b" or "\0" in double quotes: nothing a reader or the model sees
                self.add(node, path, f"shows nothing: it holds only invisible characters such as U+{ord(value[0]):04X} "
                                     "(expected text)")
            else:
                self.add(node, path, "is empty (expected text)")
            return None
        self.add(node, path, f"got {describe_node(node)} (expected text)")
        return None

    def speaker_name(self, node: Node, path: str) -> str | None:
        """A character's name or alias: text on one line, as a dialogue's transcript says it before its
        line ("Ada: ..."); "X\nY: hi" had written a line for Y into the prompt. A colon stays allowed
        ("C:\\Windows" in tests/test_robustness.py's hostile world): it cannot start a line of its own."""
        value = self.text(node, path)
        if value is None:
            return None
        if any(c in value for c in "\n\r\u2028\u2029\x85\v\f"):
            self.add(node, path, "holds a line break (a name is one line)")
            return None
        return value

    def speaker_names(self, node: Node, path: str) -> tuple[str, ...]:
        """A character's aliases: a list of speaker_name."""
        if not isinstance(node, SequenceNode):
            return self.texts(node, path)  # its own "expected a list" message
        values = (self.speaker_name(item, f"{path}[{i}]") for i, item in enumerate(node.value))
        return tuple(v for v in values if v is not None)

    def texts(self, node: Node, path: str) -> tuple[str, ...]:
        if not isinstance(node, SequenceNode):
            self.add(node, path, f"got {describe_node(node)} (expected a list of text, e.g. [a, b] or '- a' lines)")
            return ()
        values = (self.text(item, f"{path}[{i}]") for i, item in enumerate(node.value))
        return tuple(v for v in values if v is not None)

    def ident(self, node: Node, path: str) -> str | None:
        value = self.text(node, path)
        if value is not None and not ID_RE.match(value):
            self.add(
                node,
                path,
                f"'{shorten(value)}' is not a valid id (expected lower-case a-z, 0-9, '-' or '_', "
                f"at most 64 characters, e.g. '{id_from(value, 'x')}')",
            )
            return None
        return value

    def refs_to(self, node: Node, path: str, kind: str) -> tuple[str, ...]:
        if not isinstance(node, SequenceNode):
            self.add(node, path, f"got {describe_node(node)} (expected a list of {kind} ids)")
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
        self.add(node, path, f"'{shorten(value)}' is not allowed (expected one of: {', '.join(options)})")
        return None

    def integer(self, node: Node, path: str) -> int | None:
        if isinstance(node, ScalarNode) and node.tag == YAML_TAG + "int":
            value = construct_scalar(node)
            if isinstance(value, int) and abs(value) < MAX_INT:
                return value
            self.add(node, path, f"'{shorten(node.value)}' is not a whole number metagen can read "
                     f"(expected digits, at most {len(str(MAX_INT))} of them)")
            return None
        self.add(node, path, f"got {describe_node(node)} (expected a whole number)")
        return None

    def boolean(self, node: Node, path: str) -> bool | None:
        if isinstance(node, ScalarNode) and node.tag == YAML_TAG + "bool":
            return node.value.lower() in ("true", "yes", "on", "y")
        self.add(node, path, f"got {describe_node(node)} (expected true or false)")
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

    def items(self, node: Node, path: str, read, entry: str = "id") -> list:
        """The entries of a list of mappings, each read by `read`; `entry` is the key each one starts with."""
        if not isinstance(node, SequenceNode):
            self.add(node, path, f"got {describe_node(node)} (expected a list of '- {entry}: ...' entries)")
            return []
        return [x for x in (read(item, f"{path}[{i}]") for i, item in enumerate(node.value)) if x is not None]

    @staticmethod
    def opt(m: dict, path: str, key: str, read, default=None):
        if key not in m:
            return default
        value = read(m[key], join_path(path, key))
        return default if value is None else value


def join_path(path: str, key: str) -> str:
    """A field path one key deeper: "style" + "tense" -> "style.tense"."""
    return f"{path}.{key}" if path else key
