"""Jobs files: the YAML that lists what `metagen batch` writes -> a checked JobsFile of Jobs.

A jobs file gives defaults (world, out, format, seed, settings) and `jobs:`, each job a story, scene
or dialogue request with a count. `load_jobs` checks the whole file before anything is planned: every
problem at once, in line order, as file:line: field: what (unknown keys with "did you mean", a key given
twice, a field the kind does not take, a bad setting at its own line); paths are taken from the file's
folder. docs/batch.md has the format.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from metagen.config import MAX_SEED, GenerationConfig, check_setting
from metagen.errors import ConfigError
from metagen.files import STDIN_NAME, read_input, within_limit
from metagen.output import FORMATS, format_name
from metagen.pipeline import MAX_COUNT
from metagen.prompts import DIALOGUE_ORDERS, KINDS, REQUEST_KINDS
from metagen.request import FREE_TEXT_FIELDS
from metagen.text import blank, did_you_mean, number_shown
from metagen.world import YamlRefused, compose_yaml, construct_plain

MAX_JOBS_BYTES = 4 * 1024 * 1024

_TOP_KEYS = ("world", "out", "format", "seed", "settings", "jobs")
_JOB_KEYS = ("id", "kind", "world", "characters", "location", "premise", "length", "time", "weather", "mood",
             "topic", "start", "turns", "order", "opening", "settings", "count", "seed", "format")
# Request fields each kind accepts (others are an error, so a typo never goes unnoticed): the
# request's own fields that a job may give, and a dialogue's speaker order.
_KIND_FIELDS = {
    kind: tuple(f.name for f in dataclasses.fields(cls) if f.name in _JOB_KEYS)
    + (("order",) if kind == "dialogue" else ())
    for kind, cls in REQUEST_KINDS.items()
}
_KIND_WORDS = ", ".join(KINDS[:-1]) + f" or {KINDS[-1]}"  # "story, scene or dialogue"
_ORDER_WORDS = ", ".join(DIALOGUE_ORDERS[:-1]) + f" or {DIALOGUE_ORDERS[-1]}"  # "likelihood or turns"


@dataclass(frozen=True)
class Job:
    """One entry of `jobs:`, checked; paths resolved against the jobs file."""

    index: int  # 0-based position in jobs:
    id: str  # `id:` or "job-<n>" (1-based)
    kind: str
    world: Path
    fields: dict  # request fields as given (characters as a tuple)
    order: str  # dialogue speaker order
    settings: dict  # the job's own settings (over the file's)
    count: int
    seed: int | None
    format: str | None
    where: str  # "jobs.yaml:12: jobs[3]" for messages


@dataclass(frozen=True)
class JobsFile:
    """A loaded jobs file."""

    path: Path
    world: Path | None  # the default world
    out: Path | None
    format: str | None
    seed: int | None
    settings: dict
    jobs: tuple[Job, ...]
    content_hash: str  # sha256 of the file's bytes

    @property
    def base_seed(self) -> int:
        """`seed:`, else a stable number from the file's content (so reruns and shards agree)."""
        if self.seed is not None:
            return self.seed
        return int(self.content_hash[:16], 16) % MAX_SEED


class Problems:
    """Collects `file:line: field: what` lines; raises one ConfigError with all of them, in line order."""

    def __init__(self, display: str):
        self.display = display
        self.lines: list[tuple[int, str]] = []

    def add(self, node, path: str, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 0
        where = f"{self.display}:{line}" if line else self.display
        self.add_line(line, f"{where}: {path + ': ' if path else ''}{message}")

    def add_line(self, order: int, text: str) -> None:
        """A problem already worded with its file:line (a checked job's `where`); order sorts it."""
        self.lines.append((order, text))

    def raise_if_any(self) -> None:
        lines = [text for _, text in sorted(self.lines, key=lambda item: item[0])]
        if not lines:
            return
        if len(lines) == 1:
            raise ConfigError(lines[0])
        more = "; ".join(lines[1:10]) + ("; ..." if len(lines) > 10 else "")
        raise ConfigError(f"{len(lines)} problems in {self.display}: {lines[0]}", hint=more)


def _construct(problems: Problems, node, path: str):
    """The plain value of node; None (and a problem) for a value no constructor can build."""
    try:
        return construct_plain(node)
    except YamlRefused as error:
        problems.add(node, path, error.message)
        return None


def _mapping_items(problems: Problems, node, path: str) -> list[tuple[str, Any]]:
    """The pairs of a mapping node; a key that is not text, or given twice, is a problem."""
    items: dict[str, tuple] = {}
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            problems.add(key, path, "a key must be a plain name, not a list or mapping")
        elif key.value in items:
            first = items[key.value][0].start_mark.line + 1
            problems.add(key, _join(path, key.value), f"given twice (first at line {first}; keep one)")
        else:
            items[key.value] = (key, value)
    return [(name, value) for name, (_, value) in items.items()]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _where(node) -> str:
    return str(node.start_mark.line + 1)


def load_jobs(path: str | os.PathLike, data: bytes | None = None) -> JobsFile:
    """Read and check a jobs file; one ConfigError lists its problems as file:line: field: what.

    Args:
        data: the file's bytes when they come from elsewhere (standard input: give STDIN_NAME as the
            path, and relative paths in it are taken from the current folder).
    """
    path = Path(path)
    display = str(path)
    if data is None:
        data = read_input(path, MAX_JOBS_BYTES, "a jobs file", ConfigError)
    else:
        within_limit(display, data, MAX_JOBS_BYTES, "a jobs file", ConfigError)
    try:
        root = compose_yaml(data, "a jobs file")
    except YamlRefused as error:
        line = f":{error.mark.line + 1}" if error.mark is not None else ""
        raise ConfigError(f"{display}{line}: {error.message}") from None
    problems = Problems(display)
    if root is None:  # a script's `make-jobs | metagen batch -` whose first command wrote nothing
        held = "standard input held nothing but blanks and comments" if display == STDIN_NAME else \
            "is empty or only comments"
        raise ConfigError(f"{display}: {held}", hint="a jobs file needs jobs:, a list of jobs; see docs/batch.md")
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{display}: the top level must be a mapping with jobs: (see docs/batch.md)")
    top_items = _mapping_items(problems, root, "")
    top = dict(top_items)
    for key, node in top_items:
        if key not in _TOP_KEYS:
            problems.add(node, key, f"unknown key ({did_you_mean(str(key), _TOP_KEYS)})")
    folder = path.parent
    world = _path_value(problems, top.get("world"), "world", folder)
    out = _path_value(problems, top.get("out"), "out", folder)
    fmt = _format_value(problems, top.get("format"), "format")
    seed = _seed_value(problems, top.get("seed"), "seed")
    settings = _settings_value(problems, top.get("settings"), "settings")
    jobs: list[Job] = []
    jobs_node = top.get("jobs")
    if jobs_node is None:
        problems.add(root, "jobs", f"missing (a list of jobs, each with kind: {' | '.join(KINDS)})")
    elif not isinstance(jobs_node, yaml.SequenceNode) or not jobs_node.value:
        problems.add(jobs_node, "jobs", "must be a non-empty list of jobs")
    else:
        ids: dict[str, str] = {}
        for i, node in enumerate(jobs_node.value):
            job = _read_job(problems, node, i, folder, world)
            if job is None:
                continue
            if job.id in ids:
                problems.add(node, f"jobs[{i}].id", f"'{job.id}' is used twice (also {ids[job.id]})")
            ids[job.id] = f"jobs[{i}]"
            jobs.append(job)
    problems.raise_if_any()
    return JobsFile(path=path, world=world, out=out, format=fmt, seed=seed, settings=settings, jobs=tuple(jobs),
                    content_hash=hashlib.sha256(data).hexdigest())


def _scalar(problems, node, path, kinds: tuple[type, ...], what: str):
    if node is None:
        return None
    if isinstance(node, yaml.ScalarNode):
        value = _construct(problems, node, path)
        if value is None:
            return None
        if isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds):
            return value
    problems.add(node, path, f"must be {what}")
    return None


def _path_value(problems, node, path, folder: Path) -> Path | None:
    value = _scalar(problems, node, path, (str,), "a path (text)")
    if value is not None and not value.strip():  # not the default: a job's world: "" had run the file's world
        problems.add(node, path, "is empty (give a path, or leave the key out for its default)")
        return None
    return (folder / value) if value else None


def _format_value(problems, node, path) -> str | None:
    value = _scalar(problems, node, path, (str,), f"one of {', '.join(FORMATS)}")
    value = None if value is None else format_name(value)  # MD, Markdown: as --format takes them
    if value is not None and value not in FORMATS:
        problems.add(node, path, f"'{value}' is not a format ({did_you_mean(value, FORMATS)})")
        return None
    return value


def _seed_value(problems, node, path) -> int | None:
    value = _scalar(problems, node, path, (int,), "a whole number from 0 to 2**63 - 1")
    if value is not None and not 0 <= value < MAX_SEED:
        problems.add(node, path, f"{number_shown(value)} is out of range (0 to 2**63 - 1)")
        return None
    return value


def _settings_value(problems, node, path) -> dict:
    if node is None:
        return {}
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, path, "must be a mapping of setting: value, e.g. temperature: 0.7")
        return {}
    nodes = dict(_mapping_items(problems, node, path))
    # Each value built on its own: a key given twice is one problem (named above, not again by
    # the constructor), and a value no constructor can build is named at its own setting.
    value = {key: _construct(problems, item, f"{path}.{key}") for key, item in nodes.items()}
    known = [f.name for f in dataclasses.fields(GenerationConfig)]
    for key in list(value):
        if key == "seed":
            problems.add(node, f"{path}.seed", "set seeds with seed: at the top or in a job, not in settings")
        elif key not in known:
            problems.add(node, f"{path}.{key}", f"unknown setting ({did_you_mean(str(key), known)})")
        else:
            try:  # a value bad on its own is named here, at its line, not at the line of each job it reaches
                if value[key] is not None:
                    check_setting(key, value[key])
                continue
            except ConfigError as error:
                problems.add(nodes.get(key, node), f"{path}.{key}", error.one_line())
        value.pop(key)
    # Settings that depend on each other are checked when each job's settings are merged
    # (plan_batch), where the whole stack is known: a file-wide min_new_tokens may need a job's
    # max_new_tokens.
    return value


def _read_job(problems: Problems, node, i: int, folder: Path, default_world: Path | None) -> Job | None:
    at = f"jobs[{i}]"
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, at, f"must be a mapping with kind: {' | '.join(KINDS)}")
        return None
    before = len(problems.lines)
    job_items = _mapping_items(problems, node, at)
    items = dict(job_items)
    for key, value in job_items:
        if key not in _JOB_KEYS:
            problems.add(value, f"{at}.{key}", f"unknown key ({did_you_mean(str(key), _JOB_KEYS)})")
    before_kind = len(problems.lines)
    kind = _scalar(problems, items.get("kind"), f"{at}.kind", (str,), _KIND_WORDS)
    if kind is None and "kind" not in items:
        problems.add(node, f"{at}.kind", f"missing ({_KIND_WORDS})")
    elif kind is None and len(problems.lines) == before_kind:  # kind: null, or kind: with nothing: the job was dropped
        problems.add(items["kind"], f"{at}.kind", f"is empty ({_KIND_WORDS})")
    elif kind is not None and kind not in REQUEST_KINDS:
        problems.add(items["kind"], f"{at}.kind", f"'{kind}' is not a kind ({did_you_mean(kind, REQUEST_KINDS)})")
        kind = None
    job_id = _scalar(problems, items.get("id"), f"{at}.id", (str, int), "text")
    if isinstance(job_id, str) and not job_id.strip():  # as world: "", not quietly the default
        problems.add(items["id"], f"{at}.id", f"is empty (give a name, or leave the key out for its default, job-{i + 1})")
    job_id = job_id or f"job-{i + 1}"
    world = _path_value(problems, items.get("world"), f"{at}.world", folder) or default_world
    if world is None:
        problems.add(node, f"{at}.world", "no world: give world: at the top of the file or in the job")
    fields: dict[str, Any] = {}
    for key in ("location", "premise", "length", "time", "weather", "mood", "topic", "start"):
        if key in items:
            fields[key] = _scalar(problems, items[key], f"{at}.{key}", (str,), "text")
            value = fields[key]
            no_topic = key == "topic" and value == ""  # as --topic '': no topic
            if key in FREE_TEXT_FIELDS and isinstance(value, str) and blank(value) and not no_topic:
                # as the flags refuse it: premise: "   " had become the beat "This happens: ."
                problems.add(items[key], f"{at}.{key}", "shows nothing (give text, or leave the key out)")
    if "turns" in items:
        fields["turns"] = _scalar(problems, items["turns"], f"{at}.turns", (int,), "a whole number")
    if "opening" in items:
        fields["opening"] = _scalar(problems, items["opening"], f"{at}.opening", (bool,), "true or false")
    if "characters" in items:
        from metagen.pipeline import split_ids

        value = _construct(problems, items["characters"], f"{at}.characters")
        if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            fields["characters"] = split_ids(value)
        else:
            problems.add(items["characters"], f"{at}.characters", "must be a list of character ids (or 'a, b')")
    order = _scalar(problems, items.get("order"), f"{at}.order", (str,), _ORDER_WORDS) or "likelihood"
    if order not in DIALOGUE_ORDERS:
        problems.add(items["order"], f"{at}.order", f"'{order}' is not an order ({_ORDER_WORDS})")
    if kind is not None:
        for key in fields.keys() | ({"order"} & items.keys()):
            if key not in _KIND_FIELDS[kind]:
                problems.add(items[key], f"{at}.{key}", f"a {kind} has no {key} "
                             f"(a {kind} takes {', '.join(_KIND_FIELDS[kind])})")
    count = _scalar(problems, items.get("count"), f"{at}.count", (int,), "a whole number")
    if count is not None and not 1 <= count <= MAX_COUNT:
        problems.add(items["count"], f"{at}.count", f"{number_shown(count)} is out of range (1 to {MAX_COUNT})")
    seed = _seed_value(problems, items.get("seed"), f"{at}.seed")
    if seed is not None and count is not None and seed + count > MAX_SEED:  # S, S+1, ... never wrap to 0
        problems.add(items["seed"], f"{at}.seed", f"{seed} with count {count} passes the largest seed, 2**63 - 1 "
                     "(give a smaller seed)")
    fmt = _format_value(problems, items.get("format"), f"{at}.format")
    settings = _settings_value(problems, items.get("settings"), f"{at}.settings")
    if len(problems.lines) > before or kind is None or world is None:
        return None
    return Job(index=i, id=str(job_id), kind=kind, world=world, fields={k: v for k, v in fields.items() if v is not None},
               order=order, settings=settings, count=count or 1, seed=seed, format=fmt,
               where=f"{problems.display}:{_where(node)}: {at}")


__all__ = [
    "Job",
    "JobsFile",
    "Problems",
    "load_jobs",
]
