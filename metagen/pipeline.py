"""The pipeline, metagen's orchestration layer: a world + requests + settings -> finished Piece
records, ready for metagen.output.

`effective_config` is the one place a piece's decoding settings are settled (world
defaults < batch file and job settings < command-line flags, the world's banned words
always added, a length-based token budget when none is given). `compose` builds the
prompts, decodes scenes together in batches of `batch_size` requests, stories and dialogues
one by one (metagen.plan, metagen.dialogue), and fills in every field a file records.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Any, Callable, Mapping

from metagen import __version__
from metagen.config import MAX_BATCH_SIZE, MAX_CANDIDATES, MAX_SEED, GenerationConfig, candidate_seed, merge_settings
from metagen.critic import NARRATION_WEIGHTS, SCENE_WEIGHTS, best_index, critic_context, judge
from metagen.editor import strike
from metagen.grounding import stock_phrases, writing_guard
from metagen.kinship import courtship_words, kin_guard_rules
from metagen.errors import ConfigError, RequestError
from metagen.moderation import check_mode, policy_for, verdict
from metagen.opening import candidate_starts, scene_start_words
from metagen.output import Piece
from metagen.prompts import (
    DIALOGUE_ORDERS,
    REQUEST_KINDS,
    Prompt,
    Request,
    build_prompt,
    resolve_request,
)
from metagen.request import asked_words, request_texts
from metagen.search import PlainPrompts, TextCallback  # on_text(row, new_text): row = the piece's index in the call
from metagen.text import did_you_mean, first_sentences, ngrams, words_of
from metagen.world import World

log = logging.getLogger(__name__)

TOKENS_PER_WORD = 1.4  # English prose with a BPE vocabulary of ~49k; a little headroom
MAX_STORY_TOKENS = 1024  # a story's default budget never goes past this
SCENE_TOKENS = 200  # one paragraph of three or four sentences, with room to spare
DIALOGUE_LINE_TOKENS = 60  # one spoken line (metagen.dialogue decodes a line at a time)
# The critic's length target for a scene: the prompt asks for three or four sentences.
SCENE_TARGET_WORDS = 60
MAX_COUNT = 10_000  # pieces one request (or one batch job) may ask for
# How a small model writes prose a reader keeps: at temperature 0.6 with min-p 0.1 its sentences
# are plainer and keep to the world's facts; it then likes to paste the story so far or the fact
# list back, which no_copy_ngram_size forbids (10 tokens lets names through). Read blind against
# temperature 0.7-0.85 with no min-p: stories preferred in 13 of 15 pairs, scenes 12 of 15,
# dialogues 10 of 14 decided (experiments/log.md, round eight). Without a repetition penalty it
# loops ("a dragon that was a dragon"), so the penalty stays on. Scenes chosen among eight by their
# fluency were read again at 0.75 (11 of 40 for it) and 0.45 (19 of 39): 0.6 stays (round forty-two).
PROSE_DEFAULTS: dict[str, Any] = {"temperature": 0.6, "min_p": 0.1, "no_copy_ngram_size": 10}
# Settings a kind starts from, under the world's defaults. A dialogue line is written after
# the earlier lines, which are prompt tokens: without penalize_prompt the penalties never see
# them and a line often echoes the one before (experiments/log.md: 4-gram repetition 6.5% -> 0.0%).
# Narration opens with a sentence, not "The Container Docks, a bustling hub" (round nine:
# experiments/log.md), and a scene or story paragraph ends after four sentences, up to a
# paragraph break; a spoken line may well start "Maëlle, listen" (and is cut by metagen.dialogue),
# and ends after two sentences (round fifteen: read blind, preferred in 19 of 30 pairs over lines of any length).
# Narration never writes the stock words readers mark as filler ("a marvel of modern engineering").
# The tense guard (tense_guard) stays off: read blind, texts written with it lost 15 pairs to 23
# (experiments/log.md, round twelve).
NARRATION_DEFAULTS: dict[str, Any] = {**PROSE_DEFAULTS, "sentence_opening": True, "max_sentences": 4,
                                      "avoid_stock": True}
# Dialogue lines lean towards the world's facts (context_contrast, metagen.search.ContextContrast):
# read blind against the same lines without it, dialogues were preferred in 20 of 29 decided
# pairs (round thirteen); stories lost (5 of 14). Scenes won with it too (60 of 90) while the critic
# barely weighed fluency; chosen among eight by it (SCENE_WEIGHTS), scenes without the contrast were
# read blind at 23 of 40 for them, kept 21 to 17, longer (median 31 -> 39 and 33 -> 47 words), and
# are written in two thirds of the time: it is off for scenes (round forty, experiments/log.md).
CONTRAST = {"context_contrast": 0.5}
# Narration gives no one a relative the world does not (metagen.kin_guard); a spoken line's "my" and
# "your" belong to a speaker and listener the guard cannot see.
KIN_GUARDED = ("story", "scene")
KIND_DEFAULTS: dict[str, dict[str, Any]] = {"story": NARRATION_DEFAULTS, "scene": NARRATION_DEFAULTS,
                                            "dialogue": {**PROSE_DEFAULTS, "penalize_prompt": True, "max_sentences": 2, **CONTRAST}}
# Versions of each unit (scene, story beat, dialogue line) the critic chooses from when nobody
# says otherwise: docs/quality.md has the measurements (the README's story takes 1.55x the time
# of the earlier single-pass design, side by side). Greedy and beam settings get one. Scenes draw
# eight since the critic leans on the model's own fluency (critic.SCENE_WEIGHTS): read blind
# against four, 29 of 40 changed pairs for eight, kept as a draft 16 to 6. Without the context
# contrast (KIND_DEFAULTS) eight take a scene the time four took with it (round forty, experiments/log.md).
DEFAULT_CANDIDATES = {"story": 4, "scene": 8, "dialogue": 4}
# Scene requests decoded together by compose; each brings cfg.candidates rows. The text of a
# seed does not depend on it (tests/test_pipeline.py): it only trades memory for speed.
DEFAULT_BATCH_SIZE = 8

# on_piece(i, piece) as soon as the piece of requests[i] is finished.
PieceCallback = Callable[[int, Piece], None]


@dataclass
class ComposeResult:
    """Finished pieces, in request order, and what was cut from their prompts."""

    pieces: list[Piece]
    warnings: list[str] = field(default_factory=list)  # one line each, for stderr; duplicates dropped


@dataclass(frozen=True)
class PromptView:
    """A request's prompt as the model will see it, for --show-prompt and `metagen prompt`."""

    text: str  # the chat template applied to the messages, then the opening
    tokens: int  # tokens of `text` as the model's tokenizer counts them
    messages: list[dict[str, str]]
    lore_used: tuple[str, ...]
    lore_left_out: tuple[str, ...]
    warnings: list[str]
    opening: str = ""  # the answer's first words, written by metagen
    plan: list = field(default_factory=list)  # a story's beats, {"beat", "instruction"} each
    starts: list = field(default_factory=list)  # a scene's: the words each candidate opens with

    def to_dict(self) -> dict:
        return {"prompt": self.text, "prompt_tokens": self.tokens, "opening": self.opening, "plan": self.plan,
                "starts": self.starts,
                "messages": self.messages,
                "lore_used": list(self.lore_used), "lore_left_out": list(self.lore_left_out),
                "warnings": list(self.warnings)}


# ----------------------------------------------------------------------------- requests


def make_request(kind: str, world: World | None = None, **fields: Any) -> Request:
    """A request of `kind` from option values; None values take the defaults (a story's
    length: the world's style.length)."""
    if kind not in REQUEST_KINDS:
        raise RequestError(f"unknown kind '{kind}' ({did_you_mean(kind, REQUEST_KINDS)})")
    cls = REQUEST_KINDS[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = [k for k, v in fields.items() if k not in names and v is not None]
    if unknown:
        raise RequestError(f"a {kind} has no '{unknown[0]}' ({did_you_mean(unknown[0], sorted(names))})")
    given = {k: v for k, v in fields.items() if k in names and v is not None}
    if kind == "story" and "length" not in given and world is not None:
        given["length"] = world.style.length
    if kind == "scene" and "location" not in given:
        raise RequestError("a scene needs a location", hint="give --location ID")
    if given.get("beats") and given.get("premise"):  # a plan's beats are all the story is told: the premise was recorded, never shown
        raise RequestError("--premise and --plan together: the plan's beats say what happens, and the premise would "
                           "never reach the model", hint="put the premise into a beat of the plan, or leave one out")
    return cls(**given)


def seeded_request(world: World, request: Request, seed: int) -> Request:
    """The request as its piece records it: a dialogue's topic, where the request gives none, drawn by
    `seed` (dialogue.with_topic); a story's cast and place, where it names none (plan.with_cast). A
    scene's start words are drawn per candidate (opening.candidate_starts) and recorded by the critic,
    so its request stays as given."""
    if request.kind == "dialogue":
        from metagen.dialogue import with_topic

        return with_topic(world, request, seed)
    if request.kind == "story":
        from metagen.plan import with_cast

        return with_cast(world, request, seed)
    return request


def split_ids(values: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Character ids from "a,b", ["a", "b"] or ["a,b", "c"]; blanks dropped."""
    if values is None:
        return ()
    if isinstance(values, str):
        values = [values]
    return tuple(part.strip() for value in values for part in str(value).split(",") if part.strip())


def check_order(order: str) -> str:
    """The dialogue speaker order, checked: likelihood | turns."""
    if order not in DIALOGUE_ORDERS:
        raise ConfigError(f"--order must be one of {', '.join(DIALOGUE_ORDERS)}, got {order!r}",
                          hint=did_you_mean(order, DIALOGUE_ORDERS))
    return order


# ----------------------------------------------------------------------------- settings


def default_max_tokens(world: World, kind: str, request: Request | None = None) -> int:
    """The token budget when nobody set max_new_tokens: from the story length, or per kind."""
    if kind == "story":
        length = getattr(request, "length", None) or world.style.length
        words = world.style.words_for(length)
        return min(MAX_STORY_TOKENS, round(words * TOKENS_PER_WORD))
    if kind == "scene":
        return SCENE_TOKENS
    return DIALOGUE_LINE_TOKENS


def effective_config(world: World, kind: str, job_settings: Mapping[str, Any] | None,
                     cli_settings: Mapping[str, Any] | None, request: Request | None = None) -> GenerationConfig:
    """The settings a piece is made with: world defaults < job < command line.

    The world's content.banned_words are added to `banned` whatever the layers say,
    max_new_tokens, when no layer gives it, follows the kind (and a story's length), and a
    kind's KIND_DEFAULTS lie under everything.
    For a dialogue, max_new_tokens is per line.
    """
    layers = [world.generation_defaults(kind), job_settings, cli_settings]
    _check_world_defaults(world, kind, layers[0])
    given = any(layer and layer.get("max_new_tokens") is not None for layer in layers)
    base = dict(KIND_DEFAULTS.get(kind, {}))
    if not given:
        base["max_new_tokens"] = default_max_tokens(world, kind, request)
    if not any(layer and layer.get("scripts") for layer in layers):
        # The script guard follows the world's prose and the request's own words (metagen.scripts).
        base.update(writing_guard(world, request_texts(request)))
    if kind in KIN_GUARDED and not any(layer and layer.get("kin_guard") is not None for layer in layers):
        base["kin_guard"] = kin_guard_rules(world)
    cfg = merge_settings(base, *layers)
    chosen = any(layer and layer.get("candidates") is not None for layer in layers)
    if not chosen and cfg.effective_strategy == "sample":
        cfg = dataclasses.replace(cfg, candidates=DEFAULT_CANDIDATES[kind])
    stock = (*stock_phrases(world), *courtship_words(world, asked_words(request))) if cfg.avoid_stock else ()
    banned = tuple(dict.fromkeys((*cfg.banned, *world.content.banned_words, *stock)))
    if banned != cfg.banned:
        cfg = dataclasses.replace(cfg, banned=banned)
    return cfg


def _check_world_defaults(world: World, kind: str, layer: Mapping[str, Any] | None) -> None:
    """A bad value in a world's defaults is named by file and field, not by a flag never typed.

    The layer is checked whole first: settings that need each other (strategy: beam with
    num_beams) pass together; only a failing layer is checked key by key to name the key.
    """
    try:
        GenerationConfig.from_dict(dict(layer or {}))
        return
    except ConfigError:
        pass
    for key, value in (layer or {}).items():
        try:
            GenerationConfig.from_dict({key: value})
        except ConfigError as error:
            section = kind if key in (world.defaults.get(kind) or {}) else "all"
            raise ConfigError(f"{world.path}: defaults.{section}.{key}: {error.message}",
                              hint="fix the value in the world file") from error


def seeds_for(count: int, seed: int | None) -> list[int]:
    """`count` seeds S, S+1, ... from the given seed, or from one drawn at random."""
    if not 1 <= count <= MAX_COUNT:
        raise ConfigError(f"--count must be 1 to {MAX_COUNT}, got {count}",
                          hint="split larger runs into several commands or batch jobs" if count > MAX_COUNT else None)
    if seed is None:
        from metagen.generator import draw_seed

        seed = draw_seed() % (MAX_SEED - count + 1)
    elif seed + count > MAX_SEED:  # S, S+1, ... never wrap to 0
        raise ConfigError(f"--seed {seed} with --count {count} passes the largest seed, 2**63 - 1",
                          hint="give a smaller --seed")
    return [seed + k for k in range(count)]


def settings_key(cfg: GenerationConfig) -> str:
    """The settings without the seed, as a stable string: pieces that share it decode together."""
    return json.dumps({**cfg.to_dict(), "seed": None}, sort_keys=True)


# ----------------------------------------------------------------------------- prompts


def _prompt(generator, world: World, request: Request, cfg: GenerationConfig) -> Prompt:
    """The prompt compose would build for a story or scene (and the preamble of a dialogue)."""
    if request.kind == "dialogue":
        from metagen.dialogue import dialogue_prompt

        return dialogue_prompt(generator, world, request, cfg)
    return build_prompt(world, request, count_tokens=generator.count_tokens,
                        context_length=generator.context_length, max_new_tokens=cfg.max_new_tokens)


def check_request_fits_context(generator, world: World, request: Request, cfg: GenerationConfig, seed: int) -> None:
    """RequestError when the prompt compose would build for this request and seed leaves too little of
    the model's context for cfg.max_new_tokens (batch asks it of every piece before writing any)."""
    if request.kind == "story":
        from metagen.plan import check_story_fits_context

        check_story_fits_context(generator, world, request, cfg, seed=seed)
    else:
        _prompt(generator, world, seeded_request(world, request, seed), cfg)


def prompt_view(generator, world: World, request: Request, cfg: GenerationConfig) -> PromptView:
    """The exact prompt text a request gives, its token count and the lore it used or left out.

    A story shows its first beat's prompt and its whole plan, which follows the seed (cfg.seed, else 0),
    as a dialogue's topic does when none is given.
    """
    request = seeded_request(world, request, cfg.seed or 0)  # as a story's plan, these follow the seed
    if request.kind == "story":
        from metagen.plan import check_story_fits_context, make_plan, plan_prompt, story_messages

        # refused as `metagen story` refuses it: a prompt no run could send is not shown as if it were
        check_story_fits_context(generator, world, request, cfg, seed=cfg.seed or 0)
        resolved = resolve_request(world, request)
        plan = make_plan(world, resolved, cfg.seed or 0)
        prompt = plan_prompt(world, resolved, plan, story_messages(world, resolved), generator.context_length, cfg)
        text = prompt.text(generator.tokenizer.render_chat)
        return PromptView(text=text, tokens=len(generator.tokenizer.encode_chat(prompt.messages)),
                          messages=prompt.messages,
                          lore_used=prompt.lore_used, lore_left_out=(), warnings=[],
                          plan=[b.to_dict() for b in plan])
    starts = candidate_starts(world, request, cfg.seed or 0, cfg.candidates) if request.kind == "scene" else []
    if starts:  # the candidates share the prompt; each then opens with its own start words
        request = dataclasses.replace(request, start=_asked_start(world, request, starts))
    prompt = _prompt(generator, world, request, cfg)
    text = prompt.text(generator.tokenizer.render_chat)
    return PromptView(text=text, tokens=len(generator.tokenizer.encode_chat(prompt.messages, suffix=prompt.opening)),
                      messages=prompt.messages, lore_used=prompt.lore_used,
                      lore_left_out=prompt.lore_left_out, warnings=list(prompt.warnings), opening=prompt.opening,
                      starts=starts)


# ----------------------------------------------------------------------------- composing


def _piece(world: World, request_dict: dict, subject: str, model: dict, cfg: GenerationConfig, seed: int, *,
           prompt: Prompt, prompt_tokens: int, output_tokens: int, finish_reason: str, seconds: float,
           text: str, turns: list | None = None, critic: dict | None = None, plan: list | None = None,
           moderation: tuple | None = None, decoded_with: list | None = None) -> Piece:
    """A finished Piece; moderation: (policy, mode) to record the verdict on its text, None for none."""
    return Piece(
        kind=request_dict["kind"],
        world_id=world.id,
        world_hash=world.content_hash,
        world_files=[str(f) for f in world.files],
        request=request_dict,
        model=model,
        settings={**cfg.to_dict(), "seed": seed},
        seed=seed,
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        lore_used=list(prompt.lore_used),
        lore_left_out=list(prompt.lore_left_out),
        finish_reason=finish_reason,
        seconds=round(seconds, 3),
        text=text,
        turns=list(turns or []),
        critic=dict(critic or {}),
        plan=list(plan or []),
        moderation=verdict(text, *moderation) if moderation else {},
        decoded_with=list(decoded_with or []),
        subject=subject,
        metagen_version=__version__,
    )


def _choose(world: World, prompt: Prompt, prompt_text: str, cfg: GenerationConfig, options: list,
            seeds: list[int], policy=None, starts: list[str] | None = None, *, taken: Sequence[frozenset] = (),
            repeats: Sequence[int] | None = None) -> tuple[int, dict]:
    """The critic's pick among a request's candidates, and what it recorded (nothing for one).

    starts: the words each candidate opened with, where the seed drew them (a scene's); recorded
        with each candidate's scores.
    taken: the word 3-grams (scene_grams) of the scenes kept before this one in the same command; a
        candidate that says one of them again (same_scene) is passed over, unless every candidate does.
    repeats: instead of `taken`, the candidates to pass over as a piece's record says (replay).
    """
    if len(options) == 1:
        return 0, {}
    resolved = resolve_request(world, prompt.request)
    scene = prompt.request.kind == "scene"
    person = world.style.point_of_view or ("second" if scene else "third")
    context = critic_context(world, resolved, prompt_text, cfg, target_words=SCENE_TARGET_WORDS if scene else 0,
                             narrator_person=person, moderation=policy, tense=world.style.tense_for(prompt.request.kind))
    edits = [strike(o.text, context) for o in options]  # the critic judges what the reader will get
    for option, edit in zip(options, edits):
        option.text = edit.text
    verdicts = [judge(o.text, context, logprob=o.logprob, tokens=o.output_tokens, struck=len(e.struck),
                      weights=SCENE_WEIGHTS if scene else NARRATION_WEIGHTS) for o, e in zip(options, edits)]
    if repeats is None:
        grams = [scene_grams(prompt.opening + o.text) for o in options]  # once a candidate, not once a kept scene
        repeats = [k for k, g in enumerate(grams) if any(same_scene(g, kept) for kept in taken)]
    repeats = [] if len(repeats) == len(options) else sorted(repeats)
    chosen = best_index(verdicts, skip=repeats)
    log.info("%s %s: candidates %s; kept %d%s", prompt.request.kind, prompt.request.subject,
             ", ".join(f"{v.score:.2f}" for v in verdicts), chosen, f"; repeats {repeats}" if repeats else "")
    records = [{"seed": s, **({"start": start} if start else {}), **v.to_dict()}
               for s, start, v in zip(seeds, starts or [""] * len(options), verdicts)]
    struck = [list(cut) for cut in edits[chosen].struck]  # what the editor took out of the kept text, and why
    return chosen, {"chosen": chosen, "candidates": records, **({"repeats": repeats} if repeats else {}),
                    **({"struck": struck} if struck else {})}


# Of the longer text's word 3-grams, the share two scenes must have in common to be one scene twice:
# nexus-hub's atrium, seeds 3 and 4 of one command, were the same sentence; two honey-house scenes differed
# by a comma. A scene that opens as another did and goes on elsewhere is a variant, and is kept.
REPEAT_SHARE = 0.5


def scene_grams(text: str) -> frozenset:
    """A text's word 3-grams (case folded), which same_scene compares."""
    return frozenset(ngrams([w.casefold() for w in words_of(text)], 3))


def same_scene(grams: frozenset, kept: frozenset) -> bool:
    """Whether two texts' 3-grams say one scene twice: at least REPEAT_SHARE of the longer's in common."""
    return bool(grams and kept) and len(grams & kept) >= REPEAT_SHARE * max(len(grams), len(kept))


def _warnings(prompt: Prompt) -> list[str]:
    return [f"{prompt.request.kind} {prompt.request.subject}: {w}" for w in prompt.warnings]


def compose(generator, world: World, requests: list[Request], cfg: GenerationConfig, *, seeds: list[int],
            order: str = "likelihood", batch_size: int = DEFAULT_BATCH_SIZE, on_text: TextCallback | None = None,
            on_piece: PieceCallback | None = None, moderation: str = "report",
            passed_over: Mapping[int, Sequence[int]] | None = None) -> ComposeResult:
    """Generate one piece per request with its seed: scenes in batches, stories and dialogues in turn.

    Args:
        order: how a dialogue picks its next speaker (likelihood | turns); recorded in the request.
        batch_size: scene requests decoded together, at most; each brings cfg.candidates rows, so one
            call decodes up to batch_size * candidates rows. Stories and dialogues are written one
            at a time (a beat's or a line's candidates are the rows of its call).
        on_text: on_text(i, new_text) as text of requests[i] is final (a scene once chosen, a story
            beat by beat, a dialogue as it is written).
        on_piece: on_piece(i, piece) as soon as the piece of requests[i] is finished: scenes batch
            by batch, then stories and dialogues in request order.
        moderation: off | report (candidates over the world's rating lose, and each piece records its
            verdict) | enforce (the same here; the commands then refuse to write a piece still over it).
        passed_over: replay's record of the candidates each scene passed over as repeats, by request
            index. None (a fresh run): a scene's candidates that say again a scene kept before it in this
            call (same_scene) are passed over, unless all of them do; each piece records which
            (critic.repeats), so replay, which decodes only the piece's batch, passes over the same.
    """
    if len(seeds) != len(requests):
        raise ValueError("one seed per request")
    check_batch_size(batch_size)
    judged = None if check_mode(moderation) == "off" else (policy_for(world), moderation)
    made: dict[int, tuple[Piece, list[str]]] = {}

    def finish(i: int, piece_and_warnings: tuple[Piece, list[str]]) -> None:
        made[i] = piece_and_warnings
        if on_piece:
            on_piece(i, piece_and_warnings[0])

    scenes = [i for i, r in enumerate(requests) if r.kind == "scene"]
    taken: list[frozenset] = []  # the 3-grams of the scenes kept so far (scene_grams)
    for batch in in_batches(scenes, batch_size):
        for i, done in _compose_scenes(generator, world, requests, batch, cfg, seeds, on_text, judged,
                                       taken, passed_over).items():
            finish(i, done)
    for i, request in enumerate(requests):
        stream = (lambda text, _i=i: on_text(_i, text)) if on_text else None
        if request.kind == "story":
            finish(i, _compose_story(generator, world, request, cfg, seeds[i], stream, judged))
        elif request.kind == "dialogue":
            finish(i, _compose_dialogue(generator, world, request, cfg, seeds[i], order, stream, judged))
    warnings = [w for i in range(len(requests)) for w in made[i][1]]
    return ComposeResult(pieces=[made[i][0] for i in range(len(requests))], warnings=list(dict.fromkeys(warnings)))


def check_batch_size(batch_size: int) -> int:
    """The batch size, checked: at least 1, at most config.MAX_BATCH_SIZE (its candidates make each
    scene several rows of one model call)."""
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    if batch_size > MAX_BATCH_SIZE:
        raise ConfigError(f"--batch-size must be at most {MAX_BATCH_SIZE}, got {batch_size}",
                          hint=f"give {MAX_BATCH_SIZE} or less: each scene brings up to {MAX_CANDIDATES} candidates "
                          "as rows of one model call")
    return batch_size


def in_batches(items: list, batch_size: int) -> list[list]:
    """The items in runs of at most batch_size, in order: the one way metagen splits work into batches."""
    check_batch_size(batch_size)
    return [items[i : i + batch_size] for i in range(0, len(items), batch_size)]


def _compose_scenes(generator, world: World, requests: list[Request], batch: list[int], cfg: GenerationConfig,
                    seeds: list[int], on_text: TextCallback | None, judged: tuple | None, taken: list[frozenset],
                    passed_over: Mapping[int, Sequence[int]] | None) -> dict[int, tuple[Piece, list[str]]]:
    """A batch of scenes: prompts first, then one generate call for all of them and all their candidates.
    Each is chosen in request order, passing over candidates that say again a scene kept before it
    (`taken`, which grows by each kept scene's 3-grams), or those `passed_over` names (compose).

    Each candidate opens with its own start words (opening.candidate_starts), written by metagen as
    the first tokens of its text, so the candidates of a scene keep one prompt (prefilled once)."""
    model = generator.info.to_dict()
    render = generator.tokenizer.render_chat
    n = cfg.candidates
    starts = {i: candidate_starts(world, requests[i], seeds[i], n) for i in batch}
    prompts = {i: _prompt(generator, world, dataclasses.replace(requests[i], start=_asked_start(world, requests[i],
                                                                                                 starts[i])), cfg)
               for i in batch}
    texts = {i: prompts[i].text(render) for i in batch}
    rows = [(i, k) for i in batch for k in range(n)]
    row_seeds = [candidate_seed(seeds[i], k) for i, k in rows]
    # World text is encoded so that it can never spell the template's control tokens.
    ids = {i: generator.tokenizer.encode_chat(prompts[i].messages, suffix=prompts[i].opening) for i in batch}
    force = cfg.effective_strategy != "beam"  # beam search keeps one candidate, asked for its words
    forced = [generator.tokenizer.encode_plain(starts[i][k]) if force and not prompts[i].opening else []
              for i, k in rows]
    completions = generator.complete([ids[i] for i, _ in rows], cfg, seeds=row_seeds,
                                     plain=_plain_prompts(generator, prompts, rows, forced) if cfg.context_contrast
                                     else None, forced=forced if any(forced) else None)
    made = {}
    together = [{"request": requests[i].to_dict(), "seed": seeds[i]} for i in batch] if len(batch) > 1 else []
    for j, i in enumerate(batch):
        request, prompt = requests[i], prompts[i]
        options = completions[j * n:(j + 1) * n]
        for option in options:  # a scene is its first few sentences: the model drifts after them
            option.text = first_sentences(option.text, cfg.max_sentences)
        chosen, critic = _choose(world, prompt, texts[i], cfg, options, row_seeds[j * n:(j + 1) * n],
                                 judged[0] if judged else None, starts=starts[i] if request.start is None else None,
                                 taken=taken, repeats=None if passed_over is None else passed_over.get(i, ()))
        completion = options[chosen]
        text = (prompt.opening + completion.text).strip()
        taken.append(scene_grams(text))
        if on_text:  # shown once final: never a candidate the critic drops, never cut sentences
            on_text(i, text)
        made[i] = (_piece(world, request.to_dict(), request.subject, model, cfg, seeds[i],
                          prompt=prompt, prompt_tokens=completion.prompt_tokens,
                          output_tokens=completion.output_tokens, finish_reason=completion.finish_reason,
                          seconds=completion.seconds, text=text, critic=critic, moderation=judged,
                          decoded_with=together),
                   _warnings(prompt))
    return made


def _asked_start(world: World, request: Request, starts: list[str]) -> str:
    """The words a scene's task asks it to open with: its candidates' own when they share them, else
    the place's name, which every candidate's start words begin with."""
    if len(set(starts)) == 1:
        return starts[0]
    return scene_start_words(resolve_request(world, request).location)


def _plain_prompts(generator, prompts: dict[int, Prompt], rows: list[tuple[int, int]],
                   forced: list[list[int]]) -> PlainPrompts:
    """The scenes' prompts without their places' facts, one a row; the contrast starts after the
    words each row opens with (its forced start; unforced, its asked start words and a "The")."""
    tokenizer = generator.tokenizer
    plain = {i: tokenizer.encode_chat(p.plain_messages, suffix=p.opening) for i, p in prompts.items()}
    asked = {i: 0 if p.opening else 1 + len(tokenizer.encode_plain(p.request.start)) for i, p in prompts.items()}
    starts = tuple(len(written) if written else asked[i] for (i, _), written in zip(rows, forced))
    return PlainPrompts([plain[i] for i, _ in rows], starts)


def _compose_story(generator, world: World, request: Request, cfg: GenerationConfig, seed: int,
                   on_text: Callable[[str], None] | None, judged: tuple | None) -> tuple[Piece, list[str]]:
    """A story: planned, then written beat by beat (metagen.plan)."""
    from metagen.plan import write_story

    story = write_story(generator, world, request, cfg, seed=seed, on_text=on_text,
                        moderation=judged[0] if judged else None)
    prompt = story.prompt
    piece = _piece(world, prompt.request.to_dict(), prompt.request.subject, generator.info.to_dict(), cfg, seed,
                   prompt=prompt, prompt_tokens=story.prompt_tokens, output_tokens=story.output_tokens,
                   finish_reason=story.finish_reason, seconds=story.seconds, text=story.text,
                   critic=story.critic, plan=story.plan, moderation=judged)
    return piece, _warnings(prompt)


def _compose_dialogue(generator, world: World, request: Request, cfg: GenerationConfig, seed: int, order: str,
                      on_text: Callable[[str], None] | None, judged: tuple | None) -> tuple[Piece, list[str]]:
    """A dialogue: turn by turn (metagen.dialogue)."""
    from metagen.dialogue import generate_dialogue

    check_order(order)
    result = generate_dialogue(generator, world, request, cfg, seed=seed, order=order, on_text=on_text,
                               moderation=judged[0] if judged else None)
    prompt = result.prompt
    piece = _piece(world, {**prompt.request.to_dict(), "order": order}, prompt.request.subject,
                   generator.info.to_dict(), cfg, seed, prompt=prompt, prompt_tokens=result.prompt_tokens,
                   output_tokens=result.output_tokens, finish_reason=result.finish_reason, seconds=result.seconds,
                   text=result.text.strip(), turns=[dict(t) for t in result.turns], critic=result.critic,
                   moderation=judged)
    return piece, [f"dialogue {prompt.request.subject}: {w}" for w in result.warnings]


__all__ = [
    "ComposeResult",
    "DEFAULT_BATCH_SIZE",
    "DIALOGUE_ORDERS",
    "PromptView",
    "check_batch_size",
    "check_order",
    "check_request_fits_context",
    "compose",
    "default_max_tokens",
    "effective_config",
    "in_batches",
    "make_request",
    "seeded_request",
    "prompt_view",
    "same_scene",
    "scene_grams",
    "seeds_for",
    "settings_key",
    "split_ids",
]
