"""The world format: frozen dataclasses for a loaded world, and the fixed vocabularies it uses."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from metagen.errors import RequestError
from metagen.text import did_you_mean, fold

# What metagen.world re-exports: the dataclasses a world is made of and the values they allow.
__all__ = ["ID_RE", "SETTING_RE", "POINTS_OF_VIEW", "TENSES", "PRONOUNS", "RATINGS", "DESCRIPTORS", "SEVERITIES",
           "LENGTHS", "DEFAULT_LENGTH_WORDS", "DEFAULTS_KINDS", "Style", "Location", "Relationship", "Character",
           "Faction", "LoreEntry", "Content", "World"]

ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SETTING_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
POINTS_OF_VIEW = ("first", "second", "third")
TENSES = ("past", "present")
PRONOUNS = ("she/her", "he/him", "they/them", "it/its")  # a character's; prompts and the critic use the first word
RATINGS = ("G", "PG", "PG-13", "R")  # mildest first
# The content descriptors a world may allow (style.allows) and their severities, mildest first;
# metagen/data/moderation.yaml gives each rating's ceiling and each descriptor's words.
DESCRIPTORS = ("violence", "blood", "language", "sexual_content", "drugs_alcohol", "gambling", "discrimination",
               "fear")
SEVERITIES = ("mild", "strong")
LENGTHS = ("short", "medium", "long")
DEFAULT_LENGTH_WORDS = {"short": 150, "medium": 350, "long": 700}
DEFAULTS_KINDS = ("all", "story", "scene", "dialogue")


@dataclass(frozen=True)
class Style:
    """How the world's texts are written."""

    point_of_view: str | None = None  # first | second | third
    tense: str | None = None  # past | present
    voice: str | None = None  # free text: "wry, sensory, short sentences"
    rating: str | None = None  # G | PG | PG-13 | R
    # descriptor -> mild | strong: all the world allows (the rest: none); None: what the rating allows
    allows: dict[str, str] | None = field(default=None, hash=False)
    preferred_words: tuple[str, ...] = ()
    avoided_words: tuple[str, ...] = ()  # named in prompts as words to avoid
    length: str = "medium"  # the default story length: short | medium | long
    length_words: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_LENGTH_WORDS), hash=False)

    def tense_for(self, kind: str) -> str:
        """The tense narration of `kind` is asked in: the world's, else present for a scene and past
        for a story."""
        return self.tense or ("present" if kind == "scene" else "past")

    def words_for(self, length: str) -> int:
        """The words a story of `length` is asked for: the world's length_words (which hold every
        length once loaded), else a medium story's by default."""
        return self.length_words.get(length, DEFAULT_LENGTH_WORDS["medium"])


@dataclass(frozen=True)
class Location:
    id: str
    name: str
    description: str | None = None
    sights: tuple[str, ...] = ()
    sounds: tuple[str, ...] = ()
    smells: tuple[str, ...] = ()
    connections: tuple[str, ...] = ()  # location ids
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Relationship:
    other: str  # a character id (`with:` in YAML)
    kind: str | None = None  # "sister", "rival", "owes money to"
    description: str | None = None


@dataclass(frozen=True)
class Character:
    id: str
    name: str
    aliases: tuple[str, ...] = ()
    role: str | None = None
    description: str | None = None
    traits: tuple[str, ...] = ()
    voice: str | None = None  # how they speak
    pronouns: str | None = None  # one of PRONOUNS; left out: read from what the world says of them
    goals: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    relationships: tuple[Relationship, ...] = ()
    sample_lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class Faction:
    id: str
    name: str
    description: str | None = None
    members: tuple[str, ...] = ()  # character ids
    goals: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoreEntry:
    id: str
    text: str
    keys: tuple[str, ...] = ()  # trigger words, matched case-insensitively on word boundaries
    priority: int = 0  # higher first when the token budget is short
    always_include: bool = False


@dataclass(frozen=True)
class Content:
    banned_words: tuple[str, ...] = ()  # become decoding bans
    banned_topics: tuple[str, ...] = ()  # named in prompts as topics to stay away from
    # descriptor -> severity -> words the world adds to metagen's descriptor lexicon
    descriptor_words: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict, hash=False)
    allowed_words: tuple[str, ...] = ()  # never flagged by moderation (a place called Cockburn)


@dataclass(frozen=True)
class World:
    """A loaded, validated world. Sections are tuples in file order (includes after)."""

    id: str
    name: str
    genre: str | None = None
    tone: str | None = None
    era: str | None = None
    summary: str | None = None
    style: Style = field(default_factory=Style)
    locations: tuple[Location, ...] = ()
    characters: tuple[Character, ...] = ()
    factions: tuple[Faction, ...] = ()
    lore: tuple[LoreEntry, ...] = ()
    # kind (all|story|scene|dialogue) -> decoding setting name -> scalar or list of text
    defaults: dict[str, dict[str, object]] = field(default_factory=dict, hash=False)
    content: Content = field(default_factory=Content)
    path: Path | None = None  # the world file as given
    files: tuple[Path, ...] = ()  # every file read, resolved, in the order read
    content_hash: str = ""  # sha256 over the bytes of `files`, concatenated in order

    def character(self, ref: str) -> Character:
        """The character with this id (or, failing that, this name or alias; see _lookup)."""
        return _lookup(self.characters, ref, "character", self.id)

    def location(self, ref: str) -> Location:
        """The location with this id (or, failing that, this name; see _lookup)."""
        return _lookup(self.locations, ref, "location", self.id)

    def faction(self, ref: str) -> Faction:
        """The faction with this id (or, failing that, this name; see _lookup)."""
        return _lookup(self.factions, ref, "faction", self.id)

    def generation_defaults(self, kind: str) -> dict[str, object]:
        """The world's decoding settings for a command kind: `all` overlaid by `kind`."""
        return {**self.defaults.get("all", {}), **self.defaults.get(kind, {})}

    def counts(self) -> dict[str, int]:
        """How many characters, locations, factions and lore entries the world has."""
        return {
            "characters": len(self.characters),
            "locations": len(self.locations),
            "factions": len(self.factions),
            "lore": len(self.lore),
        }



def _loose(text: str) -> str:
    """An id or name as it compares loosely: no case, no accents, any run of spaces and
    punctuation one "-" ("Sister Maëlle" -> "sister-maelle"); letters of other scripts kept."""
    return re.sub(r"[\W_]+", "-", fold(str(text))).strip("-")


def _lookup(items, ref: str, what: str, world_id: str):
    """The item with this id; else the one whose id, name or alias is ref in any case; else the
    one they match loosely (_loose). RequestError if none or several match."""
    for item in items:
        if item.id == ref:
            return item
    folded = ref.casefold()
    matches = [
        item
        for item in items
        if folded in {item.id, item.name.casefold(), *(a.casefold() for a in getattr(item, "aliases", ()))}
    ]
    if not matches:  # "Maëlle" for maelle, "crooked kettle" for crooked-kettle, "sister maelle" for Sister Maëlle
        loose = _loose(ref)
        matches = [item for item in items
                   if loose and loose in {_loose(item.id), _loose(item.name),
                                          *(_loose(a) for a in getattr(item, "aliases", ()))}]
    if len(matches) == 1:
        return matches[0]
    if matches:
        ids = ", ".join(item.id for item in matches)
        raise RequestError(f"'{ref}' names {len(matches)} {what}s of world '{world_id}' ({ids})",
                           hint=f"give the id of the one you mean: {ids}")
    hint = did_you_mean(ref, [i.id for i in items])
    if "did you mean" in hint:
        hint += f" valid {what} ids: {', '.join(i.id for i in items)}"
    raise RequestError(f"world '{world_id}' has no {what} '{ref}'", hint=hint)
