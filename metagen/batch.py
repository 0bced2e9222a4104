"""Batch runs: a checked jobs file (metagen.jobs) -> units of work with fixed seeds and file names -> pipeline.

`plan_batch` expands each job's count into units, gives each a seed that does not depend on sharding,
resolves every request and setting and checks every output name before any model is loaded;
`run_batch` hands the units that share their settings to one compose call (which splits them into
batches) and writes each piece as soon as it is made. docs/batch.md has the format.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from metagen.config import CLI_NAMES, MAX_SEED, GenerationConfig, check_setting, check_whole_number
from metagen.errors import ConfigError, MetagenError, OutputExistsError, WorldError
from metagen.files import resolved
from metagen.jobs import Job, JobsFile, Problems
from metagen.output import (
    FORMATS,
    OutputFolder,
    check_format,
    format_name,
    check_not_exists,
    check_not_folder,
    check_writable,
    exists_words,
    is_complete,
    field_difference,
    named_file_format,
    output_path,
    recorded_fields,
    remove_stale_temps,
)
from metagen.pipeline import DEFAULT_BATCH_SIZE, check_request_fits_context, seeded_request
from metagen.prompts import Request
from metagen.text import did_you_mean
from metagen.world import World, load_world

MAX_UNITS = 100_000  # after counts are expanded


@dataclass(frozen=True)
class Unit:
    """One piece to make: a job's k-th copy, with its seed, settings and file name settled."""

    index: int  # position among all units of the file (sharding and default seeds use it)
    job: Job
    k: int  # 0-based copy within the job
    world: World
    request: Request  # canonical ids
    cfg: GenerationConfig  # effective settings, seed included
    seed: int
    format: str
    path: Path
    overwrite: bool = False  # replace an existing file


@dataclass
class BatchPlan:
    """Units to run after sharding and resuming, and what was left out."""

    units: list[Unit]  # to run, in order
    skipped: list[Unit] = field(default_factory=list)  # complete already (--resume)
    total: int = 0  # units in the whole file
    shard: tuple[int, int] = (1, 1)
    out: OutputFolder | None = None  # pinned when planned; every write goes through it
    resume: bool = False  # a piece another run finishes meanwhile is skipped, as one finished before


@dataclass
class BatchResult:
    """What a run did."""

    written: int = 0  # files written
    tokens: int = 0  # tokens generated
    seconds: float = 0.0  # wall time of the run
    warnings: list[str] = field(default_factory=list)  # from the prompts and dialogues, duplicates dropped
    refused: list[str] = field(default_factory=list)  # --moderation enforce: pieces not written, and why
    finished_elsewhere: int = 0  # --resume: pieces another run wrote while this one made them


# ----------------------------------------------------------------------------- planning


def parse_shard(text: str | None) -> tuple[int, int]:
    """"I/N" (1-based) -> (I, N); ConfigError for anything else."""
    if text is None:
        return 1, 1
    match = re.fullmatch(r"([0-9]+)/([0-9]+)", text)  # not int()'s: it takes '١', ' 1', '+1' and '1_0'
    if match is None:
        raise ConfigError(f"--shard must look like I/N in the digits 0-9, e.g. 2/4, got {text!r}")
    i, n = (_shard_number(name, digits) for name, digits in zip("IN", match.groups()))
    if n < 1 or not 1 <= i <= n:
        raise ConfigError(f"--shard {i}/{n}: I must be 1 to N and N at least 1, e.g. 1/{max(n, 2)}")
    return i, n


def _shard_number(name: str, digits: str) -> int:
    """I or N of --shard, refused from 2**63 up as every whole-number flag is (check_whole_number).
    Digits past the 41st are dropped first: int() refuses more than 4,300, and the message names a
    number of more than 40 digits by its size alone (text.number_shown)."""
    return check_whole_number(f"--shard {name}", int(digits.lstrip("0")[:41] or "0"))


def plan_batch(jobs_file: JobsFile, *, out: str | os.PathLike | None = None, fmt: str | None = None,
               cli_settings: Mapping[str, Any] | None = None, shard: tuple[int, int] = (1, 1),
               resume: bool = False, overwrite: bool = False, out_typed: str | None = None) -> BatchPlan:
    """Expand, resolve and check every unit; pick this shard's; skip complete files on resume.

    Raises before any model is loaded: WorldError, RequestError and ConfigError name the job;
    OutputExistsError when a file exists and neither resume nor overwrite allows it.
    A command-line seed replaces the file's base seed (jobs with their own seed keep it).
    `out_typed` is --out as typed: a trailing "/" makes `results.md/` a folder.
    """
    # a. the flags on their own, b. the output folder
    fmt, cli, cli_seed = _check_flags(fmt, cli_settings)
    out_dir = _choose_out_dir(jobs_file, out, out_typed)
    # c. every unit of every job, d. no two of them writing one file
    units = _expand_units(jobs_file, fmt, cli, _SeedRule.of(jobs_file, cli_seed), out_dir, overwrite)
    _check_collisions(units)
    # e. this shard's units: every n-th from the i-th
    i, n = shard
    mine = [u for u in units if u.index % n == i - 1]
    plan = BatchPlan(units=[], total=len(units), shard=shard, out=OutputFolder(out_dir), resume=resume)
    if mine:
        check_writable(out_dir)
        plan.out.pin()
        _tidy_killed_runs(out_dir, mine)
    # f. each to make or, on resume, to skip
    _queue_or_skip(plan, mine, resume, overwrite)
    for folder in dict.fromkeys(unit.path.parent for unit in plan.units):  # OUT/<world>/<kind>: another user's
        check_writable(folder)
    return plan


def _check_flags(fmt: str | None, cli_settings: Mapping[str, Any] | None) -> tuple[str | None, dict, int | None]:
    """a. The command line's format and settings, each checked on its own: a bad flag is the flag's
    mistake, not the first job's. Returns the format's name, the settings but the seed, and --seed."""
    fmt = None if fmt is None else format_name(fmt)
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is not a format ({did_you_mean(fmt, FORMATS)})")
    cli = dict(cli_settings or {})
    for key, value in cli.items():
        if value is not None:
            check_setting(key, value)
    cli_seed = cli.pop("seed", None)
    if cli_seed is not None:  # taken out of the settings, so checked here: -1 counted on from 2**63 - 1
        GenerationConfig(seed=cli_seed)
    return fmt, cli, cli_seed


def _choose_out_dir(jobs_file: JobsFile, out: str | os.PathLike | None, out_typed: str | None) -> Path:
    """b. Where the pieces go: --out, else the file's `out:`, else out/; never a name like results.md."""
    out_dir = Path(out) if out is not None else (jobs_file.out or Path("out"))
    if named_file_format(out_dir, out_typed if out is not None else None):  # `-o results.md` would be a folder
        given = f"--out {out_dir}" if out is not None else f"{jobs_file.path}: out: {out_dir}"
        raise ConfigError(f"{given} names a file, but a batch writes one file a piece into a folder",
                          hint=f"give a folder, such as {out_dir.with_suffix('')}; metagen story, describe-scene "
                          "and dialogue write a single piece to -o FILE")
    return out_dir


@dataclass(frozen=True)
class _SeedRule:
    """Each unit's seed. A job's own `seed:` counts up through its copies; any other unit takes the
    base seed plus its index among all units, so every shard gives a unit the same seed."""

    base: int  # --seed, else the file's `seed:`, else a number made from the file's bytes
    given_by: str  # who gave `base` ("--seed", "jobs.yaml: seed:"); "" when made from the file's bytes

    @classmethod
    def of(cls, jobs_file: JobsFile, cli_seed: int | None) -> "_SeedRule":
        """The rule for `jobs_file`, with --seed (None: not given) over the file's base seed."""
        if cli_seed is not None:
            return cls(cli_seed, "--seed")
        return cls(jobs_file.base_seed, f"{jobs_file.path}: seed:" if jobs_file.seed is not None else "")

    def seed(self, job: Job, k: int, index: int) -> int:
        """The seed of `job`'s k-th copy, unit `index` of the file. A seed someone gave counts up
        without wrapping (past 2**63 - 1 is an error); the one made from the file's bytes may wrap."""
        if job.seed is None and self.given_by and self.base + index >= MAX_SEED:
            raise ConfigError(f"{self.given_by} {self.base} passes the largest seed, 2**63 - 1, by piece {index + 1} "
                              f"({job.where})", hint="give a smaller seed")
        return (job.seed + k if job.seed is not None else self.base + index) % MAX_SEED


def _expand_units(jobs_file: JobsFile, fmt: str | None, cli: dict, seeds: _SeedRule, out_dir: Path,
                  overwrite: bool) -> list[Unit]:
    """c. Each job's `count` copies, in file order, with their world, request, settings, seed and file."""
    worlds: dict[Path, World] = {}
    units: list[Unit] = []
    for job in jobs_file.jobs:
        world, request, cfg, unit_fmt = _resolve_job(job, jobs_file, fmt, cli, worlds)
        for k in range(job.count):
            index = len(units)
            seed = seeds.seed(job, k, index)
            seeded = seeded_request(world, request, seed)  # named as its piece records it (a story's drawn cast)
            path = output_path(out_dir, world.id, job.kind, seeded.subject, seed, unit_fmt,
                               request=_recorded_request(job, seeded))
            units.append(Unit(index=index, job=job, k=k, world=world, request=request,
                              cfg=GenerationConfig.from_dict({**cfg.to_dict(), "seed": seed}), seed=seed,
                              format=unit_fmt, path=path, overwrite=overwrite))
            if len(units) > MAX_UNITS:
                raise ConfigError(f"{jobs_file.path}: more than {MAX_UNITS} pieces in one file; split it")
    return units


def _resolve_job(job: Job, jobs_file: JobsFile, fmt: str | None, cli: dict,
                 worlds: dict[Path, World]) -> tuple[World, Request, GenerationConfig, str]:
    """A job's world, canonical request, effective settings (defaults < world < file < job < flags)
    and format; an error says which job. `worlds` keeps each world file parsed once."""
    from metagen import pipeline
    from metagen.prompts import resolve_request

    try:
        key = resolved(job.world)  # `w.yaml`, `./w.yaml` and a link to it are parsed once
        world = worlds.get(key)
        if world is None:
            world = worlds[key] = load_world(job.world)
        request = resolve_request(world, pipeline.make_request(job.kind, world, **job.fields)).request
        cfg = pipeline.effective_config(world, job.kind, {**jobs_file.settings, **job.settings}, cli, request)
        unit_fmt = fmt or job.format or jobs_file.format or "md"
        check_format(job.kind, unit_fmt)
    except WorldError as error:
        raise WorldError(f"{job.where}: {error.message}", problems=error.problems, hint=error.hint) from None
    except MetagenError as error:
        raise type(error)(f"{job.where}: {error.message}", hint=error.hint) from None
    return world, request, cfg, unit_fmt


def _queue_or_skip(plan: BatchPlan, units: list[Unit], resume: bool, overwrite: bool) -> None:
    """f. On resume, a unit whose piece is complete (and made from the same request) is skipped; any
    other is queued once its file may be written: not a folder, and not there unless --overwrite."""
    for unit in units:
        if resume and is_complete(unit.path):
            try:
                _check_same_request(unit)
            except OutputExistsError:
                if not overwrite:
                    raise
                # --overwrite: another request's (or other settings') piece is written again, below
            else:
                plan.skipped.append(unit)
                continue
        check_not_folder(unit.path)  # before --resume's "not a complete piece": --overwrite cannot replace it either
        if os.path.lexists(unit.path) and not overwrite:
            if resume:
                # "as a dangling symbolic link (to x, ...)": what replay of it says, and why it is not complete
                raise OutputExistsError(f"{exists_words(unit.path)} but is not a complete metagen piece",
                                        hint="pass --overwrite to replace it")
        check_not_exists(unit.path, overwrite)
        plan.units.append(unit)


def _tidy_killed_runs(out_dir: Path, units: list[Unit]) -> None:
    """Remove the temp files that a run killed outright (kill -9) left for these units' pieces; a
    folder reached through a link inside the output folder is left alone, as writes refuse it."""
    folders: dict[Path, set[str]] = {}
    for unit in units:
        folders.setdefault(unit.path.parent, set()).add(unit.path.name)
    for folder, names in folders.items():
        steps = folder.relative_to(out_dir).parts
        if not any((out_dir.joinpath(*steps[:n])).is_symlink() for n in range(1, len(steps) + 1)):
            remove_stale_temps(folder, names)


def _recorded_request(job: Job, request: Request) -> dict:
    """The request as its piece records it: a dialogue's also names its speaker order."""
    data = request.to_dict()
    return {**data, "order": job.order} if job.kind == "dialogue" else data


def _check_same_request(unit: Unit) -> None:
    """Refuse to skip a complete file that another request made (it only shares the name), or that
    other settings made; what the seed draws (a dialogue's topic, a scene's first words) is part of
    the request. A txt file records neither, so it is taken as it is."""
    recorded = recorded_fields(unit.path)
    if recorded is None:
        return
    request = seeded_request(unit.world, unit.request, unit.seed)
    expected = {"kind": unit.job.kind, "world_id": unit.world.id, "request": _recorded_request(unit.job, request),
                "seed": unit.seed}
    differs = field_difference(recorded, expected)
    if differs is not None:
        raise OutputExistsError(f"{unit.path} exists but was made by another request (its {differs} differs)",
                                hint="pass --overwrite to replace it, or choose another --out")
    # made with other settings (--max-tokens 5 on a run made at 4): not what this run would write
    differs = field_difference(recorded, {"settings": {**unit.cfg.to_dict(), "seed": unit.seed}},
                               unrecorded_agrees=True, within_mappings=True)
    if differs is not None:
        raise OutputExistsError(f"{unit.path} exists but was made with other settings than this run's "
                                f"(its {differs.removeprefix('settings.')} differs)",
                                hint="give the flags and jobs file it was made with, pass --overwrite to replace "
                                     "it, or choose another --out")


def _check_collisions(units: list[Unit]) -> None:
    seen: dict[Path, Unit] = {}
    for unit in units:
        other = seen.get(unit.path)
        if other is not None:
            raise ConfigError(
                f"{unit.job.where} and {other.job.where} would both write {unit.path}",
                hint="give the jobs different seeds, or leave seed: out so each piece gets its own",
            )
        seen[unit.path] = unit


def check_batch_fits_context(plan: BatchPlan, jobs_file: JobsFile, cli_settings: Mapping[str, Any] | None,
                             generator) -> None:
    """ConfigError naming JOBS_FILE:LINE of every job to run whose max_new_tokens, with its prompt, does
    not fit the model's context, so that no job's turn finds it after earlier jobs' files were written."""
    context_length = generator.context_length
    room = f"give less than {context_length}: the prompt needs room too"
    flag = (cli_settings or {}).get("max_new_tokens")
    if flag is not None and flag >= context_length:  # every job's; the flag is what to change
        raise ConfigError(f"{CLI_NAMES['max_new_tokens']} {flag} does not fit the model's context of "
                          f"{context_length} tokens", hint=room)
    problems = Problems(str(jobs_file.path))
    seen: set[int] = set()
    asked: set[tuple] = set()
    for unit in plan.units:
        job, wanted = unit.job, unit.cfg.max_new_tokens
        if job.index in seen:
            continue
        if wanted >= context_length:
            seen.add(job.index)
            problems.add_line(job.index, f"{_max_tokens_source(unit, jobs_file)} does not fit the model's "
                                         f"context of {context_length} tokens ({room})")
            continue
        # The prompt follows the seed through a story's plan and a dialogue's drawn topic: a story is
        # asked for every seed, a scene or dialogue once for each request its seeds make.
        key = (job.index, seeded_request(unit.world, unit.request, unit.seed), unit.seed if job.kind == "story" else 0)
        if key in asked:
            continue
        asked.add(key)
        try:
            check_request_fits_context(generator, unit.world, unit.request, unit.cfg, unit.seed)
        except MetagenError as error:
            seen.add(job.index)
            problems.add_line(job.index, f"{job.where}: {error.one_line()}")
    problems.raise_if_any()


def _max_tokens_source(unit: Unit, jobs_file: JobsFile) -> str:
    """Where a job's max_new_tokens came from, with the value: what to change."""
    job, wanted = unit.job, unit.cfg.max_new_tokens
    if job.settings.get("max_new_tokens") is not None:
        return f"{job.where}.settings.max_new_tokens: {wanted}"
    if jobs_file.settings.get("max_new_tokens") is not None:
        return f"{job.where}: max_new_tokens {wanted} (from the file's settings:)"
    if unit.world.generation_defaults(job.kind).get("max_new_tokens") is not None:
        return f"{job.where}: max_new_tokens {wanted} (from the world's defaults:)"
    return f"{job.where}: the {job.kind}'s default max_new_tokens {wanted}"


def settings_groups(units: list[Unit]) -> list[list[Unit]]:
    """Units made by one compose call: same world, kind and settings but the seed (and a dialogue's
    speaker order). Groups come in order of their first unit, units in plan order."""
    from metagen.pipeline import settings_key

    groups: dict[tuple, list[Unit]] = {}
    for unit in units:
        key = (str(unit.job.world), unit.job.kind, settings_key(unit.cfg), unit.job.order)
        groups.setdefault(key, []).append(unit)
    return list(groups.values())


# ----------------------------------------------------------------------------- running


def run_batch(generator, plan: BatchPlan, *, batch_size: int = DEFAULT_BATCH_SIZE,
              on_written: Callable[[Unit, Any, Path], None] | None = None,
              on_text: Callable[[Unit, str], None] | None = None, moderation: str = "report",
              on_skipped: Callable[[Unit], None] | None = None) -> BatchResult:
    """Make and write every planned unit; each file is written (atomically) as soon as its piece is done.

    Args:
        batch_size: scene units decoded together, at most (pipeline.compose).
        on_written: on_written(unit, piece, path) after each file.
        on_text: on_text(unit, new_text) as text is generated.
        moderation: off | report | enforce (a piece still over its world's rating is not written, and
            result.refused says why).
        on_skipped: on_skipped(unit) when, with --resume, another run (a second batch on the same
            folder) wrote the unit's file, the same piece, while this one made it.
    """
    from metagen import pipeline
    from metagen.moderation import refusal
    from metagen.output import render, write_atomic

    result = BatchResult()
    started = time.perf_counter()
    for group in settings_groups(plan.units):
        first = group[0]
        stream = (lambda row, text, _g=group: on_text(_g[row], text)) if on_text else None

        def write(row: int, piece, _g=group) -> None:
            unit = _g[row]
            if moderation == "enforce" and piece.moderation.get("exceeds"):
                result.refused.append(refusal(piece))
                return
            try:
                path = write_atomic(unit.path, render(piece, unit.format), overwrite=unit.overwrite, root=plan.out)
            except OutputExistsError:
                if not plan.resume or unit.overwrite or not is_complete(unit.path):
                    raise
                _check_same_request(unit)  # what --resume would have skipped at the start
                result.finished_elsewhere += 1
                if on_skipped:
                    on_skipped(unit)
                return
            result.written += 1
            result.tokens += piece.output_tokens
            if on_written:
                on_written(unit, piece, path)

        composed = pipeline.compose(generator, first.world, [u.request for u in group], first.cfg,
                                  seeds=[u.seed for u in group], order=first.job.order, batch_size=batch_size,
                                  on_text=stream, on_piece=write, moderation=moderation)
        result.warnings += [w for w in composed.warnings if w not in result.warnings]
    result.seconds = time.perf_counter() - started
    return result


__all__ = [
    "BatchPlan",
    "BatchResult",
    "Unit",
    "check_batch_fits_context",
    "parse_shard",
    "plan_batch",
    "run_batch",
    "settings_groups",
]
