"""Greedy decoding and sampling with a KV cache, and the parts beam search shares with them.

Prefill once, then one model step per token with an explicit cache position (after
gpt-fast's generate.py).  The results (Sequence, SearchResult), left padding and the logits'
way through the processors (process_logits) serve beam search too (metagen.beam);
generator.run_search picks the loop a configuration asks for.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

import torch

from metagen.bans import ending_tokens
from metagen.cache import JointPrefixCache, KVCache, SharedPrefixCache
from metagen.config import GenerationConfig
from metagen.sampling import apply_processors, build_processors, describe_processors, greedy, sample, sees_prompt
from metagen.text import sentence_cut

log = logging.getLogger(__name__)
_last_order: list[str] = []

# on_text(row, new_text): called with each new piece of text of a row, as soon as it is final.
TextCallback = Callable[[int, str], None]


@dataclass
class Sequence:
    """One finished output."""

    tokens: list[int]  # generated ids, including a final end-of-text token if any
    text: str  # decoded text, cut before a stop string
    logprob: float  # sum of the chosen tokens' log-probabilities under the raw model
    finish_reason: str  # eos | stop | length
    score: float | None = None  # beam score (sum_logprobs / len ** length_penalty)


@dataclass
class SearchResult:
    """The outputs of one prompt: n-best for beam search, one sequence otherwise."""

    sequences: list[Sequence]
    prompt_tokens: int


class TextTracker:
    """Incremental detokenization of one row with stop strings and held-back streaming.

    Text is released only when it can no longer change: not while the last bytes are an
    incomplete UTF-8 character, and not while its tail could still begin a stop string.
    """

    def __init__(self, tokenizer, stop: tuple[str, ...], sentences: int = 0):
        self.tokenizer = tokenizer
        self.stop = tuple(s for s in stop if s)
        self.sentences = sentences  # end after this many whole sentences (0: never)
        self.ids: list[int] = []
        self.text = ""
        self.released = 0  # characters of text already handed to the callback
        self.stopped = False

    def push(self, token: int) -> str:
        """Add one token; returns newly final text. Sets .stopped when a stop string appears or the
        text holds its sentences (text.sentence_cut)."""
        self.ids.append(token)
        text = self.tokenizer.decode(self.ids)
        if text.endswith("\ufffd"):  # an incomplete multi-byte character: wait for more
            return ""
        if self.stop:
            window_start = max(0, len(self.text) - max(map(len, self.stop)))
            cut = min((i for i in (text.find(s, window_start) for s in self.stop) if i >= 0), default=-1)
            if cut >= 0:
                self.text = text[:cut]
                self.stopped = True
                return self._release(len(self.text))
        if self.sentences:
            cut, final = sentence_cut(text, self.sentences)
            if final:
                self.text = text[:cut]
                self.stopped = True
                return self._release(len(self.text))
        self.text = text
        return self._release(len(text) - self._held_back(text))

    def finish(self) -> str:
        """Release whatever is held back (the sequence is over)."""
        if not self.stopped:
            self.text = self.tokenizer.decode(self.ids)
        return self._release(len(self.text))

    def _held_back(self, text: str) -> int:
        longest = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, len(text)), longest, -1):
                if text.endswith(s[:n]):
                    longest = n
                    break
        return longest

    def _release(self, upto: int) -> str:
        upto = max(upto, self.released)
        piece = self.text[self.released:upto]
        self.released = upto
        return piece


def forget_logged_order() -> None:
    """Log the next decoding order again, as a fresh process does (metagen serve, per request)."""
    global _last_order
    _last_order = []


def log_order(strategy: str, processors) -> None:
    """Say, once per change, which processors run and in what order (`metagen -v`)."""
    global _last_order
    order = [strategy, *describe_processors(processors)]
    if order != _last_order and log.isEnabledFor(logging.INFO):
        log.info("decoding: %s; processors in order: %s", strategy, "; ".join(order[1:]) or "none")
    _last_order = order


@dataclass
class PrefixReuse:
    """The KV cache of one prompt's last run, so that a following prompt which starts with the
    same tokens (a story's next beat, a dialogue's next line) prefills only what is new.

    One object per story or conversation keeps results independent of what else the process ran.
    """

    min_shared: int = 16  # reuse only when at least this many leading tokens agree
    ids: list[int] = field(default_factory=list)  # the tokens whose keys/values fill `cache`
    cache: object | None = None

    def shared_with(self, prompt: list[int]) -> int:
        """How many leading slots of the kept cache serve `prompt` (0: none)."""
        if self.cache is None:
            return 0
        n = 0
        limit = min(len(self.ids), len(prompt) - 1)  # at least one token must still run
        while n < limit and self.ids[n] == prompt[n]:
            n += 1
        return n if n >= self.min_shared else 0

    def restore(self, cache, prompt: list[int]) -> int:
        """Copy the kept keys/values `prompt` can use into the empty `cache`; how many slots."""
        shared = self.shared_with(prompt)
        if shared:
            cache.copy_prefix(self.cache, shared)
        return shared

    def keep(self, ids: list[int], cache) -> None:
        """Remember `cache`, whose filled slots hold the keys/values of `ids`, for the next run."""
        self.ids, self.cache = ids, cache


# What a PromptMemo keeps at most: about 5 scene prompts' keys and values in float32 for the default model
MEMO_BYTES = 128 * 2**20


class PromptMemo:
    """The keys, values and last logits of the last few prompts prefilled whole, for a process that
    answers many requests with one model (`metagen serve`). A prompt asked again (a scene of the same
    place with another seed: a scene's prompt holds no seed) copies them instead of running the model
    over it. They are the numbers of the pass that made them, so the text is the same, byte for byte,
    as a fresh process writes; they are kept per thread count, since a prompt's pass on another count
    sums in another order. PrefixReuse, which runs a prompt's new tokens after a kept prefix, serves one
    story or conversation instead: its passes differ from a whole prompt's in the last bits."""

    def __init__(self, most_bytes: int = MEMO_BYTES):
        self.most_bytes = most_bytes
        self._kept: OrderedDict[tuple, tuple[KVCache, torch.Tensor]] = OrderedDict()

    def recall(self, key: tuple, cache: KVCache) -> torch.Tensor | None:
        """Fill the empty one-row `cache` with the kept prompt's keys and values and return its last
        logits (1, V); None when `key` (the prompt's ids and thread count) is not kept."""
        kept = self._kept.pop(key, None)
        if kept is None:
            return None
        self._kept[key] = kept  # the most recently used goes last
        cache.copy_prefix(kept[0], kept[0].length)
        return kept[1].clone()

    def remember(self, key: tuple, cache: KVCache, logits: torch.Tensor) -> None:
        """Keep a copy of the prompt's filled slots and its last logits; the least recently used go
        first past most_bytes. A prompt bigger than most_bytes alone is not kept (the default model's
        whole context of 8,192 tokens would hold about 380 MB)."""
        slot_bytes = cache.k[:, :, :, :1].nbytes + cache.v[:, :, :, :1].nbytes  # one position of every layer and row
        if slot_bytes * cache.length + logits.nbytes > self.most_bytes:
            return
        kept = KVCache.like(cache, cache.batch_size, cache.length)
        kept.copy_prefix(cache, cache.length)
        self._kept[key] = (kept, logits.clone())
        while self.kept_bytes() > self.most_bytes:
            self._kept.popitem(last=False)

    def kept_bytes(self) -> int:
        """The bytes the kept prompts' keys, values and logits take."""
        return sum(c.k.nbytes + c.v.nbytes + logits.nbytes for c, logits in self._kept.values())


def left_pad(prompts: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts -> tokens (B, T) left-padded with pad_id, and pad counts (B,)."""
    width = max(len(p) for p in prompts)
    tokens = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        tokens[row, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
    pad = torch.tensor([width - len(p) for p in prompts], dtype=torch.long)
    return tokens.to(device), pad.to(device)


def padded_rows_or_none(pad: torch.Tensor) -> torch.Tensor | None:
    """The pad counts (B,), or None when no row is padded (the model then needs no padding mask)."""
    return pad if bool((pad > 0).any()) else None


def _one_prompt(prompts: list[list[int]]) -> bool:
    """Whether every row has the same prompt (one, or the candidates of one unit)."""
    return all(p == prompts[0] for p in prompts[1:])


def _history(prompt_tokens: torch.Tensor, pad: torch.Tensor | None, generated: torch.Tensor,
             penalize_prompt: bool) -> torch.Tensor:
    """What the penalties see: generated tokens (B, t), after the prompt when it counts.

    -1 marks "no token" (left padding).
    """
    if not penalize_prompt:
        return generated
    history = prompt_tokens.clone()
    if pad is not None:
        columns = torch.arange(history.shape[1], device=history.device)
        history[columns[None, :] < pad[:, None]] = -1
    return torch.cat([history, generated], dim=1)


def _suppress(logits: torch.Tensor, token_ids) -> torch.Tensor:
    logits = logits.clone()
    logits[:, list(token_ids)] = float("-inf")
    return logits


def _prefill(model, prompts: list[list[int]], prompt_tokens: torch.Tensor, pad: torch.Tensor | None,
             max_new_tokens: int, reuse: PrefixReuse | None, memo: PromptMemo | None = None):
    """The prompts in one pass (after any reused prefix): a KV cache and the last logits (B, V).

    Candidates of one unit share their prompt: it is prefilled once, and its keys and values
    are held once for every row (a SharedPrefixCache). A prompt `memo` keeps is not run again.
    """
    B = len(prompts)
    rows = 1 if _one_prompt(prompts) else B
    cache = model.new_cache(rows, prompt_tokens.shape[1] + max_new_tokens)
    shared = reuse.restore(cache, prompts[0]) if reuse is not None and rows == 1 else 0
    whole = memo is not None and reuse is None and rows == 1  # a reused prefix's pass differs in the last bits
    key = (tuple(prompts[0]), model.step_threads.prompt_count()) if whole else None
    logits = memo.recall(key, cache) if key is not None else None
    if logits is None:
        logits = model(prompt_tokens[:rows, shared:], cache, pad, last_only=True)[:, -1]  # (rows, V)
        if key is not None:
            memo.remember(key, cache, logits)
    if rows != B:
        cache, logits = SharedPrefixCache(cache, B, max_new_tokens), logits.expand(B, -1)
    return cache, logits


def _finish_rows(trackers: list[TextTracker], finished: list[str | None], logprobs: torch.Tensor,
                 prompts: list[list[int]], on_text: TextCallback | None) -> list[SearchResult]:
    """One result per row; rows still running end for length, releasing their held-back text."""
    results = []
    for row, tracker in enumerate(trackers):
        if finished[row] is None:
            finished[row] = "length"
            piece = tracker.finish()
            if piece and on_text:
                on_text(row, piece)
        results.append(SearchResult(
            sequences=[Sequence(tokens=tracker.ids, text=tracker.text, logprob=float(logprobs[row]),
                                finish_reason=finished[row])],
            prompt_tokens=len(prompts[row])))
    return results


@dataclass(frozen=True)
class PlainPrompts:
    """Each row's prompt without the world's facts, for ContextContrast, and when it starts.

    `starts`: per row, the tokens written before the contrast begins (none given: 0). A scene
    must open with its place's name ("Ember Keep"); contrasted from the first token, the name,
    which both prompts hold, lost to the place's own sights ("The Ember Throne") in 5 of 10 scenes.
    """

    ids: list[list[int]]
    starts: tuple[int, ...] = ()
    reuse: PrefixReuse | None = None  # the plain prompts' own PrefixReuse (a dialogue's next line extends them)


class ContextContrast:
    """Context-aware decoding (Shi et al., 2023): favour what the world's facts make likelier.

    The model reads each row's prompt a second time without the facts (`plain`: a scene's place
    name and task, no description or sights) and is fed the same chosen tokens. Each step every
    plausible token's logit gains strength * (log p(token | facts) - log p(token | no facts)): what
    the model would write about any place loses, what the facts support gains. Only tokens at
    least PLAUSIBLE times as likely as the likeliest are moved, so the difference of two small
    probabilities never lifts a token the model would not write.
    """

    PLAUSIBLE = 0.1

    def __init__(self, model, plain: PlainPrompts, strength: float, max_new_tokens: int, pad_id: int):
        self.model, self.strength, self.plain = model, strength, plain
        self.starts = torch.tensor(plain.starts or [0] * len(plain.ids), device=model.device)  # (B,)
        tokens, pad = left_pad(plain.ids, pad_id, model.device)
        self.pad = padded_rows_or_none(pad)
        self.cache, self.logits = _prefill(model, plain.ids, tokens, self.pad, max_new_tokens, plain.reuse)  # logits (B, V)

    def adjust(self, logits: torch.Tensor, step: int = 0) -> torch.Tensor:
        """logits (B, V) with the facts' contrast added to the plausible tokens of the rows past their start."""
        if step < int(self.starts.min()):
            return logits
        with_facts = torch.log_softmax(logits.float(), dim=-1)
        without = torch.log_softmax(self.logits.float(), dim=-1)
        plausible = with_facts >= with_facts.max(dim=-1, keepdim=True).values + math.log(self.PLAUSIBLE)
        contrast = (self.strength * (with_facts - without)).to(logits.dtype)
        return torch.where(plausible & (self.starts <= step)[:, None], logits + contrast, logits)

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Keep only `rows` (indices, in order), as the decoding rows keep theirs."""
        self.starts, self.logits = self.starts[rows], self.logits[rows]
        self.pad = None if self.pad is None else self.pad[rows]
        self.cache.keep_rows(rows)

    def step(self, next_tokens: torch.Tensor) -> None:
        """Feed the tokens chosen (B,) to the fact-free rows."""
        self.logits = self.model(next_tokens[:, None], self.cache, self.pad)[:, -1]

    def joined_with(self, cache) -> JointPrefixCache | None:
        """One cache for the rows and their fact-free twins, so a step is one model call of 2B rows
        instead of two of B; None unless each side holds one prompt shared by all its rows."""
        if isinstance(cache, SharedPrefixCache) and isinstance(self.cache, SharedPrefixCache):
            return JointPrefixCache([cache, self.cache])
        return None


def process_logits(processors, cfg: GenerationConfig, step: int, logits: torch.Tensor, ending: list[int],
                    prompt_tokens: torch.Tensor, pad: torch.Tensor, generated: torch.Tensor,
                    contrast: ContextContrast | None = None) -> torch.Tensor:
    """logits (B, V) through the processors (b. of decode_loop, a. of beam_search): before
    cfg.min_new_tokens the `ending` tokens are held off, and the facts' contrast is added first.

    The penalties see the generated tokens (B, t), after the prompt with cfg.penalize_prompt; a
    processor that must see the prompt (sampling.sees_prompt) sees it either way.
    """
    copy_guard = sees_prompt(processors) and not cfg.penalize_prompt  # with it the history holds the prompt already
    history = _history(prompt_tokens, pad, generated, cfg.penalize_prompt)
    whole = _history(prompt_tokens, pad, generated, True) if copy_guard else None
    # end-of-text held off before the truncations, which then choose among the other tokens
    # (after them, min-p could leave end-of-text alone and then nothing)
    held = _suppress(logits, ending) if step < cfg.min_new_tokens else logits
    if contrast is not None:
        held = contrast.adjust(held, step)
    return apply_processors(processors, history, held, whole, generated)


def decode_loop(model, tokenizer, prompts: list[list[int]], cfg: GenerationConfig,
                generators: list[torch.Generator] | None = None,
                on_text: TextCallback | None = None,
                reuse: PrefixReuse | None = None,
                plain: PlainPrompts | None = None,
                forced: list[list[int]] | None = None,
                memo: PromptMemo | None = None) -> list[SearchResult]:
    """Greedy decoding or sampling for a batch of prompts; one result per prompt.

    With `reuse`, when every row has the same prompt (one, or a unit's candidates), keys and values
    of leading tokens shared with the previous run are copied instead of recomputed, and this run's
    cache is kept for the next.
    With `plain` (each prompt without the world's facts) and cfg.context_contrast, the logits
    are contrasted with the plain prompts' (ContextContrast). `forced`: per row, the tokens its
    text starts with (a scene candidate's start words), written whatever the model would choose and
    left out of its log-probability; rows that share a prompt keep sharing it. `memo`: prompts
    prefilled whole before, kept (PromptMemo); not consulted with `reuse`.
    """
    B = len(prompts)
    _check_decode_arguments(B, cfg, generators, forced)
    use_sampling = cfg.effective_strategy == "sample"
    processors = build_processors(cfg, tokenizer, generators)
    log_order(cfg.effective_strategy, processors)
    eos = sorted(tokenizer.eos_ids)
    eos_tensor = torch.tensor(eos, dtype=torch.long, device=model.device)
    ending = ending_tokens(tokenizer, cfg.stop) if cfg.min_new_tokens else eos
    live = _LiveRows.start(*left_pad(prompts, tokenizer.pad_id, model.device), generators, forced)
    # per caller's row: its text, its sum of log-probabilities, why it ended (None: still running)
    trackers = [TextTracker(tokenizer, cfg.stop, cfg.max_sentences) for _ in range(B)]
    logprobs = torch.zeros(B, dtype=torch.float64)
    finished = [None] * B
    # a. prefill, last position's logits only
    cache, logits = _prefill(model, prompts, live.prompt_tokens, live.pad_or_none, cfg.max_new_tokens, reuse, memo)
    contrast = _contrast_for(model, plain, cfg, B, tokenizer.pad_id)
    joint = contrast.joined_with(cache) if contrast is not None else None
    for step in range(cfg.max_new_tokens):
        # b. process: penalties, bans, temperature, truncations (sampling.build_processors)
        raw_logprobs = torch.log_softmax(logits, dim=-1)
        scores = process_logits(processors, cfg, step, logits, ending, live.prompt_tokens, live.pad,
                                 live.generated, contrast)
        # c. choose
        next_tokens, writing = _choose_tokens(scores, use_sampling, live.generators, live.forced, step)
        chosen = raw_logprobs.gather(1, next_tokens[:, None])[:, 0].double().cpu()
        # d. record, stream, check the end of each row on its own
        live.generated = torch.cat([live.generated, next_tokens[:, None]], dim=1)
        token_list = next_tokens.tolist()
        is_eos = torch.isin(next_tokens, eos_tensor).tolist()
        for position, row in enumerate(live.rows):
            if position not in writing:  # a forced token is metagen's word, not the model's choice
                logprobs[row] += chosen[position]
            piece, finished[row] = _take_token(trackers[row], token_list[position], is_eos[position])
            if piece and on_text:
                on_text(row, piece)
        still_running = [position for position, row in enumerate(live.rows) if finished[row] is None]
        if not still_running or step == cfg.max_new_tokens - 1:
            break
        if len(still_running) < len(live.rows):  # the rows that finished leave: later steps compute the rest only
            keep = live.keep(still_running)
            next_tokens = next_tokens[keep]
            _keep_row_states(keep, still_running, cache, processors, contrast)
            if joint is not None:
                joint = JointPrefixCache(joint.groups)  # the groups' rows counted again
        # e. one model step for every row still running
        logits = _decode_one_token(model, next_tokens, cache, live.pad_or_none, contrast, joint)
    _keep_for_next(reuse, prompts, trackers[0].ids, cache)
    if contrast is not None:
        _keep_for_next(plain.reuse, plain.ids, trackers[0].ids, contrast.cache)
    return _finish_rows(trackers, finished, logprobs, prompts, on_text)


def _check_decode_arguments(B: int, cfg: GenerationConfig, generators: list[torch.Generator] | None,
                            forced: list[list[int]] | None) -> None:
    """decode_loop's per-row arguments: one forced start per prompt, one generator per prompt to sample."""
    if forced is not None and len(forced) != B:
        raise ValueError("one forced start per prompt")
    if cfg.effective_strategy == "sample" and (generators is None or len(generators) != B):
        raise ValueError("sampling needs one torch.Generator per prompt")


@dataclass
class _LiveRows:
    """What decode_loop holds for each row still decoding, by its position in the batch.

    Rows that finish leave the batch, so position i is the caller's row rows[i]: what lives by the
    caller's row (texts, log-probabilities, finish reasons, results) is indexed through `rows`;
    everything here, and the model's cache and processors (_keep_row_states), by position.
    """

    rows: list[int]  # the caller's row at each position
    prompt_tokens: torch.Tensor  # (b, T) the prompts, left-padded
    pad: torch.Tensor  # (b,) each row's left padding
    padded: bool  # whether any prompt was padded at the start (else the model gets no padding mask)
    generated: torch.Tensor  # (b, t) the tokens chosen so far
    generators: list[torch.Generator] | None  # sampling's, one a row
    forced: list[list[int]] | None  # each row's forced start

    @classmethod
    def start(cls, prompt_tokens: torch.Tensor, pad: torch.Tensor, generators: list[torch.Generator] | None,
              forced: list[list[int]] | None) -> "_LiveRows":
        """Every row, before the first token; prompt_tokens (B, T) and pad (B,) from left_pad."""
        B = prompt_tokens.shape[0]
        generated = torch.empty((B, 0), dtype=torch.long, device=prompt_tokens.device)
        return cls(list(range(B)), prompt_tokens, pad, padded_rows_or_none(pad) is not None, generated,
                   generators, forced)

    @property
    def pad_or_none(self) -> torch.Tensor | None:
        """The pad counts the model masks with: None when no prompt was padded."""
        return self.pad if self.padded else None

    def keep(self, positions: list[int]) -> torch.Tensor:
        """Keep only the rows at `positions` (in order); returns them as an index tensor for the rest."""
        keep = torch.tensor(positions, device=self.pad.device)
        self.rows = [self.rows[i] for i in positions]
        self.prompt_tokens, self.pad, self.generated = self.prompt_tokens[keep], self.pad[keep], self.generated[keep]
        self.generators = None if self.generators is None else [self.generators[i] for i in positions]
        self.forced = None if self.forced is None else [self.forced[i] for i in positions]
        return keep


def _contrast_for(model, plain: PlainPrompts | None, cfg: GenerationConfig, B: int,
                  pad_id: int) -> ContextContrast | None:
    """The fact-free twins of the B rows, when cfg.context_contrast asks for them and `plain` is given."""
    if plain is None or not cfg.context_contrast > 0:
        return None
    if len(plain.ids) != B or len(plain.starts) not in (0, B):
        raise ValueError("one plain prompt (and start) per prompt")
    return ContextContrast(model, plain, cfg.context_contrast, cfg.max_new_tokens, pad_id)


def _choose_tokens(scores: torch.Tensor, use_sampling: bool, generators: list[torch.Generator] | None,
                   forced: list[list[int]] | None, step: int) -> tuple[torch.Tensor, list[int]]:
    """c. Each row's next token (B,), sampled or greedy, but a forced start's token in the rows still
    writing one; and those rows' indices."""
    next_tokens = sample(scores, generators) if use_sampling else greedy(scores)
    writing = [] if forced is None else [i for i in range(len(forced)) if step < len(forced[i])]
    if writing:
        next_tokens[writing] = torch.tensor([forced[i][step] for i in writing], device=next_tokens.device)
    return next_tokens, writing


def _take_token(tracker: TextTracker, token: int, is_eos: bool) -> tuple[str, str | None]:
    """d. A row's chosen token added to its text: the text now final, and why the row ends (eos,
    stop) or None while it runs on."""
    if is_eos:
        tracker.ids.append(token)
        return tracker.finish(), "eos"
    piece = tracker.push(token)
    return piece, "stop" if tracker.stopped else None


def _keep_row_states(keep: torch.Tensor, running: list[int], cache, processors,
                     contrast: ContextContrast | None) -> None:
    """Keep only the running rows in what holds a state per row: the KV cache, the processors that hold
    one (XTC's generators), the fact-free twins."""
    cache.keep_rows(keep)
    for processor in processors:
        if hasattr(processor, "keep_rows"):
            processor.keep_rows(running)
    if contrast is not None:
        contrast.keep_rows(keep)


def _decode_one_token(model, next_tokens: torch.Tensor, cache, pad: torch.Tensor | None,
                      contrast: ContextContrast | None, joint: JointPrefixCache | None) -> torch.Tensor:
    """e. Feed each row its chosen token (B,), and the fact-free twins theirs: the rows' next logits (B, V)."""
    if joint is not None:  # the rows and their fact-free twins in one pass
        both = model(torch.cat([next_tokens, next_tokens])[:, None], joint)[:, -1]
        B = next_tokens.shape[0]
        contrast.logits = both[B:]
        return both[:B]
    logits = model(next_tokens[:, None], cache, pad)[:, -1]
    if contrast is not None:
        contrast.step(next_tokens)
    return logits


def _keep_for_next(reuse: PrefixReuse | None, prompts: list[list[int]], written: list[int], cache) -> None:
    """Keep a run's cache in `reuse` for the next call, when its rows share one prompt. The cache
    holds the prompt and every token written but the last (never fed back); of several rows (the
    candidates), only the prompt is what the next call can share."""
    if reuse is not None and _one_prompt(prompts):
        B = len(prompts)
        reuse.keep(prompts[0] + written[:-1] if B == 1 else list(prompts[0]), cache if B == 1 else cache.prefix)


def common_prefix(sequences: list[list[int]]) -> int:
    """How many leading tokens every one of `sequences` shares (0 for none)."""
    if not sequences:
        return 0
    n = min(len(s) for s in sequences)
    for i in range(n):
        first = sequences[0][i]
        if any(s[i] != first for s in sequences[1:]):
            return i
    return n
