"""Bans and biases: banned token sequences, the script guard, the sentence opening, logit bias,
and the words-to-tokens helpers that turn the settings' phrases, names and breakers into token ids.
"""

from __future__ import annotations

import functools
import math
import re
import string
from collections.abc import Iterable, Mapping, Sequence

import torch

from metagen.errors import ConfigError
from metagen.logits import NEG_INF, Tokenizer, with_spare_column
from metagen.scripts import banned_token_ids, vocabulary_bytes
from metagen.text import upper_first


class BannedSequencesProcessor:
    """Never complete a banned token sequence; a one-token sequence is always banned."""

    def __init__(self, sequences: Iterable[Sequence[int]], vocab_size: int | None = None):
        singles: set[int] = set()
        groups: dict[int, set[tuple[int, ...]]] = {}
        for seq in sequences:
            seq = tuple(int(t) for t in seq)
            if not seq:
                raise ValueError("banned sequences must not be empty")
            if any(t < 0 or (vocab_size is not None and t >= vocab_size) for t in seq):
                raise ValueError(f"banned sequence {seq!r} has a token id outside the vocabulary")
            if len(seq) == 1:
                singles.add(seq[0])
            else:
                groups.setdefault(len(seq), set()).add(seq)
        self.count = len(singles) + sum(len(g) for g in groups.values())
        self.singles = torch.tensor(sorted(singles), dtype=torch.long)
        # length -> (prefixes (S, L-1), last tokens (S,))
        self.groups: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for length, seqs in sorted(groups.items()):
            table = torch.tensor(sorted(seqs), dtype=torch.long)  # (S, L)
            self.groups[length] = (table[:, :-1], table[:, -1])

    def describe(self) -> str:
        return f"banned sequences ({self.count} token sequences)"

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        vocab, steps = logits.shape[-1], tokens.shape[1]
        out = with_spare_column(logits)  # our own copy; filled in place below
        if len(self.singles):
            out.index_fill_(1, self.singles.to(out.device), NEG_INF)
        for length, (prefixes, lasts) in self.groups.items():
            if steps < length - 1:
                continue
            prefixes, lasts = prefixes.to(tokens.device), lasts.to(tokens.device)
            tail = tokens[:, steps - (length - 1) :]  # (B, L-1)
            match = (tail[:, None, :] == prefixes[None]).all(dim=-1)  # (B, S)
            index = torch.where(match, lasts[None, :], vocab)
            out.scatter_(1, index, NEG_INF)
        return out[:, :vocab]


class ScriptGuardProcessor:
    """Never write a token of a script outside the allowed ones, or mojibake (metagen.scripts)."""

    def __init__(self, banned_ids: Sequence[int], scripts: Sequence[str]):
        self.banned = torch.tensor(sorted(banned_ids), dtype=torch.long)
        self.scripts = tuple(scripts)

    def describe(self) -> str:
        return f"script guard ({', '.join(self.scripts)}; {len(self.banned)} tokens banned)"

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return logits.index_fill(1, self.banned.to(logits.device), NEG_INF)


def script_guard(scripts: Sequence[str], exempt_words: Iterable[str], tokenizer: Tokenizer) -> ScriptGuardProcessor:
    """The guard for `scripts`; the tokens that spell the exempt words (names) stay allowed."""
    exempt = {t for word in exempt_words for form in (word, " " + word) for t in tokenizer.encode(form)}
    banned = banned_token_ids(tokenizer.vocabulary(), tuple(sorted(scripts)), frozenset(exempt))
    return ScriptGuardProcessor(banned, scripts)


# A paragraph's first words while they are only a name or a short noun phrase: "The Container
# Docks", "Ember Keep", "The fountain", "The old stone well".
_HEAD = re.compile(r"^\s*(?:(?:[A-Z][\w'’-]*\s+){0,5}[A-Z][\w'’-]*|(?:The|A|An)(?:\s+[\w'’-]+){1,3})$")
# What turns such a head into a label or a fragment: "The Docks, a bustling hub", "The Docks:", "The Docks."
_AFTER_HEAD = (",", ":", ";", ".", "—", "–", "\n")


def ending_tokens(tokenizer: Tokenizer, stops: Sequence[str]) -> list[int]:
    """The tokens that would end a text at once: end-of-text, and every token whose text holds one
    of the stop strings (a line break ends a dialogue line). min_new_tokens holds them all off: a
    dialogue line's candidates that open on a line break are empty lines (3 of 4 of Pipa's first
    line in one Kite Market dialogue, round thirty)."""
    return sorted(set(tokenizer.eos_ids) | set(_holding(tokenizer.vocabulary(), tuple(s for s in stops if s))))


@functools.lru_cache(maxsize=16)
def _holding(vocabulary: tuple[str, ...], stops: tuple[str, ...]) -> tuple[int, ...]:
    """The ids of tokens whose bytes hold one of the stop strings' bytes."""
    wanted = [s.encode("utf-8") for s in stops]
    if not wanted:
        return ()
    return tuple(i for i, data in enumerate(vocabulary_bytes(vocabulary)) if any(w in data for w in wanted))


@functools.lru_cache(maxsize=4)
def _head_breakers(vocabulary: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Every token's text, and the ids of tokens that would end a head as a label or fragment."""
    texts = tuple(data.decode("utf-8", errors="ignore") for data in vocabulary_bytes(vocabulary))
    breakers = tuple(i for i, text in enumerate(texts)
                     if text.lstrip(" ").startswith(_AFTER_HEAD) or text.startswith(" -"))
    return texts, breakers


class SentenceOpeningProcessor:
    """A paragraph opens with a sentence: while its text is only a name or a short noun phrase
    (a few Title Case words, or an article and up to three words), no token may go on with a
    comma, colon, semicolon, full stop, dash or line break.

    A 135M model opens most scenes and story paragraphs with a name and an appositive ("The
    Container Docks, a bustling hub of the city's infrastructure.", "The Crooked Kettle, a small
    village", "The fountain, a small silver ball"): a verbless fragment that readers flagged
    first among scenes' defects (rounds eight and nine). Without the comma it writes a sentence
    ("The Container Docks are ..."). It reads the generated tokens only (`sees`), and only the
    first `within` of them.
    """

    sees = "generated"

    def __init__(self, tokenizer: Tokenizer, within: int = 8):
        self.texts, breakers = _head_breakers(tokenizer.vocabulary())
        self.breakers = torch.tensor(breakers, dtype=torch.long)
        self.within = within

    def describe(self) -> str:
        return "a sentence, not a label, opens the text"

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if not 0 < tokens.shape[1] <= self.within:
            return logits.clone()
        heads = [bool(_HEAD.match("".join(self.texts[t] for t in row if t >= 0))) for row in tokens.tolist()]
        if not any(heads):
            return logits.clone()
        rows = torch.tensor(heads, device=logits.device).nonzero()[:, 0]  # (R,)
        out = logits.clone()
        out[rows[:, None], self.breakers.to(logits.device)[None, :]] = NEG_INF
        return out


# Verb forms that show a narration's tense and, in narration, belong to one tense: a past participle that
# present-tense description needs ("is made of", "covered in", "has fallen") is left out, while "stood" and
# "looked", which a story's first sentence sets its tense with ("Lin stood at the fountain"), are in. The
# negatives are there by their first token (" wasn" + "'t").
TENSE_WORDS = {
    "past": ("was were had did wasn weren hadn didn came went saw took knew began ran grew spoke wore gave "
             "became stood sat felt looked turned walked smiled seemed watched").split(),
    "present": ("is are am has does isn aren hasn doesn don comes goes sees takes knows begins runs grows "
                "speaks wears gives becomes stands sits lies hangs rises falls feels tells holds makes hears "
                "finds keeps brings shines gets looks seems smiles").split(),
}
# Present-tense contractions: "'s" after these words means "is" or "has" ("it's", "there's"), "'re" "are".
_PRESENT_CONTRACTIONS = {"'s": ("it", "there", "that", "he", "she", "here", "what"), "'re": ("they", "we", "you")}
QUOTE_MARKS = ('"', "“", "”")
TENSE_GUARD_BIAS = 4.0  # logits taken from the other tense's verb forms


def one_token_words(words: Iterable[str], tokenizer: Tokenizer) -> set[int]:
    """The ids of the words the tokenizer writes as one token after a space (" was"); a word it
    splits is left out, so another model's vocabulary never has a piece such as " w" penalised."""
    ids = {word: tokenizer.encode(" " + word) for word in words}
    return {pieces[0] for word, pieces in ids.items() if len(pieces) == 1}


class TenseGuardProcessor:
    """Narration keeps to the asked tense: outside quoted speech, the other tense's unambiguous verb
    forms ("was", "were", "stood" when the present is asked; "is", "are", "stands", "it's", "they're"
    when the past is) lose `bias` from their logits.

    A 135M model follows the tense of the facts it is given (a place's description is written in
    the present whatever the world's tense) more than the tense its task names. With this guard 1
    scene in 30 leans the wrong way against 18, yet read blind its texts lost (experiments/log.md,
    round twelve): held to the other tense, the model uses fewer of the given facts and invents
    more. So it runs only when asked (`tense_guard`). Quoted speech keeps whatever tense its speaker
    uses: a row is inside a quotation while its text holds an odd number of quotation marks. It
    reads the generated tokens only (`sees`).
    """

    sees = "generated"

    def __init__(self, tense: str, tokenizer: Tokenizer, bias: float = TENSE_GUARD_BIAS):
        if tense not in TENSE_WORDS:
            raise ValueError(f"tense must be one of {', '.join(TENSE_WORDS)}, got {tense!r}")
        other = "present" if tense == "past" else "past"
        self.tense, self.bias = tense, float(bias)
        self.other_ids = torch.tensor(sorted(one_token_words(TENSE_WORDS[other], tokenizer)), dtype=torch.long)
        # (ids of the words before, id of the ending): "it" + "'s"; none when the present is asked
        self.contractions: list[tuple[torch.Tensor, int]] = []
        for ending, before in (_PRESENT_CONTRACTIONS.items() if tense == "past" else ()):
            ending_ids = tokenizer.encode("it" + ending)[-1:]
            words = one_token_words([*before, *(w.capitalize() for w in before)], tokenizer)
            if tokenizer.decode(ending_ids) == ending and words:
                self.contractions.append((torch.tensor(sorted(words), dtype=torch.long), ending_ids[0]))
        texts, _ = _head_breakers(tokenizer.vocabulary())
        self.quote_marks = torch.tensor([sum(text.count(q) for q in QUOTE_MARKS) for text in texts])  # (V,)

    def describe(self) -> str:
        return f"tense guard ({self.tense}; the other tense's verbs -{self.bias:g})"

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        marks = self.quote_marks.to(tokens.device)[tokens.clamp(min=0)] * (tokens >= 0)  # (B, t)
        narrating = marks.sum(dim=1) % 2 == 0  # (B,)
        out = logits.clone()
        rows = narrating.nonzero()[:, 0]  # (R,)
        if len(rows) == 0:
            return out
        out[rows[:, None], self.other_ids.to(logits.device)[None, :]] -= self.bias
        for before, ending in self.contractions if tokens.shape[1] else ():
            after = torch.isin(tokens[:, -1], before.to(tokens.device)) & narrating  # (B,)
            out[after, ending] -= self.bias
        return out


class LogitBiasProcessor:
    """Add a fixed bias to the logits of chosen token ids."""

    def __init__(self, bias: Mapping[int, float], vocab_size: int | None = None):
        for token, value in bias.items():
            if token < 0 or (vocab_size is not None and token >= vocab_size):
                raise ValueError(f"logit bias token id {token} is outside the vocabulary")
            if not math.isfinite(value):
                raise ValueError(f"logit bias for token {token} must be finite, got {value!r}")
        self.ids = torch.tensor(list(bias), dtype=torch.long)
        self.values = torch.tensor([float(v) for v in bias.values()])

    def describe(self) -> str:
        return f"logit bias on {len(self.ids)} tokens"

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if len(self.ids) == 0:
            return logits.clone()
        values = self.values.to(logits).expand(logits.shape[0], -1)  # (B, N)
        return logits.index_add(1, self.ids.to(logits.device), values)


# --- words to tokens ------------------------------------------------------------------


def _variants(phrase: str) -> list[str]:
    """The phrase as written, lower, Capitalized, UPPER and Title Case, each with and
    without a leading space (a word at the start of text, or after a space)."""
    text = phrase.strip()
    forms = [
        text,
        text.lower(),
        upper_first(text),
        text.capitalize(),
        text.upper(),
        string.capwords(text),
    ]
    out: list[str] = []
    for form in forms:
        for variant in (form, " " + form):
            if form and variant not in out:
                out.append(variant)
    return out


def ban_sequences(phrases: Iterable[str], tokenizer: Tokenizer) -> list[tuple[int, ...]]:
    """The token sequences of each phrase's case and leading-space variants, deduplicated.

    Known limit: a model can spell a word with another split into tokens than the
    tokenizer's own; those spellings are not banned.
    """
    seen: dict[tuple[int, ...], None] = {}
    for phrase in phrases:
        for variant in _variants(phrase):
            ids = tuple(tokenizer.encode(variant))
            if ids:
                seen.setdefault(ids, None)
    return list(seen)


def logit_bias_tokens(items: Iterable[tuple[str, float]], tokenizer: Tokenizer) -> dict[int, float]:
    """Map (word, bias) to the first token of each variant of the word, and ("#123", bias)
    to token 123; a later item naming the same token replaces an earlier one."""
    vocab = tokenizer.vocab_size
    out: dict[int, float] = {}
    for key, bias in items:
        if key.startswith("#") and key[1:].isdigit():
            token = int(key[1:])
            if not 0 <= token < vocab:
                raise ConfigError(
                    f"--logit-bias {key} is not a token id: the vocabulary has {vocab} tokens "
                    f"(#0 to #{vocab - 1})"
                )
            out[token] = float(bias)
            continue
        for variant in _variants(key):
            ids = tokenizer.encode(variant)
            if ids:
                out[ids[0]] = float(bias)
    return out


def exempt_tokens(words: Iterable[str], tokenizer: Tokenizer) -> set[int]:
    """Every token of each word as written, alone and after a space: the pieces a name is
    written with, which the penalties then leave alone."""
    return {token for word in words for variant in (word.strip(), " " + word.strip())
            for token in tokenizer.encode(variant)}


def breaker_tokens(breakers: Iterable[str], tokenizer: Tokenizer) -> set[int]:
    """Token ids that end a DRY match: the last token of each breaker string as written,
    after a space and after a letter (how text-generation-webui finds mid-text tokens)."""
    out: set[int] = set()
    for text in breakers:
        for variant in (text, " " + text, "a" + text):
            ids = tokenizer.encode(variant)
            if ids:
                out.add(ids[-1])
    return out


__all__ = [
    "BannedSequencesProcessor",
    "LogitBiasProcessor",
    "ScriptGuardProcessor",
    "SentenceOpeningProcessor",
    "TENSE_GUARD_BIAS",
    "TENSE_WORDS",
    "TenseGuardProcessor",
    "ban_sequences",
    "breaker_tokens",
    "exempt_tokens",
    "one_token_words",
    "logit_bias_tokens",
    "script_guard",
]
