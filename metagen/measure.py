"""What one output scores: its names (said in the model's own words), speakers, invented names,
garbled and copied text, banned words and repetition, against what its world gives (a Reference
worked out once per world); and the metrics of a group of outputs. metagen.eval runs the grid
these score; docs/eval.md defines each metric and its limits. Distinct-n is from Li et al. 2016
("A Diversity-Promoting Objective Function for Neural Conversation Models").
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from metagen.critic import banned_hits, distinct_n, longest_shared_run, repetition, same_verb_forms
from metagen.grounding import (
    QUOTED,
    character_forms,
    foreign_pronouns,
    invented_ranks,
    location_forms,
    off_world_dates,
    name_spellings,
    names_any,
    narrated_sentences,
    narration_tense,
    pronoun_slips,
    stock_phrases,
    strangers,
    unknown_names,
    world_dates,
    world_prose,
    world_vocabulary,
    writing_guard,
)
from metagen.kinship import (
    Kinship,
    invented_relatives,
    kin_side,
    kinship,
    misspoken_kin,
    narrated_kin,
    relation_vocabulary,
    wrong_kin,
)
from metagen.prompts import Request, request_from_dict, resolve_request
from metagen.scripts import ANY, is_garbled
from metagen.text import fold, words_of
from metagen.world import Character, World

COPIED_PROSE_RUN = 8  # a story or scene sharing this many words in a row with the world's prose copies it
COPIED_LINE_RUN = 6  # a dialogue line sharing this many words in a row with its speaker's sample lines copies them
MIN_SAMPLE_WORDS = 3  # a sample line this long, found whole inside a line, is copied ("Yes." is not)

# "Label:" lines in a free transcript that are headings, not speakers.
NOT_SPEAKERS = frozenset("title scene setting characters character location place time note notes dialogue "
                         "conversation summary story description".split())

_TURN = re.compile(r"^[ \t>*_#-]*([^\W\d_][^:\n]{0,48}?)[*_ \t]*:[*_ \t]*(.*)$", re.MULTILINE)


# ----------------------------------------------------------------------------- text metrics


def parse_turns(text: str) -> list[tuple[str, str]]:
    """("Label", "line") for each "Label: line" line of a free transcript (headings such as Title: skipped)."""
    turns = []
    for m in _TURN.finditer(text):
        label = re.sub(r"\([^)]*\)|\[[^\]]*\]", "", m.group(1)).strip(" *_\"'")
        if not label or len(label.split()) > 4 or fold(label) in NOT_SPEAKERS or not label[0].isupper():
            continue
        turns.append((label, m.group(2).strip()))
    return turns


def speaker_of(label: str, cast: Sequence[Character]) -> str | None:
    """The id of the cast member a speaker label names, or None."""
    for c in cast:
        if names_any(label, character_forms(c)):
            return c.id
    return None


SEPARATOR = "|"  # between texts in a word list: words_of never yields it, so no run crosses two texts


@dataclass(frozen=True)
class Reference:
    """What one world's outputs are measured against, worked out once per world."""

    vocabulary: frozenset[str]  # every word of the world, folded (other capitalized words are invented)
    scripts: tuple[str, ...]  # the scripts its prose writes in (grounding.writing_guard)
    exempt: tuple[str, ...]  # its names written in other scripts
    prose: tuple[str, ...]  # the words of its prose and sample lines (names taken out), SEPARATOR between texts
    samples: dict[str, tuple[tuple[str, ...], ...]]  # character id -> the words of each sample line
    relations: frozenset[str] = frozenset()  # the words that may name a relation (critic.relation_vocabulary)
    spellings: frozenset[str] = frozenset()  # the cast's names as written (grounding.name_spellings)
    dates: frozenset[str] = frozenset()  # the years and centuries the world writes (grounding.world_dates)
    stock: tuple[str, ...] = ()  # stock phrases the world never writes (grounding.stock_phrases)
    kinship: Kinship | None = None  # the family ties the world states (grounding.kinship)


def _joined(texts: Sequence[str]) -> tuple[str, ...]:
    words: list[str] = []
    for text in texts:
        words += [*words_of(text), SEPARATOR]
    return tuple(words)


def world_reference(world: World) -> Reference:
    """The vocabulary, scripts, prose and sample lines a world's outputs are measured against."""
    guard = writing_guard(world)
    return Reference(vocabulary=world_vocabulary(world), scripts=guard["scripts"], exempt=guard["script_exempt"],
                     prose=_joined(world_prose(world)),
                     samples={c.id: tuple(tuple(words_of(line)) for line in c.sample_lines) for c in world.characters},
                     relations=relation_vocabulary(world), spellings=name_spellings(world),
                     dates=world_dates(world), stock=stock_phrases(world), kinship=kinship(world))


def copies_prose(text: str, prose: Sequence[str], run: int = COPIED_PROSE_RUN) -> bool:
    """Whether text shares `run` or more words in a row with the world's prose, in any tense
    ("was lit ... had burned" copies "is lit ... has burned")."""
    return longest_shared_run(same_verb_forms(words_of(text)), same_verb_forms(prose)) >= run


def copies_sample_line(line: str, samples: Sequence[Sequence[str]], run: int = COPIED_LINE_RUN) -> bool:
    """Whether a spoken line holds one of the sample lines whole (of MIN_SAMPLE_WORDS words or more)
    or shares `run` words in a row with them."""
    words = same_verb_forms(words_of(line))
    samples = [same_verb_forms(s) for s in samples]
    spoken = " " + " ".join(words) + " "
    if any(len(s) >= MIN_SAMPLE_WORDS and " " + " ".join(s) + " " in spoken for s in samples):
        return True
    return longest_shared_run(words, _joined([" ".join(s) for s in samples])) >= run



# ----------------------------------------------------------------------------- scoring


@dataclass
class Output:
    """One answer to one request with one seed, and its scores."""

    world: str
    kind: str
    system: str  # metagen | baseline
    request: dict
    seed: int
    text: str
    output_tokens: int
    finish_reason: str
    turns: list[tuple[str, str]] = field(default_factory=list)  # dialogue: (speaker label, line)
    opening: str = ""  # the first words of text, written by metagen rather than the model
    missing: list[str] = field(default_factory=list)  # requested names the text never gives
    missing_written: list[str] = field(default_factory=list)  # ... that the model's words (after the opening) never give
    grounded_written: bool = False  # the model's own words name the request: every name (story, scene), one (dialogue)
    cast_turns: int = 0  # dialogue: turns spoken by a requested character
    unknown: list[list[str]] = field(default_factory=list)  # per line (dialogue) or one list (others)
    relatives: list[str] = field(default_factory=list)  # family words whose relation the world never mentions
    kin: list[str] = field(default_factory=list)  # family words against the world's ties ("my sister Maëlle" from her mother)
    ranks: list[str] = field(default_factory=list)  # ranks the world never writes ("the king" in a queen's realm)
    strangers: list[str] = field(default_factory=list)  # story: unnamed people the narration brings in ("a lone figure")
    dates: list[str] = field(default_factory=list)  # years and numbered centuries the world never writes
    wrong_tense: bool = False  # story, scene: the model's narration leans to the tense not asked for
    tense_slips: int = 0  # story, scene: narrated sentences that lean to the tense not asked for
    pronouns: list[str] = field(default_factory=list)  # story, scene: pronouns none of the cast takes; "Pip: she" slips
    copied: list[bool] = field(default_factory=list)  # per line (dialogue) or one (others): copied from the world
    garbled: bool = False  # the model's words leave the allowed scripts or hold mojibake
    banned: int = 0
    stock: list[str] = field(default_factory=list)  # story, scene: stock phrases in the model's words
    repetition: float = 0.0
    words: int = 0

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["turns"] = [list(t) for t in self.turns]
        return data


def score(world: World, output: Output, reference: Reference, settings: dict | None = None) -> Output:
    """Fill in the output's scores (see docs/eval.md for each); settings: a metagen piece's decoding
    settings, whose script guard its text is held to (else the world's)."""
    resolved = resolve_request(world, recorded_request(output.request))
    cast = resolved.characters
    place = [location_forms(resolved.location)] if resolved.location else []
    speakers: list[str | None] = []  # dialogue: who speaks each line
    if output.kind == "dialogue":
        spoken = "\n".join(line for _, line in output.turns)
        # the whole transcript: a baseline's may hold no "Name: line" at all, and metagen's
        # labels are the world's names, exempt from the guard when written in another script
        written = output.text
        speakers = [speaker_of(label, cast) for label, _ in output.turns]
        output.cast_turns = sum(s is not None for s in speakers)
        output.missing = [c.name for c in cast if c.id not in speakers and not names_any(spoken, character_forms(c))]
        output.grounded_written = any(names_any(spoken, forms) for forms in [*map(character_forms, cast), *place])
        output.unknown = [unknown_names(line, reference.vocabulary, reference.spellings) for _, line in output.turns]
        cast_samples = [s for c in cast for s in reference.samples.get(c.id, ())]
        # a line is held against its speaker's sample lines; a speaker from outside the cast, the cast's
        output.copied = [copies_sample_line(line, reference.samples.get(who, ()) if who else cast_samples)
                         for who, (_, line) in zip(speakers, output.turns)]
    else:
        written = output.text[len(output.opening):] if output.text.startswith(output.opening) else output.text
        for text, missing in ((output.text, output.missing), (written, output.missing_written)):
            missing[:] = [c.name for c in cast if not names_any(text, character_forms(c))]
            if resolved.location and not names_any(text, location_forms(resolved.location)):
                missing.append(resolved.location.name)
        output.grounded_written = not output.missing_written
        output.unknown = [unknown_names(output.text, reference.vocabulary, reference.spellings)]
        output.copied = [copies_prose(written, reference.prose)]
        asked = world.style.tense_for(output.kind)
        output.wrong_tense = narration_tense(written) not in ("", asked)
        output.tense_slips = sum(narration_tense(sentence) not in ("", asked) for sentence in narrated_sentences(written))
        narration = QUOTED.sub(" ", written)
        foreign = foreign_pronouns(cast)
        output.pronouns = [w for w in words_of(narration) if w in foreign] + pronoun_slips(narration, cast)
        output.stock = [phrase for phrase in reference.stock if banned_hits(written, [phrase])]
        if output.kind == "story":  # its prompt says "invent no one else"; a scene may show a fisherman
            output.strangers = strangers(written)
    output.relatives = invented_relatives(spoken if output.kind == "dialogue" else output.text, reference.relations)
    output.kin = wrong_family_words(reference.kinship, output, cast, speakers)
    output.ranks = invented_ranks(spoken if output.kind == "dialogue" else output.text,
                                  reference.vocabulary | reference.relations)  # a name's title counts: Queen Ada
    output.dates = off_world_dates(spoken if output.kind == "dialogue" else output.text, reference.dates)
    scripts, exempt = _guard(settings or {}, reference)
    output.garbled = is_garbled(written, scripts, exempt)
    output.banned = banned_hits(output.text, world.content.banned_words)
    output.repetition = repetition(output.text)
    output.words = len(output.text.split())
    return output


def wrong_family_words(kin: Kinship | None, output: Output, cast: Sequence[Character],
                       speakers: Sequence[str | None]) -> list[str]:
    """The family words a text gets wrong against the world's ties `kin` (grounding.wrong_kin; for
    narration narrated_kin, for a dialogue line misspoken_kin too): a line's "my" is its speaker's,
    "your" the other's in a two-person dialogue."""
    if kin is None:
        return []
    if output.kind != "dialogue":
        return wrong_kin(output.text, kin) + narrated_kin(output.text, kin)
    found = []
    for who, (_, line) in zip(speakers, output.turns):
        speaker = next((c for c in cast if c.id == who), None)
        others = [c.id for c in cast if c.id != who]
        listener = others[0] if speaker is not None and len(others) == 1 else ""
        found += wrong_kin(line, kin, speaker=who or "", listener=listener)
        found += misspoken_kin(line, kin_side(speaker, cast)) if speaker is not None else []
    return found


def _guard(settings: dict, reference: Reference) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The scripts (and exempt names) a text is held to: its piece's script guard, else the world's
    (the baseline's, and a piece decoded with the guard off)."""
    scripts = tuple(settings.get("scripts") or ())
    if scripts and ANY not in scripts:
        return scripts, tuple(settings.get("script_exempt") or ())
    return reference.scripts, reference.exempt


def recorded_request(data: dict) -> Request:
    """The request a piece records (a dialogue's speaker order dropped)."""
    return request_from_dict({k: v for k, v in data.items() if k != "order"})


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize(outputs: Sequence[Output], seconds: float) -> dict:
    """The metrics of a group of outputs (one kind, one system); seconds is their decoding time."""
    n = len(outputs)
    units = [u for o in outputs for u in o.unknown]  # lines for dialogue, outputs otherwise
    tokens = sum(o.output_tokens for o in outputs)
    by_request: dict[str, list[str]] = {}
    for o in outputs:
        by_request.setdefault(f"{o.world}/{sorted(o.request.items())}", []).append(o.text)
    distinct = [d for d in (distinct_n(texts) for texts in by_request.values()) if d is not None]
    out = {
        "outputs": n,
        "grounding": _mean([float(not o.missing) for o in outputs]),
        # what the model itself wrote: every name after metagen's opening (stories, scenes), one
        # requested name in the spoken lines (dialogue)
        "grounding_model": _mean([float(o.grounded_written) for o in outputs]),
        "unknown_names": _mean([float(bool(u)) for u in units]),  # per line (dialogue), per output (others)
        "invented_outputs": _mean([float(any(o.unknown)) for o in outputs]),
        "invented_relatives": _mean([float(bool(o.relatives)) for o in outputs]),  # per output
        "wrong_kin": _mean([float(bool(o.kin)) for o in outputs]),  # per output
        "invented_ranks": _mean([float(bool(o.ranks)) for o in outputs]),  # per output
        "strangers": _mean([float(bool(o.strangers)) for o in outputs if o.kind == "story"]),  # stories
        "off_world_dates": _mean([float(bool(o.dates)) for o in outputs]),  # per output
        "wrong_tense": _mean([float(o.wrong_tense) for o in outputs if o.kind != "dialogue"]),  # stories, scenes
        "tense_slips": _mean([float(o.tense_slips > 0) for o in outputs if o.kind != "dialogue"]),  # stories, scenes
        "wrong_pronoun": _mean([float(bool(o.pronouns)) for o in outputs if o.kind != "dialogue"]),  # stories, scenes
        "garbled": sum(o.garbled for o in outputs),
        "copied": _mean([float(c) for o in outputs for c in o.copied]),  # per line (dialogue), per output (others)
        "banned_hits": sum(o.banned for o in outputs),
        "stock": _mean([float(bool(o.stock)) for o in outputs if o.kind != "dialogue"]),  # stories, scenes
        "repetition": _mean([o.repetition for o in outputs]),
        "distinct_2": _mean(distinct),
        "words": _mean([o.words for o in outputs]),
        "tokens": _mean([o.output_tokens for o in outputs]),
        "tokens_per_second": round(tokens / seconds, 2) if seconds > 0 else None,
        "seconds_per_piece": round(seconds / n, 3) if n and seconds > 0 else None,
        "finish_reasons": dict(sorted(Counter(o.finish_reason for o in outputs).items())),
    }
    if outputs and outputs[0].kind == "dialogue":
        turns = sum(len(o.turns) for o in outputs)
        out["turns"] = turns
        out["invented_lines"] = out["unknown_names"]
        out["speakers_from_cast"] = sum(o.cast_turns for o in outputs) / turns if turns else None
        out["no_turns"] = sum(not o.turns for o in outputs)
    return out


__all__ = ["COPIED_LINE_RUN", "COPIED_PROSE_RUN", "MIN_SAMPLE_WORDS", "Output", "Reference", "copies_prose",
           "copies_sample_line", "parse_turns", "recorded_request", "score", "speaker_of", "summarize", "wrong_family_words",
           "world_reference"]
