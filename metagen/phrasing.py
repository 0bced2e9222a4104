"""How a world's facts become words inside a prompt's sentences: a cast as one phrase, a fact as a
clause, the name a story gives a character, a goal after "wants to". Shared by the story planner
(metagen.plan), the prompts (metagen.prompts) and dialogue (metagen.dialogue).
"""

from __future__ import annotations

from collections.abc import Sequence

from metagen.grounding import character_forms
from metagen.scripts import is_garbled
from metagen.world import Character

POV_PHRASES = {"first": "the first person", "second": "the second person", "third": "the third person"}


def cast_phrase(names: Sequence[str]) -> str:
    """Names as one phrase: "Ysolde", "Ysolde and Maëlle", "Ysolde, Maëlle and Brannoc"."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def clause(text: str) -> str:
    """A fact as a clause inside a sentence: spaces folded, no final full stop."""
    return " ".join(text.split()).rstrip(".;: ")


def prose_name(character: Character, scripts: tuple[str, ...]) -> str:
    """The name a story gives a character: its own, or its first alias written in the world's prose
    scripts when the name is not ("Lin Xiaoyu" for 林小雨 in an English world). A small model told
    a name in another script never writes it back, and the story then names nobody."""
    for form in (character.name, *character.aliases):
        if not is_garbled(form, scripts):
            return form
    return character.name


def short_prose_name(character: Character, scripts: tuple[str, ...]) -> str:
    """What a story calls a character after the first mention: "Ysolde" for "Queen Ysolde Vær"."""
    single = [f for f in character_forms(character) if len(f.split()) == 1 and not is_garbled(f, scripts)]
    return min(single, key=len) if single else prose_name(character, scripts)


def lower_first(text: str) -> str:
    """A clause inside a sentence: its first letter lower case, unless it starts a name or "I"."""
    first = text.split(" ", 1)[0]
    if first in ("I",) or (first[:1].isupper() and first[1:].islower() and first.lower() not in _PLAIN_STARTS):
        return text
    return text[:1].lower() + text[1:]


_PLAIN_STARTS = frozenset("she he they it the a an her his their keep find bring prove pay win get".split())


def after_to(goal: str) -> str:
    """A goal as it reads after "wants to": a verb, so its capital goes ("Give her mother back
    one memory" -> "give her ..."), whatever the verb; a word in capitals ("NASA") or "I" stays.
    A goal written as a clause or a thing, not a deed, gets a verb: "no ghost is lost on the road"
    -> "see that no ghost is lost on the road", "the Coral Crown" -> "have the Coral Crown"."""
    first = goal.split(" ", 1)[0]
    if first != "I" and first[1:].islower():
        goal = goal[:1].lower() + goal[1:]
    words = goal.lower().split()
    if words and words[0] in _SUBJECT_STARTS:
        return ("see that " if _FINITE_VERBS & set(words[1:]) else "have ") + goal
    return goal


# A goal that opens on one of these is not a verb phrase: "wants to the crown" reads wrong.
_SUBJECT_STARTS = frozenset("""no the a an every all each her his their its my our nobody everyone everybody
    someone none she he they it this these those""".split())
_FINITE_VERBS = frozenset("is are was were will shall can must stays stay gets comes goes returns".split())


__all__ = ["POV_PHRASES", "after_to", "cast_phrase", "clause", "lower_first", "prose_name", "short_prose_name"]
