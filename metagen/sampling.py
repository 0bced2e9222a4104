"""Logits processors, the order they run in, and choosing the next token.

A processor is any callable `(tokens (B, T) long, logits (B, V) float) -> logits (B, V)`;
in `tokens`, -1 means "no token" (left padding, finished rows) and is ignored. Processors
never change their inputs. Maths: top-p [Holtzman et al. 2019], typical-p [Meister et al.
2022], min-p [Nguyen et al. 2024], repetition penalty [Keskar et al. 2019, CTRL], DRY and
XTC as in text-generation-webui and llama.cpp.
"""

from __future__ import annotations

import math
import string
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import torch

from metagen.errors import ConfigError
from metagen.scripts import ANY, banned_token_ids

if TYPE_CHECKING:
    from metagen.config import GenerationConfig

NEG_INF = float("-inf")
NUCLEUS_FIRST_GUESS = 256  # top-p first looks at this many candidates, growing x4 if short
DRY_MAX_MATCH = 50  # longest repeat DRY measures (caps the exponent, as in text-generation-webui)


class Tokenizer(Protocol):
    """What sampling needs from a tokenizer."""

    vocab_size: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


class LogitsProcessor(Protocol):
    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor: ...


# --- helpers ------------------------------------------------------------------------


def _window(tokens: torch.Tensor, window: int) -> torch.Tensor:
    """The last `window` columns of tokens (all of them when window is 0)."""
    return tokens[:, -window:] if window > 0 else tokens


def _padded(logits: torch.Tensor) -> torch.Tensor:
    """A copy of logits with one spare column at index V where padding entries scatter."""
    return torch.cat([logits, logits.new_zeros(logits.shape[0], 1)], dim=1)  # (B, V+1)


def _without(tokens: torch.Tensor, exempt: torch.Tensor) -> torch.Tensor:
    """tokens with every exempt id replaced by -1 ("no token"), so that penalties skip it."""
    if exempt.numel() == 0 or tokens.numel() == 0:
        return tokens
    return torch.where(torch.isin(tokens, exempt.to(tokens.device)), -1, tokens)


def _exempt_words(exempt: torch.Tensor) -> str:
    return f" (except {exempt.numel()} name tokens)" if exempt.numel() else ""


def _safe_index(tokens: torch.Tensor, vocab: int) -> torch.Tensor:
    """Token ids with every "no token" (-1) entry pointed at the spare column `vocab`."""
    return torch.where(tokens >= 0, tokens, vocab).long()


def _finite_count(logits: torch.Tensor) -> int:
    """The most tokens any row still allows (not -inf)."""
    return int((logits > NEG_INF).sum(dim=-1).max())


def _candidates(logits: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The n largest logits of each row, sorted descending, and their token ids.

    torch.topk is several times faster than a full sort unless n nears the vocabulary.
    """
    n = max(1, min(n, logits.shape[-1]))
    if n * 4 < logits.shape[-1] * 3:
        return torch.topk(logits, n, dim=-1)
    return torch.sort(logits, dim=-1, descending=True)


def _wide(t: torch.Tensor) -> torch.Tensor:
    """At least float32 for softmax and cumulative sums (half precision is too coarse)."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _check_probability(name: str, value: float, low_open: bool, high_open: bool) -> None:
    low_ok = value > 0 if low_open else value >= 0
    high_ok = value < 1 if high_open else value <= 1
    if not (isinstance(value, (int, float)) and low_ok and high_ok):
        interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")


# --- penalties ----------------------------------------------------------------------


class RepetitionPenaltyProcessor:
    """Divide positive and multiply negative logits of tokens seen in the last `window`."""

    def __init__(self, penalty: float, window: int = 0, exempt: Iterable[int] = ()):
        if not penalty > 0:
            raise ValueError(f"repetition penalty must be > 0, got {penalty!r}")
        if window < 0:
            raise ValueError(f"repetition window must be >= 0, got {window!r}")
        self.penalty = float(penalty)
        self.window = int(window)
        self.exempt = torch.tensor(sorted(set(exempt)), dtype=torch.long)

    def describe(self) -> str:
        return f"repetition penalty {self.penalty:g} over {_window_words(self.window)}" + _exempt_words(self.exempt)

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        recent = _without(_window(tokens, self.window), self.exempt)  # (B, W)
        if recent.shape[1] == 0:
            return logits.clone()
        vocab = logits.shape[-1]
        index = _safe_index(recent, vocab)  # (B, W)
        padded = _padded(logits)  # (B, V+1)
        seen = padded.gather(1, index)  # (B, W)
        penalized = torch.where(seen > 0, seen / self.penalty, seen * self.penalty)
        # A token seen twice writes the same value twice: it is penalized once.
        return padded.scatter(1, index, penalized)[:, :vocab]


class PresenceFrequencyPenaltyProcessor:
    """Subtract presence once, and frequency per occurrence, for tokens in the last `window`."""

    def __init__(self, presence: float = 0.0, frequency: float = 0.0, window: int = 0, exempt: Iterable[int] = ()):
        for name, value in (("presence penalty", presence), ("frequency penalty", frequency)):
            if not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if window < 0:
            raise ValueError(f"penalty window must be >= 0, got {window!r}")
        self.presence = float(presence)
        self.frequency = float(frequency)
        self.window = int(window)
        self.exempt = torch.tensor(sorted(set(exempt)), dtype=torch.long)

    def describe(self) -> str:
        return (
            f"presence penalty {self.presence:g}, frequency penalty {self.frequency:g} "
            f"over {_window_words(self.window)}" + _exempt_words(self.exempt)
        )

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        recent = _without(_window(tokens, self.window), self.exempt)  # (B, W)
        if recent.shape[1] == 0:
            return logits.clone()
        vocab = logits.shape[-1]
        index = _safe_index(recent, vocab)
        counts = logits.new_zeros(logits.shape[0], vocab + 1)
        counts.scatter_add_(1, index, torch.ones_like(index, dtype=logits.dtype))  # our own tensor
        counts = counts[:, :vocab]  # (B, V)
        return logits - self.frequency * counts - self.presence * (counts > 0).to(logits.dtype)


class NoRepeatNGramProcessor:
    """Forbid any token that would complete an n-gram already present in `tokens`."""

    def __init__(self, ngram_size: int):
        if ngram_size < 1:
            raise ValueError(f"no-repeat n-gram size must be >= 1, got {ngram_size!r}")
        self.n = int(ngram_size)

    def describe(self) -> str:
        return f"no repeated {self.n}-grams"

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        n, steps = self.n, tokens.shape[1]
        if steps < n:
            return logits.clone()
        vocab = logits.shape[-1]
        grams = tokens.unfold(1, n, 1)  # (B, T-n+1, n): every complete earlier n-gram
        tail = tokens[:, steps - (n - 1) :]  # (B, n-1): what the next token would follow
        match = (grams[:, :, :-1] == tail[:, None, :]).all(dim=-1)  # (B, T-n+1)
        match &= (grams >= 0).all(dim=-1) & (tail >= 0).all(dim=-1, keepdim=True)
        index = torch.where(match, grams[:, :, -1], vocab).long()
        return _padded(logits).scatter(1, index, NEG_INF)[:, :vocab]


class DRYProcessor:
    """"Don't repeat yourself": penalize the token that would extend a repeated sequence.

    For each earlier occurrence of the current suffix (matched backwards, stopping at
    sequence breakers) the token that followed it loses
    `multiplier * base ** (match_length - allowed_length)` once the match is at least
    `allowed_length` long; the longest match per token counts. Same as
    text-generation-webui's DRY, vectorized over the window.
    """

    def __init__(
        self,
        multiplier: float,
        base: float = 1.75,
        allowed_length: int = 2,
        sequence_breakers: Iterable[int] = (),
        window: int = 0,
        max_match: int = DRY_MAX_MATCH,
    ):
        if not multiplier > 0:
            raise ValueError(f"DRY multiplier must be > 0, got {multiplier!r}")
        if not base > 1:
            raise ValueError(f"DRY base must be > 1, got {base!r}")
        if allowed_length < 1:
            raise ValueError(f"DRY allowed length must be >= 1, got {allowed_length!r}")
        if window < 0:
            raise ValueError(f"DRY window must be >= 0, got {window!r}")
        if max_match < 1:
            raise ValueError(f"DRY max match must be >= 1, got {max_match!r}")
        breakers = sorted({int(t) for t in sequence_breakers})
        if any(t < 0 for t in breakers):
            raise ValueError(f"DRY sequence breakers must be token ids >= 0, got {breakers!r}")
        self.multiplier = float(multiplier)
        self.base = float(base)
        self.allowed_length = int(allowed_length)
        self.window = int(window)
        self.max_match = int(max_match)
        self.breakers = torch.tensor(breakers, dtype=torch.long)

    def describe(self) -> str:
        return (
            f"DRY multiplier {self.multiplier:g}, base {self.base:g}, allowed length "
            f"{self.allowed_length}, {len(self.breakers)} breaker tokens, over "
            f"{_window_words(self.window)}"
        )

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        recent = _window(tokens, self.window).long()  # (B, T)
        batch, steps = recent.shape
        if steps < 2:
            return logits.clone()
        vocab = logits.shape[-1]
        k = min(self.max_match, steps - 1)  # match lengths measured: 1..k
        breaker = torch.isin(recent, self.breakers.to(recent.device))
        usable = (recent >= 0) & ~breaker  # (B, T)
        tail = recent.flip(1)[:, :k]  # (B, k): tail[:, j] = t[T-1-j]
        tail_ok = usable.flip(1)[:, :k]
        # shifted[:, i, j] = t[i-j] for the candidate match ending at i (i < T-1); -2 before the start
        front = recent.new_full((batch, k), -2)
        windows = torch.cat([front, recent], dim=1).unfold(1, k + 1, 1)  # (B, T, k+1)
        shifted = windows.flip(-1)[:, : steps - 1, :k]  # (B, T-1, k)
        equal = (shifted == tail[:, None, :]) & tail_ok[:, None, :]
        length = equal.to(torch.int32).cumprod(dim=-1).sum(dim=-1)  # (B, T-1)
        follows = recent[:, 1:]  # the token after each match, (B, T-1)
        hit = usable[:, 1:] & (length >= self.allowed_length)
        exponent = (length - self.allowed_length).clamp(min=0).to(logits.dtype)
        penalty = self.multiplier * self.base**exponent  # (B, T-1)
        index = torch.where(hit, follows, vocab)
        padded = _padded(logits)
        lowered = padded.gather(1, index) - penalty
        # amin keeps, per token, the largest penalty (its longest match).
        return padded.scatter_reduce(1, index, lowered, reduce="amin", include_self=True)[:, :vocab]


# --- bans and biases ----------------------------------------------------------------


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
        out = _padded(logits)  # our own copy; filled in place below
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


# --- temperature and truncation ------------------------------------------------------


class TemperatureProcessor:
    """Divide the logits by the temperature (> 0; below 1 sharpens, above 1 flattens)."""

    def __init__(self, temperature: float):
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be > 0 (use greedy for 0), got {temperature!r}")
        self.temperature = float(temperature)

    def describe(self) -> str:
        return f"temperature {self.temperature:g}"

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return logits / self.temperature


class TopKProcessor:
    """Keep the k largest logits of each row (and any tied with the k-th)."""

    def __init__(self, k: int):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"top-k must be an integer >= 1, got {k!r}")
        self.k = k

    def describe(self) -> str:
        return f"top-k {self.k}"

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if self.k >= logits.shape[-1]:
            return logits.clone()
        kth = torch.topk(logits, self.k, dim=-1).values[:, -1:]  # (B, 1)
        return logits.masked_fill(logits < kth, NEG_INF)


class TopPProcessor:
    """Keep the smallest set of most likely tokens whose probability reaches p (nucleus).

    Only candidates are sorted: the finite logits left by an earlier top-k, or the top
    NUCLEUS_FIRST_GUESS tokens, widened until their mass reaches p in every row.
    """

    def __init__(self, p: float):
        _check_probability("top-p", p, low_open=True, high_open=False)
        self.p = float(p)

    def describe(self) -> str:
        return f"top-p {self.p:g}"

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if self.p >= 1.0:
            return logits.clone()
        finite = _finite_count(logits)
        if finite == 0:
            return logits.clone()
        log_total = None
        n = min(finite, NUCLEUS_FIRST_GUESS)
        while True:
            values, index = _candidates(logits, n)  # (B, n), sorted descending
            if n >= finite:  # the candidates hold every allowed token (as after a top-k)
                probs = torch.softmax(_wide(values), dim=-1)
                break
            if log_total is None:
                log_total = torch.logsumexp(_wide(logits), dim=-1, keepdim=True)  # (B, 1)
            probs = torch.exp(_wide(values) - log_total)  # probabilities over the full row
            # rows with no finite logit (log_total -inf) have nothing to keep: count them done
            done = (probs.sum(dim=-1) >= self.p) | torch.isneginf(log_total[:, 0])
            if bool(done.all()):
                break
            n = min(finite, n * 4)
        before = probs.cumsum(dim=-1) - probs  # mass of the more likely candidates
        drop = before >= self.p  # the set before this token already reached p
        drop[:, 0] = False
        values = values.masked_fill(drop, NEG_INF)
        return torch.full_like(logits, NEG_INF).scatter(1, index, values)


class MinPProcessor:
    """Drop tokens whose probability is below p times the most likely token's."""

    def __init__(self, p: float):
        _check_probability("min-p", p, low_open=False, high_open=True)
        self.p = float(p)
        self.log_p = math.log(p) if p > 0 else NEG_INF

    def describe(self) -> str:
        return f"min-p {self.p:g}"

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        # prob_i >= p * prob_max  <=>  logit_i - logit_max >= log p: no softmax needed.
        top = logits.max(dim=-1, keepdim=True).values  # (B, 1)
        return logits.masked_fill(logits < top + self.log_p, NEG_INF)


class TypicalPProcessor:
    """Locally typical sampling: keep the tokens whose surprise is closest to the entropy,
    up to `mass` probability (as transformers' TypicalLogitsWarper)."""

    def __init__(self, mass: float):
        _check_probability("typical-p", mass, low_open=True, high_open=False)
        self.mass = float(mass)

    def describe(self) -> str:
        return f"typical-p {self.mass:g}"

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if self.mass >= 1.0:
            return logits.clone()
        finite = _finite_count(logits)
        if finite == 0:
            return logits.clone()
        values, index = _candidates(logits, finite)  # (B, n): every token still allowed
        logp = torch.log_softmax(_wide(values), dim=-1)
        probs = logp.exp()
        entropy = -(probs * logp).nansum(dim=-1, keepdim=True)  # (B, 1)
        surprise = (-logp - entropy).abs()  # distance from the typical surprise, (B, n)
        ordered, order = surprise.sort(dim=-1)  # most typical first
        mass = probs.gather(1, order).cumsum(dim=-1)
        last = (mass < self.mass).sum(dim=-1, keepdim=True).clamp(max=values.shape[-1] - 1)
        cut = ordered.gather(1, last)  # tokens as typical as the last one kept stay too
        values = values.masked_fill(~(surprise <= cut), NEG_INF)
        return torch.full_like(logits, NEG_INF).scatter(1, index, values)


class XTCProcessor:
    """Exclude top choices: with probability `probability` per row, remove every token at
    least `threshold` likely except the least likely of them (needs two or more).

    Each row draws from its own generator, so a row behaves the same alone or in a batch.
    """

    def __init__(self, threshold: float, probability: float, generators: Sequence[torch.Generator]):
        _check_probability("XTC threshold", threshold, low_open=False, high_open=False)
        _check_probability("XTC probability", probability, low_open=False, high_open=False)
        if not generators:
            raise ValueError("XTC needs one torch.Generator per row, got none")
        self.threshold = float(threshold)
        self.probability = float(probability)
        self.generators = list(generators)
        self.log_threshold = math.log(threshold) if threshold > 0 else NEG_INF

    def describe(self) -> str:
        return f"XTC threshold {self.threshold:g}, probability {self.probability:g}"

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if len(self.generators) != logits.shape[0]:
            raise ValueError(
                f"XTC has {len(self.generators)} generators for {logits.shape[0]} rows"
            )
        draws = torch.stack(
            [torch.rand((), generator=g, device=g.device).to(logits.device) for g in self.generators]
        )  # (B,) one draw per row every step, so the stream does not depend on the logits
        act = draws < self.probability
        if not bool(act.any()):
            return logits.clone()
        logp = torch.log_softmax(_wide(logits), dim=-1)
        top = (logp >= self.log_threshold) & (logits > NEG_INF)  # (B, V)
        act &= top.sum(dim=-1) >= 2
        weakest = logits.masked_fill(~top, float("inf")).amin(dim=-1, keepdim=True)  # (B, 1)
        remove = top & (logits > weakest) & act[:, None]
        return logits.masked_fill(remove, NEG_INF)


# --- words to tokens ------------------------------------------------------------------


def _variants(phrase: str) -> list[str]:
    """The phrase as written, lower, Capitalized, UPPER and Title Case, each with and
    without a leading space (a word at the start of text, or after a space)."""
    text = phrase.strip()
    forms = [
        text,
        text.lower(),
        text[:1].upper() + text[1:],
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


# --- the pipeline -----------------------------------------------------------------------


def build_processors(
    cfg: GenerationConfig,
    tokenizer: Tokenizer,
    generators: Sequence[torch.Generator] | None = None,
) -> list[LogitsProcessor]:
    """The processors for `cfg`, in the one documented order, skipping no-ops.

    Order: repetition penalty, presence/frequency penalty, DRY, no-repeat n-gram, banned
    sequences, logit bias; then, when sampling, temperature, top-k, top-p, min-p,
    typical-p and XTC. Greedy (or temperature 0) and beam search stop after logit bias:
    temperature and truncation cannot change the argmax, and beam scores need the full
    distribution. XTC needs `generators`, one per row. The caller passes `tokens` with
    the prompt included only when cfg.penalize_prompt is set.
    """
    vocab = tokenizer.vocab_size
    window = cfg.repetition_window
    out: list[LogitsProcessor] = []
    exempt = exempt_tokens(cfg.penalty_exempt, tokenizer) if cfg.penalty_exempt else set()
    if cfg.repetition_penalty != 1.0:
        out.append(RepetitionPenaltyProcessor(cfg.repetition_penalty, window, exempt))
    if cfg.presence_penalty != 0.0 or cfg.frequency_penalty != 0.0:
        out.append(PresenceFrequencyPenaltyProcessor(cfg.presence_penalty, cfg.frequency_penalty, window, exempt))
    if cfg.dry_multiplier > 0:
        out.append(
            DRYProcessor(
                cfg.dry_multiplier,
                cfg.dry_base,
                cfg.dry_allowed_length,
                breaker_tokens(cfg.dry_sequence_breakers, tokenizer),
                window,
            )
        )
    if cfg.no_repeat_ngram_size > 0:
        out.append(NoRepeatNGramProcessor(cfg.no_repeat_ngram_size))
    if cfg.banned:
        out.append(BannedSequencesProcessor(ban_sequences(cfg.banned, tokenizer), vocab))
    if cfg.scripts and ANY not in cfg.scripts:
        out.append(script_guard(cfg.scripts, cfg.script_exempt, tokenizer))
    if cfg.logit_bias:
        bias = logit_bias_tokens(cfg.logit_bias, tokenizer)
        if bias:
            out.append(LogitBiasProcessor(bias, vocab))
    if cfg.effective_strategy != "sample":
        return out
    if cfg.temperature != 1.0:
        out.append(TemperatureProcessor(cfg.temperature))
    if 0 < cfg.top_k < vocab:
        out.append(TopKProcessor(cfg.top_k))
    if cfg.top_p < 1.0:
        out.append(TopPProcessor(cfg.top_p))
    if cfg.min_p > 0.0:
        out.append(MinPProcessor(cfg.min_p))
    if cfg.typical_p < 1.0:
        out.append(TypicalPProcessor(cfg.typical_p))
    if cfg.xtc_probability > 0.0:
        if not generators:
            raise ValueError("XTC (--xtc-probability > 0) needs one torch.Generator per row")
        out.append(XTCProcessor(cfg.xtc_threshold, cfg.xtc_probability, generators))
    return out


def describe_processors(processors: Iterable[LogitsProcessor]) -> list[str]:
    """One readable line per processor, in the order they run (for --verbose)."""
    lines = []
    for number, processor in enumerate(processors, start=1):
        describe = getattr(processor, "describe", None)
        text = describe() if callable(describe) else type(processor).__name__
        lines.append(f"{number}. {text}")
    return lines


def apply_processors(
    processors: Iterable[LogitsProcessor], tokens: torch.Tensor, logits: torch.Tensor
) -> torch.Tensor:
    """Run each processor in turn over (tokens (B, T), logits (B, V))."""
    for processor in processors:
        logits = processor(tokens, logits)
    return logits


# --- choosing the token ----------------------------------------------------------------


def _check_choosable(logits: torch.Tensor) -> None:
    if logits.dim() != 2:
        raise ValueError(f"logits must be (B, V), got shape {tuple(logits.shape)}")
    if bool(torch.isnan(logits).any()):
        raise ValueError("logits contain NaN; the model or a processor produced invalid values")
    empty = ~(logits > NEG_INF).any(dim=-1)
    if bool(empty.any()):
        rows = empty.nonzero().flatten().tolist()
        raise ValueError(
            f"no token is left to choose in row(s) {rows}: every logit is -inf "
            "(banned words or logit biases may have removed every token)"
        )


def greedy(logits: torch.Tensor) -> torch.Tensor:
    """The most likely token of each row, (B,)."""
    _check_choosable(logits)
    return logits.argmax(dim=-1)


def sample(logits: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Draw one token per row from softmax(logits), row i with generators[i], (B,).

    Each row is computed and drawn on its own, so a row draws the same token alone as in a
    batch. One uniform draw per row and step, inverted through the row's cumulative
    distribution: the same distribution as torch.multinomial, several times faster over a
    49,152-token vocabulary. Tokens of probability 0 are never drawn. Generators must live
    on the logits' device.
    """
    _check_choosable(logits)
    if len(generators) != logits.shape[0]:
        raise ValueError(f"sample() got {len(generators)} generators for {logits.shape[0]} rows")
    picks = []
    for row, generator in zip(logits, generators):
        probs = torch.softmax(_wide(row), dim=-1)  # (V,)
        cdf = probs.double().cumsum(dim=0)  # float64 keeps the tail's small steps
        u = torch.rand(1, dtype=torch.float64, generator=generator, device=generator.device)
        pick = torch.searchsorted(cdf, u.to(cdf.device) * cdf[-1], right=True)  # (1,)
        pick = pick.clamp(max=probs.shape[0] - 1)
        if bool(probs[pick] == 0):  # u * total rounded up to total: take the last possible token
            pick = (probs > 0).nonzero()[-1]
        picks.append(pick)
    return torch.cat(picks)


def _window_words(window: int) -> str:
    return "all tokens" if window == 0 else f"the last {window} tokens"


__all__ = [
    "BannedSequencesProcessor",
    "DRYProcessor",
    "LogitBiasProcessor",
    "MinPProcessor",
    "NoRepeatNGramProcessor",
    "PresenceFrequencyPenaltyProcessor",
    "RepetitionPenaltyProcessor",
    "TemperatureProcessor",
    "TopKProcessor",
    "TopPProcessor",
    "TypicalPProcessor",
    "XTCProcessor",
    "apply_processors",
    "ban_sequences",
    "breaker_tokens",
    "build_processors",
    "describe_processors",
    "greedy",
    "logit_bias_tokens",
    "sample",
]
