"""Reading each section of a world file into its dataclass, on top of the value readers.

`defaults:` is checked the way every command would merge it (GenerationConfig.from_dict),
so a world whose settings no command accepts fails at load, by file:line and field.
"""

from __future__ import annotations

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from metagen.config import GenerationConfig
from metagen.errors import ConfigError
from metagen.text import shorten
from metagen.world.safe_yaml import YAML_TAG, construct_scalar, describe_node, is_null
from metagen.world.types import (
    DEFAULT_LENGTH_WORDS,
    DEFAULTS_KINDS,
    DESCRIPTORS,
    LENGTHS,
    POINTS_OF_VIEW,
    PRONOUNS,
    RATINGS,
    SETTING_RE,
    SEVERITIES,
    TENSES,
    Character,
    Content,
    Faction,
    Location,
    LoreEntry,
    Relationship,
    Style,
)
from metagen.world.validate import (
    CHARACTER_KEYS,
    CONTENT_KEYS,
    FACTION_KEYS,
    LOCATION_KEYS,
    LORE_KEYS,
    MAX_INT,
    RELATIONSHIP_KEYS,
    STYLE_KEYS,
    Validator,
    join_path,
)


class SectionReader(Validator):
    """A Validator that also reads whole sections: one reader per section."""

    def read_location(self, node: Node, path: str) -> Location | None:
        m = self.mapping(node, path, LOCATION_KEYS, required=("id", "name"))
        if m is None:
            return None
        out = dict(
            id=self.entity_id(m["id"], join_path(path, "id"), "location") if "id" in m else None,
            name=self.text(m["name"], join_path(path, "name")) if "name" in m else None,
            description=self.opt(m, path, "description", self.text),
        )
        for key in ("sights", "sounds", "smells", "tags"):
            out[key] = self.opt(m, path, key, self.texts, ())
        out["connections"] = self.opt(m, path, "connections", lambda n, p: self.refs_to(n, p, "location"), ())
        return Location(**out) if out["id"] and out["name"] else None

    def read_relationship(self, node: Node, path: str) -> Relationship | None:
        m = self.mapping(node, path, RELATIONSHIP_KEYS, required=("with",))
        if m is None or "with" not in m:
            return None
        other = self.ident(m["with"], join_path(path, "with"))
        if other is not None:
            self.ref("character", other, m["with"], join_path(path, "with"))
        kind, description = self.opt(m, path, "kind", self.text), self.opt(m, path, "description", self.text)
        if kind is not None and not any(ch.isalpha() for ch in kind):  # prompts said "Bo is Ada's !"
            self.add(m["kind"], join_path(path, "kind"), f"{kind!r} names no relation (give words: 'sister', "
                     "'mentor', or a kind ending in a preposition such as 'owes a debt to')")
        return Relationship(other, kind, description) if other else None

    def read_character(self, node: Node, path: str) -> Character | None:
        m = self.mapping(node, path, CHARACTER_KEYS, required=("id", "name"))
        if m is None:
            return None
        out = dict(
            id=self.entity_id(m["id"], join_path(path, "id"), "character") if "id" in m else None,
            name=self.speaker_name(m["name"], join_path(path, "name")) if "name" in m else None,
        )
        for key in ("role", "description", "voice"):
            out[key] = self.opt(m, path, key, self.text)
        out["pronouns"] = self.opt(m, path, "pronouns", lambda n, p: self.choice(n, p, PRONOUNS))
        out["aliases"] = self.opt(m, path, "aliases", self.speaker_names, ())
        for key in ("traits", "goals", "secrets", "sample_lines"):
            out[key] = self.opt(m, path, key, self.texts, ())
        rels = self.opt(m, path, "relationships", lambda n, p: self.items(n, p, self.read_relationship, "with"), [])
        if out["id"] and any(rel.other == out["id"] for rel in rels):
            where = join_path(path, "relationships")
            self.add(m["relationships"], where, f"'{out['id']}' is related to itself (name another character)")
        out["relationships"] = tuple(rels)
        return Character(**out) if out["id"] and out["name"] else None

    def read_faction(self, node: Node, path: str) -> Faction | None:
        m = self.mapping(node, path, FACTION_KEYS, required=("id", "name"))
        if m is None:
            return None
        out = dict(
            id=self.entity_id(m["id"], join_path(path, "id"), "faction") if "id" in m else None,
            name=self.text(m["name"], join_path(path, "name")) if "name" in m else None,
            description=self.opt(m, path, "description", self.text),
            goals=self.opt(m, path, "goals", self.texts, ()),
            members=self.opt(m, path, "members", lambda n, p: self.refs_to(n, p, "character"), ()),
        )
        return Faction(**out) if out["id"] and out["name"] else None

    def read_lore(self, node: Node, path: str) -> LoreEntry | None:
        m = self.mapping(node, path, LORE_KEYS, required=("id", "text"))
        if m is None:
            return None
        out = dict(
            id=self.entity_id(m["id"], join_path(path, "id"), "lore") if "id" in m else None,
            text=self.text(m["text"], join_path(path, "text")) if "text" in m else None,
            keys=self.opt(m, path, "keys", self.texts, ()),
            priority=self.opt(m, path, "priority", self.integer, 0),
            always_include=self.opt(m, path, "always_include", self.boolean, False),
        )
        keys_broken = isinstance(m.get("keys"), (ScalarNode, MappingNode))  # already reported
        if not out["keys"] and not out["always_include"] and not keys_broken:
            self.add(
                node, path, "has no keys and is not always_include, so it is never used "
                "(add keys: [...] or always_include: true)",
            )  # fmt: skip
        return LoreEntry(**out) if out["id"] and out["text"] else None

    def read_style(self, node: Node) -> Style:
        m = self.mapping(node, "style", STYLE_KEYS) or {}
        out = dict(
            point_of_view=self.opt(m, "style", "point_of_view", lambda n, p: self.choice(n, p, POINTS_OF_VIEW)),
            tense=self.opt(m, "style", "tense", lambda n, p: self.choice(n, p, TENSES)),
            voice=self.opt(m, "style", "voice", self.text),
            rating=self.opt(m, "style", "rating", lambda n, p: self.choice(n, p, RATINGS)),
            preferred_words=self.opt(m, "style", "preferred_words", self.texts, ()),
            avoided_words=self.opt(m, "style", "avoided_words", self.texts, ()),
            length=self.opt(m, "style", "length", lambda n, p: self.choice(n, p, LENGTHS), "medium"),
        )
        words = dict(DEFAULT_LENGTH_WORDS)
        lw = self.mapping(m["length_words"], "style.length_words", LENGTHS) if "length_words" in m else None
        for key, value_node in (lw or {}).items():
            value = self.integer(value_node, f"style.length_words.{key}")
            if value is not None and not 10 <= value <= 5000:
                where = f"style.length_words.{key}"
                self.add(value_node, where, f"{value} is out of range (expected 10 to 5000 words)")
            elif value is not None:
                words[key] = value
        allows = self.read_allows(m["allows"], out["rating"]) if "allows" in m else None
        return Style(**out, allows=allows, length_words=words)

    def read_allows(self, node: Node, rating: str | None) -> dict[str, str]:
        """style.allows: descriptor -> mild | strong, never more than the world's rating allows."""
        from metagen.moderation import LEVELS, rating_allows, rating_for

        out = {}
        for name, value in (self.mapping(node, "style.allows", DESCRIPTORS) or {}).items():
            path = f"style.allows.{name}"
            severity = self.choice(value, path, SEVERITIES)
            if severity is None:
                continue
            ceiling = rating_allows(rating)[name] if rating else severity
            if LEVELS.index(severity) > LEVELS.index(ceiling):
                needed = rating_for(name, severity)
                self.add(value, path, f"'{severity}' is more than rating {rating} allows ({ceiling}) "
                         f"(raise style.rating to {needed}, or allow less)")
                continue
            out[name] = severity
        return out

    def read_defaults(self, node: Node) -> dict[str, dict[str, object]]:
        m = self.mapping(node, "defaults", DEFAULTS_KINDS) or {}
        out: dict[str, dict[str, object]] = {}
        marks: dict[tuple[str, str], tuple[Node, Node]] = {}  # (section, name) -> (key, value)
        for kind, settings in m.items():
            path = f"defaults.{kind}"
            if not isinstance(settings, MappingNode):
                expected = "expected a mapping of setting: value, e.g. temperature: 0.8"
                self.add(settings, path, f"got {describe_node(settings)} ({expected})")
                continue
            values: dict[str, object] = {}
            for key, value in settings.value:
                name = key.value if isinstance(key, ScalarNode) else None
                if not name or not SETTING_RE.match(name):
                    shown = shorten(str(name))
                    self.add(key, path, f"'{shown}' is not a setting name (expected lower_case_with_underscores)")
                    continue
                values[name] = self.setting(value, f"{path}.{name}")
                marks[kind, name] = (key, value)
            out[kind] = {k: v for k, v in values.items() if v is not None}
        self.check_defaults(m, marks, out)
        return out

    def check_defaults(self, sections: dict[str, Node], marks: dict, out: dict[str, dict[str, object]]) -> None:
        """Refuse what every command would (GenerationConfig.from_dict), by file:line and field.

        Each command kind merges `all` under its own section. A setting that fails alone is
        reported at its line unless every merge it takes part in is valid (strategy: beam
        with num_beams beside it); a merge that fails with no such setting is reported at its
        section. max_new_tokens, when no section gives it, follows the kind and the story
        length in the commands; here it is taken as large as min_new_tokens asks.
        """
        merges = {}
        for kind in DEFAULTS_KINDS[1:]:
            merged = {**out.get("all", {}), **out.get(kind, {})}
            if "max_new_tokens" not in merged and isinstance(merged.get("min_new_tokens"), int):
                merged["max_new_tokens"] = max(1, merged["min_new_tokens"])
            merges[kind] = _config_problem(merged)
        blamed = set()
        for (section, name), (key, value) in marks.items():
            alone = _config_problem({name: out[section][name]}) if name in out.get(section, {}) else None
            kinds = [section] if section != "all" else [k for k in merges if name not in out.get(k, {})]
            if alone and any(merges[k] for k in kinds):
                where = key if alone.message.startswith("unknown generation setting") else value
                hint = "" if alone.hint else " (fix the value in the world file)"
                self.add(where, f"defaults.{section}.{name}", alone.one_line() + hint)
                blamed.update(kinds)
        reported: set[str] = set()
        for kind, problem in merges.items():
            if problem and kind not in blamed and problem.message not in reported:
                reported.add(problem.message)
                section = kind if kind in sections else "all"
                who = "every command" if section == "all" else f"every {kind} command"
                self.add(sections[section], f"defaults.{section}",
                         f"{problem.one_line()} ({who} refuses these settings together; change one)")

    def setting(self, node: Node, path: str) -> object:
        if isinstance(node, SequenceNode):  # e.g. stop: ["\n\n"]; kept unstripped
            bad = [i for i in node.value if not isinstance(i, ScalarNode) or i.tag != YAML_TAG + "str"]
            for item in bad:
                self.add(item, path, f"got {describe_node(item)} in the list (expected text; quote it)")
            return None if bad else [item.value for item in node.value]
        if isinstance(node, ScalarNode) and not is_null(node):
            if node.tag in (YAML_TAG + "int", YAML_TAG + "float", YAML_TAG + "bool"):
                value = construct_scalar(node)
                if value is None or (isinstance(value, int) and abs(value) >= MAX_INT):
                    kind = {"int": "whole number", "float": "number"}.get(node.tag.replace(YAML_TAG, ""), "true/false value")
                    self.add(node, path, f"'{shorten(node.value)}' is not a {kind} metagen can read (write a plain "
                             f"number such as 0.8 or 40, at most {len(str(MAX_INT))} digits, or true/false)")
                    return None  # named once: the settings' own check refuses it too
                return value
            return node.value
        self.add(node, path, f"got {describe_node(node)} (expected a number, true/false, text or a list of text)")
        return None

    def read_content(self, node: Node) -> Content:
        m = self.mapping(node, "content", CONTENT_KEYS) or {}
        return Content(
            banned_words=self.opt(m, "content", "banned_words", self.texts, ()),
            banned_topics=self.opt(m, "content", "banned_topics", self.texts, ()),
            descriptor_words=self.opt(m, "content", "descriptor_words", self.read_descriptor_words, {}),
            allowed_words=self.opt(m, "content", "allowed_words", self.texts, ()),
        )

    def read_descriptor_words(self, node: Node, path: str) -> dict[str, dict[str, tuple[str, ...]]]:
        """content.descriptor_words: descriptor -> mild | strong -> words added to the lexicon."""
        out: dict[str, dict[str, tuple[str, ...]]] = {}
        for name, by_severity in (self.mapping(node, path, DESCRIPTORS) or {}).items():
            where = join_path(path, name)
            words = {sev: self.texts(v, join_path(where, sev))
                     for sev, v in (self.mapping(by_severity, where, SEVERITIES) or {}).items()}
            out[name] = {sev: ws for sev, ws in words.items() if ws}
        return out


def _config_problem(settings: dict[str, object]) -> ConfigError | None:
    try:
        GenerationConfig.from_dict(settings)
    except ConfigError as error:
        return error
    return None
