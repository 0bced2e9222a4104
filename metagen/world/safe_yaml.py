"""Safe, bounded YAML: composed nodes with their marks, plain data, readable refusals.

A loader that keeps each node's mark, refuses object tags and caps alias uses and the
expanded node count (so an alias bomb fails fast); the jobs and plan files use it too.
"""

from __future__ import annotations

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from metagen.files import lone_surrogate
from metagen.text import shorten

MAX_ALIASES = 100  # `*name` uses per file
MAX_NODES = 50_000  # nodes per file, aliases expanded (pure-Python YAML parses ~15k nodes/s)
MAX_DEPTH = 100  # lists and mappings inside each other, when YAML is built into plain data

YAML_TAG = "tag:yaml.org,2002:"
_PLAIN_TAGS = {YAML_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp", "seq", "map", "merge")}


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

    BOMB = f"aliases expand to more than {MAX_NODES} nodes here (an alias bomb?); write the values out"

    def __init__(self, stream):
        super().__init__(stream)
        self.alias_uses = 0
        self.composed = 0  # distinct nodes, so a huge flat list stops early too
        self.copied = 0  # nodes copied for alias uses
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
                shown = event.tag.replace(YAML_TAG, "!!")
                raise YamlRefused(
                    event.start_mark,
                    f"YAML tag '{shown}' is not allowed (metagen's YAML files hold only text, numbers, "
                    "true/false, lists and mappings; remove the tag)",
                )
        node = super().compose_node(parent, index)
        if isinstance(node, ScalarNode) and (code := lone_surrogate(node.value)) is not None:
            # "\ud800" in double quotes: YAML takes it, then no tokenizer or file can encode it
            raise YamlRefused(node.start_mark, f"\\u{code:04x} is half of a UTF-16 surrogate pair, not a character "
                                               "(write the character itself, or \\U and its eight hex digits)")
        if isinstance(event, yaml.AliasEvent):
            if id(node) not in self.sizes:
                message = "an alias refers to the node that contains it (recursive data is not allowed)"
                raise YamlRefused(event.start_mark, message)
            # Each use gets its own copy, marked where `*name` stands: a duplicate id made with an alias
            # is reported at its use, not at the anchor. A copy that would take the node around it past
            # MAX_NODES is not made: that node is refused where it starts, as it would be once whole.
            size = self.sizes[id(node)]
            if parent is not None and 1 + self._size_so_far(parent, index) + size > MAX_NODES:
                raise YamlRefused(parent.start_mark, self.BOMB)
            self.copied += size
            if self.copied > 4 * MAX_NODES:  # nested nodes, each below the limit, copying on
                raise YamlRefused(event.start_mark, self.BOMB)
            copy = _placed(node, event.start_mark, event.end_mark)
            self.sizes[id(copy)] = size
            return copy
        if isinstance(node, SequenceNode):
            children = node.value
        elif isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        size = 1 + sum(self.sizes[id(c)] for c in children)
        if size > MAX_NODES:
            raise YamlRefused(node.start_mark, self.BOMB)
        self.sizes[id(node)] = size
        return node

    def _size_so_far(self, parent: Node, index) -> int:
        """The expanded size of what parent holds so far: its items, or its pairs and the key just read."""
        if isinstance(parent, SequenceNode):
            return sum(self.sizes[id(n)] for n in parent.value)
        key = self.sizes[id(index)] if isinstance(index, Node) else 0  # composing a value: its key is read
        return key + sum(self.sizes[id(k)] + self.sizes[id(v)] for k, v in parent.value)


def _placed(node: Node, start, end) -> Node:
    """A copy of node and everything in it, every mark set to where an alias uses it."""
    if isinstance(node, ScalarNode):
        return ScalarNode(node.tag, node.value, start, end, style=node.style)
    if isinstance(node, SequenceNode):
        return SequenceNode(node.tag, [_placed(n, start, end) for n in node.value], start, end, node.flow_style)
    pairs = [(_placed(k, start, end), _placed(v, start, end)) for k, v in node.value]
    return MappingNode(node.tag, pairs, start, end, node.flow_style)


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
        mark, message = _yaml_problem(error, what)
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
                raise YamlRefused(key.start_mark, f"duplicate key '{shorten(key.value)}' (keep one)")
            out[key.value] = construct_plain(value, depth + 1)
        return out
    if node.tag in (YAML_TAG + "int", YAML_TAG + "float", YAML_TAG + "bool"):
        value = construct_scalar(node)
        if value is None:
            raise YamlRefused(node.start_mark, f"'{shorten(node.value)}' is not a valid {node.tag[len(YAML_TAG):]}")
        return value
    return None if is_null(node) else node.value


def construct_scalar(node: ScalarNode):
    """The int, float or bool a scalar's tag names; None when its text is not one of those
    (`!!int abc`, `0b_`, `0x_`, more digits than Python converts)."""
    try:
        return yaml.constructor.SafeConstructor().construct_object(node)
    except (ValueError, KeyError, IndexError, TypeError, OverflowError, yaml.YAMLError):
        return None


def _yaml_problem(error: yaml.MarkedYAMLError, what: str) -> tuple[object, str]:
    """The mark and a readable sentence (with what to do) for a YAML syntax error in `what`
    ("a world file", "a jobs file")."""
    problem = error.problem or ""
    context = error.context or ""
    mark = error.problem_mark or error.context_mark
    start = error.context_mark or mark
    if "\\t" in problem or "\t" in problem:
        return mark, _tab_problem(mark)
    if "quoted scalar" in context:
        return start, "a quoted string is never closed (close the quote that starts here)"
    if "undefined alias" in problem:
        return mark, f"{problem} (define '&name' before using '*name')"
    if "single document" in context:
        one = "one world per file" if what == "a world file" else f"{what} is one document"
        return error.problem_mark, f"a second document ({one}; remove the extra '---')"
    if "flow" in context:
        return start, f"a [list] or {{mapping}} that starts here is never closed ({problem})"
    sentence = f"{context}, {problem}" if context else problem
    return mark, f"{sentence} (check the indentation and quoting around here)"


def _tab_problem(mark) -> str:
    """What a refused tab is: indentation, or a tab after a key's colon (`kind:\tscene`), which
    YAML refuses as well though it indents nothing."""
    buffer, at = getattr(mark, "buffer", None), getattr(mark, "pointer", None)
    if buffer is not None and at is not None:
        before = buffer[max(buffer.rfind("\n", 0, at), buffer.rfind("\r", 0, at)) + 1:at].rstrip(" \t")
        if before.endswith(":"):
            return "a tab after a key's colon is not allowed in YAML (replace it with a space)"
    return "a tab character (indent with spaces, not tabs)"


def describe_node(node: Node) -> str:
    """What a node is, for a message: "a list", "the number 3", "the text 'abc'"."""
    if isinstance(node, SequenceNode):
        return "a list"
    if isinstance(node, MappingNode):
        return "a mapping"
    kind = node.tag.replace(YAML_TAG, "")
    return {
        "int": f"the number {shorten(node.value)}",
        "float": f"the number {shorten(node.value)}",
        "bool": f"the true/false value '{node.value}'",
        "null": "an empty value",
        "timestamp": f"the date {node.value}",
    }.get(kind, f"the text '{shorten(node.value)}'")


def is_null(node: Node) -> bool:
    """Whether a node is YAML's null (an empty value, ~ or null)."""
    return isinstance(node, ScalarNode) and node.tag == YAML_TAG + "null"

