"""`--plan FILE`: a user's own story beats, read from YAML and checked against the world.

The file holds `beats:`, a list of texts or of mappings with `text:` and optional
`characters:` (ids) and `location:` (an id); each beat becomes one text, which metagen.plan
turns into a beat's instruction (plan._user_plan). Every problem is one RequestError naming
file:line and what to do.
"""

from __future__ import annotations

from pathlib import Path

from metagen.errors import RequestError
from metagen.files import read_input
from metagen.phrasing import cast_phrase, clause
from metagen.text import blank, closest, kind_of
from metagen.world import World, YamlRefused, compose_yaml, construct_plain

MAX_PLAN_BYTES = 64 * 1024
MAX_BEATS = 12
_BEAT_FIELDS = ("text", "characters", "location")  # what a beat of a --plan file may hold


def load_plan_file(path: str | Path, world: World) -> tuple[str, ...]:
    """A user's story plan from YAML: `beats:` a list of texts, or of mappings with `text:` and
    optional `characters:` (ids) and `location:` (an id) that the beat is about.

    Every problem is a RequestError naming file:line and what to do; ids are checked against the world.
    """
    display = str(path)
    data = read_input(path, MAX_PLAN_BYTES, "a plan file", RequestError)

    def refuse(node, message: str, hint: str | None = None) -> RequestError:
        line = f":{node.start_mark.line + 1}" if node is not None and node.start_mark else ""
        return RequestError(f"{display}{line}: {message}", hint=hint or "see docs/quality.md for the plan file format")

    try:
        root = compose_yaml(data, "a plan file")
        plain = construct_plain(root) if root is not None else None
    except YamlRefused as error:
        line = f":{error.mark.line + 1}" if error.mark is not None else ""
        raise RequestError(f"{display}{line}: {error.message}") from None
    if not isinstance(plain, dict) or set(plain) != {"beats"}:
        raise refuse(root, "a plan file is a mapping with one key, beats: (a list of beats)")
    beats_node = next(value for key, value in root.value if key.value == "beats")
    items = plain["beats"]
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BEATS:
        raise refuse(beats_node, f"beats: must be a list of 1 to {MAX_BEATS} beats")
    texts = []
    for node, item in zip(beats_node.value, items):
        if isinstance(item, str):
            item = {"text": item}
        if not isinstance(item, dict):
            raise refuse(node, "a beat is a text, or a mapping with text: and optional characters: and location:")
        unknown = set(item) - set(_BEAT_FIELDS)
        if unknown:
            key = str(sorted(unknown, key=str)[0])
            key_node = next((k for k, _ in node.value if k.value == key), node)  # its line, else the beat's
            close = closest(key, _BEAT_FIELDS)
            raise refuse(key_node, f"unknown field '{key}' in a beat; fields are: {', '.join(_BEAT_FIELDS)}",
                         hint=f"did you mean '{close}'?" if close else None)
        text = item.get("text")
        if not isinstance(text, str) or blank(text):  # "\u200b" shows nothing, as "" does
            raise refuse(node, "a beat needs text: what happens in it")
        about = []
        cast = item.get("characters")
        cast = [] if cast is None else cast  # `or []` had taken false, 0 and "" for no cast, without a word
        if isinstance(cast, list):
            refs = {f"characters[{i}]": (ref, "a character id") for i, ref in enumerate(cast)}
        else:
            refs = {"characters": (cast, "a character id, or a list of them")}
        for field, (ref, expected) in refs.items():
            name = _named(world.character, ref, field, expected, refuse, node)
            if name in about:  # "It is about Ada and Ada"
                raise refuse(node, f"{field}: {name} is named twice in this beat's characters")
            about.append(name)
        place = ""
        if item.get("location") is not None:
            place = _named(world.location, item["location"], "location", "a location id", refuse, node)
        if about or place:
            text = clause(text) + ". It is about " + (cast_phrase(about) if about else "them") + (f" at {place}" if place else "")
        texts.append(" ".join(text.split()))
    return tuple(texts)


def _named(find, ref, field: str, expected: str, refuse, node) -> str:
    """The name of the world's character or place `ref` names (find: world.character or world.location);
    a list, mapping or null is refused as such, not looked up as the text "['a']" or "None"."""
    if isinstance(ref, bool) or not isinstance(ref, (str, int)):
        raise refuse(node, f"{field}: got {kind_of(ref)} (expected {expected})")
    try:
        return find(str(ref)).name
    except RequestError as error:
        raise refuse(node, error.message, error.hint) from None


__all__ = ["MAX_BEATS", "MAX_PLAN_BYTES", "load_plan_file"]
