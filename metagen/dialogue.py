"""Turn-by-turn dialogue: metagen writes each speaker's "Name:" and the model writes only the line.

Every turn's speaker comes from the requested cast, so the transcript is always well formed.
The next speaker is either the cast in turn order, or the one whose "\\nName:" the model finds
most likely after the transcript so far (a batched scoring pass over the candidates).
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from metagen.config import MAX_SEED, GenerationConfig, candidate_seed
from metagen.critic import CriticContext, Verdict, best_index, critic_context, judge
from metagen.errors import ConfigError, RequestError
from metagen.grounding import TITLES, character_forms, common_words, writing_guard
from metagen.kinship import kin_side
from metagen.phrasing import after_to, clause, lower_first, prose_name, short_prose_name
from metagen.prompts import DIALOGUE_ORDERS, DialogueRequest, Prompt, build_prompt, resolve_request
from metagen.search import PlainPrompts, PrefixReuse, common_prefix
from metagen.text import first_sentences, fold, format_dialogue, speaker_prefix
from metagen.world import Character, World

if TYPE_CHECKING:
    from metagen.generator import Completion

log = logging.getLogger(__name__)

EMPTY_LINE = "..."  # written when the model gives nothing for a turn, even on the retry
# Taken from the logits of a speaker's own one-token name in their line. After "Hey Pip!" all four of
# Pip's candidates answered "Hi Pip! How can I assist you today?" (the README's Yarn example, round
# fourteen), so the critic's `self` finding had nothing else to choose.
OWN_NAME_BIAS = -4.0
LINE_SENTENCES = 3  # a spoken line keeps at most this many sentences


# ----------------------------------------------------------------------------- helpers


def spoken_names(world: World, character: Character) -> tuple[str, ...]:
    """What a line may call a character: its forms (character_forms) and, for a name in another
    script than the world's prose, the first word of the alias a story uses (plan.prose_name): the
    model calls 林小雨 "Lin" ("Hey, Lin, what brings you to the Atrium today?" from Lin herself)."""
    forms = character_forms(character)
    prose = prose_name(character, writing_guard(world)["scripts"])
    if prose != character.name and len(prose.split()) > 1:
        forms += (prose.split()[0],)
    return tuple(dict.fromkeys(forms))


def own_name_tokens(tokenizer, forms: Sequence[str]) -> list[int]:
    """The tokens that are each a whole name of `forms` (spoken_names), alone or after a space
    (" Pip"), or the first word of one that is no title or common word (" Lin" of "Lin Xiaoyu",
    not " Sister" of "Sister Maëlle"); a name the tokenizer splits ("Ma" + "ëlle") and a role-like
    form ("the Pilot") give none."""
    words = set()
    for form in forms:
        first = form.split()[0]
        if fold(first) not in ("the", "a", "an"):
            words.add(form)
            if fold(first) not in TITLES | common_words():  # not " Little" of "Little Rain"
                words.add(first)
    tokens = set()
    for word in words:
        for variant in (word, " " + word):
            ids = tokenizer.encode(variant)
            if len(ids) == 1:
                tokens.add(ids[0])
    return sorted(tokens)


def estimate_tokens(text: str) -> int:
    """A rough token count (about 4 tokens for 3 words) for when no tokenizer is at hand."""
    return (len(text.split()) * 4 + 2) // 3


def dialogue_preamble(
    world: World,
    request: DialogueRequest,
    *,
    count_tokens: Callable[[str], int] = estimate_tokens,
    context_length: int = 8192,
    max_new_tokens: int = 1024,
) -> list[dict[str, str]]:
    """The system and user messages that open a dialogue; the transcript follows as the answer.

    The same messages as build_prompt(...).messages; by default lore is fitted with a rough
    token estimate. Pass the model's count_tokens and window for an exact fit.
    """
    if request.kind != "dialogue":
        raise RequestError(f"dialogue_preamble needs a dialogue request, not a {request.kind} request")
    prompt = build_prompt(
        world, request, count_tokens=count_tokens, context_length=context_length, max_new_tokens=max_new_tokens
    )
    return prompt.messages


def speaker_order(world: World, request: DialogueRequest) -> tuple[Character, ...]:
    """Who speaks each turn: the named characters in order, round and round, `turns` long."""
    cast = resolve_request(world, request).characters
    return tuple(cast[i % len(cast)] for i in range(request.turns))


def continue_dialogue(lines: Sequence[tuple[str, str]], next_speaker: str) -> str:
    """The answer so far, ending in the next speaker's "Name:" for the model to complete."""
    done = format_dialogue(lines)
    return (done + "\n" if done else "") + speaker_prefix(next_speaker)


def dialogue_stops(names: Sequence[str]) -> list[str]:
    """Stop strings for one dialogue line: a newline, or another speaker's prefix."""
    return ["\n", *(f" {speaker_prefix(n)}" for n in names)]


def clean_dialogue_line(text: str, names: Sequence[str]) -> str:
    """The model's text cut to one spoken line: first line, before any "Name:", quotes stripped."""
    line = text.strip().split("\n", 1)[0]
    prefixes = [speaker_prefix(name) for name in names]
    echoed = next((p for p in prefixes if line.startswith(p)), None)
    while echoed:  # the model echoed a speaker's prefix: drop it, then look for the next speaker's
        line = line[len(echoed):].lstrip()
        echoed = next((p for p in prefixes if line.startswith(p)), None)
    line = line[:min((at for p in prefixes if (at := line.find(p)) > 0), default=len(line))].strip()
    if len(line) >= 2 and line[0] == line[-1] and line[0] in "\"'“”":
        line = line[1:-1].strip()
    return line.strip("“”").strip()


def world_topic(world: World, request: DialogueRequest, seed: int) -> str | None:
    """What a dialogue with no --topic is about, drawn by `seed` from its first two speakers'
    goals ("Maëlle's wish to give her mother back one memory, even though the Order forbids it"),
    else from their tie's description; None when the world gives neither.

    Told only who speaks, a 135M model makes small talk that goes nowhere; a want said in the task,
    just before the lines, gives the conversation something to turn on (experiments/log.md, round
    fourteen)."""
    cast = resolve_request(world, request).characters[:2]
    wishes = [wish for _, wish in goal_wishes(world, cast)]
    if wishes:
        return random.Random(seed).choice(wishes)
    ids = {c.id for c in cast}
    for c in cast:
        for tie in c.relationships:
            if tie.other in ids and tie.description:
                return "what lies between them: " + lower_first(clause(tie.description))
    return None


def goal_wishes(world: World, cast: Sequence[Character]) -> list[tuple[str, str]]:
    """Each goal of the cast, and the topic it makes: ("give her mother back one memory",
    "Maëlle's wish to give her mother back one memory")."""
    scripts = writing_guard(world)["scripts"]
    return [(goal, f"{short_prose_name(c, scripts)}'s wish to {after_to(clause(goal))}") for c in cast for goal in c.goals]


def with_topic(world: World, request: DialogueRequest, seed: int) -> DialogueRequest:
    """The request with its topic: the user's own (an empty one: none at all), or world_topic's,
    recorded so replay is exact."""
    if request.topic is not None:
        return request
    return replace(request, topic=world_topic(world, request, seed))


# ----------------------------------------------------------------------------- the transcript


def prefix_tokens(generator, cast: Sequence[Character]) -> int:
    """Tokens of the longest "\\nName:" metagen writes before a line."""
    return max(generator.count_tokens("\n" + speaker_prefix(c.name)) for c in cast)


def transcript_budget(generator, cast: Sequence[Character], turns: int, line_tokens: int) -> int:
    """The room a dialogue keeps for its transcript: every turn's line and "Name:", or half
    the window when they do not fit (older lines then slide out, _DialogueWriter.slide_window)."""
    per_turn = line_tokens + prefix_tokens(generator, cast)
    return min(turns * per_turn, max(generator.context_length // 2, per_turn))


def dialogue_prompt(generator, world: World, request: DialogueRequest, cfg: GenerationConfig) -> Prompt:
    """The preamble a dialogue is written after: build_prompt with the transcript's room kept free."""
    cast = resolve_request(world, request).characters
    return build_prompt(world, request, count_tokens=generator.count_tokens,
                        context_length=generator.context_length,
                        max_new_tokens=transcript_budget(generator, cast, request.turns, cfg.max_new_tokens))


# ----------------------------------------------------------------------------- writing


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
    shared = common_prefix([context_ids, *rows])
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
    moderation=None,
) -> DialogueResult:
    """Write request.turns lines, one model completion per line, speakers drawn from the cast.

    Args:
        cfg: decoding settings; cfg.max_new_tokens caps each line and cfg.stop adds to the line stops.
        seed: line i samples with seed + i, so one seed reproduces the whole dialogue.
        order: "likelihood" (the speaker the model finds most likely next, never the one who just
            spoke) or "turns" (the named characters in order, round and round).
        on_text: gets "Name: ", then the line's text as it arrives, then "\\n" between turns. The
            stream is a preview: the kept line is cleaned (quotes and echoed names removed).
        moderation: the world's moderation Policy: lines over its rating lose.

    The model's end-of-text only ends the line it is in: every requested turn is written, so
    finish_reason is always "length". A line that comes back empty is retried once with another
    seed, one row, without the line's own stops (the newline, the other speakers' "Name:") and
    without the bias against the speaker's own name; if that is empty too, the line is EMPTY_LINE
    and a warning says so.
    """
    _check_order_and_seed(order, seed)
    started = time.perf_counter()
    request = with_topic(world, request, seed)
    prompt = dialogue_prompt(generator, world, request, cfg)
    writer = _DialogueWriter(generator, world, request, cfg, prompt.messages, seed, on_text, moderation,
                             plain_messages=prompt.plain_messages if cfg.context_contrast else None)
    speaker = None
    for i in range(request.turns):
        writer.slide_window(i)  # a.
        speaker = writer.next_speaker(i, speaker, order)  # b.
        writer.write_line(i, speaker)  # c. and d.
    return writer.result(prompt, started)


def _check_order_and_seed(order: str, seed: int) -> None:
    """generate_dialogue's own arguments, checked before any model work."""
    if order not in DIALOGUE_ORDERS:
        raise ConfigError(f"dialogue order must be one of {', '.join(DIALOGUE_ORDERS)}, got {order!r}")
    if not 0 <= seed < MAX_SEED:
        raise ConfigError(f"--seed must be in [0, 2**63), got {seed}")


class _DialogueWriter:
    """The transcript so far and the steps of one turn: a. slide the window, b. pick the speaker,
    c. write the line, d. retry an empty one."""

    def __init__(self, generator, world: World, request: DialogueRequest, cfg: GenerationConfig,
                 messages: list[dict[str, str]], seed: int, on_text: Callable[[str], None] | None, moderation=None,
                 plain_messages: list[dict[str, str]] | None = None):
        self.generator, self.world, self.request, self.cfg = generator, world, request, cfg
        self.plain_messages = plain_messages  # the preamble without the world's facts, for context contrast
        self.moderation = moderation  # a moderation Policy, or None
        self.tokenizer = generator.tokenizer
        # The chat's own ids, then the transcript as plain text: world and model text can never
        # spell the template's control tokens (Tokenizer.encode_chat).
        self.messages, self.seed, self.on_text = messages, seed, on_text
        self.cast = resolve_request(world, request).characters
        self.turn_order = speaker_order(world, request)  # each turn's speaker with order "turns"
        self.names = [alias for c in self.cast for alias in (c.name, *c.aliases)]
        self.room = generator.context_length - cfg.max_new_tokens - prefix_tokens(generator, self.cast)
        # Each turn's prompt extends the last one: keep its KV cache so only new tokens are prefilled.
        self.reuse = PrefixReuse()
        self.plain_reuse = PrefixReuse()  # the same for the fact-free preamble of context contrast
        self.lines: list[tuple[str, str]] = []
        self.turns: list[dict] = []
        self.warnings: list[str] = []
        self.start = 0  # the first transcript line the model still sees
        self.output_tokens, self.logprob = 0, 0.0
        self.critic_lines: list[dict] = []

    def slide_window(self, i: int) -> None:
        """a. Keep the transcript within the window: the oldest lines slide out first."""
        while self.start < len(self.lines) and len(self.tokenizer.encode_chat(
                self.messages, suffix=format_dialogue(self.lines[self.start:]))) > self.room:
            self.start += 1
            if self.start == 1:
                self.warnings.append(f"the transcript outgrew the model's context at turn {i + 1}; "
                                     "later lines were written seeing only the most recent ones")

    def next_speaker(self, i: int, previous: Character | None, order: str) -> Character:
        """b. Who speaks turn i: the cast in turn order (always for the first turn), or with order
        "likelihood" the likeliest of those who did not just speak."""
        speaker = self.turn_order[i] if i == 0 or order == "turns" else self.likeliest_speaker(previous)
        assert speaker in self.cast, f"speaker {speaker.id} is not in the cast"
        return speaker

    def likeliest_speaker(self, previous: Character) -> Character:
        """Who speaks next with order "likelihood": anyone but who just spoke, the likeliest by the model's scores."""
        candidates = [c for c in self.cast if c is not previous]
        if len(candidates) == 1:
            return candidates[0]
        scores = score_speakers(self.generator, self.messages, format_dialogue(self.lines[self.start:]),
                                [c.name for c in candidates])
        return choose_speaker(scores, candidates)

    def result(self, prompt: Prompt, started: float) -> DialogueResult:
        """The finished dialogue, written after `prompt`; `started`: when generate_dialogue began (perf_counter)."""
        return DialogueResult(
            turns=self.turns,
            text=format_dialogue(self.lines),
            prompt=prompt,
            prompt_tokens=len(self.tokenizer.encode_chat(prompt.messages)),
            output_tokens=self.output_tokens,
            logprob=self.logprob,
            finish_reason="length",
            seconds=time.perf_counter() - started,
            seed=self.seed,
            warnings=[*prompt.warnings, *self.warnings],
            critic={"lines": self.critic_lines} if self.critic_lines else {},
        )

    def _plain(self, speaker: Character, rows: int) -> PlainPrompts | None:
        """The same transcript and speaker after the fact-free preamble, `rows` times (None: no contrast)."""
        if self.plain_messages is None:
            return None
        suffix = continue_dialogue(self.lines[self.start:], speaker.name)
        return PlainPrompts([self.tokenizer.encode_chat(self.plain_messages, suffix=suffix)] * rows,
                            reuse=self.plain_reuse)

    def write_line(self, i: int, speaker: Character) -> None:
        """c. The line: the transcript so far, "Name:", and the model completes it; d. one retry if empty."""
        ids = self.tokenizer.encode_chat(self.messages, suffix=continue_dialogue(self.lines[self.start:], speaker.name))
        line_cfg = self._line_config(speaker)
        if self.on_text:
            self.on_text(("\n" if i else "") + speaker_prefix(speaker.name) + " ")
        done, line, shown = self._write_candidates(i, speaker, ids, line_cfg)
        if not line:
            done, line, shown_again = self._retry_empty(i, speaker, ids)
            shown = shown or shown_again
        if not line:
            line = self._empty_line(i, speaker, shown)
        self.logprob += done.logprob
        self.lines.append((speaker.name, line))
        self.turns.append({"speaker": speaker.name, "speaker_id": speaker.id, "line": line})

    def _line_config(self, speaker: Character) -> GenerationConfig:
        """The user's settings for one line, plus its stops (a newline, another speaker's "Name:") and
        the bias against the speaker's own name."""
        others = [n for c in self.cast if c is not speaker for n in (c.name, *c.aliases)]
        own_names = own_name_tokens(self.tokenizer, spoken_names(self.world, speaker))
        own = tuple((f"#{token}", OWN_NAME_BIAS) for token in own_names)
        stop = tuple(dict.fromkeys((*dialogue_stops(others), *self.cfg.stop)))
        return replace(_at_least_one_token(self.cfg), stop=stop, logit_bias=(*self.cfg.logit_bias, *own))

    def _write_candidates(self, i: int, speaker: Character, ids: list[int],
                          line_cfg: GenerationConfig) -> tuple[Completion, str, bool]:
        """c. cfg.candidates completions of the line and the critic's pick: (its completion, its spoken
        line, whether any of it was shown). One candidate streams as it is written; of several, the
        chosen line is shown once picked."""
        cfg, on_text = self.cfg, self.on_text
        stream = LineStream(on_text if cfg.candidates == 1 else None)
        seeds = [candidate_seed(_offset(self.seed, i), k) for k in range(cfg.candidates)]
        options = self.generator.complete([ids] * cfg.candidates, line_cfg, seeds=seeds,
                                          on_text=stream, reuse=self.reuse, plain=self._plain(speaker, cfg.candidates))
        self.output_tokens += sum(len(o.tokens) for o in options)
        chosen, verdicts = _choose_line(self.world, self.request, options, self.names, self.lines, speaker, cfg,
                                        self.moderation)
        line = spoken_line(options[chosen].text, self.names)
        if verdicts:
            self.critic_lines.append({"turn": i + 1, "chosen": chosen,
                                      "candidates": [{"seed": s, **v.to_dict()} for s, v in zip(seeds, verdicts)]})
        if line and on_text and cfg.candidates > 1:
            on_text(line)
            return options[chosen], line, True
        return options[chosen], line, stream.started

    def _retry_empty(self, i: int, speaker: Character, ids: list[int]) -> tuple[Completion, str, bool]:
        """d. One retry of an empty line: another seed, one row, and the user's settings without the
        line's stops (a leading newline is stripped) or the own-name bias; still at least one token.
        Returns the completion, its spoken line and whether any of it was shown."""
        stream = LineStream(self.on_text)
        done = self.generator.complete([ids], _at_least_one_token(self.cfg),
                                       seeds=[_offset(self.seed, self.request.turns + i)],
                                       on_text=stream, reuse=self.reuse, plain=self._plain(speaker, 1))[0]
        self.output_tokens += len(done.tokens)
        return done, spoken_line(done.text, self.names), stream.started

    def _empty_line(self, i: int, speaker: Character, shown: bool) -> str:
        """EMPTY_LINE for a turn the model left empty twice, with a warning; streamed unless the
        preview already showed text of the turn."""
        self.warnings.append(f"turn {i + 1} ({speaker.name}): the model wrote nothing, twice; "
                             f"the line is {EMPTY_LINE!r}")
        log.warning(self.warnings[-1])
        if self.on_text and not shown:
            self.on_text(EMPTY_LINE)
        return EMPTY_LINE


def _at_least_one_token(cfg: GenerationConfig) -> GenerationConfig:
    """cfg with min_new_tokens at least 1: no line ends before its first word (on a line break or end-of-text)."""
    return replace(cfg, min_new_tokens=max(1, cfg.min_new_tokens))


# "(smiles)", "*sighs*", "[laughs]": acted, not spoken. Round five's blind readers named them among
# dialogue's defects: the real model put one in 14 of 30 dialogues, at the start, the end or mid-line,
# and opened 15 of 20 chat answers in one session with one.
_STAGE_DIRECTION = re.compile(r"\s*(?:\([^()]*\)|(?<!\w)\*[^\W\d][^*]*\*|\[[^\[\]]*\])")
_UNCLOSED_DIRECTION = re.compile(r"\s*(?:[(\[][^()\[\]]*|(?<!\w)\*[^\W\d][^*]*)$")  # cut off by the token budget
_SPACE_BEFORE_STOP = re.compile(r"\s+(?=[,.!?;:…])")


def without_stage_directions(line: str) -> str:
    """The line with its stage directions removed wherever they are:
    "(chuckles) Yes, (pauses) tonight." -> "Yes, tonight."."""
    bare = _UNCLOSED_DIRECTION.sub("", _STAGE_DIRECTION.sub("", line))
    bare = _SPACE_BEFORE_STOP.sub("", bare)
    return " ".join(bare.split()).lstrip(",;:—– ")


# A line written as a story writes speech, with a speech tag or narration after it: '"I don't even
# understand why they're so sad," she said.', 'That star still glows under the water." She looked at
# the Abbey's books.' A spoken line is only what the character says; round sixteen's blind reader
# marked the stray quotes and "she said" (4 of 400 lines).
_QUOTE_MARKS = "\"“”"
_TAGGED_SPEECH = re.compile(r"^[\"“](?P<said>[^\"“”]+)[\"”]\s*,?\s*(?:[A-Z][\w'’-]*|she|he|they)\b[^\"“”]*$")


def without_narration(line: str) -> str:
    """The words spoken in a line written as prose: inside the quotes before a speech tag, or before
    a closing quote mark that has no pair (what follows it is narration, or nothing); an opening
    mark without a pair is dropped."""
    tagged = _TAGGED_SPEECH.match(line)
    if tagged:
        said = tagged.group("said").strip().rstrip(",").rstrip()
        return said if said[-1:] in ".!?…" else said + "."
    marks = [at for at, ch in enumerate(line) if ch in _QUOTE_MARKS]
    if len(marks) % 2 == 0:
        return line
    at = marks[-1]
    if at == 0 or line[at - 1].isspace():  # an opening quote whose speech runs to the end: keep the words
        return " ".join((line[:at] + line[at + 1:]).split())
    return line[:at].rstrip()  # a closing quote: what follows is narration


def spoken_line(text: str, names: Sequence[str]) -> str:
    """The model's text as one spoken line: cleaned, without stage directions or narration, and at
    most LINE_SENTENCES sentences (a small model runs on past a line's end and is cut off
    mid-sentence by the token budget)."""
    line = without_narration(without_stage_directions(clean_dialogue_line(text, names)))
    return first_sentences(line, LINE_SENTENCES)


def _choose_line(world: World, request: DialogueRequest, options: list, names: list[str],
                 lines: list[tuple[str, str]], speaker: Character, cfg: GenerationConfig, moderation=None):
    """The critic's pick among one line's candidates (and its verdicts; none for one candidate).

    Copying is measured against the speaker's sample lines and the transcript so far, so a line
    that repeats the world's example or an earlier line loses to one in the speaker's own words.
    """
    if len(options) == 1:
        return 0, []
    source = "\n".join([*speaker.sample_lines, *(line for _, line in lines)])
    resolved = resolve_request(world, request)
    context = critic_context(world, resolved, source, cfg, names_required=False, moderation=moderation)
    listeners = [c for c in resolved.characters if c.id != speaker.id]
    others = tuple(form for c in listeners for form in spoken_names(world, c))
    context = replace(context, kin_side=kin_side(speaker, resolved.characters),
                      speaker_forms=spoken_names(world, speaker), others_forms=others, speaker_id=speaker.id,
                      listener_id=listeners[0].id if len(listeners) == 1 else "")
    verdicts = judge_lines(context, [spoken_line(o.text, names) for o in options], options)
    return best_index(verdicts), verdicts


def judge_lines(context: CriticContext, lines: Sequence[str], options: Sequence) -> list[Verdict]:
    """The critic's verdict on each candidate's spoken line (options: the Completions they came from)."""
    verdicts = []
    for line, option in zip(lines, options):
        verdict = judge(line, context, logprob=option.logprob, tokens=len(option.tokens))
        if not line:
            verdict.score -= 10.0  # an empty line is never the pick while another exists
        verdicts.append(verdict)
    return verdicts


class LineStream:
    """Forwards one line's pieces: leading spaces dropped, nothing after its first newline.

    row: forward only this row's pieces (a preview of one candidate); None forwards every row.
    """

    def __init__(self, on_text: Callable[[str], None] | None, row: int | None = None):
        self.on_text = on_text
        self.row = row
        self.started = False
        self.ended = False

    def __call__(self, row: int, piece: str) -> None:
        if self.on_text is None or self.ended or (self.row is not None and row != self.row):
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
    """The seed `i` places after `seed`, wrapping within [0, MAX_SEED)."""
    return (seed + i) % MAX_SEED


__all__ = [
    "DialogueResult",
    "EMPTY_LINE",
    "LineStream",
    "choose_speaker",
    "goal_wishes",
    "clean_dialogue_line",
    "continue_dialogue",
    "dialogue_preamble",
    "dialogue_prompt",
    "dialogue_stops",
    "estimate_tokens",
    "generate_dialogue",
    "judge_lines",
    "prefix_tokens",
    "score_speakers",
    "speaker_order",
    "spoken_line",
    "without_stage_directions",
    "transcript_budget",
]
