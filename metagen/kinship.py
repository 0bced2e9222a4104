"""Family words against a world's ties: who is whose kin, and the relatives a text makes up.

Small models hang the wrong family word on a named character, give a parent the child's words,
and invent husbands and brothers no world mentions; round after round blind readers put these
first among the defects they found. The critic (metagen.critic), the editor (metagen.editor)
and `metagen eval` (metagen.measure) read them with the heuristics here; metagen.grounding
holds the rest of a world's words (names, dates, pronouns, scripts).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Sequence

from metagen.errors import ConfigError
from metagen.grounding import (POSSESSIVE, WORD, character_forms, narrated_sentences, pronoun_of, world_names,
                               world_vocabulary)
from metagen.text import fold, mentions, words_of
from metagen.world import Character, Relationship, World


# Who is whose kin, by role. A tie {with: B, kind: daughter} on A says B is A's daughter: B is A's
# "child", A is B's "parent". Small models hang the wrong family word on a named character ("Ah! My
# sister Maëlle." from her mother, "your sister Maëlle" said to Maëlle, "her sister, Maëlle" in a
# story): round fifteen's readers put who is who first among a dialogue's defects, and the family
# word alone passes invented_relatives when the world uses it elsewhere (the Lantern Order's sisters).
KIN_ROLES = {
    "parent": frozenset("mother father mom mum dad mama papa parent stepmother stepfather".split()),
    "child": frozenset("son daughter child stepson stepdaughter".split()),
    "sibling": frozenset("brother sister twin sibling".split()),
    "spouse": frozenset("husband wife widow widower fiance fiancee betrothed spouse".split()),
    "elder": frozenset("uncle aunt".split()),
    "younger": frozenset("nephew niece".split()),
    "cousin": frozenset("cousin".split()),
    "grandparent": frozenset("grandmother grandfather grandma grandpa".split()),
    "grandchild": frozenset("grandson granddaughter grandchild".split()),
}

# Family words, by the relations they belong to: a text may use one when the world uses any word of
# its group ("Maëlle, her daughter" lets a story say "her mother"). A made-up husband or brother is an
# invented person the capitalised-name check cannot see; round five's blind readers counted made-up
# relatives among the commonest defects (6 of 90 eval pieces named one the world never mentions).
# The same words as KIN_ROLES, a relation's roles together (parent and child; uncle, aunt, nephew,
# niece and cousin); the spouses' group second (_KIN's "wives").
KIN_GROUPS = tuple(frozenset().union(*(KIN_ROLES[role] for role in roles)) for roles in (
    ("parent", "child"), ("spouse",), ("sibling",), ("elder", "younger", "cousin"), ("grandparent", "grandchild")))
_KIN = {word: group for group in KIN_GROUPS for word in group} | {"wives": KIN_GROUPS[1]}
_NOT_FOUND_ALONE = frozenset("parent child sibling spouse".split())  # common in any prose: never a finding


def tie_word(tie: Relationship) -> str:
    """The family word a tie's kind ends on, folded: "estranged daughter" -> "daughter" ("" for none)."""
    return (fold(tie.kind or "").split() or [""])[-1]


def relation_vocabulary(world: World, given: str = "") -> frozenset[str]:
    """The words that may name a relation: the world's words outside its characters' names, and
    those of `given` text (a prompt, the player's lines) outside them."""
    names = {w for c in world.characters for name in (c.name, *c.aliases) for w in words_of(name)}
    return world_vocabulary(world, cast_names=False) | (frozenset(words_of(given)) - names)


def _mentioned(group: frozenset[str], vocabulary: frozenset[str]) -> bool:
    """Whether vocabulary holds a word of the kin group, singular or plural ("six brothers")."""
    return any(word in vocabulary or word + "s" in vocabulary for word in group) or (
        group is KIN_GROUPS[1] and "wives" in vocabulary)


def invented_relatives(text: str, vocabulary: frozenset[str]) -> list[str]:
    """Family words in text whose relation `vocabulary` (relation_vocabulary) never mentions ("her
    husband" in a world without one), folded and singular. A family word before a capitalised
    word is a title ("Sister Maëlle", "Uncle Tam"), not a relation."""
    found = []
    for match in WORD.finditer(text):
        word = POSSESSIVE.sub("", fold(match.group()))
        if word not in _KIN and word.endswith("s"):
            word = word[:-1]  # daughters, brothers
        group = _KIN.get(word)
        if group is None or word in _NOT_FOUND_ALONE or _mentioned(group, vocabulary):
            continue
        if text[match.end():].lstrip(" ")[:1].isupper():
            continue
        found.append("wife" if word == "wives" else word)
    return found


# Courtship and marriage the model hands the cast ("his beloved Pipa", of an eleven-year-old; "married for
# thirty years", of a landlord and his lodger; a mentor marrying a fifteen-year-old): round forty-five's
# blind readers passed over such texts before any other. Story and scene narration never writes a group's
# words in a world whose own words use none of them (a widow's world may speak of her wedding). Banned so,
# 4 of 52 drawn-cast stories changed and both readers preferred all 4 (experiments/log.md, round
# forty-five); as a critic finding instead, 1 changed: a beat's candidates mostly share the words.
COURTSHIP_GROUPS = (
    frozenset("marry married marriage marrying wedding newlywed bride groom fiance fiancee".split()
              + ["fiancé", "fiancée"]),
    frozenset("beloved lover lovers kissed romance romantic sweetheart courting".split() + ["in love"]),
)
_COURTSHIP_ALLOWED = (COURTSHIP_GROUPS[0] | KIN_ROLES["spouse"] | {"wed"}, COURTSHIP_GROUPS[1])


@functools.lru_cache(maxsize=16)
def courtship_words(world: World, given: str = "") -> tuple[str, ...]:
    """The words of courtship and marriage that neither a world's own words nor `given` (a request's
    own words: "a wedding at the inn") use, group by group, sorted: added to a story's and a scene's
    banned words (avoid_stock). A word of a name stays writable (Quaymaster Bettany Groom), although a
    name alone does not make a world speak of marriage."""
    vocabulary = relation_vocabulary(world, given)
    in_names = {fold(w) for name in world_names(world) for w in words_of(name)}
    return tuple(sorted(w for group, allowed in zip(COURTSHIP_GROUPS, _COURTSHIP_ALLOWED)
                        if not {fold(a) for a in allowed} & vocabulary for w in group if fold(w) not in in_names))


# A parent and a child among the cast: small models give the parent the child's words ("Ah, Mother!"
# from the queen to her daughter, "How's your mother?") in most Ashenmere dialogues; round twelve's and
# thirteen's readers put the relationship wrong first among a dialogue's defects.
PARENT_WORDS = frozenset("mother father mom mum dad mama papa".split())
CHILD_WORDS = frozenset("son daughter child".split())
_PARENT = "|".join(sorted(PARENT_WORDS))
# What a parent never says to their child: "Mother" or "Father" as a form of address (not "my
# mother", not a title before a name), and "your mother".
_ADDRESSED_PARENT = re.compile(rf"\b(?:{_PARENT.title()})\b(?=\s*(?:[,!?.;…]|$))")
_YOUR_PARENT = re.compile(rf"\byour (?:{_PARENT})\b", re.IGNORECASE)
_DETERMINERS = frozenset("my her his our the your their a".split())
# What a child never says to their parent: "my daughter", "my son" (and "your mother", above).
_MY_CHILD = re.compile(r"\bmy (?:son|daughter)\b", re.IGNORECASE)


def kin_side(speaker: Character, cast: Sequence[Character]) -> str:
    """"parent" when the speaker is a parent of someone in the cast and no one's child there,
    "child" the other way round, "" otherwise; from either side's relationships (A's tie
    {with: B, kind: daughter} says B is A's daughter)."""
    ids = {c.id for c in cast}
    parent_of, child_of = set(), set()  # the cast the speaker is a parent of, a child of
    for c in cast:
        for tie in c.relationships:
            word = tie_word(tie)
            if tie.other not in ids or word not in CHILD_WORDS | PARENT_WORDS:
                continue
            # "B is A's daughter": A is the parent; "B is A's mother": B is
            parent, child = (c.id, tie.other) if word in CHILD_WORDS else (tie.other, c.id)
            if parent == speaker.id:
                parent_of.add(child)
            elif child == speaker.id:
                child_of.add(parent)
    if parent_of and not child_of:
        return "parent"
    return "child" if child_of and not parent_of else ""


def misspoken_kin(line: str, side: str) -> list[str]:
    """The kin words a speaker on `side` (kin_side) gets backwards in a spoken line."""
    if side == "child":  # "my daughter", and "your mother" to the mother herself (round fifteen: 4 of 10)
        return [m.group() for m in (*_MY_CHILD.finditer(line), *_YOUR_PARENT.finditer(line))]
    if side != "parent":
        return []
    found = []
    for m in _ADDRESSED_PARENT.finditer(line):
        before = line[:m.start()].split()
        if not before or fold(before[-1]) not in _DETERMINERS:  # "Mother," not "my Mother"
            found.append(m.group())
    return found + [m.group() for m in _YOUR_PARENT.finditer(line)]


_ROLE_OF = {word: role for role, words in KIN_ROLES.items() for word in words}
_CONVERSE = {"parent": "child", "child": "parent", "sibling": "sibling", "spouse": "spouse", "elder": "younger",
             "younger": "elder", "cousin": "cousin", "grandparent": "grandchild", "grandchild": "grandparent"}
_KIN_ALTERNATION = "|".join(sorted(_ROLE_OF, key=len, reverse=True))
# "my sister Maëlle", "your own daughter, Maëlle", "her mother Ysolde": a family word hung on the name after it
_KIN_BEFORE_NAME = re.compile(rf"\b(my|your|her|his|our|their)\s+(?:[a-z]+\s+)?({_KIN_ALTERNATION})\b,?\s+",
                              re.IGNORECASE)
# "my mother said", "your daughter's": a family word spoken of someone, not to them ("Ah, my daughter!")
_KIN_SPOKEN_OF = re.compile(rf"\b(my|your)\s+(?:[a-z]+\s+)?({_KIN_ALTERNATION})(?=\s+\w|['’]s\b)", re.IGNORECASE)
# "Maëlle, my sister": the same, after the name
_KIN_AFTER_NAME = re.compile(rf"\s*,\s*(my|your|her|his|our|their)\s+(?:[a-z]+\s+)?({_KIN_ALTERNATION})\b",
                             re.IGNORECASE)


# Family words that say a relative's sex ("mother", not "parent")
_SHE_KIN = frozenset("""mother mom mum mama stepmother daughter stepdaughter sister wife widow fiancee aunt niece
grandmother grandma granddaughter""".split())
_HE_KIN = frozenset("""father dad papa stepfather son stepson brother husband widower fiance uncle nephew grandfather
grandpa grandson""".split())


@dataclasses.dataclass(frozen=True)
class Kinship:
    """The family ties a world states, by role, and the names its characters go by.

    ties: (A, B, role): B is A's `role` ("child": B is A's son or daughter), each tie both ways.
    forms: (form, character id), the longest form first (character_forms).
    pronouns: (character id, "she" | "he" | "they" | "it"), for those whose pronoun is known (pronoun_of).
    """

    ties: frozenset[tuple[str, str, str]]
    forms: tuple[tuple[str, str], ...]
    pronouns: tuple[tuple[str, str], ...] = ()

    def roles(self, owner: str, other: str) -> frozenset[str]:
        """The roles `other` has to `owner` (owner "": to anyone)."""
        return frozenset(role for a, b, role in self.ties if b == other and (a == owner or not owner))

    @functools.cached_property
    def pronoun(self) -> dict[str, str]:
        """Character id -> "she" | "he" | "they" | "it", for those whose pronoun is known."""
        return dict(self.pronouns)

    def relatives(self, owner: str, word: str) -> list[str]:
        """The ids of owner's relatives a family word can name: of its role, and of its sex when it
        has one and theirs is known ("father" is no name for a parent the world calls "she")."""
        word = fold(word)
        sex = "she" if word in _SHE_KIN else "he" if word in _HE_KIN else ""
        return [b for a, b, role in self.ties
                if a == owner and role == _ROLE_OF[word] and (not sex or self.pronoun.get(b, "") in (sex, "", "they"))]

    def named_at(self, text: str, at: int, *, before: bool = False) -> str:
        """The id of the character a form of whose name ends (before=True) or starts at `at`, or ""."""
        for form, cid in self.forms:
            if before:
                start = at - len(form)
                if start >= 0 and text[start:at] == form and (start == 0 or not text[start - 1].isalnum()):
                    return cid
            elif text.startswith(form, at) and (at + len(form) == len(text) or not text[at + len(form)].isalnum()):
                return cid
        return ""


def kinship(world: World) -> Kinship | None:
    """The world's family ties (None when it states none: then there is nothing to check)."""
    ties = set()
    for c in world.characters:
        for tie in c.relationships:
            role = _ROLE_OF.get(tie_word(tie))
            if role is not None:
                ties |= {(c.id, tie.other, role), (tie.other, c.id, _CONVERSE[role])}
    if not ties:
        return None
    forms = {(form, c.id) for c in world.characters for form in character_forms(c) if not fold(form).startswith("the ")}
    pronouns = tuple((c.id, pronoun_of(c)) for c in world.characters if pronoun_of(c))
    return Kinship(frozenset(ties), tuple(sorted(forms, key=lambda f: (-len(f[0]), f))), pronouns)


def wrong_kin(text: str, kin: Kinship, *, speaker: str = "", listener: str = "") -> list[str]:
    """Family words a text hangs on a named character against the world's ties: "my sister Maëlle"
    from a speaker whose tie to Maëlle is no sister's, "your sister Maëlle" said to Maëlle. "my" is
    the speaker's and "your" the listener's when given (a dialogue line); otherwise, and for "her",
    "his", "our" and "their", the character need only be someone's kin of that kind. With both
    given, "my mother" said to the speaker's mother, or "your mother" by the listener's, is wrong too."""
    found = []
    claims = [(m, kin.named_at(text, m.end())) for m in _KIN_BEFORE_NAME.finditer(text)]
    claims += [(m, kin.named_at(text, m.start(), before=True)) for m in _KIN_AFTER_NAME.finditer(text)]
    for match, named in claims:
        if not named:
            continue
        owner = {"my": speaker, "your": listener}.get(fold(match.group(1)), "")
        role = _ROLE_OF[fold(match.group(2))]
        if owner == named or role not in kin.roles(owner, named):
            found.append(match.group().strip(" ,"))
    if speaker and listener:
        # Said to that very person: "My mother said ..." from Maëlle to her mother, "your mother" from the mother.
        for match in _KIN_SPOKEN_OF.finditer(text):
            rest = text[match.end():]
            if kin.named_at(text, match.end() + len(rest) - len(rest.lstrip())):
                continue  # "my sister Maëlle": judged above
            mine = fold(match.group(1)) == "my"
            role = _ROLE_OF[fold(match.group(2))]
            owner, other = (speaker, listener) if mine else (listener, speaker)
            if role in kin.roles(owner, other):
                found.append(match.group())
    return found


# "her mother": a family word on a pronoun ("Ysolde stood before her mother", of the mother)
_KIN_ON_PRONOUN = re.compile(rf"\b(her|his|their)\s+(?:own\s+)?({_KIN_ALTERNATION})\b", re.IGNORECASE)


def narrated_kin(text: str, kin: Kinship) -> list[str]:
    """Family words narration gives one of the world's characters who has no such relative in it:
    in a sentence that opens on that character and names no other, "her mother" is theirs
    ("Ysolde stood before her mother", of the mother), as "Ysolde: her mother". So is one in a
    sentence that opens on their pronoun and names no one, when the last character named alone
    was them ("Ysolde's eyes narrowed. She turned to face her father."). A relative of the right
    kind but the other sex is no relative either ("her father" of one whose parent is a mother).
    Quoted speech is left out, and a family word hung on a name ("her mother Ysolde") is wrong_kin's."""
    found = []
    subject, subject_name = "", ""  # the last character a sentence named alone, and the name it used
    for sentence in narrated_sentences(text):
        named = {cid for form, cid in kin.forms if mentions(sentence, form)}
        owner = kin.named_at(sentence, 0)
        if named:
            subject, subject_name = "", ""
            if len(named) > 1 or owner not in named:
                continue
            subject = owner
            subject_name = next(form for form, cid in kin.forms if cid == owner and sentence.startswith(form))
        elif subject and words_of(sentence)[:1] == [kin.pronoun.get(subject)]:
            owner = subject  # "She turned to face her father": still the character just named
        else:
            continue
        found += [f"{subject_name}: {match.group()}" for match in _KIN_ON_PRONOUN.finditer(sentence)
                  if not kin.relatives(owner, match.group(2))]
    return found


# --- the kin guard's rules (metagen.kin_guard) ------------------------------------------

# Words that may stand between a possessive and the family word: "her own son", "his late wife".
BETWEEN = frozenset("""own late dead lost beloved young little older younger elder eldest baby only dear new former first
estranged adopted""".split())
POSSESSIVE_PRONOUNS = {"her": "she", "his": "he", "their": "they"}
FAMILY_WORDS = frozenset(_ROLE_OF)  # the words the guard knows: every role's (KIN_ROLES)
_RULE = re.compile(r"^(?P<forms>.+) \((?P<pronoun>she|he|they|it|\?)\): (?P<words>.*)$")


@dataclasses.dataclass(frozen=True)
class KinOwner:
    """One character as the guard sees them: the forms that name them, their pronoun ("" unknown)
    and the family words (singular, folded) they may be given."""

    forms: tuple[str, ...]
    pronoun: str
    allowed: frozenset[str]

    @functools.cached_property
    def unfit(self) -> frozenset[str]:
        return FAMILY_WORDS - self.allowed


def write_rule(forms: Sequence[str], pronoun: str, allowed: Sequence[str]) -> str:
    """One character's rule, as the setting holds it: "Queen Ysolde Vær / Ysolde (she): daughter"."""
    return f"{' / '.join(forms)} ({pronoun or '?'}): {', '.join(sorted(allowed)) or '-'}"


def read_rule(rule: str) -> KinOwner:
    """A rule back as a KinOwner; a rule not in write_rule's shape is a ConfigError naming it."""
    match = _RULE.match(rule)
    words = [] if match is None else [w.strip() for w in match["words"].split(",") if w.strip() not in ("", "-")]
    unknown = [w for w in words if w not in FAMILY_WORDS]
    if match is None or unknown:
        raise ConfigError(f"{rule!r} is not 'NAME / OTHER NAME (she|he|they|it|?): family words'"
                          + (f" (unknown family words: {', '.join(unknown)})" if unknown else ""),
                          hint="leave kin_guard out and metagen writes it from the world; [] turns the guard off")
    forms = tuple(f.strip() for f in match["forms"].split(" / ") if f.strip())
    pronoun = "" if match["pronoun"] == "?" else match["pronoun"]
    return KinOwner(forms, pronoun, frozenset(words))


def check_rules(rules: Sequence[str]) -> None:
    for rule in rules:
        read_rule(rule)


def possessor(text: str, owners: Sequence[KinOwner]) -> KinOwner | None:
    """Whose relative a family word written right after `text` names, when that is clear; else None.

    Clear: `text` ends on a name's possessive ("Queen Ysolde Vær's", "Agnes’"), or on "her", "his" or
    "their" (perhaps with "own", "late" ... after it) in narration whose nearest sentence naming
    anyone names one character alone, who takes that pronoun ("Ysolde sat down. She told her",
    "Ysolde looked at her"). Inside quoted speech the speaker is not known, and a sentence naming two
    of the cast could mean either: None.
    """
    if text.count('"') % 2 or text.count("“") > text.count("”"):
        return None
    words = text.split()
    while words and fold(words[-1]) in BETWEEN:
        words.pop()
    if not words:
        return None
    head = " ".join(words)
    for mark in ("'s", "’s", "'", "’"):  # "Ysolde's", "Agnes'"
        if head.endswith(mark):
            name_end = head[: -len(mark)]
            return next((o for o in owners for form in o.forms if _ends_with_name(name_end, form)), None)
    pronoun = POSSESSIVE_PRONOUNS.get(fold(words[-1]))
    if pronoun is None:
        return None
    owner = nearest_named(narrated_sentences(head), owners)
    return owner if owner is not None and owner.pronoun == pronoun else None


def nearest_named(sentences: Sequence[str], owners: Sequence[KinOwner]) -> KinOwner | None:
    """The one character the last of `sentences` that names anyone names; None when it names several,
    or none of them names anyone: whom a "her" or a "he" written next is about."""
    for sentence in reversed(sentences):
        named = [o for o in owners if any(mentions(sentence, form) for form in o.forms)]
        if named:
            return named[0] if len(named) == 1 else None
    return None


def _ends_with_name(text: str, form: str) -> bool:
    return text.endswith(form) and (len(text) == len(form) or not text[-len(form) - 1].isalnum())


def kin_guard_rules(world: World) -> tuple[str, ...]:
    """The kin guard's rules for a world (metagen.kin_guard): for each character, the forms that name
    them, their pronoun, and the family words they may be given: those of their ties to the cast,
    of the right sex where the relative's is known (Ysolde: "daughter", "child"; not "son"), and those
    their own card gives them after "his", "her" or "their" ("since his wife died": Oswin's "wife";
    Agnes's "taught Oswin's wife" is not hers)."""
    kin = kinship(world)
    rules = []
    for c in world.characters:
        card = " ".join([c.description or "", *c.goals, *c.secrets, *(t.description or "" for t in c.relationships)])
        own = {_singular(m.group(1)) for m in _CARD_KIN.finditer(card)}
        allowed = {w for w in FAMILY_WORDS if w in own or (kin is not None and kin.relatives(c.id, w))}
        rules.append(write_rule(character_forms(c), pronoun_of(c), allowed))
    return tuple(rules)


# "his wife", "her late husband", "their sons": a family word a card gives its own character
_CARD_KIN = re.compile(rf"\b(?:his|her|their)\s+(?:(?:{'|'.join(sorted(BETWEEN))})\s+)*([a-z]+)\b", re.IGNORECASE)


def _singular(word: str) -> str:
    word = fold(word)
    return word[:-1] if word not in FAMILY_WORDS and word[:-1] in FAMILY_WORDS else word


__all__ = [
    "BETWEEN", "CHILD_WORDS", "COURTSHIP_GROUPS", "FAMILY_WORDS", "KIN_GROUPS", "KIN_ROLES", "KinOwner", "Kinship", "PARENT_WORDS",
    "POSSESSIVE_PRONOUNS", "check_rules", "courtship_words", "invented_relatives", "kin_guard_rules", "kin_side", "kinship", "misspoken_kin",
    "narrated_kin", "nearest_named", "possessor", "read_rule", "relation_vocabulary", "tie_word", "write_rule", "wrong_kin",
]
