"""`metagen tune`: train a LoRA adapter on JSON-lines examples (metagen.tune), with a progress
bar, a checkpoint to --resume from, and the held-aside loss after each epoch."""

from __future__ import annotations

import errno
import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from metagen.commands.options import not_blank, progress_to_stderr, whole_number
from metagen.commands.pieces import say
from metagen.errors import ConfigError, OutputError, OutputExistsError
from metagen.files import os_reason

Data = Annotated[Path, typer.Argument(help="Training examples, JSON lines (docs/tune.md).", show_default=False)]
Out = Annotated[Path, typer.Option("--out", "-o", help="The adapter file to write (.safetensors); never overwritten without --force.", show_default=False)]
Held = Annotated[Optional[Path], typer.Option("--eval", help="Held-aside examples: their loss is reported before training and after each epoch.", show_default=False)]


def tune_command(
    data: Data,
    out: Out,
    held: Held = None,
    epochs: Annotated[int, typer.Option("--epochs", callback=whole_number, help="Passes over the data, 1 to 100.")] = 2,
    rank: Annotated[Optional[int], typer.Option("--rank", callback=whole_number, help="The adapter's rank, 1 to 256. [default: 16, or --from's]", show_default=False)] = None,
    alpha: Annotated[Optional[float], typer.Option("--alpha", help="The adapter's scale is alpha / rank. [default: 32, or --from's]", show_default=False)] = None,
    targets: Annotated[Optional[str], typer.Option("--targets", help="Projections to adapt: all | attention | mlp. [default: all, or --from's]", show_default=False)] = None,
    start: Annotated[Optional[str], typer.Option("--from", help="Go on from an adapter instead of a new one: default (the model's own) or a file `metagen tune` wrote; OUT then holds what both learned.", show_default=False, callback=not_blank)] = None,
    learning_rate: Annotated[float, typer.Option("--learning-rate", help="AdamW's peak learning rate.")] = 2e-4,
    batch: Annotated[int, typer.Option("--batch", callback=whole_number, help="Sequences a step, 1 to 256.")] = 4,
    max_tokens: Annotated[int, typer.Option("--max-tokens", callback=whole_number, help="Longer sequences are left out (reported).")] = 2048,
    seed: Annotated[int, typer.Option("--seed", callback=whole_number, help="The adapter's start and the data's order.")] = 0,
    dtype: Annotated[str, typer.Option("--dtype", help="float32 | bfloat16 (faster where the CPU has bfloat16 units (avx512_bf16), or on CUDA; over 3x slower on AVX2-only CPUs).")] = "float32",
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Base model name or .gguf path. [default: smollm2-135m-instruct]", show_default=False)] = None,
    device: Annotated[str, typer.Option("--device", help="cpu | cuda | auto.")] = "cpu",
    resume: Annotated[bool, typer.Option("--resume", help="Go on from OUT's checkpoint (OUT.checkpoint), with the same data and settings.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUT if it exists.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")] = False,
):
    """Teach the model from examples: train a LoRA adapter and write it to OUT; use it with --adapter OUT."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from metagen import tune as tuning
    from metagen.generator import load_model
    from metagen.output import exists_words, write_atomic

    given = {key: value for key, value in (("rank", rank), ("alpha", alpha), ("targets", targets)) if value is not None}
    settings = tuning.TuneSettings(**given, epochs=epochs, learning_rate=learning_rate, batch=batch,
                                   max_tokens=max_tokens, seed=seed, dtype=dtype)
    if out.suffix.casefold() != ".safetensors":  # A.SAFETENSORS is one too
        raise ConfigError(f"--out {out}: an adapter file ends in .safetensors", hint=f"e.g. --out {out.stem}.safetensors")
    _check_writable(out)
    log_path = out.with_name(out.name + ".json")  # written after training: an OUT.json there had been replaced
    for path in (out, log_path):
        if os.path.lexists(path) and not force:  # a dangling link too: it is a name in use
            raise OutputExistsError(exists_words(path), hint="give another --out, or --force to overwrite it")
    train = tuning.read_examples(data)
    held_examples = tuning.read_examples(held) if held else []
    generator = load_model(model, dtype="float32", device=device, adapter="none", progress=progress_to_stderr(quiet))
    start_adapter = _start_adapter(start, generator) if start else None
    if start_adapter is not None:
        settings = _settings_from(start_adapter, settings, given)
    checkpoint = out.with_name(out.name + ".checkpoint")
    if checkpoint.exists() and not resume:
        raise OutputExistsError(f"{checkpoint} holds a stopped run", hint="add --resume to go on, or delete it")
    if resume and not checkpoint.exists():  # not an error: a script may always pass --resume
        say(f"no checkpoint at {checkpoint}: training from the start", quiet)
    columns = [TextColumn("tune"), BarColumn(), TextColumn("{task.completed}/{task.total} steps  loss {task.fields[loss]}"),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    console = _stderr_console()
    # A bar draws only on a terminal; a run under nohup or in CI gets a line now and then instead.
    lines = _StepLines() if not quiet and not console.is_terminal else None
    with Progress(*columns, disable=quiet, transient=True, console=console) as progress:
        task = progress.add_task("tune", total=None, loss="-")

        def on_step(step: int, total: int, loss: float) -> None:
            progress.update(task, completed=step, total=total, loss=f"{loss:.3f}")
            if lines is not None:
                lines.step(step, total, loss)

        def on_epoch(record: dict) -> None:
            if quiet:  # each epoch's losses are in OUT.json too; --epochs 100 -q printed 100 lines
                return
            held_loss = "" if record["eval_loss"] is None else f", held-aside loss {record['eval_loss']:.4f}"
            progress.console.print(f"epoch {record['epoch']}: training loss {record['train_loss']:.4f}{held_loss} "
                                   f"({record['seconds']:.0f} s)")

        report = tuning.tune(generator.model, generator.tokenizer, train, held_examples, settings, out,
                             base_sha256=generator.info.sha256, checkpoint=checkpoint, resume=resume,
                             start=start_adapter, on_step=on_step, on_epoch=on_epoch)
    checkpoint.unlink(missing_ok=True)
    record = {**report.to_dict(), "settings": settings.__dict__, "data": str(data), "eval": str(held or ""),
              "model": generator.info.to_dict(),
              "from": {"path": start_adapter.path, "sha256": start_adapter.sha256} if start_adapter else None}
    log = write_atomic(log_path, json.dumps(record, indent=1) + "\n", overwrite=True)
    left_out = "" if not report.left_out else (  # --max-tokens' help promises they are reported
        f"; {report.left_out} example{'s' if report.left_out > 1 else ''} left out as too long")
    typer.echo(f"wrote {out} ({report.steps} steps, {report.learned_tokens:,} learned tokens an epoch, "
               f"{report.seconds:.0f} s{left_out}; log {log})")


def _check_writable(out: Path) -> None:
    """Refuse an --out that could not be written, before the model loads and hours of training run."""
    from metagen.output import check_writable, name_too_long

    folder = out.parent
    try:  # each stat raises where a folder on the way may not be searched (EACCES)
        if out.is_dir():
            raise ConfigError(f"--out {out} is a folder", hint="give the path of a .safetensors file")
        for beside in (out.with_name(out.name + ".json"), out.with_name(out.name + ".checkpoint")):
            if beside.is_dir():  # the log is written, and the checkpoint read, only after hours of training
                raise ConfigError(f"{beside} is a folder where --out's {beside.suffix[1:]} goes",
                                  hint="move the folder away, or give another --out")
        if not folder.is_dir():
            raise ConfigError(f"--out {out}: the folder {folder} does not exist",
                              hint="create it, or give another --out")
    except OSError as error:
        if error.errno == errno.ENAMETOOLONG:  # not the folder's fault: it had said "output folder ."
            raise name_too_long("--out", out) from None
        raise OutputError(f"cannot write to output folder {folder}: {os_reason(error)}") from None
    check_writable(folder)  # makes and removes a file there, as every command does (exit 1 if it cannot)


def _start_adapter(choice: str, generator):
    """The adapter --from names (metagen.lora.Adapter), checked against the model being tuned."""
    from metagen.catalog import KNOWN_MODELS
    from metagen.generator import adapter_file
    from metagen.errors import ModelError
    from metagen.lora import load_adapter

    if choice == "none":
        raise ConfigError("--from none: leave --from out to start a new adapter")
    path = adapter_file(choice, KNOWN_MODELS.get(generator.info.name))
    if path is None:
        raise ConfigError(f"--from default: the model {generator.info.name} ships no adapter",
                          hint="give the path of an adapter file `metagen tune` wrote")
    try:
        return load_adapter(path, generator.model.args, generator.info.sha256)
    except ModelError as error:  # its hints name the generating commands' --adapter
        raise ModelError(f"--from {error.message}", hint="give the path of an adapter file `metagen tune` wrote for "
                         "this model, or leave --from out to start a new adapter") from None


def _settings_from(start, settings, given: dict):
    """settings with --from's rank, alpha and targets; a flag that asks for others is refused."""
    kept = settings.starting_from(start)
    for key, value in given.items():
        if getattr(kept, key) != value:
            raise ConfigError(f"--{key} {value}: the adapter --from names has {key} {getattr(kept, key)}",
                              hint=f"leave --{key} out to go on with the adapter's own")
    return kept


class _StepLines:
    """Plain progress lines on stderr: every LINE_EVERY steps and the last, with the time left at
    this run's pace (from its first step, so the held-aside pass before training is not counted)."""

    LINE_EVERY = 10

    def __init__(self):
        self.first: tuple[int, float] | None = None  # (step, monotonic time) of the first step seen

    def step(self, step: int, total: int, loss: float) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = (step, now)
        if step % self.LINE_EVERY and step != total:
            return
        done, since = step - self.first[0], now - self.first[1]
        left = f", about {since / done * (total - step) / 60:.0f} min left" if done and step != total else ""
        print(f"metagen: tune step {step}/{total}, loss {loss:.3f}{left}", file=sys.stderr, flush=True)


def _stderr_console():
    from rich.console import Console

    return Console(file=sys.stderr)


__all__ = ["tune_command"]
