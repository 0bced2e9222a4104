"""What a world has, and what a text makes up: names, words, dates, ranks, pronouns, scripts.

The critic (metagen.critic) and `metagen eval` (metagen.measure) hold a text to its world with
these heuristics: the forms that name a character or place, every word the world writes, the
capitalised words, ranks and dates a text brings from outside it, a character's name spelled
wrongly, the pronoun a cast shares and the scripts its prose uses. Family words against the
world's ties are metagen.kinship's.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metagen.scripts import is_garbled, prose_scripts, script_letters
from metagen.text import closest, fold, mentions, words_of
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
WORD = re.compile(r"[^\W\d_][\w'’-]*")  # a word: a letter, then letters, digits, apostrophes, hyphens
POSSESSIVE = re.compile(r"['’]s$")  # "Hollin's": the name without it


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
    titles = TITLES | {fold(w) for w in WORD.findall(c.role or "")}
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
    relations, where "Sister Maëlle" is a title and no one's sister (kinship.relation_vocabulary)."""
    found: set[str] = set()
    for value in _world_strings(world, cast_names=cast_names):
        words = [fold(w) for w in WORD.findall(value.replace("-", " "))]
        found.update(words)
        found.update(POSSESSIVE.sub("", w) for w in words)  # "Hollin's Keep" also names Hollin
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
    words = {POSSESSIVE.sub("", w) for c in world.characters for n in (c.name, *c.aliases) for w in WORD.findall(n)}
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
    for m in WORD.finditer(text):
        word = POSSESSIVE.sub("", m.group())
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
    header = "# Lower-case whole words of SmolLM2-135M's tokenizer (Apache-2.0): metagen.grounding.common_words\n"
    path.write_text(header + "\n".join(words) + "\n", encoding="utf-8")
    return len(words)


def _ordinary_word(key: str, known: frozenset[str]) -> bool:
    """Whether a capitalised word opening a sentence (folded, no possessive) reads as an everyday
    word rather than a name: a contraction ("You're"), an adverb in -ly, or in each part of a
    hyphenated word a common or known word, whole, with an ending ("Crumbling": crumble) or
    joined of two ("Moonlight")."""
    if "'" in key or key.endswith("ly"):
        return True
    common = common_words()

    def word(text: str) -> bool:
        return text in common or text in known

    def everyday(part: str) -> bool:
        stems = [part] + [part[:-len(e)] + extra for e in _ENDINGS if part.endswith(e) for extra in ("", "e")]
        return any(word(stem) for stem in stems) or any(
            word(part[:i]) and word(part[i:]) for i in range(MIN_COMPOUND, len(part) - MIN_COMPOUND + 1))

    return all(everyday(part) for part in key.split("-") if part)


def unknown_names(text: str, vocabulary: frozenset[str], spellings: frozenset[str] = frozenset()) -> list[str]:
    """Capitalized words that the world never mentions and that are not common capitalized words: a
    heuristic for people (or places) the model made up. At a sentence start (or quoted speech's
    first word) a capitalised word counts only when it is no everyday word either (_ordinary_word):
    "Maude's eyes lit up" (the README's story, round ten) invents Maude. Given the world's
    name_spellings, a character's name spelled wrongly counts too, wherever it stands."""
    found = misspelled_names(text, spellings, vocabulary)
    lower = frozenset(fold(w) for w in WORD.findall(text) if w[0].islower())  # "Giant" opens, "giant" recurs
    for m in WORD.finditer(text):
        word = m.group()
        if not word[0].isupper() or not any(ch.islower() for ch in word[1:]):
            continue  # lower case, or all capitals (shouting, acronyms)
        if POSSESSIVE.sub("", word) in found:
            continue  # counted above
        key = POSSESSIVE.sub("", fold(word))
        parts = [p for p in key.split("-") if p]
        if key in STOPLIST or key in vocabulary or (parts and all(p in vocabulary or p in STOPLIST for p in parts)):
            continue
        before = text[: m.start()].rstrip(" \t*_\"'“‘(")
        opening = not before or before[-1] in ".!?:;\n…—–-" or text[m.start() - 1] in "\"“‘"
        if opening and _ordinary_word(key, vocabulary | lower):
            continue
        found.append(word)
    return found


# A speaker mixed up about who they are (round fourteen's readers put speakers mixed up first among a
# dialogue's defects): naming themselves ("Hi Pip!" from Pip, "The weather script was edited by Lin
# Xiaoyu" from Lin), or introducing themselves by another's name ("My name is Maëlle" from her mother).
# Saying who one is stays fine: "I'm Pip.", "My name is Maëlle" from Maëlle.
_INTRODUCTION = re.compile(r"(?:\bI'm|\bI’m|\bI am|\bname is|\bname's|\bcall me|\bit's|\bit is|\bthis is)\s*$",
                           re.IGNORECASE)


def _named(line: str, forms: Sequence[str]) -> dict[int, tuple[str, bool]]:
    """Where each of `forms` stands in line (the longest form at a place): (the words, whether an
    introduction leads to them). A role-like form ("the Pilot") is not a name here."""
    found: dict[int, tuple[str, bool]] = {}
    for form in sorted(forms, key=len, reverse=True):  # "Maëlle Vær" before "Maëlle"
        if fold(form).startswith("the "):
            continue
        for m in re.finditer(rf"(?<!\w){re.escape(form)}(?!\w)", line):
            found.setdefault(m.start(), (m.group(), bool(_INTRODUCTION.search(line[:m.start()]))))
    return found


def self_named(line: str, own: Sequence[str], others: Sequence[str] = ()) -> list[str]:
    """The names a speaker gets wrong about themselves in their own line: their own names (`own`,
    character_forms) outside an introduction, and another's (`others`) in one."""
    mine, theirs = _named(line, own), _named(line, others)
    wrong = {at: words for at, (words, introduced) in mine.items() if not introduced}
    wrong |= {at: words for at, (words, introduced) in theirs.items() if introduced and at not in mine}
    return [wrong[at] for at in sorted(wrong)]


# Ranks and offices that stand for one person: a story that gives Ashenmere (a queen's realm) "the king"
# has made someone up, and contradicts the world (25 of 414 earlier texts of Ashenmere's did; round
# twelve's readers put "a king for the queen" first among the facts the model gets wrong). Words also
# common in other senses ("lady", "count", "general", "chief") are left out.
RANK_WORDS = frozenset("""king queen prince princess emperor empress duke duchess baron baroness earl sultan pharaoh
tsar lord wizard sorcerer sorceress witch warlock god goddess pope bishop mayor president governor""".split())


def invented_ranks(text: str, vocabulary: frozenset[str]) -> list[str]:
    """Rank words in text (king, princess, sorcerer, ...) that `vocabulary` (the world's words, its
    names' titles among them) never writes, singular or plural, folded and singular. A rank before a capitalised word is a
    title of a name ("King Arvid"), which the invented-name check judges."""
    found = []
    for match in WORD.finditer(text):
        written = POSSESSIVE.sub("", fold(match.group()))
        # as written, or singular: kings, princesses, witches
        forms = (written, written[:-1] if written.endswith("s") else "", written[:-2] if written.endswith("es") else "")
        word = next((w for w in forms if w in RANK_WORDS), "")
        if not word or {word, word + "s", word + "es"} & vocabulary:
            continue
        if text[match.end():].lstrip(" ")[:1].isupper():
            continue
        found.append(word)
    return found


# A person the narration brings in without a name: "A lone figure stood on the platform", "a young girl
# stood before Dario", "there was an old man". A story's prompt says "Use only these people; invent no one
# else", and readers name such strangers among the commonest faults; a 135M model brought one into 14 of
# 72 stories (round forty-eight). A description of one of the cast ("Brannoc, a young man with a beard")
# is not one, nor a likeness ("like a man possessed", "Ysolde was a woman who"), nor a stranger given a
# name ("A young girl, Pipa Halloway, stood").
STRANGER_NOUNS = frozenset("""woman man girl boy child stranger figure lady gentleman youth lad lass traveller
traveler knight soldier guard merchant priest monk nun hermit beggar peddler maiden warrior servant visitor
newcomer fellow maid crone sailor fisherman farmer hunter thief""".split())
_NOT_ADJECTIVE = r"(?!(?:my|your|his|her|their|our|its|the|a|an|dear|and|or|but|of|to|in|on|at|for|with|from|who)\b)"
# "a lone, weathered woman": up to three words before the noun, none of them a word that ends the phrase
# ("a seal, my lady"); not followed by "who" ("A man who counts his camels ...": a saying, not a person)
_PERSON = (rf"an?\s+(?:{_NOT_ADJECTIVE}[\w'’-]+,?\s+){{0,3}}?(?P<noun>{'|'.join(sorted(STRANGER_NOUNS))})"
           r"(?![\w'’-])(?!\s+(?:who|that|whose)\b)")
_BROUGHT_IN = (
    re.compile(rf"\bthere\s+(?:was|were|stood|sat|came|appeared|is|stands|sits|comes|appears)\s+{_PERSON}", re.I),
    re.compile(rf"(?:^|\b(?:and|when|then|where)\s+)(?:suddenly,?\s+)?{_PERSON}", re.I),
    re.compile(rf"\b{_PERSON}(?:,?\s+[\w'’-]+){{0,4}}?,?\s+(?:stood|appeared|entered|approached|walked|came|stepped"
               r"|emerged|sat|arrived|rushed|ran|burst|strode|hurried|knelt|leaned|whispered|said|asked|shouted|called"
               r"|stands|appears|enters|approaches|walks|comes|steps|emerges|sits|arrives)\b", re.I),
)
_LIKENESS = re.compile(r"(?<!there\s)\b(?:was|is|were|are|be|been|being|as|like|became|becomes|seemed|seems|remained|felt|of)"
                       r"\s+(?:\w+\s+)?$", re.I)
_NAMED_BEFORE = re.compile(r"(?P<word>[A-Z][\w'’-]*)[,)]?\s*$")  # "Brannoc, a young man", "Ederyn a young man"
_NAMED_AFTER = re.compile(r"^(?:,\s*[A-Z]|\s+(?:named|called)\b)")  # "A young girl, Pipa", "a woman named Bea"


def strangers(text: str) -> list[str]:
    """The unnamed people narration brings in (quoted speech left out), as "a lone figure": one a sentence."""
    found = []
    for sentence in narrated_sentences(text):
        person = next((p for pattern in _BROUGHT_IN for m in pattern.finditer(sentence)
                       if (p := _brought_in(sentence, m))), None)
        if person:
            found.append(person.lower())
    return found


def _brought_in(sentence: str, match: re.Match) -> str:
    """The person a pattern's match brings in ("A lone figure"), or "" when the words around it say it is
    not a stranger."""
    person = re.search(_PERSON, match.group(), re.I)
    start, end = match.start() + person.start(), match.start() + person.end()
    before, after = sentence[:start], sentence[end:]
    if _LIKENESS.search(before) or _NAMED_AFTER.match(after) or _names_before(before):
        return ""
    return person.group()


def _names_before(before: str) -> bool:
    """Whether the words before a person end on a name it describes: "Brannoc, " or "Ederyn " does; a
    sentence's first word that is a common one ("Suddenly, ", "Outside, ") does not."""
    match = _NAMED_BEFORE.search(before)
    if match is None:
        return False
    return bool(before[:match.start()].strip()) or fold(match.group("word")) not in common_words()


# ----------------------------------------------------------------------------- pronouns, tense, the world's words and scripts


SHE_WORDS = frozenset("she her hers herself".split())
HE_WORDS = frozenset("he him his himself".split())
_WOMAN = frozenset("""queen princess lady sister mother daughter woman girl wife aunt grandmother niece dame
mistress widow madam madame swordswoman""".split())
_MAN = frozenset("king prince lord brother father son man boy husband uncle grandfather nephew sir master".split())


def pronoun_of(c: Character) -> str:
    """"she", "he", "they" or "it": the character's declared `pronouns`, else "she" or "he" when the
    world's words about them say so clearly, else "" (not said, or mixed). Pronouns come from its
    description, goals and secrets (which speak of the character); gendered words only from its
    name's title and its role ("her mother" in a goal is someone else)."""
    if c.pronouns:
        return c.pronouns.split("/")[0]
    about = words_of(" ".join([c.description or "", *c.goals, *c.secrets]))
    titled = words_of(" ".join([c.name.split()[0] if c.name.split() else "", c.role or ""]))
    woman = sum(w in SHE_WORDS for w in about) + 2 * sum(w in _WOMAN for w in titled)
    man = sum(w in HE_WORDS for w in about) + 2 * sum(w in _MAN for w in titled)
    if woman and woman >= 3 * man:  # one "She" and no "he": clear; "she" twice and "his" once: not
        return "she"
    if man and man >= 3 * woman:
        return "he"
    return ""


def foreign_pronouns(cast: Sequence[Character]) -> frozenset[str]:
    """The gendered pronoun words (she, her, ...; he, him, ...) that no one of the cast takes, when
    every one's pronoun is known: in narration about them such a word gives one of them the wrong
    gender, or brings in someone nobody asked for. Empty when one of the cast's is not known."""
    found = {pronoun_of(c) for c in cast}
    if not cast or "" in found:
        return frozenset()
    return (frozenset() if "she" in found else SHE_WORDS) | (frozenset() if "he" in found else HE_WORDS)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def narrated_sentences(text: str) -> list[str]:
    """The narrator's sentences: quoted speech left out, whitespace made single spaces."""
    return [s for s in _SENTENCE_END.split(" ".join(QUOTED.sub(" ", text).split())) if s]


def pronoun_slips(text: str, cast: Sequence[Character]) -> list[str]:
    """Where narration gives one of the cast a gendered pronoun that is not theirs, as "Pip: she".

    A sentence that opens on one of the cast (by a name form, or its possessive) and names no other
    is about them: a "she" or "he" later in it that they do not take is theirs all the same ("Pip's
    eyes lit up as she took a step", of a robot the world calls "it"), and so is one opening the
    next sentence when that sentence names someone else of the cast ("Pip smiled. She had always
    been a friend to Lin Xiaoyu"). Quoted speech is left out; a character whose pronoun is not
    known is not judged. Only a pronoun another of the cast takes is a slip: one that none of them
    takes is foreign_pronouns's to count.
    """
    known = {c.id: pronoun_of(c) for c in cast}
    taken = {"she", "he"} & set(known.values())  # another: foreign_pronouns's, not counted twice
    forms = {c.id: character_forms(c) for c in cast}
    sentences = narrated_sentences(text)
    slips = []
    for i, sentence in enumerate(sentences):
        named = [cid for cid in forms if names_any(sentence, forms[cid])]
        subject = next((cid for cid in named if any(sentence.startswith(f) for f in forms[cid])), None)
        if subject is None or len(named) > 1 or not known[subject]:
            continue
        wrong = taken - {known[subject]}  # the others' gendered subject pronouns
        name = next(f for f in forms[subject] if sentence.startswith(f))
        inside = [w for w in words_of(sentence)[1:] if w in wrong]
        following = sentences[i + 1] if i + 1 < len(sentences) else ""
        opener = words_of(following)[:1]
        if inside:
            slips.append(f"{name}: {inside[0]}")
        elif opener and opener[0] in wrong and any(names_any(following, forms[c]) for c in forms if c != subject):
            slips.append(f"{name}: {opener[0]}")
    return slips


def quotes_left_out(text: str) -> str:
    """`text` with its closed quotes left out, a quote that ends a sentence ending it: 'Amos said, "Go."
    He looked at Amos' reads 'Amos said, . He looked at Amos'."""
    return QUOTED.sub(lambda quote: ". " if quote.group()[-2:-1] in ".!?" else " ", text)


def named_twice(text: str, cast: Sequence[Character]) -> list[str]:
    """The forms by which narration names one of the cast a second time in one sentence, where a
    pronoun belongs ("Agnes looked up at Agnes", "Agnes had tended Agnes's garden": a 135M model
    loses track of who is who); "Queen Ysolde Vær ... Ysolde" is twice. Quoted speech is left out,
    and a quote that ends a sentence ends it ('Amos said, "Go." He looked at Amos' is two sentences);
    an unclosed quote runs to the end of the text."""
    narration = quotes_left_out(text)
    narration = fold(re.sub(r"[\"“].*", " ", narration))
    found = []
    for c in cast:
        forms = sorted({fold(f) for f in character_forms(c)} - {""}, key=len, reverse=True)
        if not forms:  # an empty alternation would match between every two words
            continue
        name = rf"(?<!\w)(?:{'|'.join(map(re.escape, forms))})(?!\w)"
        found += [said[-1] for sentence in _SENTENCE_END.split(narration) if len(said := re.findall(name, sentence)) > 1]
    return found


# The narrator's tense, read from the words that show it: forms of be, have and do, a few common
# irregular verbs, and a verb right after a subject pronoun ("she turned", "it hums"). A regular
# "-ed" word elsewhere is left out: descriptions are full of participles ("rusted cranes", "is
# covered") whatever their tense.
_PAST_VERBS = frozenset("""was were had did wasn't weren't hadn't didn't stood sat lay hung rose fell came went
saw felt told held made took knew thought began ran grew spoke heard found left kept brought wore shone gave
got became""".split())
_PRESENT_VERBS = frozenset("""is are am has have does do isn't aren't hasn't haven't doesn't don't it's there's
that's he's she's they're you're we're here's stands sits lies hangs rises falls comes goes sees feels tells
holds makes takes knows thinks begins runs grows speaks hears finds leaves keeps brings wears shines gives
gets becomes""".split())
_SUBJECTS = frozenset("he she it they we i you".split())
QUOTED = re.compile(r"[\"“][^\"”]*[\"”]")  # quoted speech: a narrator in the past may quote the present


def narration_tense(text: str) -> str:
    """"past" or "present", the tense most of the narration's verbs show (quoted speech left out);
    "" when they do not lean either way."""
    words = words_of(QUOTED.sub(" ", text))
    past = present = 0
    for i, word in enumerate(words):
        if word in _PAST_VERBS:
            past += 1
        elif word in _PRESENT_VERBS:
            present += 1
        elif i and words[i - 1] in _SUBJECTS and len(word) > 3:
            if word.endswith("ed"):
                past += 1
            elif word.endswith("s") and not word.endswith("ss"):
                present += 1
    return "past" if past > present else "present" if present > past else ""


def world_names(world: World) -> tuple[str, ...]:
    """Every proper name the world gives: characters and their aliases, places, factions, the world."""
    names = [world.name, *(f.name for f in world.factions), *(loc.name for loc in world.locations)]
    for c in world.characters:
        names += [c.name, *c.aliases]
    return tuple(dict.fromkeys(n for n in names if n.strip()))


# A world's own texts are read again for every piece's settings (a batch of 500 jobs asked 500 times,
# 12 ms each on nexus-hub); the few worlds a process uses are kept, keyed by the frozen World.
_WORLDS_KEPT = 16


def world_prose(world: World) -> list[str]:
    """The world's own sentences (summary, descriptions, lore, sample lines), names taken out."""
    return list(_world_prose(world))


@functools.lru_cache(maxsize=_WORLDS_KEPT)
def _world_prose(world: World) -> tuple[str, ...]:
    """world_prose's texts, made once a world."""
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
    return tuple(out)


STOCK_PHRASES_FILE = Path(__file__).parent / "data" / "stock-phrases.txt"


@functools.cache
def _stock_list() -> tuple[str, ...]:
    """metagen/data/stock-phrases.txt, read once: every story and scene's settings ask for it."""
    lines = STOCK_PHRASES_FILE.read_text(encoding="utf-8").splitlines()
    return tuple(phrase for phrase in (line.strip() for line in lines if not line.startswith("#")) if phrase)


@functools.lru_cache(maxsize=_WORLDS_KEPT)
def stock_phrases(world: World) -> tuple[str, ...]:
    """The stock words and phrases of machine-written description (metagen/data/stock-phrases.txt)
    that the world itself never writes: a world with a place called "the Oasis" keeps "oasis"."""
    own = " ".join([*world_prose(world), *world_names(world), *world.style.preferred_words]).casefold()
    return tuple(phrase for phrase in _stock_list() if not re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", own))


# Things a story brings in from outside its world. Each group: the words that bring the thing in, which a
# story beat may not say (avoid_stock: plan._StoryWriter draws the beat again with them banned) unless the
# world or the request writes one of them or of its cues.
# Round forty-nine's readers named "seas and salt in worlds without them": the Ashen Mere, a lake, became
# "the salty sea" in 35 of 123 Ashenmere stories of rounds 43-49, and the sea came to 20 of 246 stories of
# three inland held-aside worlds; dragons came to Saltgate's harbour of 2041. A story beat that said one
# was drawn again in round fifty, and blind readers chose the new story in 32 of 46 readings.
ABSENT_THINGS = {
    "sea": ("sea seas ocean oceans seawater saltwater seaside seashore seagull seagulls seafaring".split(),
            "harbour harbor tide tides coast coastal seawall gull gulls ship ships sailor sailors".split()),
    "creatures of legend": ("dragon dragons wizard wizards witch witches sorcerer sorcerers sorceress elf elves "
                            "goblin goblins troll trolls ogre ogres unicorn unicorns fairy fairies dwarves "
                            "mermaid mermaids".split(),
                            "magic magical mage mages spell spells sorcery enchanted enchantment wand".split()),
}


@functools.lru_cache(maxsize=_WORLDS_KEPT)
def absent_things(world: World, given: str = "") -> tuple[str, ...]:
    """The words of ABSENT_THINGS' groups that neither the world's prose, names and lore keys nor
    `given` (a request's own words) write, nor any of their cues: a story beat that says one is drawn
    again with them banned. A word that begins a longer word the world writes, one the tokenizer does
    not hold whole (common_words), is left out, as its banned tokens would begin that word too
    ("dragonflies")."""
    # The world's prose, names and lore keys: not its content rules, where banned_words: [dragon] is no dragon.
    texts = [*world_prose(world), *world_names(world), *(key for entry in world.lore for key in entry.keys), given]
    own = {POSSESSIVE.sub("", fold(w)) for text in texts for w in WORD.findall(text.replace("-", " "))}
    longer = [w for w in own if w not in common_words()]
    return tuple(word for words, cues in ABSENT_THINGS.values() if not own & {*words, *cues}
                 for word in words if not any(w != word and w.startswith(word) for w in longer))


@functools.lru_cache(maxsize=_WORLDS_KEPT)
def _prose_letters(world: World):
    """script_letters of the world's prose, tallied once a world."""
    return script_letters(_world_prose(world))


def writing_guard(world: World, request_texts: Sequence[str] = ()) -> dict[str, tuple[str, ...]]:
    """The script guard's settings for a world: the scripts of its prose (and of the request's
    own words), and its names that use any other script, whose tokens stay allowed."""
    scripts = prose_scripts(request_texts, _prose_letters(world))
    exempt = tuple(n for n in world_names(world) if is_garbled(n, scripts))
    return {"scripts": scripts, "script_exempt": exempt}


__all__ = [
    "ABSENT_THINGS", "COMMON_WORDS_FILE", "HE_WORDS", "MIN_COMPOUND", "MIN_FIRST_WORD",
    "MIN_SPELLING", "NEAR_SPELLING", "QUOTED", "RANK_WORDS", "SHE_WORDS", "STOCK_PHRASES_FILE", "STOPLIST", "STRANGER_NOUNS", "TITLES",
    "absent_things", "character_forms", "common_words", "foreign_pronouns", "invented_ranks",
    "location_forms", "misspelled_names", "name_spellings", "named_twice", "names_any", "quotes_left_out",
    "narration_tense", "off_world_dates", "pronoun_of", "pronoun_slips", "self_named",
    "stock_phrases", "strangers", "unknown_names", "world_dates", "world_names", "world_prose", "world_vocabulary",
    "write_common_words", "writing_guard",
]
