"""`metagen eval`: answer a grid of requests per world with metagen and with a naive prompt,
and report grounding, cast fidelity, invented names, garbled and copied text, banned words,
repetition and diversity; or, with --blind, write the grid under two settings as pairs for
people to rate, and with --unblind tally their ratings (docs/eval.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from metagen.commands.options import dialogue_turns, load_generator, progress_to_stderr, whole_number, with_decoding_options
from metagen.config import MAX_BATCH_SIZE
from metagen.errors import ConfigError

Worlds = Annotated[Optional[list[Path]], typer.Argument(help="World files (YAML).", show_default=False)]
Seeds = Annotated[int, typer.Option("--seeds", min=1, callback=whole_number, help="Seeds per request, 1 to 10,000: S, S+1, ... (S from --seed, else 1).")]
Kinds = Annotated[str, typer.Option("--kinds", help="Kinds to measure, comma-separated: story,scene,dialogue.")]
Out = Annotated[Path, typer.Option("--out", "-o", help="Folder for report.md and report.json (replaced if there).")]
MaxRequests = Annotated[int, typer.Option("--max-requests", min=1, callback=whole_number, help="Most requests per kind and world.")]
Turns = Annotated[int, typer.Option("--turns", min=1, callback=dialogue_turns, help="Lines per dialogue.")]
StoryCast = Annotated[int, typer.Option("--story-cast", min=0, callback=whole_number, help="Characters in every story request, at most each world's; 0 = one, two, three in turn.")]
Baseline = Annotated[bool, typer.Option("--baseline/--no-baseline", help="Also answer each request with a naive one-line prompt.")]
BatchSize = Annotated[int, typer.Option("--batch-size", min=1, callback=whole_number, help=f"Stories or scenes decoded together, 1 to {MAX_BATCH_SIZE}.")]
Variant = Annotated[str, typer.Option("--prompt-variant", help="Experiment for stories and scenes: metagen (the commands' prompts) | no-opening | no-lore | story-opening-first-name | story-opening-cast | story-opening-place-cast.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")]
Blind = Annotated[Optional[Path], typer.Option("--blind", help="Write a blind A/B comparison into this empty folder: the grid made with --a and with --b, one pair-NNN.md per pair in a seeded order, ratings.csv to fill and key.json (not for readers).", show_default=False)]
SideA = Annotated[Optional[str], typer.Option("--a", help="With --blind: configuration A, a YAML/JSON file of generation settings or key=value,key=value (e.g. candidates=4).", show_default=False)]
SideB = Annotated[Optional[str], typer.Option("--b", help="With --blind: configuration B, as --a.", show_default=False)]
Unblind = Annotated[Optional[Path], typer.Option("--unblind", help="Tally a --blind folder's filled ratings.csv against its key; print it and write unblind.md there.", show_default=False)]


@with_decoding_options
def eval_command(
    worlds: Worlds = None,
    seeds: Seeds = 3,
    kinds: Kinds = "story,scene,dialogue",
    out: Out = Path("eval-report"),
    max_requests: MaxRequests = 6,
    turns: Turns = 4,
    story_cast: StoryCast = 0,
    baseline: Baseline = True,
    batch_size: BatchSize = 8,
    prompt_variant: Variant = "metagen",
    quiet: Quiet = False,
    blind: Blind = None,
    a: SideA = None,
    b: SideB = None,
    unblind: Unblind = None,
    *,
    settings: dict,
    model_options: dict,
):
    """Measure output quality over a grid of requests, against a naive prompt; print the Markdown report.

    --max-tokens caps stories and scenes (default 120 here); a dialogue line keeps its own budget.
    --blind DIR --a SETTINGS --b SETTINGS writes a blind comparison for people; --unblind DIR tallies it.
    """
    from metagen import blind as blinding
    from metagen import eval as evaluation
    from metagen.commands.help import typed_besides
    from metagen.output import check_writable, write_atomic
    from metagen.pipeline import check_batch_size
    from metagen.world import load_world

    if unblind is not None:
        besides = typed_besides("unblind", "quiet")  # `--seeds 4` was ignored silently
        if worlds or blind or a or b or besides:
            raise ConfigError("--unblind takes only the folder" + (f", not {besides[0]}" if besides else ""),
                              hint="metagen eval --unblind DIR")
        markdown, _ = blinding.unblind(unblind)
        typer.echo(markdown, nl=False)
        return
    if not worlds:
        raise ConfigError("give at least one world file", hint="metagen eval WORLD.yaml ...")
    if (blind, a, b).count(None) not in (0, 3):
        raise ConfigError("--blind DIR, --a and --b go together", hint="--blind DIR --a candidates=4 --b candidates=1")

    # a. everything that can fail before the model loads
    loaded = [load_world(path) for path in worlds]
    _check_distinct(worlds, loaded)
    kind_list = evaluation.parse_kinds(kinds)
    evaluation.check_variant(prompt_variant)
    check_batch_size(batch_size)
    for path, world in zip(worlds, loaded):
        evaluation.check_measurable(path, world, kind_list)
        evaluation.build_grid(world, kind_list, max_requests, turns, story_cast)
        for kind in kind_list:
            evaluation.kind_config(world, kind, settings)
    first_seed = 1 if settings.get("seed") is None else settings["seed"]
    seed_list = evaluation.seed_list(seeds, first_seed)
    sides = _check_blind_sides(loaded, kind_list, settings, blind, a, b) if blind is not None else {}
    check_writable(out if blind is None else blind)

    # b. run, score, write
    generator = load_generator(model_options, quiet)
    progress = progress_to_stderr(quiet)
    if blind is not None:
        runs = blinding.run_both(generator, loaded, settings, sides["--a"], sides["--b"], progress=progress,
                                 kinds=kind_list, seeds=seed_list, max_requests=max_requests, turns=turns,
                                 story_cast=story_cast,
                                 batch_size=batch_size, variant=prompt_variant)
        pairs = blinding.write_blind(blind, loaded, *runs, sides["--a"], sides["--b"], seed=first_seed)
        typer.echo(f"wrote {len(pairs)} pairs, {blinding.SHEET} to fill in and {blinding.KEY} (not for readers) "
                   f"to {blind}")
        return
    run = evaluation.run_eval(generator, loaded, kinds=kind_list, seeds=seed_list, max_requests=max_requests,
                              turns=turns, story_cast=story_cast, settings={**settings, "seed": None}, baseline=baseline,
                              batch_size=batch_size, variant=prompt_variant, progress=progress)
    report = evaluation.build_report(run, loaded)
    markdown = evaluation.render_markdown(report)
    json_path = write_atomic(out / "report.json", json.dumps(report, indent=1, ensure_ascii=False) + "\n",
                             overwrite=True)
    md_path = write_atomic(out / "report.md", markdown, overwrite=True)
    typer.echo(markdown, nl=False)
    if progress:
        progress(f"wrote {md_path} and {json_path}")


def _check_distinct(paths: list[Path], loaded: list) -> None:
    """Each world once: the report groups by world id, so a world given twice would count its outputs twice."""
    first = {}
    for path, world in zip(paths, loaded):
        if world.id in first:
            raise ConfigError(f"{path}: world '{world.id}' is given twice (also as {first[world.id]})",
                              hint="give each world once; the report groups outputs by world id")
        first[world.id] = path


def _check_blind_sides(loaded: list, kind_list: list[str], settings: dict, blind: Path, a: str, b: str) -> dict:
    """--a's and --b's settings by flag, each checked against the worlds; and the --blind folder checked empty."""
    from metagen import blind as blinding

    sides = {}
    for flag, text in (("--a", a), ("--b", b)):
        sides[flag] = blinding.load_settings(text, flag)
        blinding.check_with_worlds(loaded, kind_list, settings, sides[flag], flag)
    blinding.check_different(loaded, kind_list, settings, sides["--a"], sides["--b"])
    blinding.check_empty(blind)
    return sides


__all__ = ["eval_command"]
