"""Beam search: an n-best list per prompt, scored `sum_logprobs / generated_len ** length_penalty`.

It follows the n-best bookkeeping of transformers' vectorized `_beam_search` (2 x num_beams
candidates a step, the same early-stopping rule), so that the two agree token for token on the
same weights.  The logits pass through the same processors as greedy decoding and sampling
(search.process_logits), and the KV cache is reordered to the chosen beams each step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from metagen.bans import ending_tokens
from metagen.config import GenerationConfig
from metagen.sampling import build_processors
from metagen.search import (Sequence, SearchResult, TextCallback, common_prefix, left_pad, log_order,
                            padded_rows_or_none, process_logits)
from metagen.text import sentence_cut


@dataclass
class _Hypothesis:
    score: float
    tokens: list[int]
    logprob: float
    finish_reason: str


def beam_search(model, tokenizer, prompts: list[list[int]], cfg: GenerationConfig,
                on_text: TextCallback | None = None) -> list[SearchResult]:
    """Beam search for a batch of prompts; each result holds the n-best sequences. Beam search
    draws nothing at random, so it takes no generators."""
    B, nb = len(prompts), cfg.num_beams
    eos = sorted(tokenizer.eos_ids)
    K = max(2, 1 + len(eos)) * nb  # candidates kept per step, as transformers does
    processors = build_processors(cfg, tokenizer, None)
    log_order("beam", processors)
    prompt_tokens, pad = left_pad(prompts, tokenizer.pad_id, model.device)
    prompt_tokens = prompt_tokens.repeat_interleave(nb, dim=0)  # (B*nb, T)
    pad = pad.repeat_interleave(nb, dim=0)  # (B*nb,)
    scorer = _BeamScorer(cfg, processors, prompt_tokens, pad,
                         ending=ending_tokens(tokenizer, cfg.stop) if cfg.min_new_tokens else eos)
    pad_or_none = padded_rows_or_none(pad)
    cache = model.new_cache(B * nb, prompt_tokens.shape[1] + cfg.max_new_tokens)
    beams, stream = _Beams.start(B, nb, model.device), _BeamStream(tokenizer, B, on_text)
    logits = model(prompt_tokens, cache, pad_or_none, last_only=True)[:, -1]  # (B*nb, V)
    for step in range(cfg.max_new_tokens):
        last_step = step == cfg.max_new_tokens - 1
        # a. score: log-softmax, then the processors, plus each beam's running score
        raw_logprobs, accumulated = scorer.score(beams, logits, step)  # (B*nb, V), (B, nb*V)
        # b. the K best continuations over all beams of each prompt
        top_scores, top_indices = torch.topk(accumulated, K, dim=-1)  # (B, K)
        # c. and d. (in _advance_beams): file the finished, carry the nb best unfinished on
        parents = _advance_beams(beams, top_scores, top_indices, raw_logprobs, step, last_step,
                                 cfg, tokenizer, set(eos))
        # e. stop rule: nb hypotheses done (early stopping), or no running beam can still win
        _mark_done(beams, step, cfg)
        stream.send_shared_prefix(beams)
        if all(beams.done) or last_step:
            break
        # f. reorder the KV cache to the chosen parents, then one step for every beam
        logits = _step_beams(model, cache, beams, parents, pad_or_none)
    results = [_beam_result(tokenizer, cfg, hypotheses, len(prompt))
               for hypotheses, prompt in zip(beams.finished, prompts)]
    for row, result in enumerate(results):
        stream.send_rest(row, result)
    return results


@dataclass
class _Beams:
    """Beam search's running state for B prompts of nb beams each; row b * nb + i is beam i of prompt b."""

    nb: int  # beams per prompt
    device: torch.device  # where the running scores live
    running: list[list[int]]  # (B*nb) the tokens of each running beam
    scores: torch.Tensor  # (B, nb) each running beam's score
    raw_sums: torch.Tensor  # (B*nb,) each running beam's sum of raw log-probabilities, float64
    finished: list[list[_Hypothesis]]  # per prompt, the n-best finished hypotheses
    done: list[bool]  # per prompt, whether its search is over

    @classmethod
    def start(cls, B: int, nb: int, device) -> "_Beams":
        """Empty beams; only the first beam of each prompt is live, so the first step does not pick duplicates."""
        scores = torch.full((B, nb), -1e9, dtype=torch.float32, device=device)
        scores[:, 0] = 0.0
        return cls(nb, device, [[] for _ in range(B * nb)], scores, torch.zeros(B * nb, dtype=torch.float64),
                   [[] for _ in range(B)], [False] * B)


@dataclass(frozen=True)
class _BeamScorer:
    """Step a. of beam_search, with what it needs that stays the same every step."""

    cfg: GenerationConfig
    processors: list  # build_processors(cfg), in their documented order
    prompt_tokens: torch.Tensor  # (B*nb, T) each prompt, left-padded, once for each of its beams
    pad: torch.Tensor  # (B*nb,) each row's left padding
    ending: list[int]  # the tokens held off before cfg.min_new_tokens (bans.ending_tokens)

    def score(self, beams: _Beams, logits: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """a. The raw model's log-probabilities (B*nb, V), and every continuation's score (B, nb*V): its
        log-probability after the processors plus its beam's running score."""
        B, nb = beams.scores.shape
        raw_logprobs = torch.log_softmax(logits.float(), dim=-1)
        running = torch.tensor(beams.running, dtype=torch.long, device=beams.device).view(B * nb, step)  # (B*nb, step)
        logprobs = process_logits(self.processors, self.cfg, step, raw_logprobs, self.ending, self.prompt_tokens,
                                   self.pad, running)
        V = logprobs.shape[-1]
        return raw_logprobs, (logprobs.view(B, nb, V) + beams.scores[:, :, None]).view(B, nb * V)


def _finish_reason(tokenizer, cfg: GenerationConfig, sequence: list[int], token: int, eos_set: set[int],
                   last_step: bool) -> str | None:
    """Why a candidate ends here (eos, stop or length), or None when it runs on."""
    if token in eos_set:
        return "eos"
    if cfg.stop or cfg.max_sentences:
        text = tokenizer.decode(sequence)
        if any(s in text for s in cfg.stop) or (cfg.max_sentences and sentence_cut(text, cfg.max_sentences)[1]):
            return "stop"
    return "length" if last_step else None


def _advance_beams(beams: _Beams, top_scores: torch.Tensor, top_indices: torch.Tensor, raw_logprobs: torch.Tensor,
                   step: int, last_step: bool, cfg: GenerationConfig, tokenizer, eos_set: set[int]) -> list[int]:
    """Steps c and d of beam_search on the K best candidates of each prompt; returns each new beam's parent row."""
    nb, V = beams.nb, raw_logprobs.shape[-1]
    parents = (top_indices // V).tolist()
    tokens = (top_indices % V).tolist()
    top_scores_list = top_scores.tolist()
    new_running, new_scores, new_sums, reorder = [], [], [], []
    for b in range(len(beams.finished)):
        kept = 0
        for rank in range(len(tokens[b])):
            parent = b * nb + parents[b][rank]
            token = tokens[b][rank]
            sequence = beams.running[parent] + [token]
            raw = float(beams.raw_sums[parent]) + float(raw_logprobs[parent, token])
            reason = _finish_reason(tokenizer, cfg, sequence, token, eos_set, last_step)
            if reason is not None:
                # c. a finished candidate counts only among the nb best of this step
                if rank < nb and not beams.done[b]:
                    score = top_scores_list[b][rank] / ((step + 1) ** cfg.length_penalty)
                    _add_hypothesis(beams.finished[b], _Hypothesis(score, sequence, raw, reason), nb)
                continue
            if kept < nb:
                # d. the nb best unfinished candidates continue
                new_running.append(sequence)
                new_scores.append(top_scores_list[b][rank])
                new_sums.append(raw)
                reorder.append(parent)
                kept += 1
        for _ in range(kept, nb):  # every candidate finished: keep dead beams
            new_running.append(beams.running[b * nb] + [tokenizer.pad_id])
            new_scores.append(-1e9)
            new_sums.append(0.0)
            reorder.append(b * nb)
    beams.running = new_running
    beams.scores = torch.tensor(new_scores, dtype=torch.float32, device=beams.device).view(-1, nb)
    beams.raw_sums = torch.tensor(new_sums, dtype=torch.float64)
    return reorder


def _mark_done(beams: _Beams, step: int, cfg: GenerationConfig) -> None:
    """A prompt is done with nb hypotheses and early stopping, or when no running beam can beat the worst."""
    for b in range(len(beams.finished)):
        if beams.done[b]:
            continue
        full = len(beams.finished[b]) >= beams.nb
        best_running = float(beams.scores[b].max()) / ((step + 1) ** cfg.length_penalty)
        if full and (cfg.early_stopping or best_running <= min(h.score for h in beams.finished[b])):
            beams.done[b] = True


def _beam_result(tokenizer, cfg: GenerationConfig, finished: list[_Hypothesis], prompt_tokens: int) -> SearchResult:
    """One prompt's n-best as a SearchResult."""
    best = sorted(finished, key=lambda h: h.score, reverse=True)[:cfg.num_return_sequences]
    sequences = []
    for hyp in best:
        text = tokenizer.decode(hyp.tokens)
        if hyp.finish_reason == "stop":  # cut where it stopped: before a stop string, or after its sentences
            at = [i for i in (text.find(s) for s in cfg.stop) if i >= 0]
            text = text[:min(at)] if at else text[:sentence_cut(text, cfg.max_sentences)[0]]
        sequences.append(Sequence(tokens=hyp.tokens, text=text, logprob=hyp.logprob,
                                  finish_reason=hyp.finish_reason, score=hyp.score))
    return SearchResult(sequences=sequences, prompt_tokens=prompt_tokens)


def _add_hypothesis(hypotheses: list[_Hypothesis], hyp: _Hypothesis, limit: int) -> None:
    hypotheses.append(hyp)
    hypotheses.sort(key=lambda h: h.score, reverse=True)
    del hypotheses[limit:]


def _step_beams(model, cache, beams: _Beams, parents: list[int], pad: torch.Tensor | None) -> torch.Tensor:
    """f. Reorder the KV cache to each new beam's parent row, then feed every beam its last token:
    the next logits (B*nb, V)."""
    rows = torch.tensor(parents, dtype=torch.long, device=beams.device)
    if not torch.equal(rows, torch.arange(len(parents), device=beams.device)):
        cache.reorder(rows)
    last = torch.tensor([seq[-1] for seq in beams.running], dtype=torch.long, device=beams.device)  # (B*nb,)
    return model(last[:, None], cache, pad)[:, -1]


class _BeamStream:
    """What beam search streams to on_text (nothing without one): only text no later step can change."""

    def __init__(self, tokenizer, B: int, on_text: TextCallback | None):
        self.tokenizer, self.on_text = tokenizer, on_text
        self.streamed = [0] * B  # per prompt, the tokens of the shared prefix already streamed
        self.text = [""] * B  # per prompt, the text already streamed

    def send_shared_prefix(self, beams: _Beams) -> None:
        """Stream the prefix shared by every live beam and every hypothesis that may still win."""
        if not self.on_text:
            return
        nb = beams.nb
        for b in range(len(beams.finished)):
            candidates = [beams.running[b * nb + i] for i in range(nb)] + [h.tokens for h in beams.finished[b]]
            shared = common_prefix(candidates)
            if shared <= self.streamed[b]:
                continue
            text = self.tokenizer.decode(candidates[0][:shared])
            if text.endswith("\ufffd") or not text.startswith(self.text[b]):
                continue
            piece = text[len(self.text[b]):]
            self.streamed[b], self.text[b] = shared, text
            if piece:
                self.on_text(b, piece)

    def send_rest(self, row: int, result: SearchResult) -> None:
        """Stream what the best sequence adds to the text already streamed (the search is over)."""
        if self.on_text and result.sequences and result.sequences[0].text.startswith(self.text[row]):
            rest = result.sequences[0].text[len(self.text[row]):]
            if rest:
                self.on_text(row, rest)
