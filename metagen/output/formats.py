"""The five output formats of a piece: Markdown with YAML front matter, text, JSON, Yarn Spinner 2, ink.

render(piece, fmt) gives a file's contents; Yarn and ink hold dialogue only, with their markup
escaped and the front matter kept in `// metagen: key: <json>` comment lines.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from metagen.errors import ConfigError
from metagen.output.paths import named_file_format, sanitize_component
from metagen.output.piece import Piece
from metagen.text import format_turns, json_text

FORMATS = ("md", "txt", "json", "yarn", "ink")
DIALOGUE_ONLY_FORMATS = ("yarn", "ink")
FORMAT_ALIASES = {"markdown": "md", "text": "txt"}  # names people type for a format


def format_name(name: str) -> str:
    """A format as typed (MD, Markdown, Text, " json") as its name in FORMATS; any other text as given,
    for check_format to refuse. `-o x.MD` was a Markdown file while `--format MD` was refused."""
    key = name.strip().lower()
    key = FORMAT_ALIASES.get(key, key)
    return key if key in FORMATS else name


def check_format(kind: str, fmt: str) -> None:
    """Raise ConfigError for an unknown format or one that cannot hold this kind of piece."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown output format {fmt!r}", hint=f"choose one of {', '.join(FORMATS)}")
    if fmt in DIALOGUE_ONLY_FORMATS and kind != "dialogue":
        raise ConfigError(
            f"the {fmt} format holds dialogue only, not a {kind}",
            hint="use md, txt or json for stories and scenes",
        )


def single_file_format(kind: str, out, fmt: str | None, count: int, typed: str | None = None) -> str | None:
    """The format of the one file `--out` names (`-o story.md`; see named_file_format), checked
    against --format and --count; None when --out names a folder."""
    named = named_file_format(out, typed)
    if named is None:
        return None
    if count > 1:
        raise ConfigError(f"--out {out} names one file, but --count {count} makes {count} pieces",
                          hint=f"give --out a folder, such as {Path(out).with_suffix('')}, to get one file a piece "
                          f"as {Path(out).with_suffix('')}/<world>/<kind>/<subject>-<seed>.{named}, or leave --count out")
    fmt = None if fmt is None else format_name(fmt)
    if fmt is not None and fmt != named:
        raise ConfigError(f"--format {fmt} does not match --out {out}, which names a .{named} file",
                          hint=f"give --out {Path(out).with_suffix('.' + fmt)}, or leave --format out")
    check_format(kind, named)
    return named


def _one_line(s: str) -> str:
    """Join a string's lines with spaces (every line break Python knows, not only \\n)."""
    return " ".join(part.strip() for part in str(s).splitlines()).strip()


def _speaker_label(turn: dict) -> str:
    """A speaker name safe at the start of a Yarn or ink line: no markup or colon, no leading dash."""
    for candidate in (turn.get("speaker"), turn.get("speaker_id")):
        label = re.sub(r"[^\w .'-]", "", _one_line(candidate or ""))
        label = re.sub(r"\s+", " ", label).strip(" .-'")
        if label:
            return label
    return "Speaker"


def _dialogue_lines(piece: Piece) -> list[tuple[str, str]]:
    return [(_speaker_label(t), _one_line(t.get("line", ""))) for t in piece.turns]


def node_name(piece: Piece) -> str:
    """A Yarn node / ink knot name: ASCII letters, digits and underscores, starting with a letter."""
    base = re.sub(r"[^A-Za-z0-9]+", "_", sanitize_component(piece.subject)).strip("_")
    if not base[:1].isalpha():
        base = f"d_{base}".rstrip("_")
    seed = f"{piece.seed}" if piece.seed >= 0 else f"m{-piece.seed}"
    return f"{base}_{seed}"  # the seed keeps nodes from one subject distinct in a project


_YARN_SPECIAL = re.compile(r"([\\#{}<>\[\]/])")


def escape_yarn(text: str) -> str:
    """Escape Yarn Spinner 2's markup, expression, command, hashtag and comment characters."""
    return _YARN_SPECIAL.sub(r"\\\1", _one_line(text))


_INK_KEYWORD_START = re.compile(r"^(INCLUDE|CONST|VAR|LIST|EXTERNAL|TODO|function|return|temp|else)")


def escape_ink(text: str, *, line_start: bool = False) -> str:
    """Escape ink's logic, tag, choice, divert, glue and comment syntax with backslashes."""
    s = _one_line(text)
    out = []
    for i, c in enumerate(s):
        nxt = s[i + 1] if i + 1 < len(s) else ""
        # Every / and * is escaped because ink strips // and /* comments in a pre-pass
        # that knows nothing of escapes; `\/\*` leaves neither pair behind.
        if c in "\\#{}[]|/*<~" or (c == "-" and nxt == ">"):
            out.append("\\" + c)
        elif i == 0 and line_start and c in "+-=(":
            out.append("\\" + c)
        else:
            out.append(c)
    result = "".join(out)
    if line_start and _INK_KEYWORD_START.match(result):
        result = "\\" + result
    return result


def _metadata_comments(piece: Piece) -> list[str]:
    """`// metagen: key: <json>` lines for the fields of the front matter, one line each."""
    lines = []
    for key, value in piece.front_matter().items():
        if key == "turns":
            continue
        lines.append(f"// metagen: {key}: {json_text(value)}")  # one line, whatever the value holds
    return lines


def _render_yarn(piece: Piece) -> str:
    name = node_name(piece)
    lines = [f"title: {name}", "tags: metagen", "---", *_metadata_comments(piece)]
    lines += [f"{speaker}: {escape_yarn(line)}" for speaker, line in _dialogue_lines(piece)]
    lines.append("===")
    return "\n".join(lines) + "\n"


def _render_ink(piece: Piece) -> str:
    name = node_name(piece)
    lines = [*_metadata_comments(piece), f"-> {name}", "", f"=== {name} ==="]
    for speaker, line in _dialogue_lines(piece):
        lines.append(f"{escape_ink(speaker, line_start=True)}: {escape_ink(line)}")
    lines.append("-> END")
    return "\n".join(lines) + "\n"


def _md_name(name: str) -> str:
    return re.sub(r"([\\*_`\[\]])", r"\\\1", name)


def _body_text(piece: Piece) -> str:
    if piece.text or piece.kind != "dialogue":
        return piece.text
    return format_turns(piece.turns)


class _FrontMatterDumper(yaml.SafeDumper):
    """safe_dump, except that strings holding NEL, LS or PS are double-quoted.

    With allow_unicode PyYAML writes those three raw in plain or single-quoted scalars,
    where the reader takes them for line breaks and folds them to spaces.
    """


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = '"' if any(c in data for c in "\x85\u2028\u2029") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_FrontMatterDumper.add_representer(str, _represent_str)


class _OneLine(dict):
    """A mapping the front matter writes on one line: a critic's verdict on one candidate."""


class _OneLineList(list):
    """A list the front matter writes on one line: a sentence the editor struck, with why."""


_FrontMatterDumper.add_representer(
    _OneLine, lambda dumper, data: dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True))
_FrontMatterDumper.add_representer(
    _OneLineList, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True))
_ONE_LINE_ITEMS = {"candidates": _OneLine, "struck": _OneLineList}  # critic record lists, an item a line


def _one_line_items(value):
    """value with each item of its `candidates` and `struck` lists made one line: a story's critic
    record took ~20 lines a candidate (16 candidates: ~380 lines before the story), now one each."""
    if isinstance(value, dict):
        return {k: [_ONE_LINE_ITEMS[k](item) if isinstance(item, (dict, list)) else item for item in v]
                if k in _ONE_LINE_ITEMS and isinstance(v, list) else _one_line_items(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_one_line_items(v) for v in value]
    return value


def _dump_front_matter(front: dict) -> str:
    """The YAML front matter block, one top-level field after another. decoded_with is one line of JSON
    (YAML reads it as a flow sequence): a line that `diff -I` can pass over when two runs split the
    same scenes into other batches (docs/batch.md). The critic's candidates and struck sentences are
    one line each."""
    parts = []
    for key, value in front.items():
        if key == "decoded_with":
            parts.append("decoded_with: " + json_text(value) + "\n")
        elif key == "critic":
            parts.append(_yaml({key: _one_line_items(value)}, width=1 << 16))  # a verdict is never folded
        else:
            parts.append(_yaml({key: value}))
    return "---\n" + "".join(parts) + "---\n\n"


def _yaml(fields: dict, width: int = 80) -> str:
    return yaml.dump(fields, Dumper=_FrontMatterDumper, allow_unicode=True, sort_keys=False, width=width)


def render(piece: Piece, fmt: str) -> str:
    """The file contents of piece in fmt (md, txt, json, yarn or ink)."""
    check_format(piece.kind, fmt)
    if fmt == "md":
        if piece.kind == "dialogue" and piece.turns:
            # A blank line between turns keeps each one its own Markdown paragraph.
            body = "\n\n".join(
                f"**{_md_name(_one_line(t.get('speaker', '')))}:** {t.get('line', '')}" for t in piece.turns
            )
        else:
            body = piece.text
        # Exactly one newline is appended, and read_piece_file takes exactly one off.
        return _dump_front_matter(piece.front_matter()) + body + "\n"
    if fmt == "txt":
        body = _body_text(piece)
        return body if body.endswith("\n") else body + "\n"
    if fmt == "json":
        return json.dumps({**piece.front_matter(), "text": piece.text}, ensure_ascii=False, indent=2) + "\n"
    if fmt == "yarn":
        return _render_yarn(piece)
    return _render_ink(piece)
