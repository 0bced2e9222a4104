"""Turn-by-turn dialogue: metagen writes each speaker's "Name:" and the model writes only the line.

Every turn's speaker comes from the requested cast, so the transcript is always well formed.
The next speaker is either the cast in turn order, or the one whose "\\nName:" the model finds
most likely after the transcript so far (a batched scoring pass over the candidates).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from metagen.config import MAX_SEED, GenerationConfig, candidate_seed
from metagen.critic import best_index, critic_context, first_sentences, judge
from metagen.errors import ConfigError
from metagen.prompts import (
    DIALOGUE_ORDERS,
    DialogueRequest,
    Prompt,
    build_prompt,
    clean_dialogue_line,
    continue_dialogue,
    dialogue_stops,
    format_dialogue,
    resolve_request,
    speaker_order,
    speaker_prefix,
)
from metagen.search import PrefixReuse
from metagen.world import Character, World

log = logging.getLogger(__name__)

EMPTY_LINE = "..."
LINE_SENTENCES = 3  # a spoken line keeps at most this many sentences  # written when the model gives nothing for a turn, even on the retry


@dataclass
class DialogueResult:
    """A finished dialogue and how it came about."""

    turns: list[dict]  # [{"speaker": name, "speaker_id": id, "line": text}], in order
    text: str  # the transcript, "Name: line" a line
    prompt: Prompt  # the preamble: lore_used, lore_left_out, warnings
    prompt_tokens: int  # tokens of the rendered preamble (chat template included)
    output_tokens: int  # tokens generated over all turns, retries included
    logprob: float  # sum of the kept lines' log-probabilities under the raw model
    finish_reason: str  # always "length": every requested turn was written (see generate_dialogue)
    seconds: float
    seed: int  # line i used seed + i
    warnings: list[str] = field(default_factory=list)  # the prompt's warnings, then the dialogue's own
    critic: dict = field(default_factory=dict)  # with candidates: {"lines": [{"turn", "chosen", "candidates"}]}

    def to_dict(self) -> dict:
        """JSON-ready data for recording alongside the output."""
        return {
            "turns": [dict(t) for t in self.turns],
            "text": self.text,
            "prompt": self.prompt.to_dict(),
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "logprob": self.logprob,
            "finish_reason": self.finish_reason,
            "seconds": self.seconds,
            "seed": self.seed,
            "warnings": list(self.warnings),
        }


def score_speakers(generator, messages: list[dict[str, str]], transcript: str, names: Sequence[str]) -> list[float]:
    """Log-probability of "\\nName:" after the chat and `transcript` for each name, in one batched pass.

    Each score is the sum of the raw model's token log-probabilities of that continuation,
    conditioned on the tokens every candidate shares (normally the whole context).
    """
    tokenizer = generator.tokenizer
    context_ids = tokenizer.encode_chat(messages, suffix=transcript)
    rows = [tokenizer.encode_chat(messages, suffix=transcript + "\n" + speaker_prefix(name)) for name in names]
    shared = _common_prefix([context_ids, *rows])
    if shared == 0:
        raise ValueError("the context is empty; there is nothing to score a speaker after")
    return generator.score_continuations(rows, shared)


def choose_speaker(scores: Sequence[float], candidates: Sequence[Character]) -> Character:
    """The candidate with the highest score; the earlier one in cast order on a tie."""
    best = 0
    for i, score in enumerate(scores):
        if score > scores[best]:
            best = i
    return candidates[best]


def generate_dialogue(
    generator,
    world: World,
    request: DialogueRequest,
    cfg: GenerationConfig,
    *,
    seed: int,
    order: str = "likelihood",
    on_text: Callable[[str], None] | None = None,
) -> DialogueResult:
    """Write request.turns lines, one model completion per line, speakers drawn from the cast.

    Args:
        cfg: decoding settings; cfg.max_new_tokens caps each line and cfg.stop adds to the line stops.
        seed: line i samples with seed + i, so one seed reproduces the whole dialogue.
        order: "likelihood" (the speaker the model finds most likely next, never the one who just
            spoke) or "turns" (the named characters in order, round and round).
        on_text: gets "Name: ", then the line's text as it arrives, then "\\n" between turns. The
            stream is a preview: the kept line is cleaned (quotes and echoed names removed).

    The model's end-of-text only ends the line it is in: every requested turn is written, so
    finish_reason is always "length". A line that comes back empty is retried once with another
    seed, without the newline stop and with at least one token; if that is empty too, the line
    is EMPTY_LINE and a warning says so.
    """
    if order not in DIALOGUE_ORDERS:
        raise ConfigError(f"dialogue order must be one of {', '.join(DIALOGUE_ORDERS)}, got {order!r}")
    if not 0 <= seed < MAX_SEED:
        raise ConfigError(f"--seed must be in [0, 2**63), got {seed}")
    started = time.perf_counter()
    tokenizer = generator.tokenizer
    cast = resolve_request(world, request).characters
    names = [alias for c in cast for alias in (c.name, *c.aliases)]
    prefix_tokens = max(generator.count_tokens("\n" + speaker_prefix(c.name)) for c in cast)
    per_turn = cfg.max_new_tokens + prefix_tokens
    # Room for the transcript: all of it when it fits, else half the window (older lines then slide out).
    reserve = min(request.turns * per_turn, max(generator.context_length // 2, per_turn))
    prompt = build_prompt(world, request, count_tokens=generator.count_tokens,
                          context_length=generator.context_length, max_new_tokens=reserve)
    # Each turn's prompt extends the last one: keep its KV cache so only new tokens are prefilled.
    reuse = PrefixReuse()
    # The chat's own ids, then the transcript as plain text: world and model text can never
    # spell the template's control tokens (Tokenizer.encode_chat).
    messages = prompt.messages
    room = generator.context_length - cfg.max_new_tokens - prefix_tokens
    fixed = speaker_order(world, request)
    lines: list[tuple[str, str]] = []
    turns: list[dict] = []
    warnings: list[str] = []
    start = 0  # the first transcript line the model still sees
    output_tokens, logprob = 0, 0.0
    critic_lines: list[dict] = []

    for i in range(request.turns):
        # a. keep the transcript within the window: the oldest lines slide out first
        while start < len(lines) and len(tokenizer.encode_chat(messages, suffix=format_dialogue(lines[start:]))) > room:
            start += 1
            if start == 1:
                warnings.append(f"the transcript outgrew the model's context at turn {i + 1}; "
                                "later lines were written seeing only the most recent ones")
        # b. who speaks
        if i == 0 or order == "turns":
            speaker = fixed[i]
        else:
            candidates = [c for c in cast if c is not speaker]  # anyone but who just spoke
            if len(candidates) == 1:
                speaker = candidates[0]
            else:
                scores = score_speakers(generator, messages, format_dialogue(lines[start:]), [c.name for c in candidates])
                speaker = choose_speaker(scores, candidates)
        assert speaker in cast, f"speaker {speaker.id} is not in the cast"
        # c. the line: the transcript so far, "Name:", and the model completes it
        ids = tokenizer.encode_chat(messages, suffix=continue_dialogue(lines[start:], speaker.name))
        others = [n for c in cast if c is not speaker for n in (c.name, *c.aliases)]
        line_cfg = replace(cfg, stop=tuple(dict.fromkeys((*dialogue_stops(others), *cfg.stop))))
        if on_text:
            on_text(("\n" if i else "") + speaker_prefix(speaker.name) + " ")
        stream = _LineStream(on_text if cfg.candidates == 1 else None)
        seeds = [candidate_seed(_offset(seed, i), k) for k in range(cfg.candidates)]
        options = generator.complete([ids] * cfg.candidates, line_cfg, seeds=seeds, on_text=stream, reuse=reuse)
        output_tokens += sum(len(o.tokens) for o in options)
        chosen, verdicts = _choose_line(world, request, options, names, lines, speaker, cfg)
        done = options[chosen]
        line = spoken_line(done.text, names)
        if verdicts:
            critic_lines.append({"turn": i + 1, "chosen": chosen,
                                 "candidates": [{"seed": s, **v.to_dict()} for s, v in zip(seeds, verdicts)]})
        if line and on_text and cfg.candidates > 1:
            on_text(line)
            stream.started = True
        shown = False
        if not line:
            # d. one retry: another seed, no newline stop (a leading newline is stripped), no instant end
            retry_cfg = replace(cfg, min_new_tokens=max(1, cfg.min_new_tokens))
            shown, stream = stream.started, _LineStream(on_text)
            done = generator.complete([ids], retry_cfg, seeds=[_offset(seed, request.turns + i)], on_text=stream,
                                      reuse=reuse)[0]
            output_tokens += len(done.tokens)
            line = spoken_line(done.text, names)
        if not line:
            line = EMPTY_LINE
            warnings.append(f"turn {i + 1} ({speaker.name}): the model wrote nothing, twice; "
                            f"the line is {EMPTY_LINE!r}")
            log.warning(warnings[-1])
            if on_text and not (shown or stream.started):
                on_text(EMPTY_LINE)
        logprob += done.logprob
        lines.append((speaker.name, line))
        turns.append({"speaker": speaker.name, "speaker_id": speaker.id, "line": line})

    return DialogueResult(
        turns=turns,
        text=format_dialogue(lines),
        prompt=prompt,
        prompt_tokens=len(tokenizer.encode_chat(messages)),
        output_tokens=output_tokens,
        logprob=logprob,
        finish_reason="length",
        seconds=time.perf_counter() - started,
        seed=seed,
        warnings=[*prompt.warnings, *warnings],
        critic={"lines": critic_lines} if critic_lines else {},
    )


def spoken_line(text: str, names: Sequence[str]) -> str:
    """The model's text as one spoken line: cleaned, and at most LINE_SENTENCES sentences (a small
    model runs on past a line's end and is cut off mid-sentence by the token budget)."""
    return first_sentences(clean_dialogue_line(text, names), LINE_SENTENCES)


def _choose_line(world: World, request: DialogueRequest, options: list, names: list[str],
                 lines: list[tuple[str, str]], speaker: Character, cfg: GenerationConfig):
    """The critic's pick among one line's candidates (and its verdicts; none for one candidate).

    Copying is measured against the speaker's sample lines and the transcript so far, so a line
    that repeats the world's example or an earlier line loses to one in the speaker's own words.
    """
    if len(options) == 1:
        return 0, []
    resolved = resolve_request(world, request)
    source = "\n".join([*speaker.sample_lines, *(line for _, line in lines)])
    context = critic_context(world, resolved, source, cfg, names_required=False)
    verdicts = []
    for option in options:
        line = spoken_line(option.text, names)
        verdict = judge(line, context, logprob=option.logprob, tokens=len(option.tokens))
        if not line:
            verdict.score -= 10.0  # an empty line is never the pick while another exists
        verdicts.append(verdict)
    return best_index(verdicts), verdicts


class _LineStream:
    """Forwards one line's pieces: leading spaces dropped, nothing after its first newline."""

    def __init__(self, on_text: Callable[[str], None] | None):
        self.on_text = on_text
        self.started = False
        self.ended = False

    def __call__(self, row: int, piece: str) -> None:
        if self.on_text is None or self.ended:
            return
        if not self.started:
            piece = piece.lstrip()
            if not piece:
                return
            self.started = True
        if "\n" in piece:
            piece, self.ended = piece.split("\n", 1)[0], True
        if piece:
            self.on_text(piece)


def _offset(seed: int, i: int) -> int:
    return (seed + i) % MAX_SEED


def _common_prefix(rows: Sequence[Sequence[int]]) -> int:
    n = min(len(r) for r in rows)
    for j in range(n):
        if any(r[j] != rows[0][j] for r in rows[1:]):
            return j
    return n


__all__ = ["DialogueResult", "EMPTY_LINE", "choose_speaker", "generate_dialogue", "score_speakers"]
