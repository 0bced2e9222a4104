"""Measured quality: a grid of requests per world, answered by metagen and by a naive one-line
prompt to the same model, scored for what a reader notices (metagen.measure: names forgotten in
the model's own words, speakers or people invented, garbled text, text copied from the world,
banned words, repeated 4-grams, sameness across seeds), and the report.

docs/eval.md defines each metric and its limits.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from metagen import __version__
from metagen.config import MAX_SEED
from metagen.critic import banned_hits, distinct_n, repetition
from metagen.grounding import character_forms, location_forms, names_any, unknown_names, world_vocabulary
from metagen.errors import ConfigError
from metagen.measure import (
    Output,
    Reference,
    copies_prose,
    copies_sample_line,
    parse_turns,
    recorded_request,
    score,
    speaker_of,
    summarize,
    world_reference,
)
from metagen.pipeline import DEFAULT_BATCH_SIZE, check_batch_size, in_batches
from metagen.prompts import (
    KINDS,
    DialogueRequest,
    Request,
    SceneRequest,
    StoryRequest,
    resolve_request,
)
from metagen.text import did_you_mean, fold
from metagen.world import World

SYSTEMS = ("metagen", "baseline")
DEFAULT_MAX_REQUESTS = 6  # per kind and world
DEFAULT_TURNS = 4  # lines per dialogue
DEFAULT_MAX_TOKENS = 120  # a story's or scene's budget here (dialogue lines keep their own)

# ----------------------------------------------------------------------------- the grid


def parse_kinds(text: str | Sequence[str]) -> tuple[str, ...]:
    """Kinds from "story,scene" (or a list); ConfigError naming an unknown one."""
    parts = text.split(",") if isinstance(text, str) else [p for t in text for p in t.split(",")]
    kinds = tuple(dict.fromkeys(p.strip() for p in parts if p.strip()))
    for kind in kinds:
        if kind not in KINDS:
            raise ConfigError(f"--kinds: unknown kind '{kind}' ({did_you_mean(kind, KINDS)})")
    if not kinds:
        raise ConfigError("--kinds names no kind", hint=f"give some of {', '.join(KINDS)}")
    return kinds


def _spread_pairs(ids: Sequence[str], limit: int) -> list[tuple[str, str]]:
    """Pairs of characters, each next pair the one whose two have appeared least (file order on ties)."""
    remaining = list(itertools.combinations(ids, 2))
    used: Counter = Counter()
    pairs = []
    while remaining and len(pairs) < limit:
        best = min(remaining, key=lambda p: (max(used[p[0]], used[p[1]]), used[p[0]] + used[p[1]]))
        remaining.remove(best)
        used.update(best)
        pairs.append(best)
    return pairs


def build_grid(world: World, kinds: Sequence[str] = KINDS, max_requests: int = DEFAULT_MAX_REQUESTS,
               turns: int = DEFAULT_TURNS, story_cast: int = 0) -> list[Request]:
    """The requests one world is measured on, at most max_requests per kind: a scene per location;
    dialogues between pairs spread over the cast; stories of one, two, three characters in turn
    (or of story_cast characters each: the README's story has two, and no world's stories can have
    more than it has characters), each cast and place shifted by one from the last."""
    from metagen.pipeline import MAX_COUNT

    if not 1 <= max_requests <= MAX_COUNT:
        raise ConfigError(f"--max-requests must be 1 to {MAX_COUNT}, got {max_requests}")
    chars = [c.id for c in world.characters]
    places = [loc.id for loc in world.locations]
    requests: list[Request] = []
    if story_cast < 0:
        raise ConfigError(f"--story-cast must be 0 (one, two, three characters in turn) or more, got {story_cast}")
    if "story" in kinds and story_cast > len(chars) > 0:  # the report would record a cast no story had
        raise ConfigError(f"--story-cast {story_cast}: world '{world.id}' has only {len(chars)} character"
                          f"{'s' if len(chars) > 1 else ''} to cast",
                          hint=f"give --story-cast {len(chars)} or less, or 0 for one, two, three in turn")
    if "story" in kinds and chars:
        for i in range(max_requests):
            n = min(story_cast or 1 + i % 3, len(chars))
            cast = tuple(chars[(i + j) % len(chars)] for j in range(n))
            requests.append(StoryRequest(characters=cast, location=places[i % len(places)] if places else None,
                                         length=world.style.length))
    if "scene" in kinds:
        requests += [SceneRequest(location=p) for p in places[:max_requests]]
    if "dialogue" in kinds:
        requests += [DialogueRequest(characters=p, turns=turns) for p in _spread_pairs(chars, max_requests)]
    return [resolve_request(world, r).request for r in requests]


def check_measurable(path, world: World, kinds: Sequence[str]) -> None:
    """ConfigError naming the world file when it lacks what a kind asked for needs (a story a character, a
    scene a location, a dialogue two characters): its rows of the report had been empty, with exit 0."""
    chars, places = len(world.characters), len(world.locations)
    lacks = {"story": None if chars else "no characters", "scene": None if places else "no locations",
             "dialogue": None if chars > 1 else ("only one character" if chars else "no characters")}
    missing = [kind for kind in kinds if lacks[kind]]
    if not missing:
        return
    kept = [kind for kind in kinds if kind not in missing]
    raise ConfigError(f"{path}: world '{world.id}' has {' and '.join(dict.fromkeys(lacks[k] for k in missing))}: "
                      f"nothing to measure for {', '.join(missing)}",
                      hint=(f"give --kinds {','.join(kept)}, or " if kept else "") + "add to the world what it lacks")


def seed_list(count: int, start: int = 1) -> list[int]:
    """The seeds every request is answered with: start, start + 1, ... (count of them)."""
    from metagen.pipeline import MAX_COUNT

    if not 1 <= count <= MAX_COUNT:
        raise ConfigError(f"--seeds must be 1 to {MAX_COUNT}, got {count}")
    if start + count > MAX_SEED:  # S, S+1, ... never pass the largest seed (torch's generator takes no more)
        raise ConfigError(f"--seed {start} with --seeds {count} passes the largest seed, 2**63 - 1",
                          hint="give a smaller --seed")
    return list(range(start, start + count))


def naive_prompt(world: World, request: Request) -> str:
    """The baseline's one-line prompt: "Write a story about X and Y in Z." / "Describe Z." /
    "Write a dialogue between X and Y." (full names as the world writes them)."""
    resolved = resolve_request(world, request)
    names = [c.name for c in resolved.characters]
    cast = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + " ".join(names[-1:])
    place = resolved.location.name if resolved.location else None
    if request.kind == "scene":
        return f"Describe {place}."
    if request.kind == "dialogue":
        return f"Write a dialogue between {cast}" + (f" in {place}." if place else ".")
    return f"Write a story about {cast}" + (f" in {place}." if place else ".")


# ----------------------------------------------------------------------------- scoring

# ----------------------------------------------------------------------------- running


@dataclass
class EvalRun:
    """Everything one eval produced: settings, outputs and decoding time per group."""

    settings: dict
    model: dict
    outputs: list[Output] = field(default_factory=list)
    seconds: Counter = field(default_factory=Counter)  # (world, kind, system) -> decoding wall time


def kind_config(world: World, kind: str, settings: dict, max_tokens: int = DEFAULT_MAX_TOKENS):
    """The decoding settings of one kind as the commands settle them, the token budget set for eval:
    max_tokens for stories and scenes (a --max-tokens flag wins), a dialogue line's own budget."""
    from metagen.pipeline import effective_config

    layer = dict(settings or {})
    if kind == "dialogue":
        layer["max_new_tokens"] = None  # per line, from the world or the command's default
    elif layer.get("max_new_tokens") is None:
        layer["max_new_tokens"] = max_tokens
    return effective_config(world, kind, None, layer)


# Experiments for stories and scenes (dialogue is always metagen's): name -> (lore budget,
# opening style), None meaning the commands' own choice.
PROMPT_VARIANTS = {
    "metagen": (None, None),
    "no-opening": (None, "none"),
    "no-lore": (0, None),
    "story-opening-first-name": (None, "first-name"),
    "story-opening-cast": (None, "cast"),
    "story-opening-place-cast": (None, "place-cast"),
}


def check_variant(variant: str) -> str:
    """The prompt variant, checked."""
    if variant not in PROMPT_VARIANTS:
        raise ConfigError(f"--prompt-variant must be one of {', '.join(PROMPT_VARIANTS)}, got {variant!r}",
                          hint=did_you_mean(variant, list(PROMPT_VARIANTS)))
    return variant


def _variant_pieces(generator, world: World, requests: list[Request], cfg, seeds: list[int], variant: str,
                    batch_size: int, on_done: Callable[[], None]):
    """Stories or scenes from an experimental prompt: (request dict, seed, text, tokens, finish, opening) each."""
    from metagen.prompts import build_prompt

    lore_budget, style = PROMPT_VARIANTS[variant]
    made = []
    for batch in in_batches(list(range(len(requests))), batch_size):
        prompts = []
        for request in (requests[i] for i in batch):
            # story-opening-* styles are for stories; a scene keeps its own opening (None)
            kind_style = style if request.kind == "story" or style == "none" else None
            prompts.append(build_prompt(world, request, count_tokens=generator.count_tokens,
                                        context_length=generator.context_length, max_new_tokens=cfg.max_new_tokens,
                                        lore_budget=lore_budget, opening_style=kind_style))
        done = generator.complete([generator.tokenizer.encode_chat(p.messages, suffix=p.opening) for p in prompts],
                                  cfg, seeds=[seeds[i] for i in batch])
        for i, p, c in zip(batch, prompts, done):
            made.append((requests[i].to_dict(), seeds[i], (p.opening + c.text).strip(), c.output_tokens,
                         c.finish_reason, p.opening))
            on_done()
    return made


def _opening(world: World, request: dict) -> str:
    """The words metagen's commands start an answer to this request with."""
    from metagen.opening import answer_opening

    return answer_opening(resolve_request(world, recorded_request(request)))


class _Progress:
    """Says "world kind: n/total" every batch_size outputs of metagen's, and at the last."""

    def __init__(self, progress: Callable[[str], None] | None, label: str, total: int, every: int):
        self.progress, self.label, self.total, self.every = progress, label, total, every
        self.done = 0

    def __call__(self, *_) -> None:  # compose's on_piece(i, piece), or one variant output
        self.done += 1
        if self.progress and (self.done % self.every == 0 or self.done == self.total):
            self.progress(f"{self.label}: {self.done}/{self.total}")


def run_eval(generator, worlds: Sequence[World], *, kinds: Sequence[str] = KINDS, seeds: Sequence[int] = (1,),
             max_requests: int = DEFAULT_MAX_REQUESTS, turns: int = DEFAULT_TURNS, story_cast: int = 0,
             settings: dict | None = None,
             max_tokens: int = DEFAULT_MAX_TOKENS, baseline: bool = True, batch_size: int = DEFAULT_BATCH_SIZE,
             variant: str = "metagen", progress: Callable[[str], None] | None = None) -> EvalRun:
    """Answer every world's grid with every seed, by metagen and (with baseline) by the naive prompt.

    Args:
        batch_size: requests decoded together (pieces.compose; the baseline and experiments alike).
        variant: metagen (the commands' prompts), or an experiment for stories and scenes
            (PROMPT_VARIANTS: no opening words, no lore, another story opening).
    """
    check_batch_size(batch_size)
    check_variant(variant)
    run = EvalRun(settings={"kinds": list(kinds), "seeds": list(seeds), "max_requests": max_requests,
                            "story_cast": story_cast,
                            "turns": turns, "max_tokens": max_tokens, "baseline": baseline, "variant": variant,
                            "batch_size": batch_size, "flags": {k: v for k, v in (settings or {}).items()
                                                                if v is not None}, "configs": {}},
                  model=generator.info.to_dict())
    for world in worlds:
        reference = world_reference(world)
        grid = build_grid(world, kinds, max_requests, turns, story_cast)
        for kind in kinds:
            cfg = kind_config(world, kind, settings or {}, max_tokens)
            run.settings["configs"][f"{world.id}/{kind}"] = cfg.to_dict()
            items = [(r, s) for r in grid if r.kind == kind for s in seeds]
            if not items:
                continue
            # a. metagen: the command's own prompt building (and turn-by-turn dialogue)
            on_done = _Progress(progress, f"{world.id} {kind}", len(items), batch_size)
            started = time.perf_counter()
            answers = _metagen_answers(generator, world, kind, items, cfg, variant, batch_size, on_done)
            run.seconds[(world.id, kind, "metagen")] += time.perf_counter() - started
            for request, seed, text, tokens, finish, opening, turns_, piece_settings in answers:
                run.outputs.append(score(world, Output(world.id, kind, "metagen", request, seed, text, tokens,
                                                       finish, turns_, opening.strip()), reference, piece_settings))
            if baseline:
                # b. baseline: one naive line, the same settings; a dialogue is one free completion
                run.outputs += _baseline_outputs(generator, world, kind, items, cfg, batch_size, reference, run)
    return run


def _metagen_answers(generator, world: World, kind: str, items: list[tuple[Request, int]], cfg, variant: str,
                     batch_size: int, on_done: _Progress) -> list[tuple]:
    """(request dict, seed, text, tokens, finish, opening, turns, settings) per item, from the commands'
    compose, or from an experimental prompt for stories and scenes."""
    from metagen.pipeline import compose

    requests, item_seeds = [r for r, _ in items], [s for _, s in items]
    if variant != "metagen" and kind != "dialogue":
        made = _variant_pieces(generator, world, requests, cfg, item_seeds, variant, batch_size, on_done)
        return [(*m, [], {**cfg.to_dict(), "seed": s}) for m, s in zip(made, item_seeds)]
    result = compose(generator, world, requests, cfg, seeds=item_seeds, batch_size=batch_size, on_piece=on_done)
    return [(p.request, p.seed, p.text, p.output_tokens, p.finish_reason, _opening(world, p.request),
             [(t["speaker"], t["line"]) for t in p.turns], p.settings) for p in result.pieces]


def _baseline_outputs(generator, world: World, kind: str, items: list[tuple[Request, int]], cfg, batch_size: int,
                      reference: Reference, run: EvalRun) -> list[Output]:
    """The naive prompt's answers, scored; its decoding time is added to run.seconds."""
    base_cfg = cfg
    if kind == "dialogue":
        base_cfg = dataclasses.replace(cfg, max_new_tokens=cfg.max_new_tokens * items[0][0].turns)
    started = time.perf_counter()
    done = []
    for batch in in_batches(items, batch_size):
        done += generator.generate([naive_prompt(world, r) for r, _ in batch], base_cfg, seeds=[s for _, s in batch])
    run.seconds[(world.id, kind, "baseline")] += time.perf_counter() - started
    outputs = []
    for (request, seed), completion in zip(items, done):
        text = completion.text.strip()
        outputs.append(score(world, Output(
            world.id, kind, "baseline", request.to_dict(), seed, text, completion.output_tokens,
            completion.finish_reason, parse_turns(text) if kind == "dialogue" else []), reference))
    return outputs


# ----------------------------------------------------------------------------- the report


TARGETS = {"grounding": 0.95, "speakers_from_cast": 1.0, "banned_hits": 0}


def build_report(run: EvalRun, worlds: Sequence[World]) -> dict:
    """The report as JSON-ready data: settings, totals per kind and system, per world, targets, outputs."""
    def group(world_id: str | None, kind: str, system: str) -> dict | None:
        picked = [o for o in run.outputs if o.kind == kind and o.system == system
                  and (world_id is None or o.world == world_id)]
        secs = sum(v for (w, k, s), v in run.seconds.items() if k == kind and s == system
                   and (world_id is None or w == world_id))
        return summarize(picked, secs) if picked else None

    kinds, systems = run.settings["kinds"], [s for s in SYSTEMS if s == "metagen" or run.settings["baseline"]]
    summary = {k: {s: group(None, k, s) for s in systems} for k in kinds}
    by_world = {w.id: {k: {s: group(w.id, k, s) for s in systems} for k in kinds} for w in worlds}
    targets = {}
    for kind in kinds:
        ours, base = summary[kind].get("metagen"), summary[kind].get("baseline")
        if not ours:
            continue
        checks = {"grounding": ours["grounding"] >= TARGETS["grounding"], "banned_hits": ours["banned_hits"] == 0}
        if kind == "dialogue":
            checks["speakers_from_cast"] = ours["speakers_from_cast"] == 1.0
        if base:
            checks["repetition"] = ours["repetition"] <= base["repetition"]
        targets[kind] = checks
    return {
        "metagen_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": run.model,
        "settings": run.settings,
        "worlds": [{"id": w.id, "path": str(w.path), "requests": Counter(r.kind for r in build_grid(
            w, kinds, run.settings["max_requests"], run.settings["turns"]))} for w in worlds],
        "summary": summary,
        "by_world": by_world,
        "targets": targets,
        "outputs": [o.to_dict() for o in run.outputs],
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _finish(m: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in m["finish_reasons"].items())


# The Markdown tables' columns: (header, the cell from a group's metrics).
_CELLS: tuple[tuple[str, Callable[[dict], str]], ...] = (
    ("outputs", lambda m: str(m["outputs"])),
    ("grounding", lambda m: _pct(m["grounding"])),
    ("grounding (model's words)", lambda m: _pct(m.get("grounding_model"))),
    ("speakers from cast", lambda m: _pct(m.get("speakers_from_cast"))),
    ("unknown names", lambda m: _pct(m["unknown_names"])),
    ("invented (outputs)", lambda m: _pct(m.get("invented_outputs"))),
    ("made-up relatives", lambda m: _pct(m.get("invented_relatives"))),
    ("wrong kin", lambda m: _pct(m.get("wrong_kin"))),
    ("made-up ranks", lambda m: _pct(m.get("invented_ranks"))),
    ("strangers", lambda m: _pct(m.get("strangers"))),
    ("off-world dates", lambda m: _pct(m.get("off_world_dates"))),
    ("wrong tense", lambda m: _pct(m.get("wrong_tense"))),
    ("tense slips", lambda m: _pct(m.get("tense_slips"))),
    ("wrong pronoun", lambda m: _pct(m.get("wrong_pronoun"))),
    ("garbled", lambda m: str(m.get("garbled", "-"))),
    ("copied", lambda m: _pct(m.get("copied"))),
    ("banned", lambda m: str(m["banned_hits"])),
    ("stock phrases", lambda m: _pct(m.get("stock"))),
    ("repetition (4-gram)", lambda m: _pct(m["repetition"])),
    ("distinct-2", lambda m: _num(m["distinct_2"], 3)),
    ("words", lambda m: _num(m["words"])),
    ("tokens", lambda m: _num(m["tokens"])),
    ("tokens/s", lambda m: _num(m["tokens_per_second"])),
    ("s/piece", lambda m: _num(m.get("seconds_per_piece"), 2)),
    ("finish", _finish),
)
COLUMNS = ("kind", "system", *(header for header, _ in _CELLS))


def _row(kind: str, system: str, m: dict) -> str:
    return "| " + " | ".join((kind, system, *(cell(m) for _, cell in _CELLS))) + " |"


def _table(groups: dict) -> list[str]:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for kind, systems in groups.items():
        lines += [_row(kind, system, m) for system, m in systems.items() if m]
    return lines


def render_markdown(report: dict, max_misses: int = 10) -> str:
    """The report as Markdown: settings, the table over all worlds, targets, one table per world, misses."""
    s = report["settings"]
    worlds = ", ".join(f"{w['id']} ({', '.join(f'{v} {k}' for k, v in w['requests'].items())})"
                       for w in report["worlds"])
    flags = ", ".join(f"{k}={v}" for k, v in s["flags"].items()) or "none"
    lines = [
        "# metagen eval", "",
        f"- model: {report['model'].get('name')} ({report['model'].get('dtype')}, {report['model'].get('device')})",
        f"- worlds: {worlds}",
        f"- seeds: {', '.join(map(str, s['seeds']))}; requests per kind at most {s['max_requests']}; "
        f"dialogue turns {s['turns']}; story/scene max tokens {s['flags'].get('max_new_tokens', s['max_tokens'])}",
        f"- decoding flags given: {flags} (otherwise each world's defaults for the kind)", "",
        "Grounding (model's words): stories and scenes naming every requested name after metagen's opening; "
        "dialogues whose spoken lines name a requested character or the place. Unknown names: share of "
        "dialogue lines (stories, scenes: outputs) with a capitalized word the world never uses; invented "
        "(outputs): share of outputs with one. Garbled: outputs leaving the allowed scripts or holding "
        "mojibake. Copied: dialogue lines holding a sample line of their speaker (or 6 words of them), stories "
        "and scenes sharing 8 words in a row with the world's prose. Stock phrases: stories and scenes whose "
        "model's words hold one of metagen/data/stock-phrases.txt that the world never writes. Repetition: repeated word 4-grams within "
        "an output. Distinct-2: unique bigrams over all seeds of one request. s/piece: decoding seconds per "
        "output.", "",
        "## All worlds", "", *_table(report["summary"]), "", "## Targets", "",
    ]
    for kind, checks in report["targets"].items():
        lines.append(f"- {kind}: " + ", ".join(f"{k} {'met' if ok else 'NOT met'}" for k, ok in checks.items()))
    for world_id, groups in report["by_world"].items():
        lines += ["", f"## {world_id}", "", *_table(groups)]
    misses = [o for o in report["outputs"] if o["system"] == "metagen" and o["missing"]]
    if misses:
        lines += ["", f"## Metagen outputs missing a name ({len(misses)})", ""]
        for o in misses[:max_misses]:
            text = " ".join(o["text"].split())
            lines.append(f"- {o['world']} {o['kind']} seed {o['seed']}: missing {', '.join(o['missing'])}: "
                         f"\"{text[:100]}{'...' if len(text) > 100 else ''}\"")
        if len(misses) > max_misses:
            lines.append(f"- ... and {len(misses) - max_misses} more (report.json lists every output)")
    return "\n".join(lines) + "\n"


__all__ = [
    "DEFAULT_MAX_REQUESTS", "DEFAULT_MAX_TOKENS", "DEFAULT_TURNS", "EvalRun", "KINDS", "Output", "banned_hits",
    "build_grid", "build_report", "character_forms", "check_measurable", "distinct_n", "fold", "kind_config",
    "location_forms",
    "naive_prompt", "names_any", "parse_kinds", "parse_turns", "render_markdown", "repetition", "run_eval",
    "Reference", "copies_prose", "copies_sample_line", "recorded_request", "score", "speaker_of", "summarize", "unknown_names",
    "world_reference", "world_vocabulary",
]
