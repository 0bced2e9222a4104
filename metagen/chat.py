"""NPC chat: a player talks with one character of a world, turn by turn (`metagen chat`).

metagen writes both speakers' "Name:"; the model writes only the character's line and stops at
a newline or the player's "Name:" (metagen.dialogue's helpers). Each turn's prompt is made of
metagen's own pieces (prompts.writer_messages): the character's card and the place, pinned; what
the player said about themselves, pinned; lore chosen by keyword from the recent turns; and the
recent turns within a token budget. Older turns leave the prompt but stay in the session. One
PrefixReuse carries the KV cache from turn to turn, so a turn prefills only what is new.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from metagen.config import MAX_SEED, GenerationConfig, candidate_seed
from metagen.critic import COPY_RUN, CriticContext, critic_context, longest_shared_run
from metagen.grounding import STOPLIST, world_vocabulary
from metagen.dialogue import EMPTY_LINE, LineStream, dialogue_stops, judge_lines, spoken_line, spoken_names
from metagen.errors import ModerationRefused, RequestError
from metagen.moderation import check_mode, exceeding, policy_for, verdict
from metagen.prompts import (
    MAX_SAMPLE_LINES,
    TEMPLATE_MARGIN,
    Resolved,
    lore_block,
    lore_line,
    spoken_rules,
    writer_messages,
)
from metagen.search import PrefixReuse
from metagen.session import Answer, Turn
from metagen.text import fold, format_dialogue, mentions, speaker_prefix, words_of
from metagen.world import Character, Location, LoreEntry, World

DEFAULT_PLAYER = "Visitor"  # the player's "Name:" when --player is not given
# Recent turns in a prompt, at most. Past it the oldest turns leave, down to half of it at once,
# so that the cached prefix serves the next several turns instead of none.
HISTORY_TOKENS = 480
LORE_TOKENS = 160  # lore in a chat prompt, at most
MIN_HISTORY = 32  # the conversation needs at least this much room, or the chat cannot start
MAX_FACTS = 6  # facts about the player kept pinned: their name, where they come from, what they are
MAX_ROUNDS = 3  # rounds of candidates before an answer that repeats or copies is kept anyway
# A sentence of this many words said again counts as repeating it ("I don't know" may recur; "the
# trees are listening" may not).
REPEAT_WORDS = 4
MAX_PLAYER_NAME = 40  # characters
RETRY_STEP = 0xD1B54A32D192ED03  # seeds of attempt a (a /retry) are apart from those of attempt a - 1
_OVER_RATING = "is over the world's rating"


class ChatInputError(RequestError):
    """A player's line or command the session cannot take; the session itself goes on."""


# ----------------------------------------------------------------------------- what the player says


_NAME = r"([A-Z][\w'’-]+(?:[ \t]+[A-Z][\w'’-]+){0,2})"  # one to three capitalised words
_PHRASE = r"([^.,;:!?\n]{1,80})"
FACT_PATTERNS: tuple[tuple[str, re.Pattern], ...] = (
    ("name", re.compile(r"\b(?i:my name is|my name's|call me|i am called|i'm called|they call me)\s+" + _NAME)),
    ("name", re.compile(r"\b(?i:i am|i'm)\s+" + _NAME)),
    ("origin", re.compile(r"\b(?i:i (?:come|came|am|'m) from)\s+" + _PHRASE)),
    ("self", re.compile(r"\b(?i:i am|i'm)\s+((?i:an?)\s+" + _PHRASE[1:])),
)
_CLAUSE_END = re.compile(r"\s+(?:and|but|so|because|to|where|who|which|though|yet|or|looking|searching)\b",
                         re.IGNORECASE)
_FACT_WORDS = {"name": "their name is", "origin": "they come from", "self": "they are"}


@dataclass(frozen=True)
class Fact:
    """Something the player said about themselves, pinned in every later prompt."""

    kind: str  # name | origin | self
    value: str  # in the player's words: "Aldo", "the salt marshes", "a glassblower"
    turn: int  # the turn (from 1) where the player said it

    def sentence(self) -> str:
        return f"{_FACT_WORDS[self.kind]} {self.value}"


def player_facts(lines: Sequence[str]) -> list[Fact]:
    """The facts the player's lines state about themselves, in the order said: the newest name and
    origin, and the newest of what they say they are, MAX_FACTS in all."""
    found: list[Fact] = []
    for turn, line in enumerate(lines, 1):
        said = sorted((m.start(), kind, m.group(1)) for kind, pattern in FACT_PATTERNS for m in pattern.finditer(line))
        for _, kind, value in said:  # in the order the line says them
            value = " ".join(_CLAUSE_END.split(value, 1)[0].strip(" \t'\"“”").split()[:6])
            if not value or (kind == "name" and fold(value.split()[0]) in STOPLIST):
                continue
            found = [f for f in found if f.kind != kind or (kind == "self" and fold(f.value) != fold(value))]
            found.append(Fact(kind, value, turn))
    selves = [f for f in found if f.kind == "self"][-(MAX_FACTS - 2):]
    return [f for f in found if f.kind != "self" or f in selves]


def repeats(line: str, earlier: str) -> bool:
    """Whether `line` says `earlier` again word for word: all of it, one of its sentences of
    REPEAT_WORDS or more words, or COPY_RUN words in a row; or the whole line is a part of it of
    REPEAT_WORDS or more words. Case, accents and punctuation do not count."""
    words, source = words_of(line), words_of(earlier)
    if not words or not source:
        return False
    joined, whole = f" {' '.join(words)} ", f" {' '.join(source)} "
    if words == source or (len(words) >= REPEAT_WORDS and joined in whole):
        return True
    for sentence in re.split(r"(?<=[.!?…])\s+", earlier):
        part = words_of(sentence)
        if len(part) >= REPEAT_WORDS and f" {' '.join(part)} " in joined:
            return True
    return longest_shared_run(words, source) >= COPY_RUN


# ----------------------------------------------------------------------------- prompts and context


@dataclass(frozen=True)
class ChatPrompt:
    """One turn's exact prompt and what went into it."""

    ids: list[int]
    messages: list[dict[str, str]]
    suffix: str  # the transcript after the chat template, ending in the character's "Name:"
    start: int  # the first turn shown
    lore: tuple[tuple[str, str], ...]  # (lore id, why), in prompt order
    lore_left_out: tuple[str, ...]  # matched lore that did not fit LORE_TOKENS
    facts: tuple[Fact, ...]


@dataclass(frozen=True)
class ChatContext:
    """What `/context` shows: the next turn's prompt (up to the player's "Name:"), and what went into it."""

    text: str  # the prompt as the model reads it, chat template applied
    tokens: int
    lore: tuple[tuple[str, str], ...]  # (lore id, why)
    lore_left_out: tuple[str, ...]
    facts: tuple[Fact, ...]
    dropped: tuple[int, ...]  # turns (from 1) no longer in the prompt; the session keeps them
    reused: int  # tokens of this prompt the kept KV cache already holds
    last: dict  # the last answer's prompt_tokens, reused and prefilled ({} before the first)

    def to_dict(self) -> dict:
        return {"prompt": self.text, "prompt_tokens": self.tokens,
                "lore": [{"id": i, "why": why} for i, why in self.lore], "lore_left_out": list(self.lore_left_out),
                "facts": [f.sentence() for f in self.facts], "dropped_turns": list(self.dropped),
                "reused_tokens": self.reused, "last_turn": dict(self.last)}


# ----------------------------------------------------------------------------- the session


def answer_seed(seed: int, turn: int, attempt: int) -> int:
    """The seed of the attempt-th answer (0: the first, then each /retry) to the turn-th line (from 0)."""
    return (seed + turn + attempt * RETRY_STEP) % MAX_SEED


def check_player(name: str, character: Character) -> str:
    """The player's name, checked: one short line, no colon, not the character's own name."""
    clean = " ".join(str(name).split())
    if not clean or len(clean) > MAX_PLAYER_NAME or ":" in clean or not clean.isprintable():
        name = str(name)  # quoted up to the limit: a 500-character name had been echoed whole
        shown = repr(name) if len(name) <= MAX_PLAYER_NAME else \
            f"{name[:MAX_PLAYER_NAME]!r}... ({len(name)} characters)"
        raise RequestError(f"--player {shown} must be a name of 1 to {MAX_PLAYER_NAME} printable characters "
                           "without a colon")
    if fold(clean) in {fold(n) for n in (character.name, *character.aliases)}:
        raise RequestError(f"--player {clean!r} is the name of the character you talk to",
                           hint="give the player another name")
    return clean


class ChatSession:
    """A conversation between a player and one character: its turns, its prompts and its answers.

    Args:
        cfg: the decoding settings (pipeline.effective_config for a dialogue); cfg.candidates
            versions of each answer are written and the critic keeps one.
        seed: answer a to line i samples from answer_seed(seed, i, a): the same seed and lines
            give the same answers.
        turns: the turns of a session read back (read_session), to continue it.
        moderation: off | report (answers over the world's rating lose to others, and each records
            its verdict) | enforce (the same, and an answer still over it is not kept:
            ModerationRefused). See docs/moderation.md.
    """

    def __init__(self, generator, world: World, character: Character, cfg: GenerationConfig, *,
                 player: str = DEFAULT_PLAYER, location: Location | None = None, seed: int = 0,
                 turns: Sequence[Turn] = (), moderation: str = "report"):
        if not 0 <= seed < MAX_SEED:
            raise RequestError(f"--seed must be in [0, 2**63), got {seed}")
        self.moderation = check_mode(moderation)
        self.policy = policy_for(world) if moderation != "off" else None
        self.generator, self.world, self.character, self.location = generator, world, character, location
        self.player = check_player(player, character)
        self.cfg, self.seed = cfg, seed
        self.turns: list[Turn] = list(turns)
        self.resolved = Resolved(None, (character,), location)  # a chat is no request kind; the critic reads the cast
        self.names = [character.name, *character.aliases, self.player]
        self.line_cfg = replace(cfg, stop=tuple(dict.fromkeys((*dialogue_stops([self.player]), *cfg.stop))))
        self.reuse = PrefixReuse()  # the KV cache of the last run, for the next turn's shared prefix
        self.samples = MAX_SAMPLE_LINES
        self.check_fits()

    # a. the prompt ------------------------------------------------------------------------------

    def check_fits(self) -> None:
        """RequestError unless the card, the place, lore and an answer leave room for a conversation."""
        room = self._room([])
        while room < MIN_HISTORY and self.samples > 0 and self.character.sample_lines:
            self.samples -= 1  # sample lines go before the chat gives up
            room = self._room([])
        if room < MIN_HISTORY:
            raise RequestError(
                f"{self.character.name}'s card{' and the place' if self.location else ''} need most of the model's "
                f"{self.generator.context_length}-token context: {max(room, 0)} tokens are left for the conversation "
                f"after {self.cfg.max_new_tokens} for an answer and {LORE_TOKENS} for lore",
                hint="lower --max-tokens, or use a model with a longer context")

    def _room(self, facts: Sequence[Fact]) -> int:
        """Tokens the transcript may take: the window less the prompt without lore, lore's share and the answer."""
        bare = len(self.generator.tokenizer.encode_chat(self._messages([], facts)))
        return self.generator.context_length - bare - LORE_TOKENS - self.cfg.max_new_tokens - TEMPLATE_MARGIN

    def _messages(self, lore: Sequence[LoreEntry], facts: Sequence[Fact]) -> list[dict[str, str]]:
        c, where = self.character, f" in {self.location.name}" if self.location else ""
        task = (f"Write {c.name}'s side of a conversation with {self.player}{where}. One line per turn, each "
                f"written as 'Name: line'. {c.name} answers {self.player} and never speaks for them. "
                + spoken_rules(self.world))
        # What changes from turn to turn comes last, so that the cached prefix covers the rest.
        notes = [lore_block(lore) if lore else "",
                 f"What {self.player} has told {c.name} about themselves: "
                 + "; ".join(f.sentence() for f in facts) + "." if facts else ""]
        return writer_messages(self.world, self.resolved, [], self.samples, task, notes=notes)

    def facts(self) -> list[Fact]:
        """The facts about the player pinned in the next prompt."""
        return player_facts([t.player for t in self.turns])

    def prompt(self, line: str | None) -> ChatPrompt:
        """The exact prompt of the turn that answers `line` (None: up to the player's "Name:")."""
        facts = player_facts([t.player for t in self.turns] + ([line] if line else []))
        pending = speaker_prefix(self.player) + (f" {line}\n{speaker_prefix(self.character.name)}" if line else "")
        start = self._window(pending, self._room(facts))
        shown = self.turns[start:]
        lore, left = self._lore(start, line)
        messages = self._messages([entry for entry, _ in lore], facts)
        done = format_dialogue((n, text) for t in shown for n, text in ((self.player, t.player),
                                                                          (self.character.name, t.answer)))
        suffix = (done + "\n" if done else "") + pending
        ids = self.generator.tokenizer.encode_chat(messages, suffix=suffix)
        return ChatPrompt(ids, messages, suffix, start, tuple((e.id, why) for e, why in lore), tuple(left),
                          tuple(facts))

    def _window(self, pending: str, room: int) -> int:
        """The first turn the prompt shows: the last turn's, unless the turns then pass the budget;
        then the oldest leave until they take half of it. ChatInputError if `pending` alone cannot fit."""
        count = self.generator.count_tokens
        budget = min(HISTORY_TOKENS, room)
        if count(pending) > room:
            raise ChatInputError(f"the line is too long: about {count(pending)} tokens, and {max(room, 0)} fit "
                                 f"the model's {self.generator.context_length}-token context with the rest of the "
                                 "prompt", hint="say it in a shorter line")

        def cost(start: int) -> int:
            lines = [(n, text) for t in self.turns[start:] for n, text in ((self.player, t.player),
                                                                            (self.character.name, t.answer))]
            return count(format_dialogue(lines) + "\n" + pending)

        start = self.turns[-1].start if self.turns else 0
        if cost(start) <= budget:
            return start
        while start < len(self.turns) and cost(start) > budget // 2:
            start += 1
        return start

    def _lore(self, start: int, line: str | None) -> tuple[list[tuple[LoreEntry, str]], list[str]]:
        """Lore for the prompt, with why: always-include entries, then those the recent turns name (why
        names the newest line that does), then those the character's card or the place name; by
        priority within each, within LORE_TOKENS."""
        c, loc = self.character, self.location
        sources = [(f"{self.player}'s new line", line)] if line else []
        for number, turn in reversed(list(enumerate(self.turns[start:], start + 1))):
            sources += [(f"{c.name}'s line in turn {number}", turn.answer),
                        (f"{self.player}'s line in turn {number}", turn.player)]
        turn_sources = len(sources)
        sources.append((f"{c.name}'s card", " ".join([c.name, *c.aliases, c.role or "", c.description or "",
                                                        *c.traits, *c.goals])))
        if loc is not None:
            sources.append(("the place", " ".join([loc.name, loc.description or "", *loc.sights, *loc.sounds,
                                                   *loc.smells, *loc.tags])))
        matched = []
        for entry in self.world.lore:
            if entry.always_include:
                matched.append((0, entry, "always included"))
                continue
            for i, (label, text) in enumerate(sources):
                key = next((k for k in entry.keys if mentions(text, k)), None)
                if key is not None:
                    matched.append((1 if i < turn_sources else 2, entry, f"'{key}' in {label}"))
                    break
        matched.sort(key=lambda m: (m[0], -m[1].priority))  # stable: file order breaks ties
        used, left, spent = [], [], 0
        for _, entry, why in matched:
            cost = self.generator.count_tokens(lore_line(entry))
            if spent + cost <= LORE_TOKENS:
                used.append((entry, why))
                spent += cost
            else:
                left.append(entry.id)
        return used, left

    # b. the answer ------------------------------------------------------------------------------

    def check_line(self, line: str) -> str:
        """The player's line made one clean line; ChatInputError if it is empty, not text, or cannot fit."""
        if re.search(r"[\ud800-\udfff]", line):
            raise ChatInputError("the line is not UTF-8 text", hint="check the terminal's encoding")
        clean = " ".join(re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", line).split())
        if not clean:
            raise ChatInputError("the line is empty")
        least = self.generator.tokenizer.least_tokens(clean)
        if least > self.generator.context_length:
            raise ChatInputError(f"the line is too long: at least {least:,} tokens, more than the model's whole "
                                 f"{self.generator.context_length:,}-token context", hint="say it in a shorter line")
        return clean

    def warm(self) -> int:
        """Prefill the next prompt up to the player's "Name:" into the kept KV cache, so that the next
        answer runs only what the player's line adds (call it while the player types); the tokens run."""
        ids = self.prompt(None).ids
        shared = self.reuse.shared_with(ids)
        one = replace(self.line_cfg, max_new_tokens=1, min_new_tokens=0, candidates=1)
        self.generator.complete([ids], one, seeds=[self.seed], reuse=self.reuse)
        return len(ids) - shared

    def say(self, line: str, on_text: Callable[[str], None] | None = None) -> Turn:
        """The character's answer to a new line of the player's, as a new turn.

        on_text gets the first candidate's text as it is written (a preview: the critic may keep
        another). Nothing changes if this raises or is interrupted.
        """
        line = self.check_line(line)
        prompt = self.prompt(line)
        turn = Turn(line, prompt.start, [self._answer(prompt, line, len(self.turns), [], on_text)])
        self.turns.append(turn)
        return turn

    def retry(self, on_text: Callable[[str], None] | None = None) -> Turn:
        """Another answer to the last line; the earlier ones stay as its alternatives."""
        if not self.turns:
            raise ChatInputError("there is no line to answer again yet")
        last = self.turns.pop()
        try:
            prompt = self.prompt(last.player)
            answer = self._answer(prompt, last.player, len(self.turns), [a.text for a in last.answers], on_text)
        finally:
            self.turns.append(last)
        last.answers.append(answer)
        return last

    def undo(self) -> Turn:
        """Take back the last line and its answers."""
        if not self.turns:
            raise ChatInputError("there is nothing to undo")
        return self.turns.pop()

    def _answer(self, prompt: ChatPrompt, line: str, index: int, alternatives: list[str],
                on_text: Callable[[str], None] | None) -> Answer:
        """Rounds of candidates until one is neither empty, nor the player's line, nor a copy or a repeat;
        the critic's pick among those. The answer is attempt len(alternatives) at the index-th line."""
        started = time.perf_counter()
        n, seed = self.cfg.candidates, answer_seed(self.seed, index, len(alternatives))
        reused = self.reuse.shared_with(prompt.ids)
        context = self.critic_context(prompt)
        refused = [*((s, "copies a sample line") for s in self.character.sample_lines),
                   *((t.answer, "repeats an earlier line") for t in self.turns),
                   *((a, "repeats an earlier answer to this line") for a in alternatives),
                   (line, "echoes the player's line")]
        best, generated, rejected = None, 0, 0
        for r in range(MAX_ROUNDS):
            cfg = self.line_cfg if r == 0 else replace(self.line_cfg, min_new_tokens=max(1, self.cfg.min_new_tokens))
            seeds = [candidate_seed(seed, r * n + k) for k in range(n)]
            stream = LineStream(on_text, row=0) if on_text and r == 0 else None
            options = self.generator.complete([prompt.ids] * n, cfg, seeds=seeds, on_text=stream, reuse=self.reuse)
            generated += sum(len(o.tokens) for o in options)
            lines = [self._spoken(o.text) for o in options]
            verdicts = judge_lines(context, lines, options)
            faults = [self._fault(text, refused) for text in lines]
            rejected += sum(bool(f) for f in faults)
            for k in range(n):  # no fault first, then the critic's score; the earlier on a tie
                if best is None or (not faults[k], verdicts[k].score) > (not best[0], best[1]):
                    best = (faults[k], verdicts[k].score, lines[k], options[k])
            if not best[0] or (best[2] and self.cfg.effective_strategy != "sample"):
                break  # found one; or greedy, where another round says the same again
        fault, _, kept, option = best
        if fault == _OVER_RATING and self.moderation == "enforce":
            first = next(h for h in verdict(kept, self.policy, "enforce")["hits"] if h["exceeds"])
            raise ModerationRefused(f"every answer to this line {fault} ('{first['words']}': {first['category']})",
                                    hint="nothing was kept; /retry, or say something else")
        warning = "" if not fault else (f"every candidate {fault}; kept the critic's pick" if kept else
                                        f"every candidate {fault}; the answer is {EMPTY_LINE!r}")
        judged = verdict(kept, self.policy, self.moderation) if self.policy is not None and kept else {}
        return Answer(text=kept or EMPTY_LINE, seed=seed, tokens=len(option.tokens), generated_tokens=generated,
                      seconds=round(time.perf_counter() - started, 3), prompt_tokens=len(prompt.ids), reused=reused,
                      rounds=r + 1, rejected=rejected, lore=[i for i, _ in prompt.lore], warning=warning,
                      moderation=judged)

    def _spoken(self, text: str) -> str:
        """The model's text as the character's line (dialogue.spoken_line: no stage directions);
        "" when it began the player's line instead."""
        if text.lstrip().startswith(speaker_prefix(self.player)):
            return ""
        return spoken_line(text, self.names)

    def _fault(self, line: str, refused: Sequence[tuple[str, str]]) -> str:
        if not line:
            return "is empty or spoken as the player"
        if self.policy is not None and exceeding(line, self.policy):
            return _OVER_RATING
        return next((why for text, why in refused if repeats(line, text)), "")

    def critic_context(self, prompt: ChatPrompt) -> CriticContext:
        """The critic's context for a turn: copying is measured against the sample lines and the
        turns shown, and the player's own words are not names the model invented."""
        shown = self.turns[prompt.start:]
        source = "\n".join([*self.character.sample_lines, *(x for t in shown for x in (t.player, t.answer))])
        context = critic_context(self.world, self.resolved, source, self.cfg, names_required=False,
                                 moderation=self.policy)
        return replace(context, vocabulary=self.vocabulary(), speaker_forms=spoken_names(self.world, self.character),
                       speaker_id=self.character.id)

    def vocabulary(self) -> frozenset[str]:
        """Every word of the world and of the player's name and lines, folded (for unknown_names)."""
        said = " ".join([self.player, *(t.player for t in self.turns)])
        words = words_of(said)
        return world_vocabulary(self.world) | frozenset(words) | frozenset(re.sub(r"'s$", "", w) for w in words)

    # c. what is shown ---------------------------------------------------------------------------

    def context(self) -> ChatContext:
        """The next turn's prompt up to the player's "Name:", its lore and why, facts, dropped turns, cache use."""
        prompt = self.prompt(None)
        text = self.generator.tokenizer.render_chat(prompt.messages) + prompt.suffix
        last = self.turns[-1].answers[-1] if self.turns else None
        return ChatContext(text=text, tokens=len(prompt.ids), lore=prompt.lore, lore_left_out=prompt.lore_left_out,
                           facts=prompt.facts, dropped=tuple(range(1, prompt.start + 1)),
                           reused=self.reuse.shared_with(prompt.ids),
                           last={"prompt_tokens": last.prompt_tokens, "reused": last.reused,
                                 "prefilled": last.prefilled} if last else {})


__all__ = ["ChatContext", "ChatInputError", "ChatPrompt", "ChatSession", "DEFAULT_PLAYER", "FACT_PATTERNS", "Fact",
           "HISTORY_TOKENS", "LORE_TOKENS", "answer_seed", "check_player", "player_facts", "repeats"]
