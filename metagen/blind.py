"""Blind A/B comparison for people: the eval's grid answered under two settings, shown in pairs
whose order is drawn from a seed, rated in a sheet, and tallied against a key
(`metagen eval --blind` / `--unblind`, docs/eval.md). The interval on the share preferring B
is Wilson's score interval (E. B. Wilson 1927, "Probable inference, the law of succession,
and statistical inference").
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from metagen import __version__
from metagen.config import GenerationConfig
from metagen.errors import ConfigError
from metagen.files import read_input
from metagen.eval import kind_config, run_eval
from metagen.measure import recorded_request
from metagen.output import write_atomic
from metagen.prompts import resolve_request
from metagen.world import World, YamlRefused, compose_yaml, construct_plain
from metagen.text import kind_of

KEY = "key.json"  # which text is A in each pair: for whoever tallies, not for readers
WORLDS = "worlds"  # a copy of each world's files, so readers can check a text against its world
SHEET = "ratings.csv"
REPORT = "unblind.md"
SHEET_COLUMNS = ("run", "pair", "preferred", "note")  # run: the blind run's id, as key.json records it
CHOICES = ("1", "2", "=")  # Text 1, Text 2, a tie
KEY_FORMAT = 1
Z95 = 1.959964  # the standard normal quantile of a two-sided 95% interval
# key=value items of an inline setting; a comma inside a value ("banned=[a, b]") does not split
_ITEM = re.compile(r",\s*(?=[A-Za-z_][\w-]*\s*=)")


# ----------------------------------------------------------------------------- settings A and B


MAX_SETTINGS_BYTES = 64 * 1024  # a settings file holds a few decoding settings


def load_settings(text: str, flag: str) -> dict[str, Any]:
    """Generation settings from a YAML/JSON file, or inline "key=value,key=value" (each value read as
    a YAML scalar or list), checked as GenerationConfig fields; ConfigError naming the flag."""
    if not text.strip():  # Path("") is ".", which exists: "--a: . is a folder" of a flag given as ""
        raise ConfigError(f"{flag} is empty", hint="give a YAML/JSON file of settings or key=value pairs, e.g. "
                          "candidates=4")
    path = Path(text)
    if os.path.lexists(path):  # a file, however broken (a folder, a device, bad YAML), is read as one
        data = _settings_file(path, flag)
        if not isinstance(data, dict):
            raise ConfigError(f"{flag}: {path} must hold a mapping of settings, got {kind_of(data)}",
                              hint="e.g. {candidates: 4}")
    else:
        data = _inline(text, flag)
    if "seed" in data:
        raise ConfigError(f"{flag}: seed is not a setting to compare", hint="both sides use the seeds of --seed")
    try:
        GenerationConfig.from_dict(data)
    except ConfigError as error:
        raise ConfigError(f"{flag}: {error.message}", hint=error.hint) from None
    return data


def _settings_file(path: Path, flag: str) -> Any:
    """The plain data of a settings file, read as carefully as a world file (no object tags,
    duplicate keys or binary); ConfigError naming the flag and FILE:LINE."""
    try:
        root = compose_yaml(read_input(path, MAX_SETTINGS_BYTES, "a settings file", ConfigError), "a settings file")
        return construct_plain(root) if root is not None else {}
    except ConfigError as error:
        raise ConfigError(f"{flag}: {error.message}", hint=error.hint) from None
    except YamlRefused as error:
        line = f":{error.mark.line + 1}" if error.mark is not None else ""
        raise ConfigError(f"{flag}: {path}{line}: {error.message}") from None


def _inline(text: str, flag: str) -> dict[str, Any]:
    """{"candidates": 4, "temperature": 0.7} from "candidates=4,temperature=0.7"."""
    data: dict[str, Any] = {}
    for item in _ITEM.split(text.strip()):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"{flag} {text!r}: no such file, and {item!r} is not key=value",
                              hint="give a YAML/JSON file or key=value pairs, e.g. candidates=4,temperature=0.7")
        if key.strip() in data:  # the last would win silently, and the sheet would credit the wrong value
            raise ConfigError(f"{flag} {text!r}: {key.strip()} is given twice", hint="give each setting once")
        try:
            data[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"{flag}: cannot read the value of {key.strip()!r}: {value.strip()!r}") from None
    return data


def check_with_worlds(worlds: Sequence[World], kinds: Sequence[str], flags: Mapping[str, Any],
                      settings: Mapping[str, Any], flag: str) -> None:
    """Each world's settings for each kind with `settings` over the flags, checked before the model
    loads (a side's settings may clash with a world's defaults); ConfigError naming the flag."""
    for world in worlds:
        for kind in kinds:
            try:
                kind_config(world, kind, {**flags, **settings})
            except ConfigError as error:
                raise ConfigError(f"{flag}: {error.message} (for {world.id} {kind})", hint=error.hint) from None


def check_different(worlds: Sequence[World], kinds: Sequence[str], flags: Mapping[str, Any],
                    settings_a: Mapping[str, Any], settings_b: Mapping[str, Any]) -> None:
    """ConfigError when --a and --b come to the same settings for every world and kind (`candidates=4`
    against a world whose default is 4): every pair would be one text twice, made twice over."""
    if all(kind_config(world, kind, {**flags, **settings_a}) == kind_config(world, kind, {**flags, **settings_b})
           for world in worlds for kind in kinds):
        raise ConfigError("--a and --b come to the same settings for every world and kind: each pair would be "
                          "one text twice", hint="change a setting on one side, e.g. --a candidates=4 --b candidates=1")


def check_empty(folder: Path) -> None:
    """A blind comparison goes into a new or empty folder, so no key or sheet is ever replaced."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ConfigError(f"--blind {folder} is not an empty folder",
                          hint="choose an empty or new folder for the comparison")


# ----------------------------------------------------------------------------- pairs


@dataclass(frozen=True)
class Pair:
    """One request and seed answered under A and under B, and which answer is shown first."""

    id: str  # pair-001, ...
    world: str
    kind: str
    request: dict
    seed: int
    a: str  # the text made with A's settings
    b: str
    a_first: bool  # Text 1 is A's

    @property
    def texts(self) -> tuple[str, str]:
        """Text 1 and Text 2."""
        return (self.a, self.b) if self.a_first else (self.b, self.a)


def _key(output) -> tuple:
    return output.world, output.kind, json.dumps(output.request, sort_keys=True), output.seed


def make_pairs(outputs_a: Sequence, outputs_b: Sequence, seed: int) -> list[Pair]:
    """Pair the metagen outputs of two runs of one grid (eval.Output), in A's order; which text
    comes first is drawn from the seed, A first in half of the pairs (one more either way when odd)."""
    ours_a = [o for o in outputs_a if o.system == "metagen"]
    by_key = {_key(o): o for o in outputs_b if o.system == "metagen"}
    if len(ours_a) != len(by_key) or any(_key(o) not in by_key for o in ours_a):
        raise ValueError("the two runs did not answer the same requests and seeds")
    rng = random.Random(seed)
    firsts = [i < len(ours_a) // 2 for i in range(len(ours_a))]
    if len(ours_a) % 2:
        firsts[-1] = rng.random() < 0.5
    rng.shuffle(firsts)
    return [Pair(f"pair-{i + 1:03d}", o.world, o.kind, o.request, o.seed, o.text, by_key[_key(o)].text, first)
            for i, (o, first) in enumerate(zip(ours_a, firsts))]


def world_copies(world: World) -> list[tuple[Path, Path]]:
    """Each of the world's files and where it goes in a blind folder, the world file first: WORLDS/<id>/,
    laid out as beside the world file (an include from outside its folder, which allow_outside permits,
    by its name alone)."""
    files = world.files or ((world.path,) if world.path else ())
    copies = []
    for file in files:
        try:
            inside = file.relative_to(files[0].parent)
        except ValueError:
            inside = Path(file.name)
        copies.append((file, Path(WORLDS) / world.id / inside))
    return copies


def render_pair(pair: Pair, world: World) -> str:
    """A pair as a reader sees it: the request (kind, world and its file in the folder, cast, place),
    then Text 1 and Text 2."""
    resolved = resolve_request(world, recorded_request(pair.request))
    lines = [f"# {pair.id}", "", f"- kind: {pair.kind}", f"- world: {world.name}"]
    copies = world_copies(world)
    if copies:
        lines.append(f"- world file: {copies[0][1].as_posix()}")
    if resolved.characters:
        lines.append(f"- cast: {', '.join(c.name for c in resolved.characters)}")
    if resolved.location:
        lines.append(f"- place: {resolved.location.name}")
    for n, text in enumerate(pair.texts, 1):
        lines += ["", f"## Text {n}", "", text.strip() or "(no text)"]
    return "\n".join(lines) + "\n"


def write_blind(folder: Path, worlds: Sequence[World], run_a, run_b, settings_a: dict, settings_b: dict,
                seed: int) -> list[Pair]:
    """Write pair-NNN.md for each pair, a copy of each world's files (world_copies), the empty rating sheet
    and the key into an empty folder. Readers judge a text against its world ("the wall is concrete, not
    steel"): without the copies, a folder sent to a reader elsewhere could not be judged so."""
    check_empty(folder)
    pairs = make_pairs(run_a.outputs, run_b.outputs, seed)
    run = secrets.token_hex(4)  # carried by every row of the sheet, so a sheet from another run is refused
    by_id = {w.id: w for w in worlds}
    for world in worlds:
        for source, copy in world_copies(world):
            write_atomic(folder / copy, source.read_text(encoding="utf-8"), overwrite=False)
    for pair in pairs:
        write_atomic(folder / f"{pair.id}.md", render_pair(pair, by_id[pair.world]), overwrite=False)
    sheet = io.StringIO()
    writer = csv.writer(sheet, lineterminator="\n")
    writer.writerow(SHEET_COLUMNS)
    writer.writerows([run, pair.id, "", ""] for pair in pairs)
    write_atomic(folder / SHEET, sheet.getvalue(), overwrite=False)
    grid = {k: run_a.settings.get(k) for k in ("kinds", "seeds", "max_requests", "story_cast", "turns", "max_tokens",
                                                "variant")}
    # what stories and scenes were given: --max-tokens wins over the eval's default (eval's report says the same)
    grid["max_tokens"] = run_a.settings.get("flags", {}).get("max_new_tokens", grid["max_tokens"])
    key = {
        "format": KEY_FORMAT,
        "run": run,
        "metagen_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": run_a.model,
        "seed": seed,
        "a": settings_a,
        "b": settings_b,
        "grid": {**grid, "worlds": [{"id": w.id, "path": str(w.path)} for w in worlds]},
        "configs": {"a": run_a.settings["configs"], "b": run_b.settings["configs"]},
        "pairs": [{"pair": p.id, "a": 1 if p.a_first else 2, "world": p.world, "kind": p.kind,
                   "request": p.request, "seed": p.seed} for p in pairs],
    }
    write_atomic(folder / KEY, json.dumps(key, indent=1, ensure_ascii=False) + "\n", overwrite=False)
    return pairs


def run_both(generator, worlds: Sequence[World], flags: Mapping[str, Any], settings_a: dict, settings_b: dict, *,
             progress: Callable[[str], None] | None = None, **options):
    """The eval's grid answered by metagen under A's settings, then B's (same requests and seeds, no
    baseline); options are run_eval's (kinds, seeds, max_requests, story_cast, turns, batch_size, variant)."""
    runs = []
    for name, side in (("A", settings_a), ("B", settings_b)):
        report = (lambda message, _n=name: progress(f"{_n}: {message}")) if progress else None
        runs.append(run_eval(generator, worlds, settings={**flags, **side, "seed": None}, baseline=False,
                             progress=report, **options))
    return tuple(runs)


# ----------------------------------------------------------------------------- ratings


MAX_RATED_BYTES = 64 * 2**20  # a key or sheet read back; --blind writes some hundred bytes a pair

# A sheet's next row inside a note: "pair-002,2,..." or, as --blind writes it, "RUN,pair-002,2,...".
_RUN_ON = re.compile(r"\n\s*(?:[^,\n]*,)?\s*pair-\d+\s*,")


def read_ratings(folder: Path) -> tuple[dict, dict[str, str | None]]:
    """The key and the sheet's choices (pair id -> "1", "2", "=" or None when unrated); ConfigError
    for a missing key or sheet, an unknown or repeated pair, or a choice not in 1, 2, =."""
    key_path, sheet_path = folder / KEY, folder / SHEET
    if not folder.is_dir():  # "there is no key.json" of a folder that is not there sent people looking for the key
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise ConfigError(f"--unblind {folder}: {what}", hint="give the folder that --blind wrote")
    # A key or sheet that is there but no file (a folder, a FIFO, a link to nothing or in a loop) is named
    # so by read_input; it had been "there is no key.json".
    if not os.path.lexists(key_path):
        raise ConfigError(f"--unblind {folder}: there is no {KEY}", hint="give the folder that --blind wrote")
    key_data = read_input(key_path, MAX_RATED_BYTES, "a key", ConfigError)
    try:
        key = json.loads(key_data.decode("utf-8"))
        entries = {e["pair"]: e for e in key["pairs"]}
        if not entries or len(entries) != len(key["pairs"]):  # --blind writes each of one or more pairs once
            raise ValueError
        if any(e["a"] not in (1, 2) or not _is_text(e["kind"]) or not _is_text(e["pair"]) for e in entries.values()):
            raise ValueError
        if not all(isinstance(key.get(side, {}), dict) for side in ("a", "b", "grid")):
            raise ValueError  # the settings of A and B and the grid are mappings in a key --blind wrote
        kinds = key.get("grid", {}).get("kinds", [])
        if not isinstance(kinds, list) or not all(_is_text(kind) for kind in kinds):
            raise ValueError
        if not _is_text(key.get("run", "-")):
            raise ValueError
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError):  # Recursion: nested deeper than the parser goes
        raise ConfigError(f"{key_path} is not a key that --blind wrote") from None
    if not os.path.lexists(sheet_path):
        raise ConfigError(f"--unblind {folder}: there is no {SHEET}", hint="give the folder that --blind wrote")
    sheet_data = read_input(sheet_path, MAX_RATED_BYTES, "a ratings sheet", ConfigError)
    try:
        rows = csv.DictReader(io.StringIO(sheet_data.decode("utf-8-sig"), newline=""))
        columns = [f.strip() for f in rows.fieldnames or []]
        if not {"pair", "preferred"} <= set(columns) or len(set(columns)) < len(columns):
            raise ConfigError(f"{sheet_path}: the first line must name the columns {','.join(SHEET_COLUMNS)}",
                              hint="each once")
        ratings: dict[str, str | None] = {}
        for row in rows:
            if None in row:  # more fields than the first line names: a comma in an unquoted note
                raise ConfigError(f"{sheet_path}: line {rows.line_num} has more fields than the first line names",
                                  hint="put each note in double quotes")
            row = {(k or "").strip(): (v or "").strip() if isinstance(v, str) else "" for k, v in row.items()}
            pair, choice = row.get("pair", ""), row.get("preferred", "")
            where = f"{sheet_path}: line {rows.line_num}"
            if _RUN_ON.search(row.get("note", "")):  # a note's quote left open swallows the rows after it
                raise ConfigError(f"{where}: the note of {pair or 'a pair'} runs on into the next rows",
                                  hint="end each note with its closing double quote")
            if not pair and not choice:
                continue  # a blank line
            _check_run(key, row.get("run", ""), where, pair)
            if pair not in entries:
                raise ConfigError(f"{where}: unknown pair {pair!r}", hint=f"the pairs are those {KEY} lists")
            if pair in ratings:
                raise ConfigError(f"{where}: {pair} is rated twice")
            if choice not in ("", *CHOICES):
                raise ConfigError(f"{where}: preferred must be 1, 2 or = (or empty), got {choice!r}")
            ratings[pair] = choice or None
    except UnicodeDecodeError as error:  # a spreadsheet's "CSV" in cp1252 or latin-1
        line = error.object[:error.start].count(b"\n") + 1
        raise ConfigError(f"{sheet_path}: line {line}: not UTF-8 text (byte {error.object[error.start]:#04x})",
                          hint="save the sheet as CSV UTF-8") from None
    except (OSError, csv.Error) as error:
        raise ConfigError(f"cannot read {sheet_path}: {' '.join(str(error).split())}") from None
    return key, ratings


def _check_run(key: dict, run: str, where: str, pair: str) -> None:
    """ConfigError for a sheet's row that another blind run wrote: its pairs hold other texts, in
    another order, so its choices would be tallied against the wrong key. A row without a run (a
    sheet made by hand, or by metagen before runs had ids) is taken as it is."""
    if not run or run == key.get("run"):
        return
    ours = f"this folder's {KEY} is run {key['run']}" if "run" in key else f"this folder's {KEY} names no run"
    raise ConfigError(f"{where}: {pair or 'the row'} was rated in the blind run {run}, and {ours}",
                      hint="fill in the ratings.csv of this folder: another run's sheet rates other texts")


def _is_text(value) -> bool:
    return isinstance(value, str) and bool(value)


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson's score interval for a proportion of successes out of n; None when n is 0."""
    if n <= 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def tally(key: dict, ratings: Mapping[str, str | None]) -> dict[str, dict]:
    """Per kind (in the grid's order) and over all: pairs, rated, unrated, A preferred, B preferred,
    ties, and the share preferring B among decided pairs with its 95% interval."""
    kinds = [*dict.fromkeys([*key.get("grid", {}).get("kinds", []), *(e["kind"] for e in key["pairs"])]), "all"]
    counts = {kind: Counter() for kind in kinds}
    for entry in key["pairs"]:
        choice = ratings.get(entry["pair"])
        for kind in (entry["kind"], "all"):
            c = counts[kind]
            c["pairs"] += 1
            if choice is None:
                c["unrated"] += 1
                continue
            c["rated"] += 1
            c["ties" if choice == "=" else "a" if int(choice) == entry["a"] else "b"] += 1
    out = {}
    for kind, c in counts.items():
        if not c["pairs"]:
            continue
        decided = c["a"] + c["b"]
        out[kind] = {"pairs": c["pairs"], "rated": c["rated"], "unrated": c["unrated"], "a": c["a"], "b": c["b"],
                     "ties": c["ties"], "share_b": c["b"] / decided if decided else None,
                     "interval": wilson(c["b"], decided)}
    return out


def _settings_text(settings: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items()) or "(the defaults)"


def render_tally(key: dict, result: dict[str, dict]) -> str:
    """The tally as Markdown: what A and B were, then one row per kind and one over all."""
    total = result["all"]
    lines = [
        "# metagen blind comparison", "",
        f"- A: {_settings_text(key.get('a', {}))}",
        f"- B: {_settings_text(key.get('b', {}))}",
        f"- pairs: {total['pairs']}, rated {total['rated']}, unrated {total['unrated']} (skipped)", "",
        "| kind | pairs | rated | A preferred | B preferred | ties | B among decided | 95% interval |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, m in result.items():
        share = "-" if m["share_b"] is None else f"{100 * m['share_b']:.0f}%"
        interval = "-" if m["interval"] is None else f"{100 * m['interval'][0]:.0f}% to {100 * m['interval'][1]:.0f}%"
        lines.append(f"| {kind} | {m['pairs']} | {m['rated']} | {m['a']} | {m['b']} | {m['ties']} | {share} | "
                     f"{interval} |")
    lines += ["", "B among decided: B preferred / (A preferred + B preferred), ties left out. The interval is "
              "Wilson's 95% score interval; while it holds 50%, the readers did not tell A and B apart."]
    return "\n".join(lines) + "\n"


def unblind(folder: Path) -> tuple[str, Path]:
    """Read the folder's filled sheet with its key, tally, write unblind.md; (Markdown, its path)."""
    key, ratings = read_ratings(folder)
    markdown = render_tally(key, tally(key, ratings))
    return markdown, write_atomic(folder / REPORT, markdown, overwrite=True)


__all__ = ["CHOICES", "KEY", "REPORT", "SHEET", "Pair", "check_empty", "check_with_worlds", "load_settings",
           "make_pairs", "read_ratings", "render_pair", "render_tally", "run_both", "tally", "unblind", "wilson",
           "write_blind"]
