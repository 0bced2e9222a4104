"""The editor: strikes the sentences of a candidate that a reader would strike, before the critic judges it.

A 135M model's paragraph often holds one bad sentence among good ones: a made-up person ("her
brother Tom"), a year the world never has, one of the cast named twice where a pronoun belongs
("Agnes looked up at Agnes"), a line of the story before said again ("the embers
of Ashenmere burned with the fire of memory forevermore" in three paragraphs running), or words
about the text ("Here is the next paragraph:"). The critic can only weigh the whole candidate, so
such a sentence loses good ones with it, or stays in the chosen text. The editor cuts it, and the
critic then judges what is left, which is what the reader gets and what the next beat reads.

It never cuts a text's first sentence (it holds the words metagen opened with and names the
place), nor a sentence that alone says a name the request needs, nor every sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from metagen.critic import CriticContext, echo_count
from metagen.grounding import named_twice, names_any, off_world_dates, unknown_names
from metagen.kinship import invented_relatives
from metagen.scripts import is_garbled
from metagen.text import ngrams, split_sentences, words_of

RESTATED_GRAMS = 3  # a sentence sharing this many word 4-grams with the text before it says it again


@dataclass(frozen=True)
class Edit:
    """A text after the editor: what is left, and each struck sentence with why."""

    text: str
    struck: tuple[tuple[str, str], ...] = ()  # (reason, sentence)


def strike(text: str, context: CriticContext) -> Edit:
    """text without its sentences that make up a person or a year, name one of the cast twice, say
    the text before again, talk about the text, or are garbled; unchanged when none does. The first sentence is never judged, so
    at least it is left.

    What counts as made up is the critic's own reading of the whole text (grounding.unknown_names,
    invented_relatives, off_world_dates), so a sentence is struck for what the critic would count."""
    sentences = split_sentences(text)
    if len(sentences) < 2:
        return Edit(text)
    made_up = set(unknown_names(text, context.vocabulary, context.spellings))
    years = set(off_world_dates(text, context.dates)) if context.dates is not None else set()
    seen = set(context.earlier) | set(ngrams(words_of(sentences[0]), 4))
    faults: dict[int, str] = {}  # sentence index -> why it is struck
    for i, sentence in enumerate(sentences[1:], start=1):
        reason = _fault(sentence, context, made_up, years, seen)
        if reason:
            faults[i] = reason
        else:
            seen.update(ngrams(words_of(sentence), 4))
    # A sentence that alone says a name the request needs stays: naming the cast outweighs its fault.
    for forms in context.names:
        if faults and not names_any(" ".join(s for i, s in enumerate(sentences) if i not in faults), forms):
            restored = next((i for i in faults if names_any(sentences[i], forms)), None)
            if restored is not None:
                del faults[restored]
    if not faults:
        return Edit(text)
    kept = " ".join(s for i, s in enumerate(sentences) if i not in faults)
    return Edit(kept, tuple((reason, sentences[i]) for i, reason in faults.items()))


def _fault(sentence: str, context: CriticContext, made_up: set[str], years: set[str], seen: set) -> str:
    """Why a reader would strike this sentence ("" when not)."""
    words = re.findall(r"[\w'’-]+", sentence)
    if made_up and any(w in made_up or re.sub(r"['’]s$", "", w) in made_up for w in words):
        return "invented"
    if invented_relatives(sentence, context.relations):  # "her brother" in a world without one
        return "invented"
    if years and any(y in sentence for y in years):
        return "dated"
    if named_twice(sentence, context.cast):  # "Agnes looked up at Agnes"
        return "named twice"
    if echo_count(sentence):
        return "echo"
    if is_garbled(sentence, context.scripts, context.exempt):
        return "garbled"
    if len(set(ngrams(words_of(sentence), 4)) & seen) >= RESTATED_GRAMS:
        return "restated"
    return ""


__all__ = ["Edit", "RESTATED_GRAMS", "strike"]
