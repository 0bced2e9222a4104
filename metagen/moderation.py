"""Moderation: text checked, span by span, against a world's rules and its rating.

Rules come from three places: the world's own banned words and topics, a general profanity list
(the English dictionary of the glin-profanity package) and metagen's descriptor lexicon
(metagen/data/moderation.yaml), which names the words that make each content descriptor
(violence, language, ...) mild or strong and says what each rating allows. Words match whole,
after leetspeak, stretched, spaced and masked letters are undone; a word inside another word
never matches (docs/moderation.md has the rules and the measured precision and recall).
"""

from __future__ import annotations

import bisect
import functools
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from metagen.errors import ConfigError
from metagen.text import did_you_mean
from metagen.world.types import DESCRIPTORS, RATINGS, SEVERITIES, World

LEVELS = ("none", *SEVERITIES)  # how much of a descriptor is allowed, least first
MODES = ("off", "report", "enforce")  # --moderation: while generating, do nothing | record | also refuse to write
# Where a rule comes from, as reports name it.
SOURCES = {
    "banned_words": "the world's banned words",
    "banned_topics": "the world's banned topics",
    "world_words": "the world's descriptor words",
    "lexicon": "metagen's descriptor lexicon",
    "profanity_list": "the profanity list (glin-profanity)",
}
_ORDINARY = "ordinary"  # the source of the words and phrases that are never flagged
BANNED = "banned"  # the category of a banned word or topic that the lexicon does not name
_ORDER = ("profanity_list", "lexicon", "ordinary", "world_words", "banned_topics", "banned_words")  # later wins

# A word: letters and digits with the leetspeak and mask characters among them ("sh1t", "$h!t", "f**k"),
# apostrophes inside ("don't") and zero-width characters (removed when normalized).
_TOKEN = re.compile(r"(?:[^\W_]|[@$!*+|\u200b-\u200d\u2060])+(?:['’](?:[^\W_]|[@$!*+|\u200b-\u200d\u2060])+)*")
_PHRASE_GAP = re.compile(r"[\s-]+")  # between the words of a phrase
_LETTER = re.compile(r"[^\W_]")  # a letter or digit: a term needs one in each word
_SPACED_GAP = re.compile(r"[ .\-_]")  # between the letters of "f u c k", "f.u.c.k", "f-u-c-k"
_MIN_SPACED = 3  # letters in a row that count as one spaced-out word
_STRETCH = re.compile(r"(.)\1{2,}")  # "fuuuck": three or more of one letter
_SUFFIXES = ("ing", "ers", "ies", "es", "ed", "er", "s", "y")  # plain inflections of a one-word term
_MIN_STEM = 3  # an inflected word's stem has at least this many letters


@dataclass(frozen=True)
class Term:
    """One rule: words that match, what they are, and where the rule comes from."""

    words: tuple[str, ...]  # normalized words, matched in a row
    category: str  # a descriptor (violence, ...), or "banned" for a world's own ban
    severity: str  # mild | strong
    source: str  # a key of SOURCES
    rule: str  # the term as written where it comes from


@dataclass(frozen=True)
class Hit:
    """A span of text that a rule matches, and what it means for the rating."""

    start: int  # offsets in the text checked
    end: int
    words: str  # the text as written
    term: Term
    implies: str | None  # the mildest rating that allows it; None for a world's ban (never allowed)
    exceeds: bool  # more than the target allows

    def to_dict(self, line: int = 0, column: int = 0) -> dict[str, Any]:
        where = {"line": line, "column": column} if line else {}
        return {**where, "words": self.words, "category": self.term.category, "severity": self.term.severity,
                "source": self.term.source, "rule": self.term.rule, "implies": self.implies,
                "exceeds": self.exceeds}


# ----------------------------------------------------------------------------- the lexicon


@dataclass(frozen=True)
class Lexicon:
    """metagen's data file read once: each rating's ceilings and the terms of every source it names."""

    ratings: dict[str, dict[str, str]]  # rating -> descriptor -> the most it allows
    terms: dict[tuple[str, ...], Term]  # the profanity list, then the descriptor lexicon over it
    ordinary: dict[tuple[str, ...], Term]  # never flagged: matched like terms, so no shorter one claims them
    exact_only: frozenset[str]  # one-word rules never matched through an inflection ("chinked" is no "chink")
    library: str  # the profanity list's package and version, for reports


@functools.lru_cache(maxsize=1)
def load_lexicon() -> Lexicon:
    """metagen/data/moderation.yaml and the profanity list, checked; ValueError names what is wrong."""
    data = yaml.safe_load(resources.files("metagen").joinpath("data/moderation.yaml").read_text(encoding="utf-8"))
    ratings = data["ratings"]
    if tuple(ratings) != RATINGS or any(set(r) != set(DESCRIPTORS) for r in ratings.values()):
        raise ValueError(f"moderation.yaml: ratings must be {', '.join(RATINGS)}, each naming every descriptor")
    for rating, ceilings in ratings.items():
        if any(v not in LEVELS for v in ceilings.values()):
            raise ValueError(f"moderation.yaml: ratings.{rating}: a ceiling is not one of {', '.join(LEVELS)}")
    if set(data["descriptors"]) != set(DESCRIPTORS):
        raise ValueError(f"moderation.yaml: descriptors must be {', '.join(DESCRIPTORS)}")
    listed = data["profanity_list"]
    library, version = _profanity_words()
    terms: dict[tuple[str, ...], Term] = {}
    for word in library:
        words = _term_words(word)
        if words:
            terms[words] = Term(words, listed["category"], listed["severity"], "profanity_list", word)
    for category, by_severity in data["descriptors"].items():
        for severity, words in by_severity.items():
            if severity not in SEVERITIES:
                raise ValueError(f"moderation.yaml: descriptors.{category}.{severity}: expected mild or strong")
            terms.update(_terms(words, category, severity, "lexicon"))
    return Lexicon(ratings=ratings, terms=terms, ordinary=_terms(data["ordinary"], "", "", _ORDINARY),
                   exact_only=frozenset(normalize(w) for w in data["exact_only"]), library=f"glin-profanity {version}")


def _profanity_words() -> tuple[list[str], str]:
    """The general profanity list: glin-profanity's English dictionary, and the package's version."""
    import glin_profanity
    from glin_profanity.data.dictionary import DictionaryLoader

    return DictionaryLoader().get_words("english"), glin_profanity.__version__


def _terms(words, category: str, severity: str, source: str) -> dict[tuple[str, ...], Term]:
    out = {}
    for word in words:
        key = _term_words(word)
        if key:
            out[key] = Term(key, category, severity, source, str(word))
    return out


def rating_allows(rating: str) -> dict[str, str]:
    """What a rating allows: descriptor -> none | mild | strong."""
    return load_lexicon().ratings[rating]


def rating_for(category: str, severity: str) -> str:
    """The mildest rating that allows a descriptor at a severity."""
    ratings = load_lexicon().ratings
    return next(r for r in RATINGS if LEVELS.index(ratings[r][category]) >= LEVELS.index(severity))


# ----------------------------------------------------------------------------- words


@functools.lru_cache(maxsize=65536)
def normalize(word: str) -> str:
    """A word as rules compare it: case folded, look-alike and accented letters made plain, leetspeak undone."""
    from glin_profanity import normalize_leetspeak, normalize_unicode

    plain = normalize_unicode(word.casefold().replace("’", "'"))
    return normalize_leetspeak(plain, level="moderate", collapse_repeated=False, remove_spaced_chars=False)


def _term_words(text: str) -> tuple[str, ...]:
    """A term's normalized words; () when it has none that text can match: an emoji, or marks
    without a letter or digit ("!!!" would be leetspeak for "iii" and flag "Henry III")."""
    raw = [w for w in _PHRASE_GAP.split(str(text).strip()) if w]
    if not raw or any(_TOKEN.fullmatch(w) is None or _LETTER.search(w) is None for w in raw):
        return ()
    return tuple(normalize(w) for w in raw)


@functools.lru_cache(maxsize=65536)
def word_forms(token: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What one written word may stand for: (exact forms, inflected stems), most literal first.

    Exact forms undo case, look-alike letters, leetspeak and stretched letters ("Fuuuck" -> "fuck");
    stems take off one plain inflection ("killers" -> "killer", "kill").
    """
    exact = [normalize(re.sub(r"['’]s$", "", token))]
    for form in list(exact):
        if _STRETCH.search(form):
            exact += [_STRETCH.sub(r"\1\1", form), _STRETCH.sub(r"\1", form)]
    stems = []
    for form in exact:
        for suffix in _SUFFIXES:
            stem = form[: -len(suffix)]
            if form.endswith(suffix) and len(stem) >= _MIN_STEM:
                stems.append(stem)
                if suffix == "ies":
                    stems.append(stem + "y")
                if len(stem) > _MIN_STEM and stem[-1] == stem[-2] and stem[-1] not in "aeiousl":
                    stems.append(stem[:-1])  # "stabbed" -> "stabb" -> "stab"
                if suffix in ("ing", "ed", "er", "ers", "es"):
                    stems.append(stem + "e")  # "raped" -> "rape", "seducing" -> "seduce"
    return tuple(dict.fromkeys(exact)), tuple(dict.fromkeys(s for s in stems if s not in exact))


@dataclass(frozen=True)
class _Word:
    start: int
    end: int
    text: str


def _trimmed(match: re.Match) -> _Word | None:
    """A word without the marks around it that are not leetspeak: "Damn!", "**Shit**" (but "@ss", "$hit")."""
    text, start, end = match.group(), match.start(), match.end()
    lead = len(text) - len(text.lstrip("*|+!"))
    tail = len(text) - len(text.rstrip("!|+" + ("*" if lead and text[0] == "*" else "")))
    if lead + tail >= len(text):
        return None
    return _Word(start + lead, end - tail, text[lead:len(text) - tail])


def _words(text: str) -> list[_Word]:
    """The text's words in order, with letters spaced out ("f u c k") joined into one word."""
    words = [w for w in (_trimmed(m) for m in _TOKEN.finditer(text)) if w is not None]
    out: list[_Word] = []
    i = 0
    while i < len(words):
        j = i
        while (j + 1 < len(words) and len(words[j].text) == 1 and len(words[j + 1].text) == 1
               and _SPACED_GAP.fullmatch(text[words[j].end:words[j + 1].start])):
            j += 1
        if j - i + 1 >= _MIN_SPACED:
            out.append(_Word(words[i].start, words[j].end, "".join(w.text for w in words[i:j + 1])))
            i = j + 1
        else:
            out.append(words[i])
            i += 1
    return out


# ----------------------------------------------------------------------------- a policy


@dataclass(frozen=True)
class Policy:
    """What one check holds text to: the terms, the target and the spans never flagged."""

    rating: str | None  # the target rating; None with no allows either: report only
    allowed: dict[str, str] | None  # descriptor -> none | mild | strong; None: nothing exceeds
    terms: dict[tuple[str, ...], Term] = field(repr=False)
    exempt: tuple[str, ...] = ()  # the world's names and allowed words
    exact_only: frozenset[str] = frozenset()  # one-word rules that match only as written
    masks: dict[int, list[Term]] = field(default_factory=dict, repr=False)  # one-word terms by length ("f**k")
    longest: int = 1  # words in the longest term

    def exceeds(self, term: Term) -> bool:
        """Whether a rule's match is more than this policy allows (a world's ban always is)."""
        if term.source in ("banned_words", "banned_topics"):
            return True
        if self.allowed is None:
            return False
        return LEVELS.index(term.severity) > LEVELS.index(self.allowed.get(term.category, "none"))

    def implies(self, term: Term) -> str | None:
        """The mildest rating that allows a rule's match; None for a world's ban."""
        if term.source in ("banned_words", "banned_topics") or term.category not in DESCRIPTORS:
            return None
        return rating_for(term.category, term.severity)


def policy_for(world: World | None = None, rating: str | None = None) -> Policy:
    """The policy of a world (its rating, allows, bans, words and names), or of a rating alone.

    `rating` replaces the world's; the world's allows still hold within it.
    """
    lexicon = load_lexicon()
    terms = {**lexicon.terms, **lexicon.ordinary}  # "a murder of crows" is matched, and is no murder
    exempt: list[str] = []
    allows = None
    if world is not None:
        rating = rating or world.style.rating
        allows = world.style.allows
        for category, by_severity in world.content.descriptor_words.items():
            for severity, words in by_severity.items():
                terms.update(_terms(words, category, severity, "world_words"))
        for source in ("banned_topics", "banned_words"):
            for word in getattr(world.content, source):
                key = _term_words(word)
                if key:
                    known = terms.get(key)
                    category, severity = (known.category, known.severity) if known else (BANNED, "strong")
                    terms[key] = Term(key, category, severity, source, word)
        from metagen.grounding import world_names

        exempt = [*world_names(world), *world.content.allowed_words]
    allowed = None
    if rating is not None:
        ceilings = rating_allows(rating)
        allowed = dict(ceilings) if allows is None else {
            c: min(allows.get(c, "none"), ceilings[c], key=LEVELS.index) for c in DESCRIPTORS}
    elif allows is not None:
        allowed = {c: allows.get(c, "none") for c in DESCRIPTORS}
    masks: dict[int, list[Term]] = {}
    for key, term in sorted(terms.items(), key=lambda kv: _ORDER.index(kv[1].source), reverse=True):
        if len(key) == 1 and term.source != _ORDINARY:
            masks.setdefault(len(key[0]), []).append(term)
    return Policy(rating=rating, allowed=allowed, terms=terms, exempt=tuple(dict.fromkeys(exempt)),
                  exact_only=lexicon.exact_only, masks=masks, longest=max(len(k) for k in terms))


# ----------------------------------------------------------------------------- checking text


def check_text(text: str, policy: Policy) -> list[Hit]:
    """Every span of text that a rule of the policy matches, in order; longer phrases first."""
    words = _words(text)
    exempt = _exempt_spans(text, policy.exempt)
    hits: list[Hit] = []
    i = 0
    while i < len(words):
        found = _match_at(text, words, i, policy)
        if found is None:
            i += 1
            continue
        n, term = found
        start, end = words[i].start, words[i + n - 1].end
        if term.source != _ORDINARY and not any(s < end and start < e for s, e in exempt):
            hits.append(Hit(start, end, text[start:end], term, policy.implies(term), policy.exceeds(term)))
        i += n
    return hits


def _match_at(text: str, words: list[_Word], i: int, policy: Policy) -> tuple[int, Term] | None:
    """The longest term that starts at words[i]: (its length in words, the term)."""
    for n in range(min(policy.longest, len(words) - i), 1, -1):
        span = words[i:i + n]
        if all(_PHRASE_GAP.fullmatch(text[a.end:b.start]) for a, b in zip(span, span[1:])):
            term = policy.terms.get(tuple(word_forms(w.text)[0][0] for w in span))
            if term is not None:
                return n, term
    exact, stems = word_forms(words[i].text)
    for form in exact:
        if (form,) in policy.terms:
            return 1, policy.terms[(form,)]
    for stem in stems:
        if (stem,) in policy.terms and stem not in policy.exact_only:
            return 1, policy.terms[(stem,)]
    masked = _masked(words[i].text, policy)
    return (1, masked) if masked else None


def _masked(token: str, policy: Policy) -> Term | None:
    """A masked word ("f**k", "sh*t"): the first term of its length that its letters fit."""
    word = token.casefold()
    if "*" not in word.strip("*") or not word[:1].isalpha() or sum(c.isalpha() for c in word) < 2:
        return None
    pattern = re.compile("".join("[a-z]" if c == "*" else re.escape(c) for c in word))
    return next((t for t in policy.masks.get(len(word), ()) if pattern.fullmatch(t.words[0])), None)


def _exempt_spans(text: str, names: tuple[str, ...]) -> list[tuple[int, int]]:
    spans = []
    for name in names:
        pattern = r"[\s-]+".join(re.escape(part) for part in name.split())
        spans += [m.span() for m in re.finditer(rf"(?<!\w){pattern}(?!\w)", text, re.IGNORECASE)]
    return spans


def exceeding(text: str, policy: Policy) -> int:
    """How many spans of text are more than the policy allows (the critic's finding)."""
    return sum(hit.exceeds for hit in check_text(text, policy))


def implied_rating(hits: list[Hit]) -> str:
    """The mildest rating that allows every descriptor hit (G when there is none)."""
    found = [RATINGS.index(h.implies) for h in hits if h.implies]
    return RATINGS[max(found, default=0)]


def verdict(text: str, policy: Policy, mode: str) -> dict[str, Any]:
    """What a piece's front matter records: the mode, the target, whether the text exceeds it, every hit."""
    hits = check_text(text, policy)
    lines = _line_starts(text)
    return {"mode": mode, "rating": policy.rating, "exceeds": any(h.exceeds for h in hits),
            "implies": implied_rating(hits), "hits": [h.to_dict(*position(lines, h.start)) for h in hits]}


def _line_starts(text: str) -> list[int]:
    return [0] + [m.end() for m in re.finditer("\n", text)]


def position(line_starts: list[int], offset: int) -> tuple[int, int]:
    """(line, column), both from 1, of an offset, given where each line starts."""
    line = bisect.bisect_right(line_starts, offset)
    return line, offset - line_starts[line - 1] + 1


@dataclass(frozen=True)
class Finding:
    """A hit in a file: the file, its line and column there (from 1), and the hit."""

    path: str
    line: int
    column: int
    hit: Hit

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, **self.hit.to_dict(self.line, self.column)}


def check_files(paths, policy: Policy, stdin: bytes | None = None) -> tuple[list, list[Finding]]:
    """Check files and folders (metagen.output.texts finds and reads them): (files read, findings).

    Every file is read and checked before anything is returned, so a bad one (binary, too large,
    unreadable) raises InputError before any finding is reported.

    Args:
        stdin: the bytes of standard input (None: nothing came), which a path `-` (texts.STDIN)
            stands for; findings in them are named `<stdin>`.
    """
    from metagen.output.texts import STDIN, find_files, prose_segments, read_text, shown

    files = find_files(list(paths))
    findings = []
    for path in files:
        text = read_text(path, (stdin or b"") if path == STDIN else None)
        starts = _line_starts(text)
        for segment in prose_segments(path, text):
            for hit in check_text(segment.text, policy):
                findings.append(Finding(shown(path), *position(starts, segment.offset(hit.start)), hit))
    return files, findings


def refusal(piece) -> str:
    """Why --moderation enforce did not write a piece: its seed and the first span over the rating."""
    record = piece.moderation
    first = next(h for h in record["hits"] if h["exceeds"])
    target = record["rating"] or "what the world allows"
    why = (f"'{first['words']}' at line {first['line']}, column {first['column']} is {first['category']} "
           f"{first['severity']}" + (f", which needs {first['implies']}" if first["implies"] else
                                     f" ({first['source'].replace('_', ' ')} of the world)"))
    return f"{piece.kind} {piece.subject} seed {piece.seed} exceeds {target}: {why}"


def check_rating(rating: str | None) -> str | None:
    """--rating, checked: G | PG | PG-13 | R, any case; ConfigError with "did you mean" otherwise."""
    if rating is None:
        return None
    for known in RATINGS:
        if rating.casefold() == known.casefold():
            return known
    raise ConfigError(f"--rating must be one of {', '.join(RATINGS)}, got {rating!r}",
                      hint=did_you_mean(rating.upper(), RATINGS))


def check_mode(mode: str) -> str:
    """--moderation, checked: off | report | enforce."""
    if not isinstance(mode, str) or mode not in MODES:  # a piece's recorded mode may be anything
        raise ConfigError(f"--moderation must be one of {', '.join(MODES)}, got {mode!r}",
                          hint=did_you_mean(str(mode), MODES))
    return mode


__all__ = ["BANNED", "Finding", "Hit", "LEVELS", "Lexicon", "MODES", "Policy", "SOURCES", "Term", "check_files",
           "check_mode", "check_rating", "check_text", "refusal",
           "exceeding", "implied_rating", "load_lexicon", "normalize", "policy_for", "position", "rating_allows",
           "rating_for", "verdict", "word_forms"]
