"""World files: the broken-world table (message and file:line:col each), limits, includes,
the example worlds and the JSON Schema."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from metagen import world as world_module
from metagen.world import includes, safe_yaml, validate
from metagen.errors import RequestError, WorldError
from metagen.text import blank
from metagen.world import load_world, schema_path, slugify, starter_world

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = [ROOT / "worlds" / "nexus-hub.yaml", ROOT / "worlds" / "ashenmere.yaml", ROOT / "worlds" / "harbour" / "world.yaml"]
EXAMPLE_FILES = sorted((ROOT / "worlds").rglob("*.yaml"))

HEAD = "world:\n  id: w\n  name: W\n"
CAST = """\
characters:
  - id: mira
    name: Mira
    relationships:
      - with: jonas
        kind: rival
  - id: jonas
    name: Jonas
locations:
  - id: docks
    name: Docks
    connections: [market]
  - id: market
    name: Market
lore:
  - id: tide
    keys: [tide]
    text: The tide comes in twice a day.
"""

VALID = HEAD + CAST


def write(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return tmp_path / next(iter(files))


def problems_of(path: Path, **kwargs) -> list[str]:
    with pytest.raises(WorldError) as info:
        load_world(path, **kwargs)
    return info.value.problems


# (case id, files {name: content}, where "file[:line:col]", message substring)
# The first file is the one loaded; file names in `where` are relative to tmp_path.
BROKEN = [
    ("unknown-field", {"w.yaml": HEAD + "characters:\n  - id: mira\n    name: Mira\n    trait: [brave]\n"},
     "w.yaml:7:5", "characters[0]: unknown field 'trait' (did you mean 'traits'?)"),
    ("unknown-section", {"w.yaml": HEAD + "charcters: []\n"},
     "w.yaml:4:1", "unknown field 'charcters' (did you mean 'characters'?)"),
    ("unknown-field-no-hint", {"w.yaml": HEAD + "zzz: 1\n"},
     "w.yaml:4:1", "unknown field 'zzz' (expected one of: world, style,"),
    ("number-for-list", {"w.yaml": HEAD + "characters:\n  - id: mira\n    name: Mira\n    traits: 5\n"},
     "w.yaml:7:13", "characters[0].traits: got the number 5 (expected a list of text"),
    ("text-for-list", {"w.yaml": HEAD + "locations:\n  - id: a\n    name: A\n    sights: a big tree\n"},
     "w.yaml:7:13", "locations[0].sights: got the text 'a big tree' (expected a list of text"),
    ("list-for-text", {"w.yaml": HEAD + "characters:\n  - id: mira\n    name: Mira\n    role: [diver]\n"},
     "w.yaml:7:11", "characters[0].role: got a list (expected text)"),
    ("mapping-for-list-item", {"w.yaml": HEAD + "characters:\n  - mira\n"},
     "w.yaml:5:5", "characters[0]: got the text 'mira' (expected a mapping with id, name"),
    ("section-not-list", {"w.yaml": HEAD + "lore: {id: a}\n"},
     "w.yaml:4:7", "lore: got a mapping (expected a list of '- id: ...' entries)"),
    ("missing-world-name", {"w.yaml": "world:\n  id: w\n"},
     "w.yaml:2:3", "world: missing required field 'name'"),
    ("missing-world", {"w.yaml": "characters: []\n"},
     "w.yaml:1:1", "missing required field 'world'"),
    ("empty-name", {"w.yaml": "world:\n  id: w\n  name:\n"},
     "w.yaml:3:8", "world.name: is empty (expected a value)"),
    ("missing-character-id", {"w.yaml": HEAD + "characters:\n  - name: Mira\n"},
     "w.yaml:5:5", "characters[0]: missing required field 'id'"),
    ("bad-world-id", {"w.yaml": "world:\n  id: My World\n  name: W\n"},
     "w.yaml:2:7", "world.id: 'My World' is not a valid id (expected lower-case a-z, 0-9, '-' or '_', at most 64 characters, e.g. 'my-world')"),
    ("bad-character-id", {"w.yaml": HEAD + "characters:\n  - id: Mira\n    name: Mira\n"},
     "w.yaml:5:9", "'Mira' is not a valid id"),
    ("duplicate-id", {"w.yaml": HEAD + "characters:\n  - {id: mira, name: A}\n  - {id: mira, name: B}\n"},
     "w.yaml:6:10", "characters[1].id: duplicate character id 'mira' (first defined at line 5; ids must be unique)"),
    ("duplicate-key", {"w.yaml": "world:\n  id: w\n  name: W\n  name: V\n"},
     "w.yaml:4:3", "world: duplicate key 'name' (first at line 3; keep one)"),
    ("unknown-relationship", {"w.yaml": VALID.replace("with: jonas", "with: jonsa")},
     "w.yaml:8:15", "characters[0].relationships[0].with: unknown character 'jonsa' (did you mean 'jonas'?)"),
    # a tie starts '- with:', not '- id:' as the hint had said
    ("relationships-not-list", {"w.yaml": HEAD + "characters:\n  - {id: m, name: M, relationships: {with: j}}\n"
                                          "  - {id: j, name: J}\n"},
     "w.yaml:5:37", "characters[0].relationships: got a mapping (expected a list of '- with: ...' entries)"),
    # "Jonas is Mira's !": a kind of punctuation alone names no relation
    ("relationship-kind-no-words", {"w.yaml": VALID.replace("kind: rival", "kind: '...'")},
     "w.yaml:9:15", "characters[0].relationships[0].kind: '...' names no relation"),
    ("relationship-to-self", {"w.yaml": VALID.replace("with: jonas", "with: mira")},
     "w.yaml:8:7", "characters[0].relationships: 'mira' is related to itself"),
    ("unknown-connection", {"w.yaml": VALID.replace("[market]", "[markt]")},
     "w.yaml:15:19", "locations[0].connections[0]: unknown location 'markt' (did you mean 'market'?)"),
    ("unknown-member", {"w.yaml": VALID + "factions:\n  - id: f\n    name: F\n    members: [mira, zed]\n"},
     "w.yaml:25:21", "factions[0].members[1]: unknown character 'zed' (expected one of: mira, jonas)"),
    ("bad-choice", {"w.yaml": HEAD + "style:\n  point_of_view: fourth\n"},
     "w.yaml:5:18", "style.point_of_view: 'fourth' is not allowed (expected one of: first, second, third)"),
    ("bad-pronouns", {"w.yaml": HEAD + "characters:\n  - {id: pip, name: Pip, pronouns: robot}\n"},
     "w.yaml:5:36", "characters[0].pronouns: 'robot' is not allowed (expected one of: she/her, he/him, they/them, it/its)"),
    ("bad-priority", {"w.yaml": HEAD + "lore:\n  - {id: a, keys: [x], text: T, priority: high}\n"},
     "w.yaml:5:43", "lore[0].priority: got the text 'high' (expected a whole number)"),
    ("bad-bool", {"w.yaml": HEAD + "lore:\n  - {id: a, text: T, always_include: 3}\n"},
     "w.yaml:5:38", "lore[0].always_include: got the number 3 (expected true or false)"),
    ("lore-never-used", {"w.yaml": HEAD + "lore:\n  - {id: a, text: T}\n"},
     "w.yaml:5:5", "lore[0]: has no keys and is not always_include, so it is never used"),
    ("bad-length-words", {"w.yaml": HEAD + "style:\n  length_words: {short: 3}\n"},
     "w.yaml:5:25", "style.length_words.short: 3 is out of range (expected 10 to 5000 words)"),
    ("bad-setting-name", {"w.yaml": HEAD + "defaults:\n  story: {Top-P: 0.9}\n"},
     "w.yaml:5:11", "defaults.story: 'Top-P' is not a setting name"),
    ("bad-setting-value", {"w.yaml": HEAD + "defaults:\n  story: {temperature: {a: 1}}\n"},
     "w.yaml:5:24", "defaults.story.temperature: got a mapping (expected a number, true/false, text or a list of text)"),
    ("bad-setting-list", {"w.yaml": HEAD + "defaults:\n  story: {stop: [1]}\n"},
     "w.yaml:5:18", "defaults.story.stop: got the number 1 in the list (expected text; quote it)"),
    ("bad-defaults-kind", {"w.yaml": HEAD + "defaults:\n  stroy: {}\n"},
     "w.yaml:5:3", "defaults: unknown field 'stroy' (did you mean 'story'?)"),
    # file-level problems
    ("tab-indentation", {"w.yaml": "world:\n\tid: w\n"},
     "w.yaml:2:1", "invalid YAML: a tab character (indent with spaces, not tabs)"),
    ("unclosed-quote", {"w.yaml": "world:\n  id: w\n  name: 'Wor\n"},
     "w.yaml:3:9", "invalid YAML: a quoted string is never closed"),
    ("unclosed-flow", {"w.yaml": "world: {id: w, name: W\n"},
     "w.yaml:1:8", "invalid YAML: a [list] or {mapping} that starts here is never closed"),
    ("bad-indentation", {"w.yaml": "world:\n  id: w\n name: W\n"},
     "w.yaml:3:2", "invalid YAML: while parsing a block mapping"),
    ("two-documents", {"w.yaml": VALID + "---\n" + VALID},
     "w.yaml:22:1", "invalid YAML: a second document (one world per file"),
    ("undefined-alias", {"w.yaml": "world: *nothing\n"},
     "w.yaml:1:8", "found undefined alias 'nothing' (define '&name' before using '*name')"),
    ("top-level-list", {"w.yaml": "- world\n- characters\n"},
     "w.yaml:1:1", "the top level is a list (expected a mapping of sections"),
    ("top-level-string", {"w.yaml": "just some words\n"},
     "w.yaml:1:1", "the top level is a single value (expected a mapping of sections"),
    ("empty-file", {"w.yaml": ""},
     "w.yaml", "is empty or only comments"),
    ("only-comments", {"w.yaml": "# nothing here\n\n# still nothing\n"},
     "w.yaml", "is empty or only comments (a world needs at least 'world:'"),
    ("python-tag", {"w.yaml": "world: !!python/object/apply:os.system ['echo hi']\n"},
     "w.yaml:1:8", "YAML tag '!!python/object/apply:os.system' is not allowed"),
    ("local-tag", {"w.yaml": "world: !thing {id: w, name: W}\n"},
     "w.yaml:1:8", "YAML tag '!thing' is not allowed"),
    ("not-utf8", {"w.yaml": b"world:\n  id: w\n  name: Caf\xe9\n"},
     "w.yaml:3:12", "not UTF-8 text (byte 0xe9 cannot be decoded; save it as UTF-8)"),
    ("binary", {"w.yaml": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"},
     "w.yaml", "looks like a binary file, not YAML text"),
    ("recursive-alias", {"w.yaml": "world: &a {id: w, name: W, more: *a}\n"},
     "w.yaml:1:34", "an alias refers to the node that contains it"),
    ("too-many-aliases", {"w.yaml": "x: &x a\ny: [" + ", ".join(["*x"] * 101) + "]\n"},
     "w.yaml:2:405", "more than 100 alias uses"),
    # includes
    ("include-missing", {"w.yaml": VALID + "include: [nope.yaml]\n"},
     "w.yaml:22:11", "include[0]: 'nope.yaml' not found"),
    ("include-outside", {"inner/w.yaml": VALID + "include: [../other.yaml]\n", "other.yaml": "lore: []\n"},
     "inner/w.yaml:22:11", "include[0]: '../other.yaml' is outside the world's folder"),
    ("include-cycle", {"w.yaml": VALID + "include: [a.yaml]\n", "a.yaml": "include: [b.yaml]\n", "b.yaml": "include: [a.yaml]\n"},
     "b.yaml:1:11", "include[0]: include cycle: a.yaml -> b.yaml -> a.yaml"),
    ("include-self", {"w.yaml": VALID + "include: [w.yaml]\n"},
     "w.yaml:22:11", "include cycle: w.yaml -> w.yaml"),
    ("include-twice", {"w.yaml": VALID + "include: [a.yaml, a.yaml]\n", "a.yaml": "lore: []\n"},
     "w.yaml:22:19", "'a.yaml' is already included"),
    ("include-not-list", {"w.yaml": VALID + "include: a.yaml\n"},
     "w.yaml:22:10", "include: got the text 'a.yaml' (expected a list of file paths)"),
    ("included-world-section", {"w.yaml": VALID + "include: [a.yaml]\n", "a.yaml": "world: {id: x, name: X}\n"},
     "a.yaml:1:1", "unknown field 'world' (expected one of: include, locations, characters, factions, lore; an included file holds only"),
    ("included-broken-yaml", {"w.yaml": VALID + "include: [a.yaml]\n", "a.yaml": "lore:\n\t- x\n"},
     "a.yaml:2:1", "invalid YAML: a tab character"),
    ("included-bad-field", {"w.yaml": VALID + "include: [a.yaml]\n", "a.yaml": "lore:\n  - {id: x, keys: [k], txt: T}\n"},
     "a.yaml:2:24", "lore[0]: unknown field 'txt' (did you mean 'text'?)"),
    ("included-duplicate-id", {"w.yaml": VALID + "include: [a.yaml]\n", "a.yaml": "characters:\n  - {id: mira, name: M}\n"},
     "a.yaml:2:10", "duplicate character id 'mira' (first defined at "),
    ("included-reference", {"w.yaml": VALID + "include: [a.yaml]\n", "a.yaml": "characters:\n  - id: z\n    name: Z\n    relationships: [{with: mra}]\n"},
     "a.yaml:4:28", "unknown character 'mra' (did you mean 'mira'?)"),
]  # fmt: skip


@pytest.mark.parametrize(("files", "where", "message"), [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_broken_world_names_file_line_and_column(tmp_path, files, where, message):
    path = write(tmp_path, files)
    problems = problems_of(path)
    prefix = str(tmp_path / where.split(":")[0]) + where[len(where.split(":")[0]) :] + ":"
    matching = [p for p in problems if message in p]
    assert matching, f"no problem contains {message!r}: {problems}"
    assert any(p.startswith(prefix) for p in matching), f"expected {prefix!r}, got {matching}"


def test_every_problem_is_reported_at_once(tmp_path):
    text = VALID.replace("with: jonas", "with: jonsa").replace("[market]", "[markt]") + "style:\n  tense: future\n"
    path = write(tmp_path, {"w.yaml": text})
    with pytest.raises(WorldError) as info:
        load_world(path)
    assert len(info.value.problems) == 3
    assert info.value.message == f"{path}: 3 problems in world"
    assert "first:" in info.value.one_line() and "metagen worlds validate" in info.value.one_line()


def test_a_single_problem_is_the_message(tmp_path):
    path = write(tmp_path, {"w.yaml": HEAD + "zzz: 1\n"})
    with pytest.raises(WorldError) as info:
        load_world(path)
    assert info.value.problems == [info.value.message]
    assert info.value.exit_code == 2


@pytest.mark.parametrize("given, meant", [
    ("ashenmere", "worlds/ashenmere.yaml"),  # a world's name alone, run beside worlds/
    ("ashenmere.yaml", "worlds/ashenmere.yaml"),
    ("worlds/ashenmere", "worlds/ashenmere.yaml"),  # the path without .yaml
    ("harbour", "worlds/harbour/world.yaml"),
    ("worlds/harbour", None),  # a folder: "is a directory ... (give worlds/harbour/world.yaml)"
    ("mine", "mine.yml"),
])
def test_a_missing_world_suggests_the_file_meant(tmp_path, monkeypatch, given, meant):
    """`metagen story ashenmere` said only "no such file (check the path; ...)"."""
    (tmp_path / "worlds" / "harbour").mkdir(parents=True)
    for name in ("worlds/ashenmere.yaml", "worlds/harbour/world.yaml", "mine.yml"):
        (tmp_path / name).write_text(VALID, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    (problem,) = problems_of(Path(given))
    if meant is None:
        assert "is a directory" in problem and "give worlds/harbour/world.yaml" in problem
    else:
        assert problem == f"{given}: no such file (did you mean {meant}?)"


def test_problems_are_capped(tmp_path):
    items = "".join(f"  - {{id: c{i}, name: C, traits: {i}}}\n" for i in range(world_module.MAX_PROBLEMS + 50))
    path = write(tmp_path, {"w.yaml": HEAD + "characters:\n" + items})
    problems = problems_of(path)
    assert len(problems) == world_module.MAX_PROBLEMS + 1
    assert problems[-1] == "... and 50 more problems"


def test_missing_path_and_directory(tmp_path):
    (missing,) = problems_of(tmp_path / "nope.yaml")
    assert missing == f"{tmp_path / 'nope.yaml'}: no such file (check the path; `metagen worlds list` shows the worlds in ./worlds)"
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "world.yaml").write_text(VALID)
    (directory,) = problems_of(tmp_path / "folder")
    assert "is a directory, not a world file" in directory and "folder/world.yaml" in directory


def test_links_in_a_loop_are_one_problem_not_a_crash(tmp_path):
    (tmp_path / "a.yaml").symlink_to("b.yaml")
    (tmp_path / "b.yaml").symlink_to("a.yaml")
    (problem,) = problems_of(tmp_path / "a.yaml")
    assert "cannot be read" in problem and "links point at each other in a loop" in problem
    (tmp_path / "x1.yaml").symlink_to("x2.yaml")
    (tmp_path / "x2.yaml").symlink_to("x1.yaml")
    path = write(tmp_path, {"w.yaml": VALID + "include:\n  - x1.yaml\n"})
    (problem,) = problems_of(path)
    assert "include[0]: 'x1.yaml' cannot be read" in problem and "in a loop" in problem


@pytest.mark.parametrize("allow_outside", [False, True])
@pytest.mark.parametrize("include, link, says", [
    ("dang.yaml", "dang.yaml", "'dang.yaml' is a symbolic link to {to}, which does not exist (make the link name the "
                               "real file)"),
    ("parts/a.yaml", "parts", "'parts/a.yaml' cannot be reached: {link} is a symbolic link to {to}, which does not "
                              "exist (make the link name the real folder)"),
])
def test_an_include_that_is_a_link_to_nothing_is_named_so(tmp_path, allow_outside, include, link, says):
    """A dangling link inside the world's folder was "'dang.yaml' is outside the world's folder" (the link
    resolves to where it points), and "'dang.yaml' not found (looked for /nowhere; ...)" with --allow-outside."""
    path = write(tmp_path, {"w.yaml": VALID + f"include: [{include}]\n"})
    (tmp_path / link).symlink_to(tmp_path.parent / "nowhere")
    with pytest.raises(WorldError) as caught:
        load_world(path, allow_outside=allow_outside)
    (problem,) = caught.value.problems
    assert problem.endswith("include[0]: " + says.format(link=tmp_path / link, to=tmp_path.parent / "nowhere"))
    assert caught.value.exit_code == 2


def test_size_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(includes, "MAX_FILE_BYTES", 1024)
    path = write(tmp_path, {"w.yaml": VALID + "# " + "x" * 2000 + "\n"})
    (problem,) = problems_of(path)
    assert f"{path}: is {path.stat().st_size:,} bytes, over the 1 KiB limit" in problem
    assert "split it with include" in problem


def test_size_cap_default_is_two_mib(tmp_path):
    path = write(tmp_path, {"w.yaml": VALID + ("# " + "x" * 1000 + "\n") * 2200})
    (problem,) = problems_of(path)
    assert "over the 2 MiB limit for a world file" in problem


def test_alias_bomb_is_refused_before_expanding(tmp_path):
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    lines.append("world: {id: w, name: W, summary: *i}")
    path = write(tmp_path, {"w.yaml": "\n".join(lines) + "\n"})
    (problem,) = problems_of(path)
    assert f"aliases expand to more than {world_module.MAX_NODES} nodes" in problem
    line = int(problem[len(f"{path}:") :].split(":")[0])
    assert line < 9  # stopped at the first level past the limit, before the last alias level


def test_aliases_and_merge_keys_within_limits_work(tmp_path):
    text = HEAD + "characters:\n  - &mira {id: mira, name: Mira, role: diver, traits: [brave]}\n  - <<: *mira\n    id: jonas\n    name: Jonas\n"
    world = load_world(write(tmp_path, {"w.yaml": text}))
    assert world.character("jonas").role == "diver"
    assert world.character("jonas").traits == ("brave",)
    assert world.character("jonas").name == "Jonas"


@pytest.mark.parametrize(("cast", "where", "first"), [
    ("  - id: &a ada\n    name: Ada\n  - id: bo\n    name: Bo\n  - id: *a\n    name: Other\n", "w.yaml:9:9", "line 5"),
    ("  - &ada {id: ada, name: Ada}\n  - {id: bo, name: Bo}\n  - *ada\n", "w.yaml:7:5", "line 5"),
], ids=["id-alias", "entry-alias"])
def test_a_duplicate_made_with_an_alias_is_reported_where_the_alias_is_used(tmp_path, cast, where, first):
    """Both had been reported at the anchor's line, the first definition, where nothing is wrong."""
    path = write(tmp_path, {"w.yaml": HEAD + "characters:\n" + cast})
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path.parent}/{where}: characters[2].id: duplicate character id 'ada' (first defined at {first};")


@pytest.mark.parametrize("escape", ["\\0", "\\u200b", "\\a", "\\ufeff\\u200d"])
def test_a_text_of_only_invisible_characters_is_empty(tmp_path, escape):
    """A name of "\\u200b" or "\\0" had passed as text: a character no reader (or model) sees."""
    path = write(tmp_path, {"w.yaml": HEAD + f'characters:\n  - id: ada\n    name: "{escape}"\n'})
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:6:11: characters[0].name: shows nothing: it holds only invisible characters such as U+")
    assert problem.endswith("(expected text)")


@pytest.mark.parametrize("cast, where, said", [
    ('  - {id: x, name: "X\\nY: hi"}\n', "characters[0].name", "holds a line break (a name is one line)"),
    ('  - {id: x, name: X, aliases: [ok, "Y\\rZ"]}\n', "characters[0].aliases[1]", "holds a line break"),
])
def test_a_characters_name_is_one_line(tmp_path, cast, where, said):
    """"X\nY: hi" had passed, and a dialogue's prompt then held a line for Y that no one wrote."""
    path = write(tmp_path, {"w.yaml": HEAD + "characters:\n" + cast})
    (problem,) = problems_of(path)
    assert f": {where}: {said}" in problem


@pytest.mark.parametrize(("value", "said"), [("99999999999999999999", "whole number"), ("0b_", "whole number"),
                                             ("!!float abc", "number")])
def test_a_default_number_metagen_cannot_read_is_named_in_words(tmp_path, value, said):
    """Had said "'0b_' is not a int value metagen can read": a tag's name, and no word of the limit."""
    path = write(tmp_path, {"w.yaml": HEAD + f"defaults: {{story: {{max_new_tokens: {value}}}}}\n"})
    (problem,) = problems_of(path)
    assert f"is not a {said} metagen can read (write a plain number such as 0.8 or 40, at most 19 digits" in problem


def test_include_outside_allowed_on_request(tmp_path):
    write(tmp_path, {"inner/w.yaml": VALID + "include: [../other.yaml]\n", "other.yaml": "lore:\n  - {id: far, keys: [far], text: Far.}\n"})
    world = load_world(tmp_path / "inner" / "w.yaml", allow_outside=True)
    assert [e.id for e in world.lore] == ["tide", "far"]


def test_an_include_path_with_a_nul_character_is_one_error_naming_the_line(tmp_path):
    path = write(tmp_path, {"w.yaml": VALID + 'include: ["a\\0b.yaml"]\n'})
    with pytest.raises(WorldError) as caught:
        load_world(path)
    assert "include[0]" in str(caught.value) and "NUL character" in str(caught.value)


def test_a_bad_include_is_the_one_problem_not_the_references_into_its_neighbours(tmp_path):
    # an unread include's ids are not unknown: "unknown character 'ann' (there are none)" followed it
    files = {
        "w.yaml": VALID + "include: [people.yaml, missing.yaml]\nfactions:\n  - {id: crew, name: Crew, members: [ann]}\n",
        "people.yaml": "characters:\n  - {id: ann, name: Ann}\n",
    }
    path = write(tmp_path, files)
    with pytest.raises(WorldError) as caught:
        load_world(path)
    assert caught.value.problems == [caught.value.message] and "'missing.yaml' not found" in caught.value.message
    (tmp_path / "missing.yaml").write_text("lore: []\n", encoding="utf-8")
    assert [f.members for f in load_world(path).factions] == [("ann",)]
    (tmp_path / "missing.yaml").write_text("factions:\n  - {id: odd, name: Odd, members: [zed]}\n", encoding="utf-8")
    with pytest.raises(WorldError, match="unknown character 'zed'"):  # once every include is read, they count
        load_world(path)


def test_includes_merge_in_order_and_hash_covers_every_file(tmp_path):
    files = {
        "w.yaml": VALID + "include: [parts/a.yaml]\n",
        "parts/a.yaml": "include: [b.yaml]\ncharacters:\n  - {id: ann, name: Ann}\n",
        "parts/b.yaml": "locations:\n  - {id: pier, name: Pier, connections: [docks]}\n",
    }
    path = write(tmp_path, files)
    world = load_world(path)
    assert [c.id for c in world.characters] == ["mira", "jonas", "ann"]
    assert [loc.id for loc in world.locations] == ["docks", "market", "pier"]
    assert world.files == tuple((tmp_path / n).resolve() for n in files)
    expected = hashlib.sha256(b"".join((tmp_path / n).read_bytes() for n in files)).hexdigest()
    assert world.content_hash == expected
    assert world.path == path


def test_a_world_read_again_is_composed_once_and_a_changed_file_afresh(tmp_path, monkeypatch):
    """`metagen serve` loads the world of every request; the same bytes are not parsed twice."""
    composed = []
    monkeypatch.setattr(includes, "compose_yaml", lambda data, what: composed.append(data) or safe_yaml.compose_yaml(
        data, what))
    includes._composed.cache_clear()
    merged = HEAD + "characters:\n  - &mira {id: mira, name: Mira, role: diver}\n  - <<: *mira\n    id: jonas\n    name: Jonas\n"
    part = "lore: [{id: tide, keys: [tide], text: Low.}]\n"
    path = write(tmp_path, {"w.yaml": merged + "include: [part.yaml]\n", "part.yaml": part})
    first, second = load_world(path), load_world(path)
    assert first == second and len(composed) == 2  # two files, each composed once
    assert second.character("jonas").role == "diver"  # a merge key read from kept nodes reads the same
    (tmp_path / "part.yaml").write_text(part.replace("Low", "High"))
    assert load_world(path).lore[0].text == "High." and len(composed) == 3


def test_unicode_end_to_end(tmp_path):
    text = HEAD.replace("name: W", "name: Ceann Tíre") + (
        "characters:\n  - id: aoife\n    name: Aoife Ní Bhriain\n    aliases: [Aoife]\n"
        "  - id: lin-xiaoyu\n    name: 林小雨\n    sample_lines: ['雨停了。']\n"
    )
    world = load_world(write(tmp_path, {"wörld.yaml": text}))
    assert world.name == "Ceann Tíre"
    assert world.character("林小雨").id == "lin-xiaoyu"
    assert world.character("aoife ní bhriain").id == "aoife"
    assert world.character("lin-xiaoyu").sample_lines == ("雨停了。",)


def test_bom_and_yes_no_text(tmp_path):
    text = "\ufeff" + HEAD + "characters:\n  - id: y\n    name: Y\n    sample_lines: [yes, 1920]\n"
    world = load_world(write(tmp_path, {"w.yaml": text}))
    assert world.character("y").sample_lines == ("yes", "1920")


def test_lookup_errors_have_hints(tmp_path):
    world = load_world(write(tmp_path, {"w.yaml": VALID}))
    with pytest.raises(RequestError) as info:
        world.character("mria")
    assert "did you mean 'mira'?" in info.value.one_line()
    assert "mira, jonas" in info.value.one_line()
    with pytest.raises(RequestError, match="no location 'harbour'"):
        world.location("harbour")


def test_ids_and_names_match_without_accents_case_or_spacing(tmp_path):
    """`-c Maëlle` said "has no character 'Maëlle' (did you mean 'maelle'?)": a reader types the
    name as the story spells it, or an id with a space for its hyphen."""
    text = HEAD.replace("name: W", "name: Ceann Tíre") + (
        "locations:\n  - {id: crooked-kettle, name: The Crooked Kettle}\n"
        "characters:\n  - {id: maelle, name: Sister Maëlle}\n  - {id: ysolde, name: Queen Ysolde Vær}\n"
        "  - {id: lin-xiaoyu, name: 林小雨}\n"
        "  - {id: a1, name: Ana-María}\n  - {id: a2, name: ana maria}\n"
    )
    world = load_world(write(tmp_path, {"w.yaml": text}))
    for ref, expected in [("Maëlle", "maelle"), ("MAËLLE", "maelle"), ("sister maelle", "maelle"),
                          ("Queen Ysolde Vaer", "ysolde"), ("Lin Xiaoyu", "lin-xiaoyu"), ("lin_xiaoyu", "lin-xiaoyu"),
                          ("ana maria", "a2")]:  # an exact name (any case) wins over a loose one
        assert world.character(ref).id == expected, ref
    assert world.location("crooked kettle").id == "crooked-kettle"
    assert world.location("the crooked-kettle").id == "crooked-kettle"
    with pytest.raises(RequestError, match="'ANA-MARIA' names 2 characters .* \\(a1, a2\\)"):
        world.character("ANA-MARIA")
    for ref in ("---", "maell"):
        with pytest.raises(RequestError, match="has no character"):
            world.character(ref)

def test_a_name_two_characters_share_asks_for_the_id(tmp_path):
    text = HEAD + "characters:\n  - {id: b, name: Bea}\n  - {id: c, name: bea}\n"
    world = load_world(write(tmp_path, {"w.yaml": text}))
    with pytest.raises(RequestError, match="'Bea' names 2 characters of world .* \\(b, c\\)") as info:
        world.character("Bea")
    assert "give the id of the one you mean" in info.value.one_line()
    assert world.character("c").name == "bea"


def test_defaults_are_plain_validated_dicts(tmp_path):
    text = HEAD + 'defaults:\n  all: {repetition_penalty: 1.1}\n  dialogue: {temperature: 0.7, stop: ["\\n\\n", " Mira:"], penalize_prompt: false}\n'
    world = load_world(write(tmp_path, {"w.yaml": text}))
    assert world.defaults == {"all": {"repetition_penalty": 1.1}, "dialogue": {"temperature": 0.7, "stop": ["\n\n", " Mira:"], "penalize_prompt": False}}
    assert world.generation_defaults("dialogue")["repetition_penalty"] == 1.1
    assert world.generation_defaults("story") == {"repetition_penalty": 1.1}


def test_style_choices_are_case_insensitive_and_lengths_default(tmp_path):
    world = load_world(write(tmp_path, {"w.yaml": HEAD + "style:\n  point_of_view: Third\n  rating: pg-13\n"}))
    assert world.style.point_of_view == "third" and world.style.rating == "PG-13"
    assert world.style.length_words == {"short": 150, "medium": 350, "long": 700}


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp", "Co", "Cn")), min_size=1, max_size=40))
@settings(max_examples=60, deadline=None)
def test_any_printable_name_round_trips(name):
    import tempfile

    if blank(name.strip()) or "\ufeff" in name:  # refused: it shows nothing (tested above)
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "w.yaml"
        path.write_text(f"world:\n  id: w\n  name: {json.dumps(name, ensure_ascii=False)}\n", encoding="utf-8")
        assert load_world(path).name == name.strip()


@pytest.mark.parametrize(("text", "slug"), [("Aoife Ní Bhriain", "aoife-ni-bhriain"), ("林小雨", "world"), ("  Nexus  Hub! ", "nexus-hub")])
def test_slugify(text, slug):
    assert slugify(text) == slug


# ----------------------------------------------------------------------------- examples


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name if p.name == "world.yaml" else p.stem)
def test_example_world_is_valid_and_rich_enough(path):
    world = load_world(path)
    assert len(world.characters) >= 5 and len(world.locations) >= 5 and len(world.lore) >= 8
    assert all(c.sample_lines for c in world.characters)
    assert world.content.banned_words
    assert any(not c.name.isascii() for c in world.characters)
    assert path.read_text(encoding="utf-8").startswith("# yaml-language-server: $schema=")


def test_examples_differ_and_one_is_split_over_files():
    worlds = [load_world(p) for p in EXAMPLES]
    assert len({w.genre for w in worlds}) == 3
    assert max(len(w.files) for w in worlds) > 1
    names = {c.name for w in worlds for c in w.characters}
    assert {"Aoife Ní Bhriain", "林小雨"} <= names


def test_example_schema_lines_point_at_the_schema():
    for path in EXAMPLE_FILES:
        first = path.read_text(encoding="utf-8").splitlines()[0]
        ref = first.split("$schema=", 1)[1]
        assert (path.parent / ref).resolve() == schema_path().resolve(), path


# ----------------------------------------------------------------------------- JSON Schema


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: str(p.relative_to(ROOT / "worlds")))
def test_schema_accepts_example_files(validator, path):
    errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text(encoding="utf-8")))]
    assert errors == []


def test_schema_accepts_the_starter(validator, tmp_path):
    text = starter_world("Ceann Tíre")
    assert list(validator.iter_errors(yaml.safe_load(text))) == []
    path = tmp_path / "w.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_world(path).name == "Ceann Tíre"


SCHEMA_BROKEN = [
    ("unknown-field", VALID + "colour: red\n"),
    ("unknown-character-field", VALID.replace("kind: rival", "kind: rival\n        since: 2040")),
    ("number-for-list", HEAD + "characters:\n  - {id: m, name: M, traits: 5}\n"),
    ("missing-name", "world:\n  id: w\n"),
    ("bad-id", "world:\n  id: My World\n  name: W\n"),
    ("bad-choice", HEAD + "style: {tense: future}\n"),
    ("bad-priority", HEAD + "lore:\n  - {id: a, keys: [x], text: T, priority: high}\n"),
    ("lore-never-used", HEAD + "lore:\n  - {id: a, text: T}\n"),
    ("bad-setting-name", HEAD + "defaults: {story: {Top-P: 1}}\n"),
    ("bad-setting-value", HEAD + "defaults: {story: {stop: [1, 2]}}\n"),
    ("part-with-style", "style: {tense: past}\ncharacters: []\n"),
    ("top-level-list", "- world\n"),
    ("relationship-without-with", HEAD + "characters:\n  - {id: m, name: M, relationships: [{kind: x}]}\n"),
]


@pytest.mark.parametrize("text", [c[1] for c in SCHEMA_BROKEN], ids=[c[0] for c in SCHEMA_BROKEN])
def test_schema_rejects_broken_worlds(validator, tmp_path, text):
    assert list(validator.iter_errors(yaml.safe_load(text)))
    with pytest.raises(WorldError):  # and the loader agrees
        load_world(write(tmp_path, {"w.yaml": text}))


def test_schema_and_loader_know_the_same_fields():
    schema = json.loads(schema_path().read_text(encoding="utf-8"))
    defs = schema["$defs"]
    pairs = [
        (schema["properties"], validate.TOP_KEYS),
        (schema["properties"]["world"]["properties"], validate.WORLD_KEYS),
        (schema["properties"]["style"]["properties"], validate.STYLE_KEYS),
        (schema["properties"]["content"]["properties"], validate.CONTENT_KEYS),
        (schema["properties"]["defaults"]["properties"], world_module.DEFAULTS_KINDS),
        (defs["location"]["properties"], validate.LOCATION_KEYS),
        (defs["character"]["properties"], validate.CHARACTER_KEYS),
        (defs["relationship"]["properties"], validate.RELATIONSHIP_KEYS),
        (defs["faction"]["properties"], validate.FACTION_KEYS),
        (defs["lore"]["properties"], validate.LORE_KEYS),
    ]
    for properties, keys in pairs:
        assert set(properties) == set(keys)
    assert defs["id"]["pattern"] == world_module.ID_RE.pattern


def test_the_example_in_the_docs_validates(tmp_path, validator):
    import re

    docs = (ROOT / "docs" / "worlds.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", docs, re.S) if "world:" in b)
    text = "\n".join(line for line in block.splitlines() if not line.startswith("include:"))
    assert list(validator.iter_errors(yaml.safe_load(text))) == []
    assert load_world(write(tmp_path, {"w.yaml": text})).character("Aoife").id == "aoife"


def test_too_many_values_stop_the_parse_early(tmp_path, monkeypatch):
    monkeypatch.setattr(safe_yaml, "MAX_NODES", 1000)
    path = write(tmp_path, {"w.yaml": "x:\n" + "  - 1\n" * 5000})
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}:999:5: more than 1000 values in one file")


def test_style_asks_a_worlds_tense_else_present_for_scenes_and_past_for_stories():
    from metagen.world.types import Style

    assert [Style().tense_for(kind) for kind in ("scene", "story", "dialogue")] == ["present", "past", "past"]
    assert [Style(tense="present").tense_for(kind) for kind in ("scene", "story")] == ["present", "present"]
