"""The critic: scores a piece of model text against its world, to choose among candidates.

A 135M model asked several times writes some versions worth keeping and many that drift. The
critic rewards what a reader notices first (the requested names and the place's own details,
in the model's own words) and punishes what spoils a draft: invented people, garbled text or
another script, banned and avoided words, text copied from the prompt, repetition, markup and
a sentence cut off. The text metrics here serve `metagen eval` as well.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metagen.prompts import Resolved, mentions
from metagen.scripts import is_garbled, prose_scripts
from metagen.text import closest, fold
from metagen.world import Character, Location, World

MIN_FIRST_WORD = 3  # a name's first word counts alone from this many letters
# Leading words a name's "first word" skips: "Queen Ysolde Vær" -> "Ysolde".
TITLES = frozenset("""the a an queen king prince princess lord lady sir dame sister brother father mother
saint captain doctor dr mr mrs ms miss master mistress uncle aunt old young grandmother grandfather granny
grandma grandpa nan ma pa auntie mayor warden keeper inspector detective deputy sergeant lieutenant commander
commodore colonel general admiral chief chieftain jarl reeve elder professor envoy ambassador abbess abbot
guildmaster foreman madam mister nurse prior prioress bishop constable curator councillor councilor regent
archivist chancellor magistrate judge marshal sheriff steward""".split())
# Capitalized words that are not names of people (checked after folding, before the world's words).
STOPLIST = frozenset("""i i'm i'll i've i'd the a an and but or nor so yet for of in on at to by with from as
if then when while where what who whom whose why how this that these those there here it its his her hers
their our my your we you he she they me him them us not no yes oh ah hey hello hi well okay ok please thanks
thank sorry wow hmm alright dear mr mrs ms miss dr sir madam lady lord captain queen king prince princess
sister brother father mother aunt uncle grandma grandpa mom mum dad god earth english internet chapter title
scene part end note monday tuesday wednesday thursday friday saturday sunday january february march april
may june july august september october november december majesty highness sire lordship ladyship
aye mmm hm ahh ohh shh hush nah darn hoho dude mama papa thats everytime awoke""".split())
_WORD = re.compile(r"[^\W\d_][\w'’-]*")
_POSSESSIVE = re.compile(r"['’]s$")


def _bare(name: str) -> str:
    """A name without a leading article: "The Fountain Atrium" -> "Fountain Atrium"."""
    words = name.split()
    return " ".join(words[1:]) if len(words) > 1 and fold(words[0]) in ("the", "a", "an") else name


def character_forms(c: Character) -> tuple[str, ...]:
    """What counts as naming a character: the full name (with or without a leading article), any
    alias, the first word of the name after titles if it has at least 3 letters, and the last title
    with the last word ("Director Grale" for "Director Hesketh Grale"). A word of the character's
    role leading the name is a title too ("Lampwright Oswin Tarrow", a lampwright)."""
    forms = [c.name, _bare(c.name), *c.aliases]
    words = [w.strip("\"'“”,") for w in c.name.split()]
    titles = TITLES | {fold(w) for w in _WORD.findall(c.role or "")}
    title = ""
    while len(words) > 1 and fold(words[0]) in titles:
        title = "" if fold(words[0]) in ("the", "a", "an") else words[0]
        words = words[1:]
    if words and sum(ch.isalpha() for ch in words[0]) >= MIN_FIRST_WORD:
        forms.append(words[0])
    if title and len(words) > 1:
        forms.append(f"{title} {words[-1]}")
    return tuple(dict.fromkeys(f for f in forms if f.strip()))


def location_forms(loc: Location) -> tuple[str, ...]:
    """What counts as naming a location: its name, with or without a leading article."""
    return tuple(dict.fromkeys((loc.name, _bare(loc.name))))


def names_any(text: str, forms: Sequence[str]) -> bool:
    """Whether text names any of the forms (whole words, case and accents ignored)."""
    folded = fold(text)
    return any(mentions(folded, fold(f)) for f in forms)


def words_of(text: str) -> list[str]:
    """Lower-case words (letters, digits, apostrophes), for n-gram counts."""
    return re.findall(r"[\w']+", fold(text))


def ngrams(words: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def repetition(text: str, n: int = 4) -> float:
    """The share of repeated word n-grams in one text: 1 - unique / total (0 when it has none)."""
    grams = ngrams(words_of(text), n)
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def distinct_n(texts: Sequence[str], n: int = 2) -> float | None:
    """Unique n-grams over all n-grams of several texts (n-grams never cross texts); None if none."""
    grams = [g for t in texts for g in ngrams(words_of(t), n)]
    return len(set(grams)) / len(grams) if grams else None


def banned_hits(text: str, banned: Sequence[str]) -> int:
    """How often banned words occur, whole words, case-insensitively."""
    folded = text.casefold()
    return sum(len(re.findall(rf"(?<!\w){re.escape(w.casefold())}(?!\w)", folded)) for w in banned if w.strip())


def _world_strings(world: World, *, cast_names: bool = True) -> list[str]:
    """Every string written in the world (names, aliases, places, lore keys and texts, ...).

    cast_names=False leaves the characters' names and aliases out."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.append(value)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            for f in dataclasses.fields(value):
                if f.name in ("name", "aliases") and not cast_names and isinstance(value, Character):
                    continue
                if f.name not in ("path", "files", "content_hash", "defaults"):
                    walk(getattr(value, f.name))
        elif isinstance(value, (tuple, list)):
            for item in value:
                walk(item)

    walk(world)
    return found


def world_vocabulary(world: World, *, cast_names: bool = True) -> frozenset[str]:
    """Every word written anywhere in the world (names, aliases, places, lore keys and texts), folded.

    cast_names=False leaves the characters' names and aliases out: what the world says of
    relations, where "Sister Maëlle" is a title and no one's sister (relation_vocabulary)."""
    found: set[str] = set()
    for value in _world_strings(world, cast_names=cast_names):
        words = [fold(w) for w in _WORD.findall(value.replace("-", " "))]
        found.update(words)
        found.update(_POSSESSIVE.sub("", w) for w in words)  # "Hollin's Keep" also names Hollin
    return frozenset(found)


# A year ("in 1875", "the 1980s", "the year 4035", "500 AD") or a numbered century ("the 21st century"): a date from outside
# an invented world unless the world writes it (Saltgate's era is 2041). Round nine's readers named
# "In the year 1875" among the off-world facts; 21 of 784 eval texts had such a date.
_DATE = re.compile(r"\byear (?:of )?\d{1,5}\b|\b\d{1,4} ?(?:(?:AD|BC)(?!\w)|A\.D\.|B\.C\.)|(?<![\w.,])[12]\d{3}(?:'?s)?(?!\d|[.,]\d)\b"
                   r"|\b\d{1,2}(?:st|nd|rd|th) century\b", re.IGNORECASE)


def world_dates(world: World) -> frozenset[str]:
    """The dates (_DATE) the world itself writes, lower case: those a text may use."""
    return frozenset(_date_key(m.group()) for value in _world_strings(world) for m in _DATE.finditer(value))


def _date_key(date: str) -> str:
    """A date compared loosely: "the 2040s", "the year 2040" and "2040" are one."""
    return re.sub(r"^year (?:of )?|'?s$| ?(?:ad|bc|a\.d\.|b\.c\.)$", "", date.casefold())


def off_world_dates(text: str, allowed: frozenset[str]) -> list[str]:
    """Years and numbered centuries in text that the world never writes."""
    return [m.group() for m in _DATE.finditer(text) if _date_key(m.group()) not in allowed]


MIN_SPELLING = 4  # a name word this long or longer is checked for misspellings
NEAR_SPELLING = 0.8  # difflib's ratio from which an unknown word reads as a name spelled wrongly


def name_spellings(world: World) -> frozenset[str]:
    """The words of the characters' names and aliases as the world writes them ("Maëlle", "Vær"),
    titles and short words left out: what misspelled_names compares against."""
    words = {_POSSESSIVE.sub("", w) for c in world.characters for n in (c.name, *c.aliases) for w in _WORD.findall(n)}
    return frozenset(w for w in words if len(w) >= MIN_SPELLING and w[0].isupper() and fold(w) not in TITLES | STOPLIST)


def misspelled_names(text: str, spellings: frozenset[str], vocabulary: frozenset[str]) -> list[str]:
    """Words that read as a character's name spelled wrongly, sentence starts included: "Ysoldé" or
    "Málle" for Ysolde and Maëlle (the README's story, round nine). A 135M model garbles the accented
    letters it seldom sees; a reader notices at once. Same first letter, and either the same letters
    with other accents or a near spelling (NEAR_SPELLING) of a word the world never uses."""
    if not spellings:
        return []
    by_key = {fold(s): s for s in spellings}
    found = []
    for m in _WORD.finditer(text):
        word = _POSSESSIVE.sub("", m.group())
        if len(word) < MIN_SPELLING or not word[0].isupper() or word in spellings:
            continue
        key = fold(word)
        if key in by_key:
            if not word.isascii() and word.casefold() != by_key[key].casefold():  # "Ysoldé"; not "Maelle"
                found.append(word)
            continue
        if key in vocabulary or key in STOPLIST or key[:-1] in vocabulary:  # "Quills" is a plural
            continue
        near = closest(key, [k for k in by_key if k[0] == key[0]], NEAR_SPELLING)
        if near is not None:
            found.append(word)
    return found


COMMON_WORDS_FILE = Path(__file__).parent / "data" / "common-words.txt"
_ENDINGS = ("s", "es", "ed", "d", "ing")  # "Sighs", "Zoomed": a common word with an ending
MIN_COMPOUND = 4  # letters in each half of a word read as two joined ("Moonlight", "Bluebells")


@functools.cache
def common_words() -> frozenset[str]:
    """Lower-case English words (metagen/data/common-words.txt): what a capitalised word opening a
    sentence is when it is no name ("Towering", "Yesterday's"). The list is the whole lower-case
    words of SmolLM2's tokenizer (write_common_words): a word a tokenizer learned whole in lower
    case is an everyday word; "Maude", "Aroniar" or "Kistre" are not in it."""
    lines = COMMON_WORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


def write_common_words(vocabulary: Sequence[str], path: Path = COMMON_WORDS_FILE) -> int:
    """Write common_words' list from a byte-level BPE vocabulary ("Ġtowering" is the word "towering"
    after a space); returns how many words. Regenerate with the default model's tokenizer:
    `write_common_words(load_model().tokenizer.vocabulary())`."""
    words = sorted({piece[1:] for piece in vocabulary
                    if piece.startswith("Ġ") and piece[1:].isascii() and piece[1:].isalpha() and piece[1:].islower()})
    header = "# Lower-case whole words of SmolLM2-135M's tokenizer (Apache-2.0): metagen.critic.common_words\n"
    path.write_text(header + "\n".join(words) + "\n", encoding="utf-8")
    return len(words)


def _ordinary_word(key: str, known: frozenset[str]) -> bool:
    """Whether a capitalised word opening a sentence (folded, no possessive) reads as an everyday
    word rather than a name: a contraction ("You're"), an adverb in -ly, or in each part of a
    hyphenated word a common or known word, whole, with an ending ("Crumbling": crumble) or
    joined of two ("Moonlight")."""
    if "'" in key or key.endswith("ly"):
        return True
    words = common_words() | known

    def everyday(part: str) -> bool:
        stems = [part] + [part[:-len(e)] + extra for e in _ENDINGS if part.endswith(e) for extra in ("", "e")]
        return any(stem in words for stem in stems) or any(
            part[:i] in words and part[i:] in words for i in range(MIN_COMPOUND, len(part) - MIN_COMPOUND + 1))

    return all(everyday(part) for part in key.split("-") if part)


def unknown_names(text: str, vocabulary: frozenset[str], spellings: frozenset[str] = frozenset()) -> list[str]:
    """Capitalized words that the world never mentions and that are not common capitalized words: a
    heuristic for people (or places) the model made up. At a sentence start (or quoted speech's
    first word) a capitalised word counts only when it is no everyday word either (_ordinary_word):
    "Maude's eyes lit up" (the README's story, round ten) invents Maude. Given the world's
    name_spellings, a character's name spelled wrongly counts too, wherever it stands."""
    found = misspelled_names(text, spellings, vocabulary)
    lower = frozenset(fold(w) for w in _WORD.findall(text) if w[0].islower())  # "Giant" opens, "giant" recurs
    for m in _WORD.finditer(text):
        word = m.group()
        if not word[0].isupper() or not any(ch.islower() for ch in word[1:]):
            continue  # lower case, or all capitals (shouting, acronyms)
        if _POSSESSIVE.sub("", word) in found:
            continue  # counted above
        key = _POSSESSIVE.sub("", fold(word))
        parts = [p for p in key.split("-") if p]
        if key in STOPLIST or key in vocabulary or (parts and all(p in vocabulary or p in STOPLIST for p in parts)):
            continue
        before = text[: m.start()].rstrip(" \t*_\"'“‘(")
        opening = not before or before[-1] in ".!?:;\n…—–-" or text[m.start() - 1] in "\"“‘"
        if opening and _ordinary_word(key, vocabulary | lower):
            continue
        found.append(word)
    return found


# Family words, by the relations they belong to: a text may use one when the world uses any word of
# its group ("Maëlle, her daughter" lets a story say "her mother"). A made-up husband or brother is an
# invented person the capitalised-name check cannot see; round five's blind readers counted made-up
# relatives among the commonest defects (6 of 90 eval pieces named one the world never mentions).
KIN_GROUPS = (
    frozenset("mother father mom mum dad papa mama parent son daughter child stepmother stepfather stepson "
              "stepdaughter".split()),
    frozenset("husband wife widow widower fiance fiancee betrothed spouse".split()),
    frozenset("brother sister twin sibling".split()),
    frozenset("uncle aunt nephew niece cousin".split()),
    frozenset("grandmother grandfather grandma grandpa grandson granddaughter grandchild".split()),
)
_KIN = {word: group for group in KIN_GROUPS for word in group} | {"wives": KIN_GROUPS[1]}
_NOT_FOUND_ALONE = frozenset("parent child sibling spouse".split())  # common in any prose: never a finding


def relation_vocabulary(world: World, given: str = "") -> frozenset[str]:
    """The words that may name a relation: the world's words outside its characters' names, and
    those of `given` text (a prompt, the player's lines) outside them."""
    names = {w for c in world.characters for name in (c.name, *c.aliases) for w in words_of(name)}
    return world_vocabulary(world, cast_names=False) | (frozenset(words_of(given)) - names)


def invented_relatives(text: str, vocabulary: frozenset[str]) -> list[str]:
    """Family words in text whose relation `vocabulary` (relation_vocabulary) never mentions ("her
    husband" in a world without one), folded and singular. A family word before a capitalised
    word is a title ("Sister Maëlle", "Uncle Tam"), not a relation."""
    found = []
    for match in _WORD.finditer(text):
        word = _POSSESSIVE.sub("", fold(match.group()))
        if word not in _KIN and word.endswith("s"):
            word = word[:-1]  # daughters, brothers
        group = _KIN.get(word)
        if group is None or word in _NOT_FOUND_ALONE or group & vocabulary:
            continue
        if text[match.end():].lstrip(" ")[:1].isupper():
            continue
        found.append("wife" if word == "wives" else word)
    return found


# ----------------------------------------------------------------------------- the world's words and scripts


_SHE = frozenset("she her hers herself".split())
_HE = frozenset("he him his himself".split())
_WOMAN = frozenset("""queen princess lady sister mother daughter woman girl wife aunt grandmother niece dame
mistress widow madam madame swordswoman""".split())
_MAN = frozenset("king prince lord brother father son man boy husband uncle grandfather nephew sir master".split())


def pronoun_of(c: Character) -> str:
    """"she" or "he" when the world's words about a character say so clearly, else "" (not said,
    mixed, or "they"). Pronouns come from its description, goals and secrets (which speak of the
    character); gendered words only from its name's title and its role ("her mother" in a goal is
    someone else)."""
    about = words_of(" ".join([c.description or "", *c.goals, *c.secrets]))
    titled = words_of(" ".join([c.name.split()[0] if c.name.split() else "", c.role or ""]))
    woman = sum(w in _SHE for w in about) + 2 * sum(w in _WOMAN for w in titled)
    man = sum(w in _HE for w in about) + 2 * sum(w in _MAN for w in titled)
    if woman and woman >= 3 * man:  # one "She" and no "he": clear; "she" twice and "his" once: not
        return "she"
    if man and man >= 3 * woman:
        return "he"
    return ""


def cast_pronoun(cast: Sequence[Character]) -> str:
    """The pronoun the whole cast shares ("she" or "he"), else ""."""
    found = {pronoun_of(c) for c in cast}
    return found.pop() if len(found) == 1 else ""


def world_names(world: World) -> tuple[str, ...]:
    """Every proper name the world gives: characters and their aliases, places, factions, the world."""
    names = [world.name, *(f.name for f in world.factions), *(loc.name for loc in world.locations)]
    for c in world.characters:
        names += [c.name, *c.aliases]
    return tuple(dict.fromkeys(n for n in names if n.strip()))


def world_prose(world: World) -> list[str]:
    """The world's own sentences (summary, descriptions, lore, sample lines), names taken out."""
    texts = [world.summary or "", world.tone or "", world.style.voice or "", *(e.text for e in world.lore)]
    for loc in world.locations:
        texts += [loc.description or "", *loc.sights, *loc.sounds, *loc.smells]
    for c in world.characters:
        texts += [c.role or "", c.description or "", *c.traits, *c.goals, *c.secrets, *c.sample_lines, c.voice or ""]
    texts += [f.description or "" for f in world.factions]
    names = sorted(world_names(world), key=len, reverse=True)
    out = []
    for text in texts:
        for name in names:
            text = text.replace(name, " ")
        out.append(text)
    return out


def writing_guard(world: World, request_texts: Sequence[str] = ()) -> dict[str, tuple[str, ...]]:
    """The script guard's settings for a world: the scripts of its prose (and of the request's
    own words), and its names that use any other script, whose tokens stay allowed."""
    scripts = prose_scripts([*world_prose(world), *request_texts])
    exempt = tuple(n for n in world_names(world) if is_garbled(n, scripts))
    return {"scripts": scripts, "script_exempt": exempt}


# ----------------------------------------------------------------------------- scoring candidates

COPY_RUN = 6  # a run of this many words shared with the prompt counts as copying
# How much each finding moves a candidate's score; chosen by reading what the critic picks
# (docs/quality.md): one invented person outweighs one more requested name (-1.5 left 9 of 30 stories
# with an invented name, -2.5 left 1 of 30, the same requests and seeds), garbled text or a
# banned word outweighs everything else.
WEIGHTS = {"names": 2.0, "details": 1.0, "invented": -2.5, "garbled": -6.0, "banned": -3.0, "copied": -0.5,
           "repetition": -6.0, "markup": -1.0, "unfinished": -0.7, "short": -1.5, "voice": -1.0, "same_start": -1.0,
           "echo": -3.0, "pronoun": -1.0, "relatives": -2.0, "stock": -1.0, "dated": -1.5, "restated": -0.5, "logprob": 0.5, "rating": -50.0}
# "rating" counts spans over the world's rating (metagen.moderation, at most 3): its weight outweighs every
# other finding together, so a candidate over the rating loses to any that is not.
# metagen's own instructions and prompt labels said back ("In your own words:", "I will describe
# ... in three sentences"): readers count these first among a small model's junk.
_ECHO = re.compile(r"\bin your own words\b|\bstart with the words\b|\b(?:three|four|3|4) (?:or (?:three|four|3|4) )?sentences\b"
                   r"|\bTask:|\bI will (?:describe|write)\b|\b(?:Sights|Sounds|Smells|You can (?:see|hear|smell)"
                   r"|Background facts|Place|Who is there):", re.IGNORECASE)
# Stock phrases of a small model's description, which say nothing of this place or person: a
# round-nine blind reader's commonest complaint after misnamed places ("The Container Docks are a
# marvel of modern engineering" in 7 of 10 scenes, "The Fountain Atrium was a place of great beauty").
_STOCK = re.compile(r"\ba place (?:of|where|that|for)\b|\ba (?:marvel|testament|symphony|tapestry) (?:of|to)\b"
                    r"|\bnestled\b|\bbustling\b|\bin the heart of\b|\botherworldly\b|\bawe[- ]inspiring\b"
                    r"|\bbreathtaking\b|\bdefy(?:ing)? gravity\b|\b(?:the )?beauty of nature\b|\bwith an iron fist\b"
                    r"|\bthose who dare\b|\bthe very fabric\b|\ba sense of\b|\bsent shivers\b|\blittle did\b"
                    r"|\bthe air (?:was|is) thick with\b|\bmodern engineering\b", re.IGNORECASE)
# Text about the text, never part of a story: "Here is the next paragraph:", "The End.", "Write a
# 3-4 sentence ending", "The last sentence is a refrain." (round six's blind reader quoted the last two)
_META = re.compile(r"\bhere(?:'s| is) (?:the|a|an|my) (?:next |last |opening |final |first )?"
                   r"(?:paragraph|story|scene|part|continuation)\b|\b(?:opening|next|last|final) paragraph\b"
                   r"|\bparagraph \d|\b\d\s*(?:-|–|or|to)\s*\d[- ]sentences?\b|\bthe (?:first|last|final) sentence\b"
                   r"|\bthis is the end of the (?:story|scene)\b", re.IGNORECASE)
_THE_END = re.compile(r"\bThe End\b[.!]*\s*$")
# A story or scene written as a script: a line that starts with a speaker's "Name:".
_SCRIPT_LINE = re.compile(r"(?m)^\s*[A-Z][\w'’-]*(?: [A-Z][\w'’-]*){0,2}: ")
# Narration in the wrong person: "I", "my" (outside quotes) in a second- or third-person world.
_FIRST_PERSON = re.compile(r"\b(?:I|I'm|I've|I'll|my|me|myself)\b")
_SECOND_PERSON = re.compile(r"\b(?<![Tt]hank )(?:you|your|yours|yourself|You|Your)\b")  # "thank you" is no narrator
_QUOTED = re.compile(r"[\"“][^\"”]*[\"”]")
_MARKUP = re.compile(r"[#*_<>|\[\]{}@]|https?:|www\.|\.com\b")
# Words of metagen's own instructions, which say nothing about the story.
_INSTRUCTION_WORDS = frozenset("""write opening paragraph next last ends story sentences show this wants says
reveals secret bring fact world image happens about""".split())
_STOP_WORDS = frozenset("""a an the and or but of in on at to by with from for into over under this that these those
its his her their there here with without about above below after before while where when which what who
is are was were be been being has have had do does did not no very more most some any each every one two
like than then them they you your our we she he it""".split())


@dataclass(frozen=True)
class CriticContext:
    """What the critic judges a text against: the request's names and facts, the prompt, the rules."""

    names: tuple[tuple[str, ...], ...]  # per requested character or place: the forms that name it
    details: frozenset[str]  # content words of the requested place's and cast's own facts, folded
    prompt_words: tuple[str, ...]  # the prompt's words, folded (copying is measured against them)
    vocabulary: frozenset[str]  # every word of the world, folded (unknown capitalised words are invented)
    banned: tuple[str, ...]  # banned and avoided words
    scripts: tuple[str, ...]  # the scripts the text may use
    exempt: tuple[str, ...]  # names that may use other scripts
    target_words: int = 0  # about how long the text should be (0: no length check)
    narrator_person: str = ""  # first | second | third ("" or first: no check of "I" in narration)
    avoid_starts: tuple[tuple[str, ...], ...] = ()  # how earlier paragraphs began (first two words, folded)
    earlier: frozenset[tuple[str, ...]] = frozenset()  # the word 4-grams of earlier paragraphs (a story's beats)
    cast_pronoun: str = ""  # "she" or "he" when the whole cast is one (narration's other pronoun is a defect)
    relations: frozenset[str] = frozenset()  # words that may name a relation (relation_vocabulary)
    spellings: frozenset[str] = frozenset()  # the cast's names as written (name_spellings: misspelled is invented)
    dates: frozenset[str] | None = None  # the years the world writes (world_dates); None: dates are not judged
    moderation: Any = None  # a metagen.moderation.Policy (None: --moderation off): spans over it are a finding


def requested_forms(resolved: Resolved) -> list[tuple[str, ...]]:
    """The forms that name each requested character, then the requested place."""
    forms = [character_forms(c) for c in resolved.characters]
    return forms + ([location_forms(resolved.location)] if resolved.location is not None else [])


def critic_context(world: World, resolved: Resolved, prompt_text: str, cfg: Any, *, target_words: int = 0,
                   names_required: bool = True, narrator_person: str = "", focus: str = "",
                   moderation: Any = None) -> CriticContext:
    """The context for judging answers to one request (cfg: the GenerationConfig in force).

    Args:
        names_required: the requested cast and place must be named (not for a dialogue line).
        focus: the instruction of one unit (a story beat): then only the cast and place it names
            are required, and its own words count as the details to use.
        moderation: the world's moderation Policy, or None.
    """
    named = [(character_forms(c), [c.role or "", c.description or "", *c.traits, *c.goals])
             for c in resolved.characters]
    if resolved.location is not None:
        loc = resolved.location
        named.append((location_forms(loc), [loc.description or "", *loc.sights, *loc.sounds, *loc.smells]))
    if focus:
        named = [(forms, facts) for forms, facts in named if names_any(focus, forms)]
        facts = [focus.replace(":", " ")]
    else:
        facts = [fact for _, group in named for fact in group]
    forms = [f for f, _ in named] if names_required else []
    details = frozenset(w for w in words_of(" ".join(facts)) if len(w) >= 4 and w not in _STOP_WORDS)
    details -= frozenset(w for f in forms for name in f for w in words_of(name))  # names count once, above
    banned = tuple(dict.fromkeys((*cfg.banned, *world.style.avoided_words)))
    scripts = tuple(cfg.scripts) or ("any",)
    return CriticContext(names=tuple(forms), details=details - _INSTRUCTION_WORDS,
                         prompt_words=tuple(words_of(prompt_text)), vocabulary=world_vocabulary(world),
                         spellings=name_spellings(world), dates=world_dates(world),
                         banned=banned, scripts=scripts, exempt=tuple(cfg.script_exempt),
                         target_words=target_words, narrator_person=narrator_person,
                         cast_pronoun=cast_pronoun(resolved.characters) if narrator_person else "",
                         relations=relation_vocabulary(world, prompt_text), moderation=moderation)


@dataclass
class Verdict:
    """A candidate's findings and its score (higher is better)."""

    findings: dict[str, float] = field(default_factory=dict)
    score: float = 0.0

    def to_dict(self) -> dict:
        return {"score": round(self.score, 3), **{k: round(v, 3) for k, v in self.findings.items()}}


def longest_shared_run(words: Sequence[str], source: Sequence[str]) -> int:
    """The longest run of consecutive words of `words` that also occurs in `source`."""
    grams = {n: set(ngrams(source, n)) for n in (COPY_RUN,)}
    best = 0
    i = 0
    while i <= len(words) - COPY_RUN:
        if tuple(words[i:i + COPY_RUN]) in grams[COPY_RUN]:
            n = COPY_RUN
            source_text = " " + " ".join(source) + " "
            while i + n < len(words) and (" " + " ".join(words[i:i + n + 1]) + " ") in source_text:
                n += 1
            best = max(best, n)
            i += n
        else:
            i += 1
    return best


def judge(text: str, context: CriticContext, *, logprob: float = 0.0, tokens: int = 0,
          finish_reason: str = "eos") -> Verdict:
    """Score one candidate: the model's own words (not metagen's opening)."""
    words = words_of(text)
    findings: dict[str, float] = {}
    if context.names:
        findings["names"] = sum(names_any(text, forms) for forms in context.names) / len(context.names)
    if context.details:
        findings["details"] = min(1.0, len(set(words) & context.details) / 3)
    findings["invented"] = float(min(3, len(unknown_names(text, context.vocabulary, context.spellings))))
    relatives = set(invented_relatives(text, context.relations))
    if relatives:  # recorded only when there is one, so verdicts of clean candidates read as before
        findings["relatives"] = float(min(3, len(relatives)))
    if context.dates is not None:
        dated = len(off_world_dates(text, context.dates))
        if dated:  # recorded only when there is one, so verdicts of clean candidates read as before
            findings["dated"] = float(min(3, dated))
    findings["garbled"] = float(is_garbled(text, context.scripts, context.exempt))
    findings["banned"] = float(banned_hits(text, context.banned))
    run = longest_shared_run(words, context.prompt_words)
    findings["copied"] = float(max(0, run - COPY_RUN + 1))
    findings["repetition"] = repetition(text)
    findings["markup"] = float(min(3, len(_MARKUP.findall(text))))
    stock = len(_STOCK.findall(text))
    if stock:  # recorded only when there is one, so the critic's records of plain candidates read as before
        findings["stock"] = float(min(3, stock))
    echoes = len(_ECHO.findall(text)) + len(_META.findall(text)) + len(_THE_END.findall(text))
    script_lines = len(_SCRIPT_LINE.findall(text))  # one "The Docks: ..." is a label, two or more a script
    findings["echo"] = float(min(2, echoes + (script_lines if script_lines >= 2 else 0)))
    stripped = text.rstrip().rstrip("\"'”’)")
    findings["unfinished"] = float(bool(stripped) and stripped[-1] not in ".!?…")
    if context.target_words:
        findings["short"] = float(len(words) < context.target_words / 2)
    if context.avoid_starts:
        findings["same_start"] = float(tuple(words[:2]) in context.avoid_starts)
    restated = len(set(ngrams(words, 4)) & context.earlier)
    if restated:  # "the fire in the great hall's hearth" in every paragraph: round nine's readers' first complaint
        findings["restated"] = float(min(6, restated))
    narration = _QUOTED.sub(" ", text)  # the narrator's words, outside quoted speech
    if context.narrator_person in ("second", "third"):
        wrong = len(_FIRST_PERSON.findall(narration))
        if context.narrator_person == "third":
            wrong += len(_SECOND_PERSON.findall(narration))
        findings["voice"] = float(min(3, wrong))
    if context.cast_pronoun:
        # "he" in narration about an all-women cast: a character given the wrong gender, or a man
        # nobody asked for; readers flag both.
        other = _HE if context.cast_pronoun == "she" else _SHE
        findings["pronoun"] = float(min(3, sum(w in other for w in words_of(narration))))
    if context.moderation is not None:
        from metagen.moderation import exceeding

        over = exceeding(text, context.moderation)
        if over:  # recorded only when there is one, so the critic's records of clean candidates stay as they were
            findings["rating"] = float(min(3, over))
    findings["logprob"] = logprob / tokens if tokens else 0.0
    return Verdict(findings, sum(WEIGHTS[k] * v for k, v in findings.items()))


def best_index(verdicts: Sequence[Verdict]) -> int:
    """The highest-scoring candidate; the earlier one on a tie."""
    best = 0
    for i, verdict in enumerate(verdicts):
        if verdict.score > verdicts[best].score:
            best = i
    return best


__all__ = ["CriticContext", "Verdict", "WEIGHTS", "banned_hits", "best_index", "cast_pronoun", "character_forms",
           "common_words", "critic_context", "distinct_n", "fold", "invented_relatives", "judge", "location_forms",
           "longest_shared_run", "misspelled_names", "name_spellings", "names_any", "ngrams", "off_world_dates", "pronoun_of",
           "relation_vocabulary", "repetition", "requested_forms", "unknown_names", "words_of", "world_names",
           "world_dates", "world_prose", "world_vocabulary", "write_common_words", "writing_guard"]
