"""The kin guard: narration gives no one of the cast a relative the world does not give them.

Blind readers name made-up relatives among the first faults of a story: a son for Queen Ysolde,
whose only child is her daughter Maëlle; a husband for Widow Agnes, whose card never mentions one;
Amos's wife handed to Elias ("He'd never seen his wife again"). The critic and the editor catch
few of them after the fact (metagen.kinship's checks found them in 7 of the 272 stories read in
round forty-two; a possessive read as this guard reads it, in 51). This guard stops
them while the text is written: right after a possessive whose owner is clear ("Ysolde's", "her"
in a sentence about Ysolde alone, "his own"), the family words that owner has no relative for
lose KIN_GUARD_BIAS from their logits, so the model writes another word ("her daughter", "her eyes").

The world's side is a setting, `kin_guard` (metagen.config), one rule per character written by
kinship.kin_guard_rules: "Queen Ysolde Vær / Ysolde (she): daughter, child", the forms that name
them, their pronoun ("?" when the world does not say) and the family words they may be given.
Being a setting, the rules are recorded in every piece's front matter, and replay reads them back.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

from metagen.kinship import BETWEEN, FAMILY_WORDS, POSSESSIVE_PRONOUNS, KinOwner, possessor, read_rule
from metagen.logits import Tokenizer
from metagen.scripts import vocabulary_bytes
from metagen.text import fold

KIN_GUARD_BIAS = 10.0  # subtracted from an unfit family word's logit: after temperature 0.6, about e^-17


@functools.lru_cache(maxsize=4)
def _possessive_ends(vocabulary: tuple[str, ...]) -> tuple[int, ...]:
    """The ids of tokens that can end a possessive and what may follow it: "her", "his", "their",
    "own", "late" ..., "'s" and its pieces ("’", "s")."""
    words = {*POSSESSIVE_PRONOUNS, *BETWEEN}
    texts = (data.decode("utf-8", errors="ignore").strip() for data in vocabulary_bytes(vocabulary))
    return tuple(i for i, text in enumerate(texts) if fold(text) in words or text in ("'s", "’s", "s", "'", "’"))


@functools.lru_cache(maxsize=4)
def _family_tokens(tokenizer: Tokenizer) -> tuple[dict[str, tuple[int, ...]], torch.Tensor]:
    """Per family word and its plural, its tokens after a space; and the ids after which the guard
    looks (a possessive's end, or a longer family word's first tokens, " grand" of " grand" "ma").
    Built once per tokenizer: a story builds its processors anew for every beat."""
    pieces = {w: tuple(tokenizer.encode(" " + w)) for word in sorted(FAMILY_WORDS) for w in (word, word + "s")}
    inner = {piece for word_pieces in pieces.values() for piece in word_pieces[:-1]}
    triggers = torch.tensor(sorted(set(_possessive_ends(tokenizer.vocabulary())) | inner), dtype=torch.long)
    return pieces, triggers


class KinGuardProcessor:
    """Right after a possessive whose owner is clear (possessor), the family words the owner may
    not be given lose `bias`: a one-token word at once, a longer one at its next token ("grand" +
    "ma"). Reads the generated tokens only (`sees`): a row's text so far. Only rows whose last token
    could end a possessive or go on to a family word are decoded, a few times a paragraph."""

    sees = "generated"

    def __init__(self, rules: Sequence[str], tokenizer: Tokenizer, bias: float = KIN_GUARD_BIAS):
        self.owners = [read_rule(rule) for rule in rules]
        self.tokenizer, self.bias = tokenizer, float(bias)
        self.pieces, self.triggers = _family_tokens(tokenizer)
        self.longest = max(map(len, self.pieces.values()))

    def describe(self) -> str:
        return f"kin guard ({len(self.owners)} characters; family words they have no relative for -{self.bias:g})"

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if tokens.shape[1] == 0 or not self.owners:
            return logits
        rows = torch.isin(tokens[:, -1], self.triggers.to(tokens.device)).nonzero()[:, 0].tolist()
        out = logits
        for row in rows:
            ids = [int(t) for t in tokens[row] if t >= 0]
            unfit = self._unfit_next(ids)
            if unfit:
                out = out.clone() if out is logits else out
                out[row, sorted(unfit)] -= self.bias
        return out

    def _unfit_next(self, ids: list[int]) -> set[int]:
        """The token ids that would go on to a family word the owner may not be given: after the
        possessive, a one-token word ("son"); after a word's first k tokens ("her" " grand"), its next
        one, unless that token also goes on to a word the owner may be given."""
        found = set()
        for k in range(self.longest):
            # the first token of a longer word is left alone: " grand", " step" also begin "grand hall", "her step"
            started = [(w, p) for w, p in self.pieces.items()
                       if len(p) > k and (k or len(p) == 1) and tuple(ids[len(ids) - k:]) == p[:k]]
            if not started or len(ids) <= k:
                continue
            owner = possessor(self.tokenizer.decode(ids[:len(ids) - k]), self.owners)
            if owner is None:
                continue
            fit = {p[k] for w, p in started if not self._unfit(w, owner)}
            found |= {p[k] for w, p in started if self._unfit(w, owner)} - fit
        return found

    @staticmethod
    def _unfit(word: str, owner: KinOwner) -> bool:
        singular = word if word in FAMILY_WORDS else word[:-1]
        return singular in owner.unfit


__all__ = ["KIN_GUARD_BIAS", "KinGuardProcessor"]
