"""The class of every command: plain-text help grouped into the options' panels, and paths
given as "" refused.

Typer's rich help costs about 0.25 s of imports (rich, markdown-it) on every `--help`;
click's plain formatter needs none. This command class keeps what the panels gave (the
decoding and model options in their own sections) without rich.
"""

from __future__ import annotations

from pathlib import Path

from typer.core import TyperCommand

try:  # Typer 0.2x vendors click
    from typer._click.core import ParameterSource
    from typer._click.exceptions import BadParameter, UsageError
    from typer._click.globals import get_current_context
except ImportError:  # pragma: no cover - older Typer on the real click
    from click import get_current_context
    from click.core import ParameterSource
    from click.exceptions import BadParameter, UsageError

EMPTY_PATH = "is empty (give a path; . is the current folder)"
PATHS_AS_TYPED = "metagen.paths_as_typed"  # ctx.meta key: each path parameter's text as given, by name


def typed_path(name: str) -> str | None:
    """The text a path parameter of the running command was given as, or None (not given, no command)."""
    ctx = get_current_context(silent=True)
    return None if ctx is None else ctx.meta.get(PATHS_AS_TYPED, {}).get(name)


def typed_besides(*names: str) -> list[str]:
    """The parameters of the running command given on the command line, other than those named
    `names`, each as its first flag (an argument by its name)."""
    ctx = get_current_context(silent=True)
    if ctx is None:
        return []
    return [p.opts[0] for p in ctx.command.params
            if p.name not in names and ctx.get_parameter_source(p.name) == ParameterSource.COMMANDLINE]


try:  # Typer 0.26-0.28: a path parameter's click type
    from typer.models import TyperPath as _PATH_TYPE
except ImportError:  # Typer 0.29 has no click types (type_descriptor instead); older Typer, click's own
    try:
        from click import Path as _PATH_TYPE
    except ImportError:
        _PATH_TYPE = ()


def _takes_paths(param) -> bool:
    descriptor = getattr(param, "type_descriptor", None)  # Typer 0.29: the annotation itself
    if descriptor is not None:
        return descriptor.annotation is Path or descriptor.annotation == list[Path]
    kind = getattr(param, "type", None)  # Typer 0.28 and older: the click type, or a parser= function's
    parser = getattr(kind, "func", None)  # ("-" for stdin: terminal.stdin_or_path), which returns a Path
    return isinstance(kind, _PATH_TYPE) or getattr(parser, "__annotations__", {}).get("return") in (Path, "Path")


class PanelledCommand(TyperCommand):
    """A command whose --help lists arguments, options, then each rich_help_panel in turn.

    A path given as "" (in a script, a variable that was empty) is refused, naming the
    argument or option: Path("") is ".", so `-o "$OUT"` wrote into the current folder and
    `moderate "$DIR"` checked it, with no word of the mistake.
    """

    def make_parser(self, ctx):
        parser = super().make_parser(ctx)
        parse = parser.parse_args

        def parse_refusing_empty_paths(args):
            try:
                opts, rest, order = parse(args)
            except UsageError as error:  # click's parser raises "requires an argument" without the command:
                error.ctx = error.ctx or ctx  # the message pointed at `metagen --help`, not this command's
                raise
            for param in self.get_params(ctx):
                given = opts.get(param.name)
                values = given if isinstance(given, (list, tuple)) else [given]
                if _takes_paths(param) and "" in values:
                    raise BadParameter(EMPTY_PATH, ctx=ctx, param=param)
                if _takes_paths(param):  # as typed: Path("out/") forgets the "/" that names a folder
                    ctx.meta.setdefault(PATHS_AS_TYPED, {})[param.name] = given
            return opts, rest, order

        parser.parse_args = parse_refusing_empty_paths
        return parser

    def format_options(self, ctx, formatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {"Arguments": [], "Options": []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                title = "Arguments"
            else:
                title = getattr(param, "rich_help_panel", None) or "Options"
            sections.setdefault(title, []).append(record)
        for title, records in sections.items():
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)


PLAIN_HELP = {"rich_markup_mode": None}  # Typer(**PLAIN_HELP): click's formatter, no rich import
