"""Stories in beats: a short plan made from the world's own data, each beat a short paragraph.

A 135M model cannot hold a long prompt and a 400-word arc at once; it can write a good short
paragraph about a few things it was just told. So a story is planned first (an opening with
the place, the cast and one concrete detail; a turn where a goal meets a secret, a tie or a
lore fact; an ending), then written beat by beat in one chat: each beat is a user turn that
holds only what it needs, the story so far is the assistant's earlier turns, and the KV cache
carries over so each beat prefills only its new tokens. The choices follow the seed. The
beats name the cast and place, so a planned story has no opening written by metagen (the
request's `opening` applies to scenes).
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from metagen.errors import RequestError
from metagen.config import CLI_NAMES, MAX_SEED, GenerationConfig, candidate_seed, setting_words
from metagen.critic import NARRATION_WEIGHTS, CriticContext, best_index, critic_context, judge, requested_forms
from metagen.editor import strike
from metagen.grounding import (POSSESSIVE, STOPLIST, absent_things, character_forms, names_any, pronoun_slips,
                               writing_guard)
from metagen.phrasing import POV_PHRASES, after_to, cast_phrase, clause, lower_first, prose_name, short_prose_name
from metagen.opening import lower_article, sense_starts
from metagen.prompts import (
    Prompt,
    named_with_pronouns,
    PromptBudget,
    Resolved,
    StoryRequest,
    resolve_request,
    select_lore,
    tie_sentence,
)
from metagen.request import asked_words
from metagen.search import PlainPrompts, PrefixReuse
from metagen.text import balanced_quotes, first_sentences, mentions, ngrams, words_of
from metagen.world import Character, World

BEATS_BY_LENGTH = {"short": 3, "medium": 4, "long": 5}
# A beat is asked for 3 or 4 sentences. What cuts it after 4 is the max_sentences setting (4 by default for a story:
# pipeline.KIND_DEFAULTS), not this number.
BEAT_SENTENCES = 4
_LIST_MARKER = re.compile(r"^(?:[-*•]|\d+[.)])\s+")  # "- " or "1. " a small model starts a paragraph with
BEAT_TOKENS = 120  # the most tokens a beat may take, whatever the story's budget
EXTRA_ROUNDS = 1  # more rounds of candidates a beat may draw when its best scores low or invents a name
NAMING_ROUNDS = 2  # ... the opening and the ending may draw, also while the best leaves a requested name out
STORY_EXTRA_ROUNDS = 2  # more rounds a whole story may draw (its time: at most beats + 2 rounds), one kept for
# the ending, the last chance to name the cast and place
# The best candidate's score less its fluency term (the log-probability's, which is never positive):
# below this, e.g. every candidate is garbled or says a banned word, another round is drawn.
ROUND_AGAIN_BELOW = -2.5


@dataclass(frozen=True)
class Beat:
    """One step of a story: its id and the instruction the model writes its paragraph to (the
    world's facts it needs are written into the instruction)."""

    id: str  # opening | turn | complication | ending
    instruction: str  # the user turn the model answers with this beat's paragraph

    def to_dict(self) -> dict:
        return {"beat": self.id, "instruction": self.instruction}


@dataclass
class StoryResult:
    """A finished story: its text, the beats as written and what the critic said of each."""

    text: str
    plan: list[dict]  # {"beat", "instruction", "text"} per beat
    critic: dict  # {"beats": [{"beat", "chosen", "candidates"}...]} when there were candidates
    prompt: Prompt  # the chat before the first beat, and the lore the plan drew on
    prompt_tokens: int  # tokens of the first beat's prompt (later ones add the story so far)
    output_tokens: int  # tokens of the kept beats
    finish_reason: str
    seconds: float


# A story that names no one is still about the world's own people, somewhere in it: asked for "a story
# about the traveller", with no place, the model wrote gothic filler with no name, place or thing of the
# world ("The old mansion stood alone, its turrets reaching towards the sky", round forty-one).
DRAWN_CAST = 2  # the characters drawn for a story that names none


def with_cast(world: World, request: StoryRequest, seed: int) -> StoryRequest:
    """The request with what `seed` draws where it names nothing: a cast of DRAWN_CAST of the world's
    characters (the lead, then one the lead has a tie to, when there is one) and one of its places;
    recorded so replay is exact, as a dialogue's drawn topic is. A user's own plan (--plan) is left as
    given: its beats say who and where."""
    if request.beats or (request.characters and request.location):
        return request
    rng = random.Random(f"cast {seed}")  # its own stream: the plan's choices by `seed` stay as they were
    changes: dict = {}
    if not request.characters and world.characters:
        lead = rng.choice(world.characters)
        others = [c for c in world.characters if c.id != lead.id]
        pool = [c for c in others if any(tie.other == c.id for tie in lead.relationships)] or others
        changes["characters"] = (lead.id, *(c.id for c in rng.sample(pool, min(DRAWN_CAST - 1, len(pool)))))
    if request.location is None and world.locations:
        changes["location"] = rng.choice(world.locations).id
    return replace(request, **changes)


def make_plan(world: World, resolved: Resolved, seed: int) -> list[Beat]:
    """The beats of a story, chosen from the world's data by `seed` (the same seed, the same plan),
    or the user's own beats when the request carries them (--plan FILE)."""
    request: StoryRequest = resolved.request
    if request.beats:
        return _user_plan(request.beats)
    rng = random.Random(seed)
    cast = list(resolved.characters)
    scripts = writing_guard(world)["scripts"]
    names = [prose_name(c, scripts) for c in cast] or ["the traveller"]
    short = {c.id: short_prose_name(c, scripts) for c in cast}  # after the first mention
    lead = cast[0] if cast else None

    place = resolved.location
    details = [*place.sights, *place.sounds, *place.smells] if place else []
    rng.shuffle(details)
    where = f" at {lower_article(place.name)}" if place else ""
    count = BEATS_BY_LENGTH.get(request.length, 4)
    # Full names once, in the opening; after that the short form, which a small model otherwise
    # repeats at the head of every paragraph.
    if place:
        opening = f"Write the opening paragraph. {cast_phrase(names)} {'is' if len(names) == 1 else 'are'}{where}."
    else:
        opening = f"Write the opening paragraph of a story about {cast_phrase(names)}."
    if details:
        opening += f" Show {clause(details[0])}."
    if lead and lead.goals:
        goal = clause(rng.choice(lead.goals))
        opening += f" {short[lead.id]} wants to {after_to(goal)}."

    turns = _possible_turns(world, request, cast, names, short, place, rng)
    middle = turns[:count - 2] if request.premise else rng.sample(turns, min(len(turns), count - 2))
    # Each of the cast has a part after the opening: a turn about no one in particular (a lore fact) goes
    # to the first of them no turn names, and the ending brings in whoever is still left. Told of both
    # only in the opening, the model left the second of a cast of two out of 6 of 20 stories (round
    # eighteen's eval: Sister Maëlle of 3 of 10 Ashenmere stories, Mira of 3 of 10 Saltgate ones).
    unnamed = [c for c in cast if not any(who and c in who for _, who in middle)]
    written = [turn if who is not None else turn(unnamed.pop(0) if unnamed else None) for turn, who in middle]

    sentences = f" Write {BEAT_SENTENCES - 1} or {BEAT_SENTENCES} sentences."
    beats = [Beat("opening", opening + sentences)]
    for i, turn in enumerate(written):
        beats.append(Beat("turn" if i == 0 else "complication", f"Write the next paragraph. {turn}{sentences}"))
    ending = f"Write the last paragraph and end the story{where}"
    ending += f" with {cast_phrase([short[c.id] for c in unnamed])}." if unnamed and len(cast) > 1 else "."
    if len(details) > 1:
        ending += f" Finish with {clause(details[1])}."
    beats.append(Beat("ending", ending + sentences))
    return beats


# A turn of the plan: its instruction and which of the cast it names; or, for a turn about no one in
# particular, a function that writes it for one of the cast (or for None) and None.
Turn = tuple[str | Callable[[Character | None], str], tuple | None]


def _possible_turns(world: World, request: StoryRequest, cast: list[Character], names: list[str],
                    short: dict[str, str], place, rng: random.Random) -> list[Turn]:
    """What can change the story, in this order: the premise, the second of the cast's secret, then
    the lead's, the lead's tie to the second, a lore fact, the second's goal; a surprise when the
    world gives none of these. `rng` draws which secret, fact and goal. make_plan keeps as many as
    the story's length has middle beats."""
    lead = cast[0] if cast else None
    other = cast[1] if len(cast) > 1 else None
    turns: list[Turn] = []
    if request.premise:
        turns.append((f"This happens: {clause(request.premise)}.", ()))
    for person in (other, lead):
        if person and person.secrets:
            turns.append((f"{short[person.id]} admits that {lower_first(clause(rng.choice(person.secrets)))}.", (person,)))
    if lead and other:
        for tie in lead.relationships:
            if tie.other == other.id:
                # The tie said as the card says it ("Ysolde is Ederyn's queen: ..."): given as "Ederyn
                # and Ysolde (queen)", the beat leaves open who is whose (round forty-eight).
                if tie.kind:
                    bond = f". {tie_sentence(short[lead.id], short[other.id], tie)}"
                elif tie.description:
                    bond = f": {clause(tie.description)}."
                else:
                    bond = "."
                turns.append((f"Show the bond between {short[lead.id]} and {short[other.id]}{bond}", (lead, other)))
    lore = select_lore(world, " ".join([*(c.name for c in cast), *names, place.name if place else "",
                                        request.premise or ""]))
    if lore:
        fact = clause(rng.choice(lore[:3]).text)
        turns.append((lambda c: f"Let this part of the world's history matter{' to ' + short[c.id] if c else ''}: {fact}.",
                      None))
    if other and other.goals:
        turns.append((f"{short[other.id]} wants to {after_to(clause(rng.choice(other.goals)))}, and says so.",
                      (other,)))
    if not turns:
        turns.append((lambda c: f"Something unexpected happens that tests {short[c.id] if c else 'them'}.", None))
    return turns


def beat_starts(world: World, resolved: Resolved, plan: list[Beat], seed: int, candidates: int) -> list[list[str]]:
    """Per beat, the words each of its candidates opens with, written by metagen ("": the model's own).

    Half the candidates (the first ones) are given words, the rest left free, and the critic chooses:
    the opening's open on the place and a verb of a sound or smell it has, in the story's tense ("The
    Container Docks smelled of"), or else on the lead's name; a later beat's on the name of the first
    of the cast its instruction names, or the lead's, with the turn's verb when the turn is that one
    admitting or wanting ("Ysolde admitted that"). A lone candidate (--candidates 1) is left free. The
    seed draws the verb, so replay is exact.
    """
    given = candidates // 2
    cast = list(resolved.characters)
    if not given or not cast and resolved.location is None:
        return [[""] * candidates for _ in plan]
    scripts = writing_guard(world)["scripts"]
    short = {c.id: short_prose_name(c, scripts) for c in cast}
    place = resolved.location
    tense = world.style.tense_for("story")
    senses = sense_starts(place, tense) if place is not None else []
    rng = random.Random(seed)
    starts = []
    for beat in plan:
        if beat.id == "opening" and senses:
            words = rng.choice(senses)
        elif beat.id == "opening":
            words = prose_name(cast[0], scripts) if cast else ""
        else:
            named = sorted((beat.instruction.find(short[c.id]), short[c.id]) for c in cast
                           if short[c.id] in beat.instruction)
            words = named[0][1] if named else (short[cast[0].id] if cast else "")
            words = _with_turn_verb(words, beat.instruction, tense == "past")
        starts.append([words] * given + [""] * (candidates - given))
    return starts


# A turn's verb as the plan says it (the present) and as past-tense narration says it: a beat told
# "Ysolde admits that ..." opens on "Ysolde admitted that". Opened on the name alone, the model carried
# fewer than half of these turns (11 of 24 held-aside stories' turn beats used half the turn's words,
# round thirty-three).
TURN_VERBS = {"admits that": "admitted that", "wants to": "wanted to"}


def _with_turn_verb(name: str, instruction: str, past: bool) -> str:
    """`name`, followed by the turn's verb when the instruction's turn is `name` admitting or wanting."""
    for verb, was in TURN_VERBS.items():
        if name and f". {name} {verb} " in instruction:
            return f"{name} {was if past else verb}"
    return name


def _user_plan(beats: tuple[str, ...]) -> list[Beat]:
    """A user's beats as instructions: the first opens the story, the last ends it."""
    plan = []
    for i, text in enumerate(beats):
        if i == 0:
            beat_id, lead = "opening", "Write the opening paragraph"
        elif i == len(beats) - 1:
            beat_id, lead = "ending", "Write the last paragraph, which ends the story"
        else:
            beat_id, lead = "turn" if i == 1 else "complication", "Write the next paragraph"
        plan.append(Beat(beat_id, f"{lead}. {clause(text)}. Write {BEAT_SENTENCES - 1} or {BEAT_SENTENCES} sentences."))
    return plan


def story_messages(world: World, resolved: Resolved, *, facts: bool = True) -> list[dict[str, str]]:
    """The chat before the first beat: who, where, and how to write; beats follow as user turns.

    Without `facts`, the cast and the place are only their names (no roles, descriptions or ties):
    the story any people so called would get, for context contrast (search.ContextContrast).
    """
    s = world.style
    genre = f", {world.genre}" if world.genre else ""
    system = (f"You write short stories set in {world.name}{genre}. Write in {POV_PHRASES[s.point_of_view or 'third']}, "
              f"{world.style.tense_for('story')} tense, in plain, concrete sentences.")
    if world.tone:
        system += f" Tone: {clause(world.tone)}."
    if s.avoided_words:
        system += f" Never use these words: {', '.join(s.avoided_words)}."
    lines = []
    scripts = writing_guard(world)["scripts"]
    for c in resolved.characters:
        line = "- " + named_with_pronouns(c, prose_name(c, scripts))
        line += f", {clause(c.role)}" if c.role and facts else ""
        if c.description and facts:
            line += f": {clause(c.description)}"
        lines.append(line + ".")
    lines += _ties(resolved.characters, scripts) if facts else []
    if resolved.location:
        loc = resolved.location
        described = loc.description and facts
        lines.append(f"Place: {loc.name}" + (f", {lower_first(clause(loc.description))}" if described else "") + ".")
    lines.append("Use only these people; invent no one else.")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(lines)}]


def _ties(cast: Sequence[Character], scripts: tuple[str, ...]) -> list[str]:
    """One sentence for each tie between two of the cast, the first told of each pair, by the names
    the story uses: "Maëlle is Ysolde's daughter: estranged since ..." (prompts.tie_sentence)."""
    ids = {c.id: c for c in cast}
    told: set[frozenset[str]] = set()
    lines = []
    for c in cast:
        for tie in c.relationships:
            pair = frozenset((c.id, tie.other))
            if tie.other not in ids or tie.other == c.id or pair in told or not (tie.kind or tie.description):
                continue
            told.add(pair)
            lines.append(tie_sentence(short_prose_name(c, scripts), short_prose_name(ids[tie.other], scripts), tie))
    return lines


def with_beat(messages: list[dict[str, str]], instruction: str) -> list[dict[str, str]]:
    """The chat with the next beat's instruction added to the last user turn or as a new one."""
    if messages[-1]["role"] == "user":
        return [*messages[:-1], {"role": "user", "content": messages[-1]["content"] + "\n\n" + instruction}]
    return [*messages, {"role": "user", "content": instruction}]


def write_story(generator, world: World, request: StoryRequest, cfg: GenerationConfig, *, seed: int,
                on_text: Callable[[str], None] | None = None, moderation=None) -> StoryResult:
    """Plan a story by `seed` and write it beat by beat, keeping the critic's pick of each beat's candidates.

    Beat i's k-th candidate samples with candidate_seed(seed + i, k).

    Args:
        on_text: gets each beat's kept paragraph, as soon as it is chosen.
        moderation: the world's moderation Policy: beats over its rating lose (and draw another round).
    """
    started = time.perf_counter()
    resolved = resolve_request(world, with_cast(world, request, seed))
    plan = make_plan(world, resolved, seed)[:cfg.max_new_tokens]  # a budget below one token a beat writes fewer beats
    messages = story_messages(world, resolved)
    beat_cfg = _beat_config(cfg, len(plan))
    _check_beats_fit_context(generator, messages, plan, cfg.max_new_tokens, users_plan=bool(request.beats))
    plain = story_messages(world, resolved, facts=False) if cfg.context_contrast else None
    absent = absent_things(world, asked_words(request)) if cfg.avoid_stock else ()
    writer = _StoryWriter(generator, world, resolved, cfg, beat_cfg, seed, moderation,
                          chat=_StoryChat(generator.tokenizer, messages, plain),
                          starts=beat_starts(world, resolved, plan, seed, cfg.candidates), absent=absent)
    for index, beat in enumerate(plan):
        paragraph = writer.write_beat(index, beat, last=index == len(plan) - 1)
        if on_text:
            on_text(("\n\n" if index else "") + paragraph)
    prompt = plan_prompt(world, resolved, plan, messages, generator.context_length, beat_cfg)
    return writer.result(prompt, seconds=time.perf_counter() - started)


def _unforeseen_slips(text: str, cast: Sequence[Character]) -> list[str]:
    """grounding.pronoun_slips, less those whose pronoun the character's own card writes: Oswin's secret
    "he has not told the bees she died" makes "Oswin admitted that he had not told the bees she died"."""
    slips = []
    for slip in pronoun_slips(text, cast):
        name, pronoun = slip.rsplit(": ", 1)
        owner = next(c for c in cast if name in character_forms(c))
        card = [owner.description or "", *owner.goals, *owner.secrets,
                *(tie.description or "" for tie in owner.relationships)]
        if pronoun not in words_of(" ".join(card)):
            slips.append(slip)
    return slips


def _beat_config(cfg: GenerationConfig, beats: int) -> GenerationConfig:
    """The settings each beat samples with: cfg's max_new_tokens and min_new_tokens are the whole story's,
    shared out among its beats, and a beat takes at most BEAT_TOKENS."""
    beat_tokens = _beat_share(cfg.max_new_tokens, beats)
    return replace(cfg, max_new_tokens=beat_tokens, min_new_tokens=min(beat_tokens, cfg.min_new_tokens // beats))


def _beat_share(max_new_tokens: int, beats: int) -> int:
    """A beat's share of the story's max_new_tokens: at most BEAT_TOKENS."""
    return max(1, min(BEAT_TOKENS, max_new_tokens // beats))


class _StoryChat:
    """The chat a story is written in: story_messages, then for each beat its instruction (a user turn)
    and the paragraph kept (the assistant's turn). With context contrast it keeps a plain twin as well:
    the same turns after story_messages(facts=False), which give the cast and place by name only."""

    def __init__(self, tokenizer, messages: list[dict[str, str]], plain: list[dict[str, str]] | None):
        self.tokenizer = tokenizer
        self.messages = list(messages)
        self.plain = plain  # None: no context contrast

    def ask(self, instruction: str) -> tuple[str, list[int], list[int] | None]:
        """Add a beat's instruction: the prompt as text and as token ids, and the plain twin's ids (or None)."""
        self.messages = with_beat(self.messages, instruction)
        text = self.tokenizer.render_chat(self.messages)
        ids = self.tokenizer.encode_chat(self.messages)  # world text can never spell the template's control tokens
        if self.plain is None:
            return text, ids, None
        self.plain = with_beat(self.plain, instruction)
        return text, ids, self.tokenizer.encode_chat(self.plain)

    def answer(self, paragraph: str) -> None:
        """Add the paragraph kept for the beat just asked, as the assistant's turn."""
        self.messages = [*self.messages, {"role": "assistant", "content": paragraph}]
        if self.plain is not None:
            self.plain = [*self.plain, {"role": "assistant", "content": paragraph}]


class _StoryWriter:
    """Writes a story's beats in turn. It holds what every beat shares (the model, the request, the
    settings) and what grows as they are written: the chat, the paragraphs kept with their records and
    token counts, and the extra rounds of candidates the story has left."""

    def __init__(self, generator, world: World, resolved: Resolved, cfg: GenerationConfig,
                 beat_cfg: GenerationConfig, seed: int, moderation, *, chat: _StoryChat, starts: list[list[str]],
                 absent: Sequence[str] = ()):
        self.generator, self.world, self.resolved, self.moderation = generator, world, resolved, moderation
        self.cfg, self.beat_cfg, self.seed = cfg, beat_cfg, seed
        self.chat = chat
        self.starts = starts  # per beat, the words each of its candidates opens with (beat_starts)
        # The words of things the world never has (grounding.absent_things): a beat whose pick says one is
        # drawn again with them banned, as one that gives the cast the wrong pronoun is with the pronoun guard
        # on. Banned from the start, the words moved the draws of stories that never said one, and readers
        # chose those stories' old text in 16 of 20 readings.
        self.absent = tuple(absent)
        self.requested = requested_forms(resolved)  # the names the ending must say if no beat before it did
        self.reuse = PrefixReuse()  # the KV cache, carried from beat to beat
        self.spare_rounds = STORY_EXTRA_ROUNDS
        self.paragraphs: list[str] = []
        self.plan_records: list[dict] = []  # StoryResult.plan
        self.critic_records: list[dict] = []  # StoryResult.critic's beats
        self.prompt_tokens, self.output_tokens, self.finish_reason = 0, 0, "eos"

    def write_beat(self, index: int, beat: Beat, *, last: bool) -> str:
        """Draw the beat's candidates, keep the critic's pick and add it to the story: the paragraph kept."""
        text, ids, plain_ids = self.chat.ask(beat.instruction)
        beat_cfg = self._fitted(len(ids), index)
        unsaid = [f for f in self.requested if not names_any(" ".join(self.paragraphs), f)] if last else None
        context = _beat_context(self.world, self.resolved, text, self.cfg, beat, self.paragraphs, self.moderation,
                                unsaid=unsaid)
        # the opening introduces the cast and place and the ending is the last chance to: both insist
        insist = last or index == 0
        beat_seed = (self.seed + index) % MAX_SEED

        def draw(cfg: GenerationConfig):
            return _draw_candidates(
                self.generator, ids, cfg, self.cfg.candidates, beat_seed, context, self.reuse,
                extra_rounds=self._rounds_allowed(insist, last), insist_on_names=insist, plain_ids=plain_ids,
                starts=self.starts[index])

        seeds, options, verdicts, cuts = draw(beat_cfg)
        chosen = best_index(verdicts)
        said = self._faults_to_redraw(options[chosen].text)
        if said:  # the same seeds again, guarded: the draws part only where the fault was likely
            again_seeds, again_options, again_verdicts, again_cuts = draw(self._guarded(beat_cfg, said))
            again_chosen = best_index(again_verdicts)
            if len(self._faults_to_redraw(again_options[again_chosen].text)) < len(said):
                seeds, options, verdicts, cuts = again_seeds, again_options, again_verdicts, again_cuts
                chosen = again_chosen
            else:  # the guard missed it ("Ederyn smiled. She ..."): a change for nothing is not made
                said = []
        self.spare_rounds -= len(seeds) // self.cfg.candidates - 1  # the rounds drawn past the first
        paragraph = self._keep(beat, options[chosen])
        if self.cfg.candidates > 1:
            record = _critic_record(beat, chosen, seeds, self.starts[index], verdicts, cuts[chosen])
            self.critic_records.append({**record, "drawn_again_for": said} if said else record)
        return paragraph

    def _faults_to_redraw(self, text: str) -> list[str]:
        """What a beat's pick is drawn again for: the words of absent things it says ("sea's" and "sea-blue"
        too: the ban's tokens block them), and where it gives one of the cast another's pronoun ("Thorne: he")."""
        absent = [word for word in self.absent if mentions(text, word)]
        slips = _unforeseen_slips(text, self.resolved.characters) if self._guards_pronouns_on_redraw else []
        return [*absent, *slips]

    @property
    def _guards_pronouns_on_redraw(self) -> bool:
        return self.beat_cfg.pronoun_guard == "redraw" and bool(self.beat_cfg.kin_guard)

    def _guarded(self, cfg: GenerationConfig, said: Sequence[str]) -> GenerationConfig:
        """`cfg` for drawing a beat again for what its pick `said`: the absent things banned, the pronoun guard on."""
        if any(word in said for word in self.absent):
            cfg = replace(cfg, banned=(*cfg.banned, *self.absent))
        if any(fault not in self.absent for fault in said):
            cfg = replace(cfg, pronoun_guard="on")
        return cfg

    def _fitted(self, prompt_tokens: int, index: int) -> GenerationConfig:
        """The beat's settings, its budget cut to the room the context has left. write_story's first check
        counts each paragraph before at the tokens it was written in; one that reads back as more (odd
        bytes, a random test model) leaves less room, and the beat writes less rather than failing."""
        room = self.generator.context_length - prompt_tokens
        if room < 1:
            raise RequestError(f"the story so far fills the model's context ({prompt_tokens} of "
                               f"{self.generator.context_length} tokens) before beat {index + 1} could be written",
                               hint=f"lower {setting_words('max_new_tokens')} or ask for a shorter --length")
        if room >= self.beat_cfg.max_new_tokens:
            return self.beat_cfg
        return replace(self.beat_cfg, max_new_tokens=room, min_new_tokens=min(room, self.beat_cfg.min_new_tokens))

    def _rounds_allowed(self, insist: bool, last: bool) -> int:
        """How many more rounds of candidates a beat may draw: its own limit, within the story's spare
        rounds less the one kept for the ending."""
        kept_for_ending = 0 if last else 1
        return min(NAMING_ROUNDS if insist else EXTRA_ROUNDS, self.spare_rounds - kept_for_ending)

    def _keep(self, beat: Beat, option) -> str:
        """Add a beat's chosen completion to the story and the chat, and count its tokens: its paragraph."""
        paragraph = option.text.strip()
        self.output_tokens += option.output_tokens
        self.prompt_tokens = self.prompt_tokens or option.prompt_tokens  # the first beat's
        self.finish_reason = option.finish_reason  # the last beat's
        self.chat.answer(paragraph)
        self.paragraphs.append(paragraph)
        self.plan_records.append({**beat.to_dict(), "text": paragraph})
        return paragraph

    def result(self, prompt: Prompt, *, seconds: float) -> StoryResult:
        """The story as written, with `prompt` as its prompt record."""
        return StoryResult(text="\n\n".join(self.paragraphs), plan=self.plan_records,
                           critic={"beats": self.critic_records} if self.critic_records else {},
                           prompt=prompt, prompt_tokens=self.prompt_tokens, output_tokens=self.output_tokens,
                           finish_reason=self.finish_reason, seconds=seconds)


def _beat_context(world: World, resolved, text: str, cfg: GenerationConfig, beat: Beat, written: list[str],
                  moderation, *, unsaid: list | None) -> CriticContext:
    """What the critic judges a beat's candidates against: the beat's own words, with the whole story
    so far (`text`, the prompt) as what it must not copy, the paragraphs `written` as openings and
    4-grams not to repeat, and on the last beat, the story's last chance, `unsaid` (the name forms of
    the cast it has not named yet) among the names it must say; None on the other beats."""
    context = critic_context(world, resolved, text, cfg, narrator_person=world.style.point_of_view or "third",
                             focus=beat.instruction, moderation=moderation, tense=world.style.tense_for("story"))
    context = replace(context, avoid_starts=tuple(tuple(words_of(p)[:2]) for p in written),
                      earlier=frozenset(gram for p in written for gram in ngrams(words_of(p), 4)),
                      finish=finishing_words(beat))
    if unsaid is not None:
        context = replace(context, names=tuple(dict.fromkeys([*context.names, *unsaid])))
    return context


# The image a story's last beat ends on, as make_plan writes it (a --plan file's ending may say it too)
_FINISH = re.compile(r"\bFinish with (.+?)\.(?:\s|$)")


def finishing_words(beat: Beat) -> frozenset[str]:
    """The content words of the image an ending beat asks to finish with ("the click of a hive lid
    settling": click, hive, lid, settling); none for other beats. Readers of every round name endings
    that stop or go nowhere; a last paragraph that closes on the image the plan gave reads as an ending."""
    match = _FINISH.search(beat.instruction) if beat.id == "ending" else None
    words = (POSSESSIVE.sub("", w) for w in words_of(match.group(1))) if match else ()
    return frozenset(w for w in words if w not in STOPLIST)


def _critic_record(beat: Beat, chosen: int, seeds: list[int], starts: Sequence[str], verdicts: list,
                   struck: Sequence) -> dict:
    """A beat's entry in the front matter's critic section: every candidate's seed, start words and
    verdict, the index kept, and the sentences the editor struck from it."""
    opened = list(starts) * (len(seeds) // len(starts))  # each round's candidates open alike
    return {"beat": beat.id, "chosen": chosen,
            "candidates": [{"seed": s, **({"start": w} if w else {}), **v.to_dict()}
                           for s, w, v in zip(seeds, opened, verdicts)],
            **({"struck": [list(cut) for cut in struck]} if struck else {})}


def _draw_candidates(generator, ids: list[int], beat_cfg: GenerationConfig, count: int, beat_seed: int,
                     context, reuse: PrefixReuse, *, extra_rounds: int, insist_on_names: bool = False,
                     plain_ids: list[int] | None = None,
                     starts: Sequence[str] = ()) -> tuple[list[int], list, list, list]:
    """A beat's candidates (seeds, completions, verdicts, the sentences the editor struck from each), with
    more rounds while the best falls short.

    A small model often restates an earlier beat or makes up a person; when every candidate
    does (or is garbled), up to extra_rounds more rounds of fresh candidates are drawn before
    the best is kept; with insist_on_names, also while the best leaves a required name out.
    starts: the words each candidate of a round opens with, written by metagen ("": none).
    """
    forced = [generator.tokenizer.encode_plain(w) if w else [] for w in starts] if any(starts) else None
    seeds, options, verdicts, cuts = [], [], [], []
    for round_ in range(1 + (count > 1) * max(0, extra_rounds)):
        if verdicts and _good_enough(verdicts[best_index(verdicts)], insist_on_names):
            break
        more = [candidate_seed(beat_seed, k) for k in range(round_ * count, (round_ + 1) * count)]
        drawn = generator.complete([ids] * count, beat_cfg, seeds=more, reuse=reuse,
                                   plain=PlainPrompts([plain_ids] * count) if plain_ids else None, forced=forced)
        for option in drawn:  # one paragraph: its first sentences, on one line, no list markers, quotes paired
            lines = first_sentences(option.text, beat_cfg.max_sentences).splitlines()
            option.text = balanced_quotes(" ".join(" ".join(_LIST_MARKER.sub("", line.strip()) for line in lines).split()))
        edits = [strike(o.text, context) for o in drawn]  # judged, kept and read on without its struck sentences
        for option, edit in zip(drawn, edits):
            option.text = edit.text
        seeds += more
        options += drawn
        verdicts += [judge(o.text, context, logprob=o.logprob, tokens=o.output_tokens, struck=len(e.struck),
                           weights=NARRATION_WEIGHTS) for o, e in zip(drawn, edits)]
        cuts += [e.struck for e in edits]
    return seeds, options, verdicts, cuts


def _good_enough(best, insist_on_names: bool) -> bool:
    """Whether a beat's best candidate so far can be kept without drawing another round."""
    names_said = best.findings.get("names", 1.0) == 1.0
    fluency = NARRATION_WEIGHTS["logprob"] * best.findings.get("logprob", 0.0)
    return (best.score - fluency > ROUND_AGAIN_BELOW and not best.findings.get("invented")
            and (names_said or not insist_on_names))


def check_story_fits_context(generator, world: World, request: StoryRequest, cfg: GenerationConfig, *,
                             seed: int) -> None:
    """RequestError when the story's plan (by `seed`) and cfg.max_new_tokens overflow the model's context:
    write_story's own first check, for batch to ask of every story before it writes any piece."""
    resolved = resolve_request(world, with_cast(world, request, seed))
    plan = make_plan(world, resolved, seed)[:cfg.max_new_tokens]
    _check_beats_fit_context(generator, story_messages(world, resolved), plan, cfg.max_new_tokens,
                             users_plan=bool(request.beats))


def _check_beats_fit_context(generator, messages: list[dict[str, str]], plan: list[Beat],
                             max_new_tokens: int, *, users_plan: bool = False) -> None:
    """Refuse, before writing anything, a story whose last beat would overflow the context. That beat's
    prompt holds every instruction and every paragraph before it, each in its chat turn, and it writes
    a paragraph more: at most its share of max_new_tokens each (_beat_share). Counting the instructions
    and max_new_tokens alone let a story through whose last beat then failed with "--max-tokens 120
    does not fit", of a flag given as 400 (turn markers and the share left out)."""
    if max_new_tokens > generator.context_length:  # shared out it would fit, but no one means it
        raise RequestError(f"{CLI_NAMES['max_new_tokens']} {max_new_tokens} is more than the model's whole context "
                           f"of {generator.context_length} tokens",
                           hint=f"lower {setting_words('max_new_tokens')}; a story's beats take at most {BEAT_TOKENS} "
                                "tokens each")
    chat = list(messages)
    for beat in plan:
        chat = [*with_beat(chat, beat.instruction), {"role": "assistant", "content": ""}]
    needed = len(generator.tokenizer.encode_chat(chat[:-1]))  # instructions, and each turn's markers
    beat_tokens = _beat_share(max_new_tokens, len(plan))
    if needed + len(plan) * beat_tokens > generator.context_length:
        raise RequestError(
            f"the story's plan needs about {needed} tokens of prompt and {len(plan)} "
            f"paragraph{'' if len(plan) == 1 else 's'} of up to "
            f"{beat_tokens} tokens ({CLI_NAMES['max_new_tokens']} {max_new_tokens}), but the model's context is "
            f"{generator.context_length}",
            # a --plan file's beats are the instructions: the premise, if any, is not in them
            hint=f"shorten {'the beats of the --plan file' if users_plan else 'the premise'}, lower "
                 f"{setting_words('max_new_tokens')}, or name fewer characters")


def plan_prompt(world: World, resolved: Resolved, plan: list[Beat], messages: list[dict[str, str]],
                context_length: int, beat_cfg: GenerationConfig) -> Prompt:
    """The story's prompt record: the chat with the first beat, and the lore entries the plan used."""
    used = tuple(e.id for e in world.lore if any(clause(e.text) in b.instruction for b in plan))
    first = with_beat(messages, plan[0].instruction)
    # A rough size in words: the token counts a story records are the beats' own
    # (write_story), and nothing reads this record's budget; it is kept for the Prompt's shape.
    words = sum(len(m["content"].split()) for m in first)
    budget = PromptBudget(context_length, beat_cfg.max_new_tokens, 0, words, 0, 0)
    return Prompt(request=resolved.request, messages=first, lore_used=used, lore_left_out=(), warnings=[],
                  prompt_tokens=words, budget=budget)


__all__ = ["BEATS_BY_LENGTH", "DRAWN_CAST", "Beat", "StoryResult", "check_story_fits_context", "make_plan", "story_messages", "with_cast", "write_story"]
