"""How a piece starts: the words metagen writes before the model does.

A scene opens on its place's name and a verb of a sound or smell the place gives ("The Crooked
Kettle smelled of"), drawn by the seed for each candidate; an opening style ("place", "cast", ...)
starts an answer on its subject. The model goes on from these words, so they set the subject,
the tense and the first detail (experiments/log.md, rounds nine, fifteen, seventeen to nineteen).
Nothing here imports torch.
"""

from __future__ import annotations

import random

from metagen.errors import RequestError
from metagen.phrasing import cast_phrase
from metagen.request import Request, Resolved, resolve_request
from metagen.text import did_you_mean, upper_first
from metagen.world import Location, World


OPENING_STYLES = ("none", "place", "first-name", "cast", "place-cast")
SCENE_OPENING = "place"


def answer_opening(resolved: Resolved, style: str | None = None) -> str:
    """The first words of the answer, written by metagen so the text starts on its subject.

    place: "The Crooked Kettle"; first-name: "Ysolde"; cast: "Ysolde and Maelle";
    place-cast: "In the Crooked Kettle, Ysolde and Maelle". A style that needs a place or
    characters the request lacks falls back to what it has. By default only a scene has one:
    a dialogue line starts with its speaker's name, a planned story's beats name its cast.
    """
    request = resolved.request
    if style is None:
        # A story is planned (metagen.plan): its beats name the cast and place, and it has no opening.
        if request.kind != "scene" or not request.opening:
            return ""
        style = SCENE_OPENING
    if style not in OPENING_STYLES:
        raise RequestError(f"unknown opening style {style!r} ({did_you_mean(style, OPENING_STYLES)})")
    place = resolved.location.name if resolved.location else ""
    cast = cast_phrase([c.name for c in resolved.characters]) if resolved.characters else ""
    if style == "first-name" and resolved.characters:
        text = resolved.characters[0].name
    elif style == "cast" and cast:
        text = cast
    elif style == "place-cast" and place and cast:
        text = f"In {lower_article(place)}, {cast}"
    elif style in ("place", "place-cast", "cast", "first-name"):
        text = place or cast
    else:
        text = ""
    return upper_first(text)


_NOT_PLURAL_ENDINGS = ("ss", "us", "is", "'s", "’s")


def be_form(name: str, tense: str) -> str:
    """"is"/"are" (present) or "was"/"were" (past) for a name: plural when its head noun, the last
    word before any " of ", ends in -s ("The Container Docks", "The Salt Pans of Oru Kessam")."""
    head = name.split(" of ")[0].split()[-1].casefold()
    plural = head.endswith("s") and not head.endswith(_NOT_PLURAL_ENDINGS)
    return {"past": ("was", "were"), "present": ("is", "are")}[tense][plural]


def lower_article(name: str) -> str:
    """A place name inside a sentence: "The Crooked Kettle" -> "the Crooked Kettle"."""
    return "the" + name[3:] if name.startswith("The ") else name


def scene_start_words(loc: Location, tense: str = "") -> str:
    """The words a scene's task asks it to open with: the place's name, capitalised, and with a
    `tense` its verb: "The Crooked Kettle was", "The Container Docks are". The verb sets the tense
    the model goes on in: asked only for the name, scenes asked for in the past came out in the
    present of their place's facts, and the reverse (experiments/log.md, round fifteen)."""
    name = upper_first(loc.name)
    return f"{name} {be_form(loc.name, tense)}" if tense else name


# Verbs a scene opens on after its place's name, by a sense the place's facts give. Asked to start
# "The Container Docks were", scenes defined their place ("a massive undertaking", "a place where
# people come to relax") in most seeds; asked to start "... smelled of" or "... rang with", they go
# to a detail at once (experiments/log.md, round seventeen).
SENSE_VERBS = {"sounds": {"past": ("rang with", "rang with"), "present": ("rings with", "ring with")},
               "smells": {"past": ("smelled of", "smelled of"), "present": ("smells of", "smell of")}}


# A sense whose every fact says there is nothing to sense is no start: asked to open "The Fountain
# Atrium smells of", 5 of 10 scenes went on "of rain", which the world gives as what people swear
# ("nothing at all, though people swear it smells of rain"; round eighteen's blind reader).
_NOTHING = frozenset("nothing no none not never without".split())


def _senseless(fact: str) -> bool:
    return fact.split(maxsplit=1)[0].casefold().strip(",;:.") in _NOTHING if fact.strip() else True


def sense_starts(loc: Location, tense: str) -> list[str]:
    """The place's name and the verb of each sense its facts give something of ("The Container Docks
    smelled of"); none for a sense whose facts all say there is nothing."""
    name = upper_first(loc.name)
    plural = be_form(loc.name, "present") == "are"
    return [f"{name} {verbs[tense][plural]}" for sense, verbs in SENSE_VERBS.items()
            if not all(_senseless(fact) for fact in getattr(loc, sense))]


def scene_starts(loc: Location, tense: str) -> list[str]:
    """The words a scene may open with: sense_starts, else the place's name and its verb of being
    (scene_start_words).

    Not a second verb of sound for a place that gives only sounds, for variety ("The Fountain Atrium
    echoes with" beside "rings with"): distinct-2 over the seeds rose 0.318 -> 0.637, but read blind
    the scenes on one verb won 9 of 10 pairs, faithful where the others were purple and garbled
    (experiments/log.md, round nineteen).
    """
    return sense_starts(loc, tense) or [scene_start_words(loc, tense)]


def candidate_starts(world: World, request: Request, seed: int, candidates: int) -> list[str]:
    """The words each of a scene's candidates opens with: the request's own `start` for every one;
    else the place's sense verbs (scene_starts) in an order drawn by `seed`, spread over the
    candidates in that order (4 candidates of a place with sounds and smells: the first verb twice,
    then the other twice), so the critic chooses among them. One candidate: the first drawn verb.
    The same seed draws the same words, so replay is exact.

    Not the verb of being beside them: among four candidates, the critic chose it in 4 of 30 scenes,
    each a definition ("The Container Docks were the largest and most complex facility of their
    era"; experiments/log.md, round eighteen).
    """
    if candidates < 1:
        raise ValueError("a scene has at least one candidate")
    if request.kind != "scene":
        raise ValueError("only a scene has start words")
    if request.start is not None:
        return [request.start] * candidates
    loc = resolve_request(world, request).location
    senses = scene_starts(loc, world.style.tense_for("scene"))
    pool = random.Random(seed).sample(senses, len(senses))
    # in pool order, so a start's candidates are neighbouring rows
    return [pool[k * len(pool) // candidates] for k in range(candidates)]


__all__ = [
    "OPENING_STYLES", "SCENE_OPENING", "SENSE_VERBS", "answer_opening", "be_form", "candidate_starts",
    "lower_article", "scene_start_words", "scene_starts", "sense_starts",
]
