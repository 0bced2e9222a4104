"""The pronoun guard: narration about one of the cast does not give them another's pronoun.

A 135M model gives a character the pronoun their name suggests to it more than the one the world
gives them. Blind readers of round fifty named it first among a story's faults, "Thorne made a man"
in pair after pair: "Thorne's eyes lit up with excitement as he began to walk towards the trees",
of the ranger the world calls "a lean woman". This guard stops it while the text is written: while
the nearest narrated sentence that names anyone names one character of the world alone, whose
pronoun is known ("Thorne smiled as", or "Thorne smiled. So" at the next sentence), the pronouns
they do not take ("he", "him", "his", "himself" for a "she"; both sexes' for an "it" or a "they")
lose PRONOUN_GUARD_BIAS, so the model writes theirs, or a name: after a sentence about Thorne
alone, a sentence about Ederyn opens on his name, and "Pipa told him" becomes "Pipa told Osk". A
guard of the subject and reflexive forms only moved the slips into "his eyes" and "him", and blind
readers preferred the guard on every form (round fifty-one).

It reads the names and pronouns from the kin guard's rules (metagen.kin_guard, one per character
of the world): a piece with `kin_guard: []` has no one to guard. Quoted speech is left alone, as
the tense guard leaves it: a speaker says "he" of whom they like.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from metagen.bans import QUOTE_MARKS, one_token_words
from metagen.grounding import HE_WORDS, SHE_WORDS, quotes_left_out
from metagen.kinship import nearest_named, read_rule
from metagen.logits import Tokenizer

PRONOUN_GUARD_BIAS = 10.0  # subtracted from another's pronoun: after temperature 0.6, about e^-17
PRONOUNS = {"she": SHE_WORDS, "he": HE_WORDS}  # every form: "Thorne smiled, her eyes ..."
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n")


def narrated_so_far(text: str) -> list[str] | None:
    """The narrated sentences of `text`, quoted speech left out ('"Go, Thorne," he' names no one); None
    inside quoted speech (an odd count of quotation marks so far)."""
    if sum(text.count(mark) for mark in QUOTE_MARKS) % 2:
        return None
    return _SENTENCE_BREAK.split(quotes_left_out(text))


class PronounGuardProcessor:
    """While the nearest narrated sentence naming anyone names one character alone, the pronouns that
    character does not take lose `bias`. Reads the generated tokens only (`sees`): each
    row's text is decoded at every step, which costs about a millisecond a step for a few rows."""

    sees = "generated"

    def __init__(self, rules: Sequence[str], tokenizer: Tokenizer, bias: float = PRONOUN_GUARD_BIAS):
        self.owners = [owner for owner in map(read_rule, rules) if owner.pronoun]
        self.tokenizer, self.bias = tokenizer, float(bias)
        # per pronoun a character may take, the token ids of the others' words, as " his" and " His"
        self.unfit = {}
        for pronoun in ("she", "he", "they", "it"):
            words = [w for other, forms in PRONOUNS.items() if other != pronoun for w in sorted(forms)]
            ids = one_token_words([*words, *(w.capitalize() for w in words)], tokenizer)
            self.unfit[pronoun] = torch.tensor(sorted(ids), dtype=torch.long)

    def describe(self) -> str:
        return (f"pronoun guard ({len(self.owners)} characters; in a sentence about one, "
                f"another's pronoun -{self.bias:g})")

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if tokens.shape[1] == 0 or not self.owners:
            return logits
        out = logits
        for row, ids in enumerate(tokens.tolist()):
            sentences = narrated_so_far(self.tokenizer.decode([t for t in ids if t >= 0]))
            owner = nearest_named(sentences, self.owners) if sentences else None
            if owner is None:
                continue
            out = out.clone() if out is logits else out
            out[row, self.unfit[owner.pronoun].to(logits.device)] -= self.bias
        return out


__all__ = ["PRONOUN_GUARD_BIAS", "PronounGuardProcessor", "narrated_so_far"]
