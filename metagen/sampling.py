"""Temperature and truncation processors, the order all processors run in, and choosing the next token.

A processor is any callable `(tokens (B, T) long, logits (B, V) float) -> logits (B, V)`
(metagen.logits); processors never change their inputs. The penalties live in
metagen.penalties, the bans and biases in metagen.bans. Maths: top-p [Holtzman et al. 2019],
typical-p [Meister et al. 2022], min-p [Nguyen et al. 2024], XTC as in text-generation-webui.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import torch

from metagen.bans import (
    BannedSequencesProcessor,
    LogitBiasProcessor,
    SentenceOpeningProcessor,
    TenseGuardProcessor,
    ban_sequences,
    breaker_tokens,
    exempt_tokens,
    logit_bias_tokens,
    script_guard,
)
from metagen.logits import NEG_INF, LogitsProcessor, Tokenizer
from metagen.penalties import (
    DRYProcessor,
    NoCopyProcessor,
    NoRepeatNGramProcessor,
    PresenceFrequencyPenaltyProcessor,
    RepetitionPenaltyProcessor,
)
from metagen.scripts import ANY

if TYPE_CHECKING:
    from metagen.config import GenerationConfig

NUCLEUS_FIRST_GUESS = 256  # top-p first looks at this many candidates, growing x4 if short


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

    def keep_rows(self, rows: list[int]) -> None:
        """Keep the generators of `rows` only (rows that finished left the batch)."""
        self.generators = [self.generators[row] for row in rows]

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


# --- the pipeline -----------------------------------------------------------------------


def build_processors(
    cfg: GenerationConfig,
    tokenizer: Tokenizer,
    generators: Sequence[torch.Generator] | None = None,
) -> list[LogitsProcessor]:
    """The processors for `cfg`, in the one documented order, skipping no-ops.

    Order: repetition penalty, presence/frequency penalty, DRY, no-repeat n-gram, no-copy
    n-gram, banned sequences, script guard, sentence opening, tense guard, kin guard, pronoun guard, logit bias; then, when sampling,
    temperature, top-k, top-p, min-p, typical-p and XTC. Greedy (or temperature 0) and beam search stop after logit bias:
    temperature and truncation cannot change the argmax, and beam scores need the full
    distribution. XTC needs `generators`, one per row. The caller passes `tokens` with
    the prompt included only when cfg.penalize_prompt is set.
    """
    processors = [*_penalty_processors(cfg, tokenizer), *_ban_processors(cfg, tokenizer)]
    if cfg.effective_strategy != "sample":
        return processors
    return [*processors, *_sampling_processors(cfg, tokenizer.vocab_size, generators)]


def _penalty_processors(cfg: GenerationConfig, tokenizer: Tokenizer) -> list[LogitsProcessor]:
    """The penalties (metagen.penalties): repetition, presence/frequency, DRY, no-repeat and no-copy n-grams."""
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
    if cfg.no_copy_ngram_size > 0:
        out.append(NoCopyProcessor(cfg.no_copy_ngram_size))
    return out


def _ban_processors(cfg: GenerationConfig, tokenizer: Tokenizer) -> list[LogitsProcessor]:
    """The bans and biases (metagen.bans, metagen.kin_guard): banned sequences, script guard, sentence
    opening, tense guard, kin guard, pronoun guard, logit bias."""
    vocab = tokenizer.vocab_size
    out: list[LogitsProcessor] = []
    if cfg.banned:
        out.append(BannedSequencesProcessor(ban_sequences(cfg.banned, tokenizer), vocab))
    if cfg.scripts and ANY not in cfg.scripts:
        out.append(script_guard(cfg.scripts, cfg.script_exempt, tokenizer))
    if cfg.sentence_opening:
        out.append(SentenceOpeningProcessor(tokenizer))
    if cfg.tense_guard != "off":
        out.append(TenseGuardProcessor(cfg.tense_guard, tokenizer))
    if cfg.kin_guard:
        from metagen.kin_guard import KinGuardProcessor  # it reads the world's words: `generate` never loads them

        out.append(KinGuardProcessor(cfg.kin_guard, tokenizer))
    if cfg.pronoun_guard == "on" and cfg.kin_guard:
        from metagen.pronoun_guard import PronounGuardProcessor  # it reads the kin guard's rules, as that does

        out.append(PronounGuardProcessor(cfg.kin_guard, tokenizer))
    if cfg.logit_bias:
        bias = logit_bias_tokens(cfg.logit_bias, tokenizer)
        if bias:
            out.append(LogitBiasProcessor(bias, vocab))
    return out


def _sampling_processors(cfg: GenerationConfig, vocab: int,
                         generators: Sequence[torch.Generator] | None) -> list[LogitsProcessor]:
    """Temperature and the truncations, when sampling: top-k, top-p, min-p, typical-p, XTC."""
    out: list[LogitsProcessor] = []
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


def sees_prompt(processors: Iterable[LogitsProcessor]) -> bool:
    """Whether a processor must see the prompt whatever `penalize_prompt` says (NoCopyProcessor)."""
    return any(getattr(processor, "sees", "") == "whole" for processor in processors)


def apply_processors(
    processors: Iterable[LogitsProcessor], tokens: torch.Tensor, logits: torch.Tensor,
    prompt_and_tokens: torch.Tensor | None = None, generated: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run each processor in turn over (tokens (B, T), logits (B, V)).

    `tokens` is the history the penalties count. A processor whose `sees` is "whole" gets
    `prompt_and_tokens` (B, T') and one whose `sees` is "generated" gets `generated` (B, t)
    instead, when given.
    """
    views = {"whole": prompt_and_tokens, "generated": generated}
    for processor in processors:
        seen = views.get(getattr(processor, "sees", ""))
        logits = processor(tokens if seen is None else seen, logits)
    return logits


# --- choosing the token ----------------------------------------------------------------


class Unchoosable(ValueError):
    """No token can be chosen: the logits hold NaN, or a row has none above -inf; `hint` says what to do."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.hint = hint


def _check_choosable(logits: torch.Tensor) -> None:
    if logits.dim() != 2:
        raise ValueError(f"logits must be (B, V), got shape {tuple(logits.shape)}")
    if bool(torch.isnan(logits).any()):
        raise Unchoosable("logits contain NaN; the model or a processor produced invalid values",
                          hint="a model giving NaN is damaged: pull it again, or give another file")
    empty = ~(logits > NEG_INF).any(dim=-1)
    if bool(empty.any()):
        rows = empty.nonzero().flatten().tolist()
        raise Unchoosable(
            f"no token is left to choose in row(s) {rows}: every logit is -inf "
            "(banned words or logit biases may have removed every token)",
            hint="ban fewer words, or lower the logit biases",
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


__all__ = [
    "Unchoosable",
    "MinPProcessor",
    "TemperatureProcessor",
    "TopKProcessor",
    "TopPProcessor",
    "TypicalPProcessor",
    "XTCProcessor",
    "apply_processors",
    "build_processors",
    "describe_processors",
    "greedy",
    "sample",
    "sees_prompt",
]
