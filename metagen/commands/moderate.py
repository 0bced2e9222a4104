"""`metagen moderate FILE...`: text checked against a world's rules and rating, usable as a CI gate
(`-` reads the text from standard input).

Exit 0 when nothing exceeds the target rating, 1 when something does, 2 on bad input (one line,
nothing reported). The library call is metagen.moderation.check_files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from metagen.commands.pieces import say
from metagen.commands.terminal import escaped, read_stdin, stdin_or_path
from metagen.text import json_text

Files = Annotated[list[Path], typer.Argument(
    help="Pieces (md, json, yarn, ink) or text files; folders are searched for them; '-' reads text from stdin.",
    parser=stdin_or_path, show_default=False)]
WorldOption = Annotated[Optional[Path], typer.Option(
    "--world", "-w", help="A world file: its rating, allows, banned words and topics, descriptor words and names.",
    show_default=False)]
RatingOption = Annotated[Optional[str], typer.Option(
    "--rating", "-r", help="G | PG | PG-13 | R: the target, instead of the world's style.rating.", show_default=False)]
AllOption = Annotated[bool, typer.Option("--all", help="Also list what the target allows (with no target, all is listed).")]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object on stdout: the target, the counts, every finding.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No summary on stderr.")]


def moderate(files: Files, world: WorldOption = None, rating: RatingOption = None, show_all: AllOption = False,
             as_json: JsonOption = False, quiet: QuietOption = False):
    """Check text against a world's rules and rating: each span that breaks one, by file:line:column."""
    from metagen.moderation import check_files, check_rating, implied_rating, policy_for
    from metagen.output.texts import MAX_TEXT_BYTES, STDIN
    from metagen.world import load_world

    loaded = load_world(world) if world is not None else None
    policy = policy_for(loaded, check_rating(rating))
    stdin = read_stdin(MAX_TEXT_BYTES, "give the files to check, or '-' with the text on standard input from a file "
                                       "or a pipe") if STDIN in files else None
    read, findings = check_files(files, policy, stdin)
    over = [f for f in findings if f.hit.exceeds]
    implies = implied_rating([f.hit for f in findings])
    if as_json:
        typer.echo(json_text({"rating": policy.rating, "world": loaded.id if loaded else None, "files": len(read),
                              "exceeds": bool(over), "implies": implies,
                              "findings": [f.to_dict() for f in findings]}))
    else:
        target = policy.allowed is not None
        for finding in findings if show_all or not target else over:
            typer.echo(escaped(_line(finding, policy)))
    say(_summary(len(read), findings, over, implies, policy), quiet or as_json)
    if over:
        raise typer.Exit(1)


def _line(finding, policy) -> str:
    """`file:line:col: category severity: "words" (rule ... from ...; implies R, over PG)`."""
    from metagen.moderation import BANNED, SOURCES

    hit = finding.hit
    term = hit.term
    what = f"{term.category} {term.severity}" if term.category != BANNED else BANNED
    meaning = f"implies {hit.implies}" if hit.implies else "never allowed in this world"
    if hit.exceeds:
        meaning += f", over {policy.rating or 'what the world allows'}" if hit.implies else ""
    elif policy.allowed is not None:
        meaning += f", within {policy.rating or 'what the world allows'}"
    return (f"{finding.path}:{finding.line}:{finding.column}: {what}: \"{hit.words}\" "
            f"(rule '{term.rule}' from {SOURCES[term.source]}; {meaning})")


def _summary(files: int, findings, over, implies: str, policy) -> str:
    checked = f"checked {files} file{'s' if files != 1 else ''}"
    if policy.allowed is None and not over:
        return (f"{checked}: {len(findings)} finding{'s' if len(findings) != 1 else ''}, implying {implies} "
                "(no target: give --rating, or --world with style.rating or style.allows)")
    target = policy.rating or "what the world allows"
    return (f"{checked} against {target}: {len(over)} over it, {len(findings) - len(over)} within it; "
            f"the text implies {implies}")


__all__ = ["moderate"]
