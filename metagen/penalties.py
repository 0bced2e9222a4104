"""Penalty processors: repetition [Keskar et al. 2019, CTRL], presence/frequency, no-repeat
n-gram, and DRY as in text-generation-webui and llama.cpp. Each looks back over the last
`window` tokens (0: all of them) and may leave exempt tokens (names) alone.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import torch

from metagen.logits import NEG_INF, with_spare_column

# What a token that would copy loses: more than any two finite logits differ, so it is chosen only
# when nothing else is left (and stays finite in bfloat16).
COPY_PENALTY = 1e4
DRY_MAX_MATCH = 50  # longest repeat DRY measures (caps the exponent, as in text-generation-webui)


def _checked_window(window: int, what: str) -> int:
    """A penalty's window, checked: a whole number >= 0 (0: every token); ValueError naming `what` (the
    penalty's words: "repetition", "penalty", "DRY") otherwise, also for 2.5 or True, which int() had cut to 2 or 1."""
    if isinstance(window, bool) or not isinstance(window, numbers.Integral):
        raise ValueError(f"{what} window must be a whole number, got {window!r}")
    if window < 0:
        raise ValueError(f"{what} window must be >= 0, got {window!r}")
    return int(window)


def _window(tokens: torch.Tensor, window: int) -> torch.Tensor:
    """The last `window` columns of tokens (all of them when window is 0 or at least their number: a
    window past 2**63, which --repetition-window takes, made torch warn as it cut the slice)."""
    return tokens[:, -window:] if 0 < window < tokens.shape[1] else tokens


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


def _window_words(window: int) -> str:
    return "all tokens" if window == 0 else f"the last {window} tokens"


class RepetitionPenaltyProcessor:
    """Divide positive and multiply negative logits of tokens seen in the last `window`."""

    def __init__(self, penalty: float, window: int = 0, exempt: Iterable[int] = ()):
        if not penalty > 0:
            raise ValueError(f"repetition penalty must be > 0, got {penalty!r}")
        self.penalty = float(penalty)
        self.window = _checked_window(window, "repetition")
        self.exempt = torch.tensor(sorted(set(exempt)), dtype=torch.long)

    def describe(self) -> str:
        return f"repetition penalty {self.penalty:g} over {_window_words(self.window)}" + _exempt_words(self.exempt)

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        recent = _without(_window(tokens, self.window), self.exempt)  # (B, W)
        if recent.shape[1] == 0:
            return logits.clone()
        vocab = logits.shape[-1]
        index = _safe_index(recent, vocab)  # (B, W)
        padded = with_spare_column(logits)  # (B, V+1)
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
        self.presence = float(presence)
        self.frequency = float(frequency)
        self.window = _checked_window(window, "penalty")
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

    def repeating(self, tokens: torch.Tensor, vocab: int) -> torch.Tensor | None:
        """(B, V) True where the next token would complete an n-gram of `tokens`; None when none can."""
        n, steps = self.n, tokens.shape[1]
        if steps < n:
            return None
        grams = tokens.unfold(1, n, 1)  # (B, T-n+1, n): every complete earlier n-gram
        tail = tokens[:, steps - (n - 1) :]  # (B, n-1): what the next token would follow
        match = (grams[:, :, :-1] == tail[:, None, :]).all(dim=-1)  # (B, T-n+1)
        match &= (grams >= 0).all(dim=-1) & (tail >= 0).all(dim=-1, keepdim=True)
        index = torch.where(match, grams[:, :, -1], vocab).long()
        spare = torch.zeros((tokens.shape[0], vocab + 1), dtype=torch.bool, device=tokens.device)
        return spare.scatter(1, index, True)[:, :vocab]

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        repeating = self.repeating(tokens, logits.shape[-1])
        return logits.clone() if repeating is None else logits.masked_fill(repeating.to(logits.device), NEG_INF)


class NoCopyProcessor(NoRepeatNGramProcessor):
    """Push below every other token any token that would complete an n-gram of the prompt or of
    the text so far.

    The decoding loops give it the prompt before the generated tokens whatever
    `penalize_prompt` says (`sees`), so it stops copying while the repetition
    penalties leave the prompt's names alone. A copying token loses COPY_PENALTY rather than
    becoming impossible: when the bans, the other processors and a held-off end-of-text leave
    nothing else, a copy is written rather than no token at all.
    """

    sees = "whole"

    def describe(self) -> str:
        return f"no {self.n}-grams of the prompt or the text"

    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        copying = self.repeating(tokens, logits.shape[-1])
        if copying is None:
            return logits.clone()
        return torch.where(copying.to(logits.device), logits - COPY_PENALTY, logits)


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
        self.window = _checked_window(window, "DRY")
        if max_match < 1:
            raise ValueError(f"DRY max match must be >= 1, got {max_match!r}")
        breakers = sorted({int(t) for t in sequence_breakers})
        if any(t < 0 for t in breakers):
            raise ValueError(f"DRY sequence breakers must be token ids >= 0, got {breakers!r}")
        self.multiplier = float(multiplier)
        self.base = float(base)
        self.allowed_length = int(allowed_length)
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
        padded = with_spare_column(logits)
        lowered = padded.gather(1, index) - penalty
        # amin keeps, per token, the largest penalty (its longest match).
        return padded.scatter_reduce(1, index, lowered, reduce="amin", include_self=True)[:, :vocab]


__all__ = [
    "COPY_PENALTY",
    "DRYProcessor",
    "NoCopyProcessor",
    "NoRepeatNGramProcessor",
    "PresenceFrequencyPenaltyProcessor",
    "RepetitionPenaltyProcessor",
]
