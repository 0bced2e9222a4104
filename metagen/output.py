"""Output files: what one generated piece records, where it goes, how it is written.

A piece becomes `<out>/<world>/<kind>/<subject>-<seed>.<ext>`, every part sanitized, in
one of five formats (Markdown with YAML front matter, text, JSON, Yarn Spinner 2, ink).
Writes are atomic and never clobber: a temp file in the same folder, fsync, then
os.link (fails if the name exists, even when processes race) or os.replace.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import numbers
import os
import re
import secrets
import stat
import threading
import unicodedata
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from metagen import __version__
from metagen.errors import ConfigError, OutputError, OutputExistsError, OutputLinkError
from metagen.files import NotRegularFile, read_regular
from metagen.prompts import KINDS
from metagen.text import TRANSLIT, format_turns, slugify
from metagen.world import YamlRefused, compose_yaml, construct_plain

log = logging.getLogger(__name__)

FINISH_REASONS = ("eos", "stop", "length")
FORMATS = ("md", "txt", "json", "yarn", "ink")
DIALOGUE_ONLY_FORMATS = ("yarn", "ink")
MAX_COMPONENT = 80  # characters in one sanitized path part
MAX_PIECE_BYTES = 64 * 2**20  # a piece file read back (replay, resume) is never larger


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Piece:
    """One generated story, scene or dialogue and everything needed to reproduce it."""

    kind: str  # "story" | "scene" | "dialogue"
    world_id: str  # the world's id, from its file
    world_hash: str  # sha256 of the world files, so a changed world is noticed
    world_files: list  # the world files read, as str paths
    request: dict  # what was asked for (subject, cast, place, ...)
    model: dict  # name, sha256, path
    settings: dict  # every effective decoding setting, after the merge
    seed: int  # the seed the generator was started with
    prompt_tokens: int  # tokens in the prompt
    output_tokens: int  # tokens generated
    lore_used: list  # lore entries that fitted in the prompt
    lore_left_out: list  # lore entries dropped for the token budget
    finish_reason: str  # "eos" | "stop" | "length"
    seconds: float  # wall time of the generation
    text: str  # the generated text (for dialogue, the turns as "Name: line" lines)
    turns: list = field(default_factory=list)  # dialogue only: {"speaker", "speaker_id", "line"}
    plan: list = field(default_factory=list)  # story only: the beats written, one {"beat", "text"} each
    critic: dict = field(default_factory=dict)  # with candidates: each unit's scores and the one kept
    subject: str = ""  # what the piece is about; names the file
    metagen_version: str = __version__  # the metagen that wrote it
    created: str = field(default_factory=_now_iso)  # ISO 8601 timestamp, UTC

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.finish_reason not in FINISH_REASONS:
            raise ValueError(
                f"finish_reason must be one of {', '.join(FINISH_REASONS)}, got {self.finish_reason!r}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")

    def front_matter(self) -> dict:
        """Every field but text, in field order, as plain YAML/JSON values; turns only for dialogue."""
        out = {}
        for f in fields(self):
            if f.name == "text" or (f.name == "turns" and self.kind != "dialogue"):
                continue
            if f.name in ("plan", "critic") and not getattr(self, f.name):
                continue
            out[f.name] = _plain(getattr(self, f.name))
        return out


def _plain(value: Any) -> Any:
    """Turn tuples, paths, dates and number-likes into values safe_dump and json both accept."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(v) for v in value), key=repr)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    # Anything else (a Path, an enum) is recorded by its text rather than failing after
    # the generation has already been paid for.
    return str(value)


# ---------------------------------------------------------------------------- paths

_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{i}" for p in ("COM", "LPT") for i in range(1, 10)}


def _digest(s: str) -> str:
    return hashlib.sha256(s.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def sanitize_component(s: str) -> str:
    """One safe file-name part: [A-Za-z0-9._-], no leading dot or dash, at most 80 chars.

    Non-ASCII letters are folded (NFKD, "Café" -> "Cafe"); where letters cannot be folded
    ("林小雨") a short hash of the original keeps distinct names distinct. Never empty.
    """
    s = str(s)
    folded = unicodedata.normalize("NFKD", s.translate(TRANSLIT))
    lost = any(ord(c) > 127 and not unicodedata.combining(c) for c in folded)
    out = folded.encode("ascii", "ignore").decode("ascii")
    out = re.sub(r"[^A-Za-z0-9._-]+", "-", out)
    out = re.sub(r"-{2,}", "-", out)
    out = re.sub(r"\.{2,}", ".", out)
    out = out.strip(".-")
    if lost or len(out) > MAX_COMPONENT:
        head = out[: MAX_COMPONENT - 9].rstrip(".-") or "untitled"
        out = f"{head}-{_digest(s)}"
    if not out:
        return "untitled"
    if out.split(".")[0].upper() in _WINDOWS_RESERVED:
        out = "_" + out
    return out


def _spelt_out(request: dict) -> str:
    """The subject that names every part of request a subject names (cast, place, premise or
    time), nothing left out or cut; a subject equal to it identifies its request by itself."""
    cast = [str(c) for c in request.get("characters") or ()]
    place = request.get("location")
    if request.get("kind") == "scene":
        parts = [str(place or ""), slugify(str(request.get("time") or ""), "", limit=None)]
    elif cast or place:
        parts = ["-".join(cast)] + ([f"at-{place}"] if place else [])
    else:
        return slugify(str(request.get("premise") or ""), "story", limit=None)
    return "-".join(p for p in parts if p) or "untitled"


def request_digest(request: Any) -> str:
    """A short hash of the whole request (its recorded dict, or a Request)."""
    data = _plain(request.to_dict() if hasattr(request, "to_dict") else request)
    return _digest(json.dumps(data, sort_keys=True, ensure_ascii=False))


def request_name(subject: str, request: Any) -> str:
    """The file-name stem of a request: its subject, with a short hash of the whole request
    when the subject leaves part of it out ("a-b-c-and-1-more", a premise's first words, a
    cut at 80 characters), so two requests never share a name."""
    data = request.to_dict() if hasattr(request, "to_dict") else dict(request)
    if subject == _spelt_out(data):
        return subject
    head = subject[: MAX_COMPONENT - 9].rstrip(".-") or "untitled"
    return f"{head}-{request_digest(data)}"


def output_path(
    out_dir: str | os.PathLike, world_id: str, kind: str, subject: str, seed: int, ext: str,
    *, request: Any = None,
) -> Path:
    """`<out>/<world>/<kind>/<subject>-<seed>.<ext>` from sanitized parts, checked to stay inside out.

    Args:
        request: the request (or its recorded dict); when given, an abbreviated subject gets
            a short hash of the whole request (see request_name).
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    ext = re.sub(r"[^a-z0-9]", "", str(ext).lower()) or "txt"
    stem = subject if request is None else request_name(subject, request)
    name = f"{sanitize_component(stem)}-{seed}.{ext}"
    out = Path(out_dir)
    path = out / sanitize_component(world_id) / sanitize_component(kind) / name
    root = out.resolve()
    resolved = path.resolve()
    # Sanitized parts cannot climb out; this also catches a symlinked folder that does.
    # write_atomic checks again, without following links, as it writes.
    if root not in resolved.parents:
        raise OutputLinkError(
            f"{path} resolves outside the output folder {out}", hint=f"it resolves to {resolved}"
        )
    return path


# -------------------------------------------------------------------------- formats


def check_format(kind: str, fmt: str) -> None:
    """Raise ConfigError for an unknown format or one that cannot hold this kind of piece."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown output format {fmt!r}", hint=f"choose one of {', '.join(FORMATS)}")
    if fmt in DIALOGUE_ONLY_FORMATS and kind != "dialogue":
        raise ConfigError(
            f"the {fmt} format holds dialogue only, not a {kind}",
            hint="use md, txt or json for stories and scenes",
        )


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
        encoded = json.dumps(value, ensure_ascii=False)
        for sep in ("\u2028", "\u2029", "\x85"):  # line breaks to some readers; keep one line
            encoded = encoded.replace(sep, f"\\u{ord(sep):04x}")
        lines.append(f"// metagen: {key}: {encoded}")
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


def _dump_front_matter(front: dict) -> str:
    body = yaml.dump(front, Dumper=_FrontMatterDumper, allow_unicode=True, sort_keys=False)
    return "---\n" + body + "---\n\n"


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


# -------------------------------------------------------------------------- reading


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
    "text": (str,), "turns": (list,), "subject": (str,), "metagen_version": (str,),
}  # fmt: skip


def _check_record(path: Path, data: dict) -> None:
    """ConfigError naming the first field whose type is wrong; only the type is named, never the value."""
    for key, kinds in _RECORD_TYPES.items():
        value = data.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, kinds):
            want = " or ".join({"str": "text", "dict": "a mapping", "list": "a list", "int": "a whole number",
                                "float": "a number"}[k.__name__] for k in kinds)
            raise ConfigError(f"{path} is not a metagen file ({key} must be {want}, got {type(value).__name__})",
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
        raise OutputError(f"cannot read {path}: {_reason(error)}") from None
    if len(data) > MAX_PIECE_BYTES:
        raise ConfigError(f"{path} is not a metagen file (over {MAX_PIECE_BYTES // 2**20} MiB)")
    try:
        return data.decode("utf-8")  # \r kept as written
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a metagen file (not UTF-8 text)") from None


def read_piece_file(path: str | os.PathLike) -> dict:
    """A metagen .md or .json file as its front matter plus "text"; ConfigError if it is not one."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".md", ".json"):
        raise ConfigError(f"{path} is not a metagen file", hint="metagen reads back .md and .json outputs")
    text = _read_text(path)
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            reason = f"invalid JSON: {error.msg}, line {error.lineno}"
            raise ConfigError(f"{path} is not a metagen file ({reason})") from None
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
                data[key] = json.loads(value)
            except json.JSONDecodeError:
                continue
    return data


def is_complete(path: str | os.PathLike) -> bool:
    """Whether path holds a finished piece, so a resumed run may skip it.

    md and json must parse and record a finish_reason and text; yarn and ink must carry
    their `// metagen:` finish_reason and closing line. A txt file has no metadata and
    counts when it ends with the newline render() always writes, even around an empty
    text: writes here are atomic, so a file at its final name is whole.
    """
    path = Path(path)
    if path.name.startswith(".") and path.name.endswith(".tmp"):
        return False
    if not path.is_file():
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


def recorded_difference(path: str | os.PathLike, expected: dict) -> str | None:
    """The first field of expected that the piece at path records otherwise (or not at all);
    None when all agree. A txt file records nothing, so it cannot differ."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".md", ".json"):
        data = read_piece_file(path)
    elif suffix in (".yarn", ".ink"):
        data = _comment_metadata(_read_text(path))
    else:
        return None
    return next((key for key, want in expected.items() if _plain(data.get(key)) != _plain(want)), None)


# --------------------------------------------------------------------------- writing


def _reason(error: OSError) -> str:
    """The OS's words for error, also for a bare OSError(errno.ENOSPC)."""
    if error.strerror:
        return error.strerror
    code = error.errno
    if code is None and len(error.args) == 1 and isinstance(error.args[0], int):
        code = error.args[0]
    if code:
        return os.strerror(code)
    return str(error) or type(error).__name__


def _remove(folder_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=folder_fd)
    except FileNotFoundError:
        pass
    except OSError as error:  # pragma: no cover - the folder vanished or turned read-only
        log.warning("could not remove temp file %s: %s", name, _reason(error))


def _open_temp(folder_fd: int, name: str) -> tuple[int, str]:
    """Create `.<name>.<pid>.<thread>.<random>.tmp` in the open folder with O_EXCL; the umask applies."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = f".{name[:100]}.{os.getpid()}.{threading.get_ident()}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, flags, 0o666, dir_fd=folder_fd), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temp file name", name)  # pragma: no cover


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_folder(folder_fd: int) -> None:
    """Make the new name itself durable; best effort (not every file system can sync a folder)."""
    try:
        os.fsync(folder_fd)
    except OSError:
        pass


def _no_hard_links(error: OSError) -> bool:
    codes = {errno.EPERM, errno.ENOSYS, errno.EMLINK}
    codes |= {getattr(errno, name) for name in ("ENOTSUP", "EOPNOTSUPP") if hasattr(errno, name)}
    return error.errno in codes


def _exists_error(path: Path) -> OutputExistsError:
    return OutputExistsError(f"{path} exists", hint="pass --overwrite to replace it, or choose another --out")


def _publish_no_clobber(folder_fd: int, tmp: str, name: str) -> None:
    """Give tmp the name unless it exists; atomic even when processes race."""
    try:
        os.link(tmp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
        return
    except OSError as error:
        if not _no_hard_links(error):
            raise
    # A file system without hard links (FAT, some network mounts): claim the name with
    # O_EXCL, then replace the empty claim with the full file.
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666, dir_fd=folder_fd)
    os.close(fd)
    try:
        os.replace(tmp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    except BaseException:
        _remove(folder_fd, name)
        raise


_FOLDER_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_LINK_HINT = "metagen never writes through a link inside the output folder; remove it or choose another --out"


WALK_TRIES = 3  # walks down the output folder before a vanishing folder is an error


class OutputFolder:
    """An output folder, pinned the first time it is opened.

    Every write opens the folder again and walks down to the file's folder one name at a
    time with O_NOFOLLOW, at the moment of writing: a folder swapped for a symbolic link
    during a run is refused, and so is the output folder itself once it is replaced.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._identity: tuple[int, int] | None = None

    def pin(self) -> None:
        """Remember which folder the output folder is now, if it exists."""
        try:
            info = os.stat(self.path)
        except OSError:
            return
        if stat.S_ISDIR(info.st_mode):
            self._identity = (info.st_dev, info.st_ino)

    def open_folder_of(self, path: Path) -> int:
        """A descriptor of path's folder, made and opened from the output folder down; links refused.

        A folder that vanishes during the walk (another process moved it) is made again: the
        walk is tried up to WALK_TRIES times before the error is reported.
        """
        for attempt in range(WALK_TRIES):
            try:
                return self._walk(path)
            except _Vanished as vanished:
                if attempt == WALK_TRIES - 1:
                    raise OutputError(f"cannot write {path}: {vanished.shown} kept vanishing while it was "
                                      "opened (another process is moving the output folders)") from None
        raise AssertionError("unreachable")

    def _walk(self, path: Path) -> int:
        try:
            parts = path.parent.relative_to(self.path).parts
        except ValueError:
            raise OutputLinkError(f"cannot write {path}: it is not inside the output folder {self.path}") from None
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, _FOLDER_FLAGS)
        except (FileExistsError, NotADirectoryError):
            if self.path.is_symlink() or self.path.is_dir():  # swapped while we looked
                raise OutputLinkError(f"cannot write {path}: the output folder {self.path} was replaced during the run",
                                      hint=_LINK_HINT) from None
            raise OutputError(f"cannot write {path}: a file stands where a folder is needed") from None
        except OSError as error:
            raise OutputError(f"cannot write {path}: {_reason(error)}") from None
        try:
            info = os.fstat(fd)
            if self._identity is None:
                self._identity = (info.st_dev, info.st_ino)
            elif (info.st_dev, info.st_ino) != self._identity:
                raise OutputLinkError(f"cannot write {path}: the output folder {self.path} was replaced during the run",
                                      hint=_LINK_HINT)
            walked = self.path
            for part in parts:
                walked = walked / part
                child = _open_child(fd, part, walked, path)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd


def _open_child(folder_fd: int, name: str, shown: Path, target: Path) -> int:
    """Make (if missing) and open the folder name inside folder_fd, refusing a link or a file."""
    try:
        try:
            os.mkdir(name, 0o777, dir_fd=folder_fd)
        except FileExistsError:
            pass
        return os.open(name, _FOLDER_FLAGS | os.O_NOFOLLOW, dir_fd=folder_fd)
    except OSError as error:
        try:
            mode = os.stat(name, dir_fd=folder_fd, follow_symlinks=False).st_mode
        except OSError:
            mode = 0
        if stat.S_ISLNK(mode):
            raise OutputLinkError(f"cannot write {target}: {shown} is a symbolic link", hint=_LINK_HINT) from None
        if stat.S_ISDIR(mode) and error.errno in (errno.ELOOP, errno.ENOTDIR):
            # O_NOFOLLOW met a link that another process has already swapped back for a folder
            raise OutputLinkError(f"cannot write {target}: {shown} was replaced by a symbolic link during the run",
                                  hint=_LINK_HINT) from None
        if mode and not stat.S_ISDIR(mode):
            raise OutputError(f"cannot write {target}: a file stands where a folder is needed") from None
        if error.errno == errno.ENOENT:
            raise _Vanished(shown) from None
        raise OutputError(f"cannot write {target}: {_reason(error)}") from None


class _Vanished(Exception):
    """A folder made or seen a moment ago was gone when opened."""

    def __init__(self, shown: Path):
        super().__init__(str(shown))
        self.shown = shown


def write_atomic(path: str | os.PathLike, data: str, *, overwrite: bool, root: OutputFolder | None = None) -> Path:
    """Write data (UTF-8) to path all at once; OutputExistsError if it exists and not overwrite.

    The file's folder is opened from root (default: the file's own folder) down without
    following links, and the file is made inside that open folder.
    """
    path = Path(path)
    folder_fd = (root or OutputFolder(path.parent)).open_folder_of(path)
    try:
        _write_in(folder_fd, path, data.encode("utf-8"), overwrite)
    finally:
        os.close(folder_fd)
    return path


def _write_in(folder_fd: int, path: Path, encoded: bytes, overwrite: bool) -> None:
    name = path.name
    try:
        is_folder = stat.S_ISDIR(os.stat(name, dir_fd=folder_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        is_folder = False
    except OSError as error:
        raise OutputError(f"cannot write {path}: {_reason(error)}") from None
    if is_folder:
        raise OutputError(f"cannot write {path}: it is a folder")
    try:
        fd, tmp = _open_temp(folder_fd, name)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {_reason(error)}") from None
    try:
        try:
            _write_all(fd, encoded)
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            # rename() replaces a link at the name itself and never writes through it.
            os.replace(tmp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
        else:
            _publish_no_clobber(folder_fd, tmp, name)
            _remove(folder_fd, tmp)
    except FileExistsError:
        _remove(folder_fd, tmp)
        raise _exists_error(path) from None
    except OSError as error:
        _remove(folder_fd, tmp)
        raise OutputError(f"cannot write {path}: {_reason(error)}") from None
    except BaseException:  # Ctrl-C or a bug mid-write: still leave no temp file behind
        _remove(folder_fd, tmp)
        raise
    _fsync_folder(folder_fd)
    log.debug("wrote %s (%d bytes)", path, len(encoded))


def check_writable(out_dir: str | os.PathLike) -> None:
    """Fail early, before generating, if files cannot be made in out_dir (or where it would be made)."""
    out = Path(out_dir)
    probe_dir = out  # the folder itself, or the nearest parent that exists
    try:
        if out.exists() and not out.is_dir():
            raise OutputError(f"output folder {out} is a file")
        while not probe_dir.exists() and probe_dir.parent != probe_dir:
            probe_dir = probe_dir.parent
        if not probe_dir.is_dir():
            raise OutputError(f"cannot create output folder {out}: {probe_dir} is a file")
        folder_fd = os.open(probe_dir, _FOLDER_FLAGS)
    except OSError as error:
        _raise_unwritable(out, probe_dir, error)
    try:
        fd, tmp = _open_temp(folder_fd, "metagen-probe")
        os.close(fd)
        _remove(folder_fd, tmp)
    except OSError as error:
        _raise_unwritable(out, probe_dir, error)
    finally:
        os.close(folder_fd)


def _raise_unwritable(out: Path, probe_dir: Path, error: OSError):
    if probe_dir == out:
        raise OutputError(f"cannot write to output folder {out}: {_reason(error)}") from None
    raise OutputError(f"cannot create output folder {out} in {probe_dir}: {_reason(error)}") from None


def check_not_exists(path: str | os.PathLike, overwrite: bool) -> None:
    """Fail early: OutputExistsError if path exists and not overwrite; OutputError if it is a folder."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder")
    if not overwrite and os.path.lexists(path):
        raise _exists_error(path)


def write_piece(piece: Piece, out_dir: str | os.PathLike, fmt: str, *, overwrite: bool) -> Path:
    """Render piece in fmt and write it atomically to its place under out_dir; returns the path."""
    check_format(piece.kind, fmt)
    path = output_path(out_dir, piece.world_id, piece.kind, piece.subject, piece.seed, fmt, request=piece.request)
    return write_atomic(path, render(piece, fmt), overwrite=overwrite, root=OutputFolder(out_dir))
