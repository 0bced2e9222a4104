"""Requests: what a user asks for (a story, a scene or a dialogue), checked, recorded and resolved.

A request names characters and a location by id, or by name or alias in any case, accents
optional (World.character, World.location); `resolve_request` looks them up in a world and makes
the ids canonical. Every other module takes the request kinds from here.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, fields
from typing import ClassVar, Union, get_args

from metagen.errors import RequestError
from metagen.text import did_you_mean, kind_of, listing, number_shown, slugify
from metagen.world import ID_RE, LENGTHS, Character, Location, World

MAX_TURNS = 200

# Lone surrogates: what Python makes of argv bytes that are not UTF-8 (a Latin-1 terminal).
_NOT_UTF8 = re.compile(r"[\ud800-\udfff]")
_NOT_UTF8_HINT = "check the terminal's encoding: LANG or LC_ALL should name UTF-8"


def _is_text_list(value) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, (str, int)) for v in value)


# What each request field's annotation admits (ids written as numbers in YAML, 7, are read as text).
_FIELD_TYPES = {
    "tuple[str, ...]": ("a list of texts", _is_text_list),
    "str | None": ("text", lambda v: v is None or isinstance(v, str)),
    "str": ("text", lambda v: isinstance(v, str)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "int": ("a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool)),
}


class _Request:
    """Shared behaviour of the request kinds: lists to tuples, to_dict/from_dict."""

    kind: ClassVar[str] = ""

    def __post_init__(self):
        if isinstance(getattr(self, "characters", ()), str):
            object.__setattr__(self, "characters", (self.characters,))
        for f in fields(self):  # a replayed file or a Python caller may give any type: name it, not a TypeError
            value = getattr(self, f.name)
            want, ok = _FIELD_TYPES[f.type]
            if not ok(value):
                got = kind_of(value)
                if isinstance(value, (list, tuple)):  # a list where text goes, or one holding the wrong thing
                    odd = [kind_of(v) for v in value if not isinstance(v, (str, int))]
                    got = f"a list holding {odd[0]}" if odd else "a list"
                raise RequestError(f"the {self.kind} request's {f.name} must be {want}, got {got}")
        object.__setattr__(self, "characters", tuple(str(c) for c in self.characters))
        for f in fields(self):
            value = getattr(self, f.name)
            for text in value if isinstance(value, tuple) else (value,):
                if isinstance(text, str) and _NOT_UTF8.search(text):
                    raise RequestError(f"the {f.name} {text!r} is not UTF-8 text", hint=_NOT_UTF8_HINT)
        counts = Counter(self.characters)
        if len(counts) != len(self.characters):
            again = [c if n == 2 else f"{c} ({n:,} times)" for c, n in counts.items() if n > 1]
            raise RequestError(f"{self.kind} request names a character more than once: {listing(again)}",
                               hint="name each character once")

    def to_dict(self) -> dict:
        """The request as plain JSON-ready data, with its kind."""
        data = {"kind": self.kind, **asdict(self)}
        data["characters"] = list(data["characters"])
        return data

    @classmethod
    def from_dict(cls, data: dict):
        """The request recorded by to_dict (the kind, if present, must match)."""
        data = dict(data)
        kind = data.pop("kind", cls.kind)
        if kind != cls.kind:
            raise RequestError(f"expected a {cls.kind} request, got kind '{kind}'")
        names = [f.name for f in fields(cls)]
        unknown = [k for k in data if k not in names]
        if unknown:
            hint = did_you_mean(unknown[0], names)
            raise RequestError(f"{cls.kind} request has unknown field '{unknown[0]}' ({hint})")
        return cls(**data)

    def _names(self, limit: int = 3) -> str:
        ids = [_slug_part(c) for c in self.characters[:limit]]
        if len(self.characters) > limit:
            ids.append(f"and-{len(self.characters) - limit}-more")
        return "-".join(ids)


@dataclass(frozen=True)
class StoryRequest(_Request):
    """A short story about some characters, somewhere, from a premise."""

    characters: tuple[str, ...] = ()  # character ids (or exact names)
    location: str | None = None  # a location id (or exact name)
    premise: str | None = None  # what happens, in a sentence or two
    length: str = "medium"  # short | medium | long; words per length come from the world's style
    opening: bool = True  # recorded for older files; a planned story has no opening (metagen.plan)
    beats: tuple[str, ...] = ()  # the user's own plan (--plan FILE), one instruction a beat; () = metagen plans
    kind: ClassVar[str] = "story"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "beats", tuple(str(b) for b in self.beats))
        if self.length not in LENGTHS:
            raise RequestError(f"story length '{self.length}' is not known ({did_you_mean(self.length, LENGTHS)})")

    def to_dict(self) -> dict:
        """As _Request.to_dict, without beats when metagen plans (records match older files)."""
        data = super().to_dict()
        if not data["beats"]:
            del data["beats"]
        else:
            data["beats"] = list(data["beats"])
        return data

    @property
    def subject(self) -> str:
        """A file-name slug built from the ids: "mira-jonas-at-docks"."""
        parts = [self._names()] if self.characters else []
        if self.location:
            parts.append(f"at-{_slug_part(self.location)}")
        if not parts:
            return slugify(" ".join((self.premise or "").split()[:6]), "story")
        return _slug_join(parts)


@dataclass(frozen=True)
class SceneRequest(_Request):
    """A description of one place at a time, in some weather and mood."""

    location: str  # a location id (or exact name)
    time: str | None = None  # "dusk", "the night of the festival"
    weather: str | None = None
    mood: str | None = None
    characters: tuple[str, ...] = ()  # who is present, if anyone
    opening: bool = False  # the answer starts with the place's name, written by metagen (off: the model names it)
    start: str | None = None  # the words the scene opens with; None: each candidate's drawn by the seed (opening.candidate_starts)
    kind: ClassVar[str] = "scene"

    @property
    def subject(self) -> str:
        """A file-name slug: the location id, then the time: "docks-dusk"."""
        return _slug_join([_slug_part(self.location), slugify(self.time or "", "")])

    def __post_init__(self):
        if not self.location or not str(self.location).strip():
            raise RequestError("a scene needs a location", hint="name a location id of the world")
        super().__post_init__()
        if self.start is not None and not self.start.strip():
            raise RequestError("a scene's start words are empty",
                               hint="give the words it opens with (--start, or start: in a batch job), or leave them out")


@dataclass(frozen=True)
class DialogueRequest(_Request):
    """A conversation between two or more characters, one line per turn."""

    characters: tuple[str, ...]  # two or more character ids (or exact names); the first speaks first
    location: str | None = None
    topic: str | None = None
    turns: int = 6  # lines in all, speakers taking turns in order
    kind: ClassVar[str] = "dialogue"

    def __post_init__(self):
        super().__post_init__()
        if len(self.characters) < 2:
            raise RequestError("a dialogue needs at least two characters", hint="name each one once")
        if not isinstance(self.turns, int) or not 1 <= self.turns <= MAX_TURNS:
            raise RequestError(f"dialogue turns must be 1 to {MAX_TURNS}, not {number_shown(self.turns)}")

    @property
    def subject(self) -> str:
        """A file-name slug: "mira-jonas-at-docks"."""
        return _slug_join([self._names()] + ([f"at-{_slug_part(self.location)}"] if self.location else []))


Request = Union[StoryRequest, SceneRequest, DialogueRequest]
# The request kinds, each named by its class's `kind`; every other module imports these.
REQUEST_KINDS: dict[str, type] = {cls.kind: cls for cls in get_args(Request)}
KINDS = tuple(REQUEST_KINDS)  # "story", "scene", "dialogue"
# How a dialogue picks its next speaker: the model's choice among the cast, or in the order given.
DIALOGUE_ORDERS = ("likelihood", "turns")


def request_from_dict(data: dict) -> Request:
    """A request of the kind named in data["kind"], as recorded by to_dict()."""
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in REQUEST_KINDS:
        raise RequestError(f"unknown request kind {kind!r} ({did_you_mean(str(kind), REQUEST_KINDS)})")
    return REQUEST_KINDS[kind].from_dict(data)


def _slug_part(ref: str) -> str:
    """An id as it is; a name (before resolve_request) made into an ASCII slug."""
    return ref if ID_RE.match(ref) else slugify(ref, "x")


def _slug_join(parts: list[str]) -> str:
    slug = "-".join(p for p in parts if p)
    return slug[:80].rstrip("-") or "untitled"


@dataclass(frozen=True)
class Resolved:
    """A request with its ids made canonical and the entities it names looked up."""

    request: Request
    characters: tuple[Character, ...]
    location: Location | None


def resolve_request(world: World, request: Request) -> Resolved:
    """Look up the request's characters and location; RequestError with a hint if unknown."""
    characters = tuple(world.character(ref) for ref in request.characters)
    ids = tuple(c.id for c in characters)
    if len(set(ids)) != len(ids):
        twice = next(i for i in ids if ids.count(i) > 1)
        refs = [f"'{ref}'" for ref, i in zip(request.characters, ids) if i == twice]
        given = " and ".join(refs) if len(refs) == 2 else listing(refs)
        raise RequestError(f"{request.kind} request names the same character twice: {given} are "
                           f"{'both' if len(refs) == 2 else 'all'} {twice}", hint="name each character once")
    location = world.location(request.location) if request.location else None
    changes: dict = {"characters": ids}
    if location is not None:
        changes["location"] = location.id
    canonical = type(request)(**{**{f.name: getattr(request, f.name) for f in fields(request)}, **changes})
    return Resolved(canonical, characters, location)


# The fields of a request a user writes in their own words (the rest are ids and numbers).
FREE_TEXT_FIELDS = ("premise", "topic", "time", "weather", "mood")


def request_texts(request: Request | None) -> list[str]:
    """The free text a request adds (FREE_TEXT_FIELDS that it has and fills)."""
    return [str(getattr(request, n)) for n in FREE_TEXT_FIELDS if getattr(request, n, None)] if request else []


def asked_words(request: Request | None) -> str:
    """The words a request itself writes (its free text, a story's own plan): what the user asks for
    stays writable where a world's own words would have it banned (courtship, absent things)."""
    return " ".join([*request_texts(request), *getattr(request, "beats", ())])


__all__ = [
    "DIALOGUE_ORDERS",
    "asked_words",
    "FREE_TEXT_FIELDS",
    "DialogueRequest",
    "KINDS",
    "MAX_TURNS",
    "REQUEST_KINDS",
    "Request",
    "Resolved",
    "SceneRequest",
    "StoryRequest",
    "request_from_dict",
    "request_texts",
    "resolve_request",
]
