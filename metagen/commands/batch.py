"""`metagen batch JOBS.yaml`: many pieces from a jobs file, sharded, resumable (docs/batch.md).

Everything is checked before the model is loaded: the jobs file, every world and request,
the settings, the formats and every output name. Files are written one by one as they
are made, so an interrupted run keeps what it finished and `--resume` does the rest.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from metagen.commands.help import typed_path
from metagen.commands.options import load_generator, whole_number, with_decoding_options
from metagen.commands.terminal import read_stdin, stdin_or_path
from metagen.commands.pieces import AsJson, Format, Moderation, Overwrite, Quiet, refuse_pieces, say, written_record
from metagen.config import MAX_BATCH_SIZE
from metagen.text import json_text


class _Report:
    """Shows progress: a rich bar on a terminal, else one line per file (or JSON lines)."""

    def __init__(self, total: int, quiet: bool, as_json: bool):
        self.total, self.quiet, self.as_json = total, quiet, as_json
        self.written = 0
        self.tokens = 0
        self.started = time.perf_counter()
        self.progress = None
        if not quiet and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[speed]}"),
                console=Console(stderr=True), transient=True,
            )
            self.task = self.progress.add_task("metagen batch", total=total, speed="")
            self.progress.start()

    def written_one(self, unit, piece, path) -> None:
        self.written += 1
        self.tokens += piece.output_tokens
        if self.as_json:
            record = {**written_record(piece, path), "job": unit.job.id}
            typer.echo(json_text(record))
        if self.progress is not None:
            elapsed = time.perf_counter() - self.started
            speed = f"{self.tokens / elapsed:.1f} tokens/s" if elapsed else ""
            self.progress.update(self.task, advance=1, speed=speed)
        elif not self.as_json:
            say(f"wrote {path}", self.quiet)

    def skipped_one(self, unit) -> None:
        """--resume: another run wrote this piece while this one made it."""
        if self.progress is not None:
            self.progress.update(self.task, advance=1)
        else:
            say(f"skipped {unit.path} (another run finished it meanwhile)", self.quiet)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


@with_decoding_options
def batch(
    jobs: Annotated[Path, typer.Argument(help="A jobs file (YAML; see docs/batch.md); '-' reads it from stdin.", parser=stdin_or_path, show_default=False)],
    shard: Annotated[Optional[str], typer.Option("--shard", help="I/N: run only this process's share (units with index % N == I-1).", show_default=False)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Skip pieces whose file exists and is complete.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", callback=whole_number, help=f"Scenes with the same settings decoded together, at most this many (each with its candidates), 1 to {MAX_BATCH_SIZE}.")] = 8,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder, never a file: one file a piece goes to OUT/<world>/<kind>/<subject>-<seed>.<ext>. [default: the file's out:, else ./out]", show_default=False)] = None,
    fmt: Format = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    as_json: AsJson = False,
    moderation: Moderation = "report",
    *,
    settings: dict,
    model_options: dict,
):
    """Generate every piece a jobs file lists; the decoding flags override every job's settings."""
    from metagen.batch import check_batch_fits_context, parse_shard, plan_batch, run_batch
    from metagen.errors import EXIT_GENERATION_FAILED, OutputError, Terminated
    from metagen.files import STDIN_NAME
    from metagen.jobs import MAX_JOBS_BYTES, load_jobs
    from metagen.moderation import check_mode
    from metagen.pipeline import check_batch_size

    check_batch_size(batch_size)
    check_mode(moderation)
    shard_spec = parse_shard(shard)
    if str(jobs) == "-":
        jobs_file = load_jobs(STDIN_NAME, read_stdin(MAX_JOBS_BYTES, "give the jobs file's path, or '-' with the file "
                                                                     "on standard input from a file or a pipe"))
    else:
        jobs_file = load_jobs(jobs)
    plan = plan_batch(jobs_file, out=out, fmt=fmt, cli_settings=settings, shard=shard_spec, resume=resume,
                      overwrite=overwrite, out_typed=typed_path("out"))
    where = "" if shard_spec == (1, 1) else f" (shard {shard_spec[0]}/{shard_spec[1]})"
    if not plan.units:
        if plan.skipped:
            say(f"nothing to do{where}: {len(plan.skipped)} complete already, {plan.total} in the file", quiet)
        else:  # more shards than pieces: this one has none of them
            say(f"nothing to do{where}: no piece falls to this shard, {plan.total} in the file", quiet)
        return
    generator = load_generator(model_options, quiet)
    check_batch_fits_context(plan, jobs_file, settings, generator)
    report = _Report(len(plan.units), quiet, as_json)
    try:
        result = run_batch(generator, plan, batch_size=batch_size, on_written=report.written_one,
                           moderation=moderation, on_skipped=report.skipped_one)
    except (KeyboardInterrupt, Terminated):  # Ctrl-C, or SIGTERM through cli.py's handler
        report.close()
        typer.echo(f"interrupted after {report.written} of {len(plan.units)}; rerun with --resume to finish",
                   err=True)
        raise
    except OutputError as error:  # a full disk mid-run: what was written stays, --resume makes the rest
        if error.exit_code != EXIT_GENERATION_FAILED:
            raise
        done = f"{report.written} of {len(plan.units)} written; rerun with --resume to finish"
        raise type(error)(error.message, hint=f"{error.hint}; {done}" if error.hint else done) from None
    finally:
        report.close()
    for warning in result.warnings:
        say(f"warning: {warning}", quiet)
    seconds = time.perf_counter() - report.started
    speed = f", {result.tokens / seconds:.1f} tokens/s" if seconds else ""
    skipped = f", skipped {len(plan.skipped) + result.finished_elsewhere} (resume)" if resume else ""
    say(f"written {result.written}{skipped}{where}, {result.tokens} tokens, {seconds:.1f} seconds{speed}", quiet)
    refuse_pieces(result.refused, len(plan.units))


__all__ = ["batch"]
