"""Prompt building: a world + a story, scene or dialogue request (metagen.request) -> chat messages.

A prompt holds the facts of the named characters and place, the world's style, lore picked
by keyword within a token budget and few-shot sample lines. The target model is tiny
(SmolLM2-135M-Instruct), so the templates are short and direct, with the task stated last in
the user message. Nothing here imports torch; token counts come from a `count_tokens` callable.
`metagen story` does not use build_prompt: it plans its story and writes it beat by beat
(metagen.plan.story_messages); a story here is one prompt, for `metagen eval --prompt-variant`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

from metagen.config import CLI_NAMES, setting_words
from metagen.errors import RequestError
# The request kinds live in metagen.request; prompts hands them on to the modules that build from prompts.
from metagen.request import (
    DIALOGUE_ORDERS,
    KINDS,
    REQUEST_KINDS,
    DialogueRequest,
    Request,
    Resolved,
    SceneRequest,
    StoryRequest,
    request_from_dict,
    request_texts,
    resolve_request,
)
from metagen.opening import answer_opening, scene_start_words
from metagen.phrasing import POV_PHRASES, cast_phrase, clause
from metagen.text import did_you_mean, mentions
from metagen.world import Character, Location, LoreEntry, Relationship, World

DEFAULT_LORE_BUDGET = 512  # tokens of lore when the caller gives no lore_budget
TEMPLATE_MARGIN = 32  # tokens kept for the chat template's own markers and estimate error
MAX_SAMPLE_LINES = 3  # per character, as few-shot examples



# ----------------------------------------------------------------------------- prompts


@dataclass(frozen=True)
class PromptBudget:
    """Where the context window went, in tokens as counted by the caller's count_tokens."""

    context_length: int  # the model's window
    max_new_tokens: int  # kept free for the answer
    margin: int  # kept for the chat template's markers
    base_tokens: int  # the prompt without lore
    lore_budget: int  # what lore could use
    lore_tokens: int  # what lore did use


@dataclass(frozen=True)
class Prompt:
    """Chat messages for one request, and what went into them."""

    request: Request  # with canonical ids
    messages: list[dict[str, str]]  # [{"role": "system"|"user", "content": ...}]
    lore_used: tuple[str, ...]  # lore ids, in prompt order
    lore_left_out: tuple[str, ...]  # matched lore ids that did not fit
    warnings: list[str]  # anything cut for lack of room
    prompt_tokens: int  # count_tokens over all message contents (an estimate of the real count)
    budget: PromptBudget
    opening: str = ""  # the answer's first words, written by metagen after the chat template
    # The same request without the world's facts (a scene: no description, sights, sounds or
    # smells), for context contrast (metagen.search.ContextContrast); None where a kind has none.
    plain_messages: list[dict[str, str]] | None = None

    def text(self, render_chat: Callable[[list[dict[str, str]]], str]) -> str:
        """The model's whole input: the chat rendered for an answer, then the opening."""
        return render_chat(self.messages) + self.opening

    def to_dict(self) -> dict:
        """JSON-ready data for recording alongside the output."""
        data = asdict(self)
        data["request"] = self.request.to_dict()
        data["lore_used"], data["lore_left_out"] = list(self.lore_used), list(self.lore_left_out)
        return data


def select_lore(world: World, text: str) -> list[LoreEntry]:
    """Lore to offer for a text: always_include entries, then those a key matches, by priority."""
    picked = [e for e in world.lore if e.always_include or any(mentions(text, k) for k in e.keys)]
    return sorted(picked, key=lambda e: (not e.always_include, -e.priority))  # stable: file order breaks ties


def _match_text(world: World, resolved: Resolved) -> str:
    request = resolved.request
    parts = request_texts(request)
    cast = {c.id for c in resolved.characters}
    for c in resolved.characters:
        parts += [c.name, *c.aliases, c.role or "", c.description or "", *c.traits, *c.goals]
        parts += [f"{r.kind or ''} {r.description or ''}" for r in c.relationships if r.other in cast]
    if resolved.location:
        loc = resolved.location
        parts += [loc.name, loc.description or "", *loc.sights, *loc.sounds, *loc.smells, *loc.tags]
    for faction in world.factions:
        if any(c.id in faction.members for c in resolved.characters):
            parts.append(faction.name)
    return "\n".join(p for p in parts if p)


def message_tokens(messages: list[dict[str, str]], count_tokens: Callable[[str], int]) -> int:
    """Tokens of all the messages' contents, as count_tokens counts them (the template not included)."""
    return sum(count_tokens(m["content"]) for m in messages)


def build_prompt(
    world: World,
    request: Request,
    *,
    count_tokens: Callable[[str], int],
    context_length: int,
    max_new_tokens: int,
    lore_budget: int | None = None,
    opening_style: str | None = None,
) -> Prompt:
    """Chat messages for the request, with lore fitted into what the context window leaves.

    Args:
        count_tokens: counts the tokens of a text (the model's tokenizer, or an estimate).
        lore_budget: at most this many tokens of lore (default 512, fewer if the window is short).
        opening_style: how the answer starts (opening.OPENING_STYLES); None: the kind's default, and
            none at all when the request says opening: false.
    """
    if context_length <= 0 or max_new_tokens < 0 or (lore_budget is not None and lore_budget < 0):
        raise RequestError(
            f"impossible budget: context_length={context_length}, max_new_tokens={max_new_tokens}, "
            f"lore_budget={lore_budget}"
        )
    resolved = resolve_request(world, request)
    room = context_length - max_new_tokens - TEMPLATE_MARGIN
    warnings: list[str] = []

    # a. the prompt without lore; cut few-shot lines before giving up
    samples = MAX_SAMPLE_LINES
    base = _messages(world, resolved, [], samples)
    while message_tokens(base, count_tokens) > room and samples > 0 and _has_samples(resolved):
        samples -= 1
        base = _messages(world, resolved, [], samples)
    if samples < MAX_SAMPLE_LINES:
        warnings.append(f"sample lines cut to {samples} per character for lack of room")
    base_tokens = message_tokens(base, count_tokens)
    if room <= 0:  # the text's budget alone fills the context: "only 0 fit (context 256 - 999999 kept ...)" said less
        fits = context_length - TEMPLATE_MARGIN - base_tokens
        raise RequestError(
            f"{max_new_tokens} tokens kept for the text leave no room for the prompt in the model's context of "
            f"{context_length} tokens (the prompt needs about {base_tokens}, the template {TEMPLATE_MARGIN})",
            hint=f"lower {setting_words('max_new_tokens')} so that at most {fits} are kept for the text" if fits > 0
            else "shorten the premise or topic, or name fewer characters",
        )
    if base_tokens > room:
        raise RequestError(
            f"the prompt needs about {base_tokens} tokens before any lore, but only {max(room, 0)} fit "
            f"(context {context_length} - {max_new_tokens} kept for the text - {TEMPLATE_MARGIN} for the template)",
            hint=f"shorten the premise or topic, lower {setting_words('max_new_tokens')}, or name fewer characters",
        )

    # b. lore, greedily in priority order, within the budget; c. then checked by the real count
    lore_room = min(DEFAULT_LORE_BUDGET if lore_budget is None else lore_budget, room - base_tokens)
    messages, used, left = _fit_lore(world, resolved, samples, count_tokens, room, base_tokens, lore_room)
    if left:
        ids = ", ".join(e.id for e in left)
        warnings.append(
            f"left out {len(left)} lore entr{'y' if len(left) == 1 else 'ies'} for lack of room: {ids} "
            f"(lore budget {max(lore_room, 0)} tokens; raise the lore budget or lower {CLI_NAMES['max_new_tokens']})"
        )
    total = message_tokens(messages, count_tokens)
    opening = answer_opening(resolved, opening_style)
    budget = PromptBudget(
        context_length, max_new_tokens, TEMPLATE_MARGIN, base_tokens, max(lore_room, 0), total - base_tokens
    )
    return Prompt(
        request=resolved.request,
        messages=messages,
        lore_used=tuple(e.id for e in used),
        lore_left_out=tuple(e.id for e in left),
        warnings=warnings,
        prompt_tokens=total,
        budget=budget,
        opening=opening,
        plain_messages=_plain_messages(world, resolved, samples),
    )


def _fit_lore(world: World, resolved: Resolved, samples: int, count_tokens: Callable[[str], int], room: int,
              base_tokens: int, lore_room: int) -> tuple[list[dict[str, str]], list[LoreEntry], list[LoreEntry]]:
    """The messages with as much matched lore as fits, the entries used and those left out (by priority)."""
    # A scene is written from the place's own facts alone: lore there only pulled a small model away.
    candidates = select_lore(world, _match_text(world, resolved)) if resolved.request.kind != "scene" else []
    used: list[LoreEntry] = []
    left: list[LoreEntry] = []
    spent = count_tokens(_LORE_HEADER) if candidates else 0
    for entry in candidates:
        cost = count_tokens(lore_line(entry))
        if spent + cost <= lore_room:
            used.append(entry)
            spent += cost
        else:
            left.append(entry)
    # The real count (token counts need not add up): drop the last entries until it fits.
    messages = _messages(world, resolved, used, samples)
    while used and (message_tokens(messages, count_tokens) > room
                    or message_tokens(messages, count_tokens) - base_tokens > lore_room):
        left.append(used.pop())
        messages = _messages(world, resolved, used, samples)
    left.sort(key=candidates.index)  # priority order, whichever step left them out
    return messages, used, left


def _has_samples(resolved: Resolved) -> bool:
    return any(c.sample_lines for c in resolved.characters)


# ----------------------------------------------------------------------------- templates

_LORE_HEADER = "Background facts:"


def lore_block(lore: Sequence[LoreEntry]) -> str:
    """Lore entries as the prompt's block of background facts."""
    return "\n".join([_LORE_HEADER, *(lore_line(e) for e in lore)])


def lore_line(entry: LoreEntry) -> str:
    """One lore entry as a line of the prompt's background facts."""
    return f"- {' '.join(entry.text.split())}"


def _messages(world: World, resolved: Resolved, lore: Sequence[LoreEntry], samples: int) -> list[dict[str, str]]:
    request = resolved.request
    if request.kind == "scene":
        return _scene_messages(world, resolved)
    return writer_messages(world, resolved, lore, samples, _TASKS[request.kind](world, resolved),
                           secrets=request.kind == "story", dialogue=request.kind == "dialogue")


def _writer_system(world: World) -> str:
    genre = f" ({world.genre})" if world.genre else ""
    return f"You are a writer for {world.name}{genre}. You write vivid, concrete text and follow the task."


def _plain_messages(world: World, resolved: Resolved, samples: int) -> list[dict[str, str]] | None:
    """A scene's or dialogue's messages without the world's facts: the place and cast by name only,
    no descriptions, ties or lore (for context contrast); None for a story, whose beats build their
    own (plan.story_messages).

    A dialogue's keeps its `samples` sample lines: the contrast is to favour what the world's facts
    make likelier, and with the sample lines in one prompt only it favoured their words above all
    (every Quillon Halt dialogue opened "Ten past thirty." from "Ten past three. She'll be on time.";
    with them in both, 11 -> 2 of 96 held-aside lines opened as a sample line, round twenty-nine)."""
    kind = resolved.request.kind
    if kind == "scene":
        return _scene_messages(world, resolved, facts=False)
    if kind != "dialogue":
        return None
    system = _writer_system(world)
    blocks = ["Characters: " + ", ".join(c.name for c in resolved.characters) + "."]
    if resolved.location:
        blocks.append(_end(f"Place: {resolved.location.name}"))
    example = _samples_block(resolved.characters, samples, dialogue=True)
    if example:
        blocks.append(example)
    blocks.append("Task: " + _dialogue_task(world, resolved))
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(blocks)}]


def writer_messages(world: World, resolved: Resolved, lore: Sequence[LoreEntry], samples: int, task: str, *,
                    notes: Sequence[str] = (), secrets: bool = False, dialogue: bool = True) -> list[dict[str, str]]:
    """The system and user messages of every prompt but a scene's: the writer's role, then the world,
    the cast, the place, lore, sample lines, any `notes` blocks and, last, the task."""
    system = _writer_system(world)
    blocks = [_world_block(world)]
    if resolved.characters:
        blocks.append(_characters_block(world, resolved, secrets=secrets))
    if resolved.location:
        blocks.append(_location_block(resolved.location))
    if lore:
        blocks.append(lore_block(lore))
    example = _samples_block(resolved.characters, samples, dialogue=dialogue)
    if example:
        blocks.append(example)
    blocks += [note for note in notes if note]
    blocks.append("Task: " + task)
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(blocks)}]


def _world_block(world: World) -> str:
    head = f"World: {world.name}"
    extra = "; ".join(x for x in (world.genre, world.era) if x)
    lines = [_end(head + (f" ({extra})" if extra else ""))]
    if world.summary:
        lines.append(_end(world.summary))
    return "\n".join(lines)


def _end(text: str) -> str:
    """Text as a sentence: spaces folded, a full stop added unless it ends in punctuation."""
    text = " ".join(text.split())
    bare = text.rstrip("\"'”’)")
    return text if not text or (bare and bare[-1] in ".!?…") else text + "."


def _sentence(label: str, items: Sequence[str]) -> str:
    return " " + _end(f"{label}: {'; '.join(items)}") if items else ""


# A relationship `kind` that is a verb phrase ("owes money to", "works for") is said "A owes money to B";
# one that is a noun ("daughter", "old friend") is what the other is to this character: "B is A's daughter".
_PREPOSITIONS = frozenset("to for with of from at on by about".split())


def tie_sentence(name: str, other: str, tie: Relationship) -> str:
    """One sentence for a character's tie to another: "Maëlle is Ysolde's daughter: estranged since
    ...". Said as "Ysolde and Maëlle: daughter", a small model cannot tell who is whose, and calls the
    queen's daughter her mother (the README's story, rounds ten to twelve)."""
    kind, description = (clause(text or "") for text in (tie.kind, tie.description))
    if not kind:
        sentence = f"{name} and {other}: {description or 'they know each other'}"
    elif kind.split()[-1].lower() in _PREPOSITIONS:
        sentence = f"{name} {kind} {other}"
    else:
        sentence = f"{other} is {name}'s {kind}"
    return _end(sentence + (f": {description}" if kind and description else ""))


def named_with_pronouns(c: Character, name: str = "") -> str:
    """A character's name (or the given form of it) and their declared pronouns: "Pip (it/its)". A
    robot the world calls "it" was "he" in 7 of 10 stories without them, 1 of 10 with (round twenty)."""
    return (name or c.name) + (f" ({c.pronouns})" if c.pronouns else "")


def _characters_block(world: World, resolved: Resolved, *, secrets: bool) -> str:
    ids = {c.id for c in resolved.characters}
    names = {c.id: c.name for c in world.characters}
    lines = ["Characters:"]
    told: set[frozenset] = set()
    for c in resolved.characters:
        line = "- " + _end(f"{c.name}, {c.role}" if c.role else c.name)
        if c.description:
            line += " " + _end(c.description)
        line += _sentence("Traits", c.traits) + (" " + _end(f"Speaks: {c.voice}") if c.voice else "")
        line += _sentence("Wants", c.goals) + (_sentence("Secret", c.secrets) if secrets else "")
        lines.append(line)
        for rel in c.relationships:  # ties among the cast; all of them when there is one character
            pair = frozenset((c.id, rel.other))
            if (rel.other in ids or len(ids) == 1) and not (pair in told and not rel.description):
                told.add(pair)
                lines.append("  " + tie_sentence(c.name, names.get(rel.other, rel.other), rel))
    return "\n".join(lines)


def _location_block(loc: Location) -> str:
    line = _end(f"Place: {loc.name}") + (" " + _end(loc.description) if loc.description else "")
    senses = _sentence("Sights", loc.sights) + _sentence("Sounds", loc.sounds) + _sentence("Smells", loc.smells)
    return line + senses


def _samples_block(characters: Sequence[Character], per_character: int, *, dialogue: bool) -> str:
    lines = [f"{c.name}: {s}" for c in characters for s in c.sample_lines[:per_character]]
    if not lines:
        return ""
    return "\n".join(["Examples of how they talk:" if not dialogue else "Examples of their lines:", *lines])


def _style(world: World, default_pov: str, kind: str) -> str:
    s = world.style
    text = f"Write in {POV_PHRASES[s.point_of_view or default_pov]}, {world.style.tense_for(kind)} tense."
    if world.tone:
        text += " " + _end(f"Tone: {world.tone}")
    if s.voice:
        text += " " + _end(f"Style: {s.voice}")
    if s.preferred_words:
        text += f" Words that fit: {', '.join(s.preferred_words)}."
    if s.avoided_words:
        text += f" Avoid these words: {', '.join(s.avoided_words)}."
    if s.rating:
        text += f" Keep it suitable for a {s.rating} rating."
    if world.content.banned_topics:
        text += f" Do not write about: {', '.join(world.content.banned_topics)}."
    return text


def _cast(resolved: Resolved) -> str:
    return cast_phrase([c.name for c in resolved.characters])


def _story_task(world: World, resolved: Resolved) -> str:
    """A whole story asked for in one prompt: what `metagen eval --prompt-variant` (other than
    metagen) writes, not the planned story of `metagen story` (metagen.plan)."""
    request: StoryRequest = resolved.request
    words = world.style.words_for(request.length)
    text = f"Write a {request.length} story of about {words} words"
    if resolved.characters:
        text += f" about {_cast(resolved)}"
    if resolved.location:
        text += f", set in {resolved.location.name}"
    text += "."
    if request.premise:
        text += " " + _end(f"Premise: {request.premise}")
    text += " " + _style(world, "third", "story")
    return text + " Give it a beginning, a turn and an ending. Begin the story now."


def _scene_messages(world: World, resolved: Resolved, *, facts: bool = True) -> list[dict[str, str]]:
    """A short, focused prompt: the place's own facts, who is there, and a task of three or four
    sentences.

    A blind trial (the one issue 19 cites, on worlds the project had not seen) preferred this
    over the full world prompt in 11 of 12 pairs: a 135M model describes well what it was just
    told, and little else. Without
    `facts`, the place is only its name: what the model would write about any place so called.
    """
    request: SceneRequest = resolved.request
    loc = resolved.location
    genre = f", {world.genre}" if world.genre else ""
    system = f"You describe places in {world.name}{genre}. You write plain, concrete sentences."
    lines = [_end(f"Place: {loc.name}") + (" " + _end(loc.description) if loc.description and facts else "")]
    for label, items in (("You can see", loc.sights), ("You can hear", loc.sounds), ("You can smell", loc.smells)):
        if items and facts:
            lines.append(_end(f"{label}: {'; '.join(items)}"))
    given = (("Time", request.time), ("Weather", request.weather), ("Mood", request.mood))
    lines += [_end(f"{label}: {value}") for label, value in given if value]
    if resolved.characters:
        people = "; ".join(named_with_pronouns(c) + (f", {c.role}" if c.role else "") for c in resolved.characters)
        lines.append(_end(f"Who is there: {people}"))
    s = world.style
    person, tense = POV_PHRASES[s.point_of_view or "second"], world.style.tense_for("scene")
    # "Start with" keeps the model on the place: asked only to describe Ember Keep, it opened every
    # scene with the Ember Throne, one of the keep's sights (round nine, experiments/log.md).
    task = (f"Start with the words \"{request.start or scene_start_words(loc, tense)}\". "
            f"Describe {loc.name} in three or four sentences, in {person} and the {tense} tense. "
            "Use a few of the details above in your own words. Name no other people and no real places.")
    if s.avoided_words:
        task += f" Avoid these words: {', '.join(s.avoided_words)}."
    lines.append("Task: " + task)
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(lines)}]


def _dialogue_task(world: World, resolved: Resolved) -> str:
    request: DialogueRequest = resolved.request
    text = f"Write a conversation of {request.turns} lines between {_cast(resolved)}"
    if resolved.location:
        text += f" in {resolved.location.name}"
    if request.topic:
        text += f", about {' '.join(request.topic.split()).rstrip('.')}"
    first = resolved.characters[0].name
    text += f". One line per turn, each written as 'Name: line'. {first} speaks first."
    return text + " " + spoken_rules(world)


def spoken_rules(world: World) -> str:
    """The end of a spoken task: short lines in character, the world's avoided words and banned topics."""
    text = "Keep each line short, spoken aloud and in character."
    if world.style.avoided_words:
        text += f" Avoid these words: {', '.join(world.style.avoided_words)}."
    if world.content.banned_topics:
        text += f" Do not talk about: {', '.join(world.content.banned_topics)}."
    return text


_TASKS = {"story": _story_task, "dialogue": _dialogue_task}  # scenes: _scene_messages


__all__ = [
    "DEFAULT_LORE_BUDGET",
    "DIALOGUE_ORDERS",
    "DialogueRequest",
    "KINDS",
    "Prompt",
    "PromptBudget",
    "REQUEST_KINDS",
    "Request",
    "Resolved",
    "SceneRequest",
    "StoryRequest",
    "build_prompt",
    "lore_block",
    "lore_line",
    "named_with_pronouns",
    "message_tokens",
    "request_from_dict",
    "resolve_request",
    "select_lore",
    "spoken_rules",
    "tie_sentence",
    "writer_messages",
]
