"""The metagen command line: a thin Typer app over the library.

This is the only module (with metagen/commands/) that prints. Every MetagenError is
turned into one line on stderr and its exit code here, in MetagenGroup.invoke.
Nothing here imports torch at start-up: commands import the engine when they run.
The console script is metagen.client.main, which hands the command to a running
`metagen serve` when there is one, and calls `run` here when not.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import sys
from types import SimpleNamespace
from typing import Annotated

import typer
from typer.core import TyperGroup

try:  # Typer 0.2x vendors click; its parser raises its own exception classes
    from typer._click import exceptions as click_errors
    from typer._click.utils import _detect_program_name
    from typer.core import Abort
except ImportError:  # pragma: no cover - older Typer on the real click
    from click import exceptions as click_errors
    from click.exceptions import Abort
    from click.utils import _detect_program_name

from metagen import __version__
from metagen.commands.batch import batch
from metagen.commands.chat import chat
from metagen.commands.eval import eval_command
from metagen.commands.generate import generate
from metagen.commands.help import PLAIN_HELP, PanelledCommand
from metagen.commands.models import models_app
from metagen.commands.moderate import moderate
from metagen.commands.pieces import describe_scene, dialogue, prompt_app, story
from metagen.commands.replay import replay
from metagen.commands.serve import serve
from metagen.commands.terminal import escaped, stdout_failed, terminating_raised
from metagen.commands.tune import tune_command
from metagen.commands.worlds import worlds_app
from metagen.errors import (
    EXIT_BAD_INPUT,
    EXIT_GENERATION_FAILED,
    EXIT_INTERRUPTED,
    INTERRUPTED_MESSAGE,
    MetagenError,
    Terminated,
)
from metagen.protocol import NO_SERVER_ENV, NO_SERVER_FLAG
from metagen.text import values_shortened

EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 generation or writing failed, or moderation found text over the rating; 2 bad input or usage "
    "(world, request, setting, model file, existing output); 3 `metagen serve`: one runs already, or "
    "--stop/--status: none runs; 129 terminal closed (SIGHUP); 130 interrupted (SIGINT); 143 terminated (SIGTERM)."
)


def ignore_further_interrupts() -> None:
    """The command ends on Ctrl-C: another Ctrl-C while metagen says so and exits is ignored (it
    printed the message twice, or a traceback from one of torch's exit handlers). `metagen serve`
    puts its own handler back after each request."""
    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _say_interrupted() -> None:
    """Ignore another Ctrl-C and say in one line on stderr that the command was interrupted: what
    MetagenGroup.invoke does for a KeyboardInterrupt and MetagenGroup.main for click's Abort, before each
    exits EXIT_INTERRUPTED its own way (invoke by ctx.exit, as for its other errors, so that a caller of
    main(standalone_mode=False) gets the code back). `run` and metagen.client write the same line."""
    ignore_further_interrupts()
    typer.echo(INTERRUPTED_MESSAGE, err=True)


class MetagenGroup(TyperGroup):
    """The root group: maps library errors and signals to one stderr line and an exit code."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """Usage errors (a bad flag value, a missing argument) as one line too, not a panel."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_errors.NoArgsIsHelpError as error:
            typer.echo(error.ctx.get_help() if error.ctx else error.format_message())
            sys.exit(error.exit_code)
        except click_errors.ClickException as error:
            where = getattr(getattr(error, "ctx", None), "command_path", None) or "metagen"
            message = " ".join(error.format_message().split())
            if isinstance(error, click_errors.BadParameter):  # the value as typed: 5,000 digits of --seed
                message = values_shortened(message)
            typer.echo(f"error: {message} (see '{where} --help')", err=True)
            sys.exit(error.exit_code)
        except Abort:
            _say_interrupted()
            sys.exit(EXIT_INTERRUPTED)
        except OSError as error:  # help or --version to a full disk
            _exit_if_stdout_failed(error)
            raise
        sys.exit(result if isinstance(result, int) else 0)

    def make_context(self, info_name, args, parent=None, **extra):
        """Parse the arguments; a Ctrl-C meanwhile becomes click's Abort, which main reports. Typer
        turned it into a bare exit 130, and main, not standalone, took that for the command's code."""
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except KeyboardInterrupt:
            raise Abort() from None

    def invoke(self, ctx: typer.Context):
        try:
            with terminating_raised():  # in place already when `run` started the command
                return super().invoke(ctx)
        except MetagenError as error:
            typer.echo(f"error: {escaped(error.one_line())}", err=True)
            ctx.exit(error.exit_code)
        except KeyboardInterrupt:
            _say_interrupted()
            ctx.exit(EXIT_INTERRUPTED)
        except Terminated as error:
            with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone: the exit code says it
                typer.echo(f"error: {error.message}", err=True)
            ctx.exit(error.exit_code)
        except OSError as error:  # stdout's reader quit, or stdout is a full disk
            _exit_if_stdout_failed(error)
            raise


def _exit_if_stdout_failed(error: OSError) -> None:
    """Exit 1 with one line when `error` is a failed write to stdout (terminal.stdout_failed)."""
    line = stdout_failed(error)
    if line is not None:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(f"error: {line}\n")
        sys.exit(EXIT_GENERATION_FAILED)


app = typer.Typer(
    **PLAIN_HELP,
    cls=MetagenGroup,
    name="metagen",
    help="Stories, scene descriptions and NPC dialogue for virtual worlds, written by a "
    "small language model on your own machine.\n\n" + EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool):
    if value:
        typer.echo(f"metagen {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log what metagen does (sampler order, timings) to stderr.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    no_server: Annotated[
        bool, typer.Option(NO_SERVER_FLAG, envvar=NO_SERVER_ENV, help="Run the command in this process even when "
                           "`metagen serve` runs (metagen.client reads this before the command; docs/serve.md).")
    ] = False,
):
    """metagen: worlds in, stories out."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


app.add_typer(models_app, name="models")
app.add_typer(worlds_app, name="worlds")
app.command("generate", cls=PanelledCommand)(generate)
app.command("story", cls=PanelledCommand)(story)
app.command("describe-scene", cls=PanelledCommand)(describe_scene)
app.command("dialogue", cls=PanelledCommand)(dialogue)
app.command("chat", cls=PanelledCommand)(chat)
app.add_typer(prompt_app, name="prompt")
app.command("replay", cls=PanelledCommand)(replay)
app.command("batch", cls=PanelledCommand)(batch)
app.command("eval", cls=PanelledCommand)(eval_command)
app.command("moderate", cls=PanelledCommand)(moderate)
app.command("tune", cls=PanelledCommand)(tune_command)
app.command("serve", cls=PanelledCommand)(serve)


@functools.cache
def root_command():
    """The click command behind `app`, built once: `metagen serve` runs many commands with it."""
    return typer.main.get_command(app)


def run(args: list[str] | None = None, prog_name: str | None = None) -> None:
    """Run a command in this process (sys.argv's by default); exits with its code."""
    try:
        with terminating_raised():  # from the start: SIGTERM while the command line is parsed ended silently
            root_command().main(args, prog_name)
    except SystemExit:
        try:  # what is still buffered for stdout, before Python's own flush at exit can fail on it
            if sys.stdout is not None:
                sys.stdout.flush()
        except OSError as error:
            _exit_if_stdout_failed(error)
        raise
    except KeyboardInterrupt:  # raised outside a command (during start-up)
        ignore_further_interrupts()
        sys.stderr.write(INTERRUPTED_MESSAGE + "\n")
        sys.exit(EXIT_INTERRUPTED)
    except Terminated as error:  # the same for SIGTERM and SIGHUP
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone: the exit code says it
            sys.stderr.write(f"error: {error.message}\n")
        sys.exit(error.exit_code)


def program_name(argv0: str | None, main_package: str | None) -> str:
    """What click calls the program of another process ("metagen", "python -m metagen") from its
    argv[0] and its __main__ module's __package__."""
    return _detect_program_name(argv0 or "metagen", SimpleNamespace(__package__=main_package))


def main() -> None:
    """The console script of installs made before metagen.client: the same entry point."""
    from metagen.client import main as client_main

    client_main()


__all__ = ["app", "main", "program_name", "root_command", "run", "EXIT_BAD_INPUT"]
