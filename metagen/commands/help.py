"""Plain-text help, grouped into the options' panels.

Typer's rich help costs about 0.25 s of imports (rich, markdown-it) on every `--help`;
click's plain formatter needs none. This command class keeps what the panels gave (the
decoding and model options in their own sections) without rich.
"""

from __future__ import annotations

from typer.core import TyperCommand


class PanelledCommand(TyperCommand):
    """A command whose --help lists arguments, options, then each rich_help_panel in turn."""

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
