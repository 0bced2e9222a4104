"""metagen.blind and `metagen eval --blind/--unblind`: settings A and B, pairing and its seeded order,
the files written, reading a filled sheet, the tally and its interval, and the CLI end to end with
the tiny model."""
from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import pytest

from conftest import invoke
from metagen import blind as B
from metagen import eval as E
from metagen.errors import ConfigError
import test_eval

# the eval tests' world (two places, four characters) and tiny model with a 2048-token window
world_file, world, long_gguf = test_eval.world_file, test_eval.world, test_eval.long_gguf

STORY = {"kind": "story", "characters": ["ada", "bo"], "location": "well", "premise": None, "length": "short"}
SCENE = {"kind": "scene", "location": "well", "time": None, "weather": None, "mood": None, "characters": []}


def outputs(side: str, n: int, kinds=("story",)) -> list[E.Output]:
    """n outputs of one side, seeds 1..n, the request of each kind in turn; text says side and seed."""
    made = []
    for seed in range(1, n + 1):
        kind = kinds[(seed - 1) % len(kinds)]
        request = STORY if kind == "story" else SCENE
        made.append(E.Output("smallton", kind, "metagen", dict(request), seed, f"{side} text {seed}", 5, "eos"))
    return made


def run_of(side: str, n: int, kinds=("story",)) -> E.EvalRun:
    settings = {"kinds": list(kinds), "seeds": list(range(1, n + 1)), "max_requests": 1, "turns": 2,
                "max_tokens": 8, "variant": "metagen", "baseline": False, "flags": {}, "configs": {}}
    return E.EvalRun(settings=settings, model={"name": "m"}, outputs=outputs(side, n, kinds))


# ----------------------------------------------------------------------------- settings A and B


@pytest.mark.parametrize("text, settings", [
    ("candidates=4", {"candidates": 4}),
    ("candidates=4, temperature=0.7,penalize_prompt=true", {"candidates": 4, "temperature": 0.7,
                                                             "penalize_prompt": True}),
    ("banned=[dragon, war],top_k=3", {"banned": ["dragon", "war"], "top_k": 3}),  # a list keeps its commas
])
def test_inline_settings(text, settings):
    assert B.load_settings(text, "--a") == settings


def test_settings_from_yaml_and_json_files(tmp_path):
    (tmp_path / "a.yaml").write_text("candidates: 4\ntemperature: 0.6\n", encoding="utf-8")
    (tmp_path / "b.json").write_text('{"candidates": 1}', encoding="utf-8")
    (tmp_path / "empty.yaml").write_text("", encoding="utf-8")
    assert B.load_settings(str(tmp_path / "a.yaml"), "--a") == {"candidates": 4, "temperature": 0.6}
    assert B.load_settings(str(tmp_path / "b.json"), "--b") == {"candidates": 1}
    assert B.load_settings(str(tmp_path / "empty.yaml"), "--b") == {}


@pytest.mark.parametrize("text, message", [
    ("candidate=4", "--a: unknown generation setting 'candidate'"),
    ("temperature=-1", "--a: --temperature"),
    ("top_k=many", "--a: top_k"),
    ("candidates=4,temperature=0", "--a: --candidates 4 needs sampling"),
    ("seed=3", "--a: seed is not a setting to compare"),
    ("settings.yaml", "no such file, and 'settings.yaml' is not key=value"),
    ("candidates=", "is not key=value"),
    ("candidates=1,candidates=2", "--a 'candidates=1,candidates=2': candidates is given twice"),  # (the last won)
    ("top_k=3, top_k =3", "top_k is given twice"),
    ("", "--a is empty"),  # had been read as the path ".": "--a: . is a folder, not a settings file"
    (" ", "--a is empty"),
])
def test_bad_settings_name_the_flag(text, message):
    with pytest.raises(ConfigError) as error:
        B.load_settings(text, "--a")
    assert message in error.value.message


def test_a_settings_file_must_hold_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- candidates\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="--b: .* must hold a mapping"):
        B.load_settings(str(path), "--b")


@pytest.mark.parametrize("content, message", [
    ("temperature: [1\n", "--b: {path}:1: invalid YAML"),
    ("temperature: 0.5\ntemperature: 0.9\n", "--b: {path}:2: duplicate key 'temperature' (keep one)"),
    ("!!python/object:os.system {}\n", "--b: {path}:1: YAML tag '!!python/object:os.system' is not allowed"),
    (b"temperature: \xff\n", "--b: {path}:1: not UTF-8 text"),
    (None, "--b: {path} is a folder, not a settings file"),
])
def test_a_settings_file_is_read_as_carefully_as_a_world(tmp_path, content, message):
    path = tmp_path / "b.yaml"
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        B.load_settings(str(path), "--b")
    assert error.value.one_line().startswith(message.format(path=path)), error.value.one_line()


def test_settings_clashing_with_a_world_name_the_flag(world):
    with pytest.raises(ConfigError, match="--b: .*for smallton story"):
        B.check_with_worlds([world], ("story",), {"temperature": 0.0}, {"candidates": 3}, "--b")
    B.check_with_worlds([world], ("story",), {"temperature": 0.0}, {"candidates": 1}, "--b")


# ----------------------------------------------------------------------------- pairs


def test_pairing_is_deterministic_and_balanced():
    first = B.make_pairs(outputs("A", 10), outputs("B", 10), seed=7)
    again = B.make_pairs(outputs("A", 10), outputs("B", 10), seed=7)
    assert [p.a_first for p in first] == [p.a_first for p in again]
    assert sum(p.a_first for p in first) == 5  # A is Text 1 in exactly half
    orders = {tuple(p.a_first for p in B.make_pairs(outputs("A", 10), outputs("B", 10), seed=s)) for s in range(8)}
    assert len(orders) > 1  # the seed decides
    assert [p.id for p in first[:2]] == ["pair-001", "pair-002"]
    for p in first:
        assert p.a == f"A text {p.seed}" and p.b == f"B text {p.seed}"
        assert p.texts == ((p.a, p.b) if p.a_first else (p.b, p.a))
    assert sum(p.a_first for p in B.make_pairs(outputs("A", 7), outputs("B", 7), seed=1)) in (3, 4)


def test_pairing_matches_requests_and_seeds_not_order():
    pairs = B.make_pairs(outputs("A", 4), list(reversed(outputs("B", 4))), seed=1)
    assert [(p.seed, p.b) for p in pairs] == [(s, f"B text {s}") for s in range(1, 5)]
    with pytest.raises(ValueError):
        B.make_pairs(outputs("A", 4), outputs("B", 3), seed=1)


def test_write_blind_files(world, tmp_path):
    folder = tmp_path / "blind"
    pairs = B.write_blind(folder, [world], run_of("A", 3), run_of("B", 3), {"candidates": 4}, {"candidates": 1},
                          seed=5)
    assert sorted(p.name for p in folder.iterdir()) == ["key.json", "pair-001.md", "pair-002.md", "pair-003.md",
                                                        "ratings.csv", "worlds"]
    text = (folder / "pair-001.md").read_text(encoding="utf-8")
    assert ("- kind: story\n- world: Smallton\n- world file: worlds/smallton/smallton.yaml\n"
            "- cast: Queen Ada Vær, Bo Lee\n- place: The Old Well") in text
    assert (folder / "worlds/smallton/smallton.yaml").read_bytes() == world.path.read_bytes()
    one, two = pairs[0].texts
    assert text.index("## Text 1") < text.index(one) < text.index("## Text 2") < text.index(two)
    assert "candidates" not in text  # nothing tells the reader which is which
    key = json.loads((folder / "key.json").read_text(encoding="utf-8"))
    assert re.fullmatch(r"[0-9a-f]{8}", key["run"])
    assert (folder / "ratings.csv").read_text(encoding="utf-8") == "run,pair,preferred,note\n" + "".join(
        f"{key['run']},pair-00{i},,\n" for i in (1, 2, 3))
    assert key["a"] == {"candidates": 4} and key["b"] == {"candidates": 1} and key["seed"] == 5
    assert [e["a"] for e in key["pairs"]] == [1 if p.a_first else 2 for p in pairs]
    assert key["grid"]["worlds"] == [{"id": "smallton", "path": str(world.path)}]
    assert key["grid"]["max_tokens"] == 8
    flagged = run_of("A", 3)
    flagged.settings["flags"] = {"max_new_tokens": 5}  # --max-tokens 5: what stories and scenes were given
    B.write_blind(tmp_path / "blind2", [world], flagged, run_of("B", 3), {}, {}, seed=5)
    assert json.loads((tmp_path / "blind2" / "key.json").read_text(encoding="utf-8"))["grid"]["max_tokens"] == 5
    with pytest.raises(ConfigError, match="not an empty folder"):
        B.write_blind(folder, [world], run_of("A", 3), run_of("B", 3), {}, {}, seed=5)


def test_a_blind_folder_holds_each_worlds_files_with_its_includes(tmp_path):
    """Readers judge a text against its world ("the wall is concrete, not steel"); a folder sent to a reader
    elsewhere held no world, and a world split over include files was unreadable without them."""
    from metagen.world import load_world

    home = tmp_path / "harbour"
    (home / "parts").mkdir(parents=True)
    (home / "parts" / "places.yaml").write_text(
        "locations:\n  - {id: docks, name: The Docks, description: Cranes and fog.}\n", encoding="utf-8")
    (home / "world.yaml").write_text("world: {id: harbour, name: The Harbour}\ninclude: [parts/places.yaml]\n"
                                     "characters:\n  - {id: bea, name: Bea}\n", encoding="utf-8")
    world = load_world(home / "world.yaml")
    folder = tmp_path / "blind"
    runs = [run_of(side, 2, ("scene",)) for side in "AB"]
    for run in runs:
        for output in run.outputs:
            output.world, output.request = "harbour", {"kind": "scene", "location": "docks"}
    B.write_blind(folder, [world], *runs, {"candidates": 4}, {"candidates": 1}, seed=1)
    copied = folder / "worlds" / "harbour"
    assert sorted(p.relative_to(copied).as_posix() for p in copied.rglob("*.yaml")) == ["parts/places.yaml",
                                                                                         "world.yaml"]
    assert (copied / "parts" / "places.yaml").read_text(encoding="utf-8") == (home / "parts" / "places.yaml").read_text(
        encoding="utf-8")
    assert load_world(copied / "world.yaml").locations[0].name == "The Docks"  # the copy loads as the world does
    assert "- world file: worlds/harbour/world.yaml\n- place: The Docks" in (folder / "pair-001.md").read_text(
        encoding="utf-8")


# ----------------------------------------------------------------------------- ratings


def fill(folder: Path, rows: list[tuple[str, str]], header: str = "pair,preferred,note") -> None:
    lines = [header, *(f"{pair},{choice},a note" for pair, choice in rows)]
    (folder / "ratings.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def choice_for(pair_entry: dict, side: str) -> str:
    """The sheet's value that prefers side A or B in this pair."""
    return str(pair_entry["a"] if side == "A" else 3 - pair_entry["a"])


@pytest.fixture
def blind_folder(world, tmp_path) -> Path:
    folder = tmp_path / "blind"
    B.write_blind(folder, [world], run_of("A", 8, ("story", "scene")), run_of("B", 8, ("story", "scene")),
                  {"candidates": 4}, {"candidates": 1}, seed=3)
    return folder


def test_unblind_tallies_a_filled_sheet(blind_folder):
    key = json.loads((blind_folder / "key.json").read_text(encoding="utf-8"))
    entries = {e["pair"]: e for e in key["pairs"]}
    # stories (pairs 1, 3, 5, 7): B, B, B, tie; scenes (2, 4, 6, 8): A, B, unrated, unrated
    wanted = {"pair-001": "B", "pair-003": "B", "pair-005": "B", "pair-007": "=", "pair-002": "A", "pair-004": "B"}
    fill(blind_folder, [(p, v if v == "=" else choice_for(entries[p], v)) for p, v in wanted.items()]
         + [("pair-006", "")])
    markdown, path = B.unblind(blind_folder)
    assert path == blind_folder / "unblind.md" and path.read_text(encoding="utf-8") == markdown
    result = B.tally(*B.read_ratings(blind_folder))
    assert list(result) == ["story", "scene", "all"]
    assert {k: result["story"][k] for k in ("pairs", "rated", "unrated", "a", "b", "ties")} == \
        {"pairs": 4, "rated": 4, "unrated": 0, "a": 0, "b": 3, "ties": 1}
    assert {k: result["scene"][k] for k in ("pairs", "rated", "unrated", "a", "b", "ties")} == \
        {"pairs": 4, "rated": 2, "unrated": 2, "a": 1, "b": 1, "ties": 0}
    assert result["all"]["share_b"] == pytest.approx(4 / 5)
    assert result["story"]["share_b"] == 1.0 and result["scene"]["share_b"] == 0.5
    assert "| story | 4 | 4 | 0 | 3 | 1 | 100% |" in markdown
    assert "| all | 8 | 6 | 1 | 4 | 1 | 80% | 38% to 96% |" in markdown
    assert "- A: candidates=4" in markdown and "unrated 2 (skipped)" in markdown


def test_a_sheet_from_another_blind_run_is_refused(world, tmp_path):
    """A filled sheet copied from another blind run (same grid, so the same pair ids) was tallied
    against this run's key, whose A and B sit in other places: the tally counted the wrong side.
    Each run now has an id that its key and every row of its sheet carry."""
    runs = []
    for name in ("one", "two"):
        B.write_blind(tmp_path / name, [world], run_of("A", 4), run_of("B", 4), {"candidates": 4},
                      {"candidates": 1}, seed=3)
        runs.append(json.loads((tmp_path / name / "key.json").read_text(encoding="utf-8"))["run"])
    assert runs[0] != runs[1]
    sheet = (tmp_path / "one" / "ratings.csv").read_text(encoding="utf-8").replace(",pair-001,,", ",pair-001,1,")
    (tmp_path / "one" / "ratings.csv").write_text(sheet, encoding="utf-8")
    assert B.tally(*B.read_ratings(tmp_path / "one"))["all"]["rated"] == 1  # its own folder: tallied
    (tmp_path / "two" / "ratings.csv").write_text(sheet, encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        B.unblind(tmp_path / "two")
    assert error.value.one_line() == (
        f"{tmp_path / 'two' / 'ratings.csv'}: line 2: pair-001 was rated in the blind run {runs[0]}, and this "
        f"folder's key.json is run {runs[1]} (fill in the ratings.csv of this folder: another run's sheet rates "
        "other texts)")
    assert not (tmp_path / "two" / "unblind.md").exists()


def test_a_sheet_without_runs_is_taken_and_a_key_without_one_refuses_a_sheet_with_one(blind_folder):
    """A sheet made by hand (no run column) is read as before; a key from before runs had ids cannot
    be the key of a sheet that carries one."""
    fill(blind_folder, [("pair-001", "1")])
    assert B.tally(*B.read_ratings(blind_folder))["all"]["rated"] == 1
    key = json.loads((blind_folder / "key.json").read_text(encoding="utf-8"))
    del key["run"]
    (blind_folder / "key.json").write_text(json.dumps(key), encoding="utf-8")
    fill(blind_folder, [("0123abcd,pair-001", "1")], "run,pair,preferred,note")
    with pytest.raises(ConfigError, match="was rated in the blind run 0123abcd, and this folder's key.json names "
                                          "no run"):
        B.read_ratings(blind_folder)


def test_an_untouched_sheet_tallies_nothing(blind_folder):
    result = B.tally(*B.read_ratings(blind_folder))
    assert result["all"]["rated"] == 0 and result["all"]["unrated"] == 8
    assert result["all"]["share_b"] is None and result["all"]["interval"] is None
    assert "| all | 8 | 0 | 0 | 0 | 0 | - | - |" in B.unblind(blind_folder)[0]


@pytest.mark.parametrize("rows, header, message", [
    ([("pair-099", "1")], "pair,preferred,note", "line 2: unknown pair 'pair-099'"),
    ([("pair-001", "1"), ("pair-002", "3")], "pair,preferred,note", "line 3: preferred must be 1, 2 or ="),
    ([("pair-001", "A")], "pair,preferred,note", "got 'A'"),
    ([("pair-001", "1"), ("pair-001", "2")], "pair,preferred,note", "pair-001 is rated twice"),
    ([("pair-001", "1")], "id,choice,note", "the first line must name the columns"),
    ([("pair-001", "1")], "pair,preferred,pair", "the first line must name the columns"),  # (the last 'pair' won)
    ([("pair-001", "1")], "pair,preferred", "line 2 has more fields than the first line names"),  # a note, unnamed
])
def test_malformed_sheets(blind_folder, rows, header, message):
    fill(blind_folder, rows, header)
    with pytest.raises(ConfigError) as error:
        B.read_ratings(blind_folder)
    assert message in error.value.message


@pytest.mark.parametrize("sheet", [
    'pair,preferred,note\npair-001,1,"too long. keep: none\npair-002,2,"garbled. keep: none"\n',
    # as --blind writes it, the run first: the open quote swallowed pair-002's rating without a word
    'run,pair,preferred,note\nRUN,pair-001,1,"too long. keep: none\nRUN,pair-002,2,"garbled. keep: none"\n',
])
def test_a_note_whose_quote_is_left_open_is_refused(blind_folder, sheet):
    run = json.loads((blind_folder / "key.json").read_text(encoding="utf-8")).get("run", "")
    (blind_folder / "ratings.csv").write_text(sheet.replace("RUN", str(run)), encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        B.read_ratings(blind_folder)
    assert "the note of pair-001 runs on into the next rows" in error.value.message


def test_a_sheet_from_a_spreadsheet_reads(blind_folder):
    """A byte-order mark, spaces, quoted notes over two lines and blank rows are all fine."""
    sheet = '\ufeffpair, preferred ,note\n"pair-001", 2 ,"long\nnote"\n\n,,\npair-002,=,\n'
    (blind_folder / "ratings.csv").write_text(sheet, encoding="utf-8")
    assert B.read_ratings(blind_folder)[1] == {"pair-001": "2", "pair-002": "="}


@pytest.mark.parametrize("remove, message", [("key.json", "there is no key.json"),
                                             ("ratings.csv", "there is no ratings.csv")])
def test_missing_key_or_sheet(blind_folder, remove, message):
    (blind_folder / remove).unlink()
    with pytest.raises(ConfigError, match=message):
        B.read_ratings(blind_folder)


@pytest.mark.parametrize("make, says", [
    (lambda p: p.mkdir(), "{path} is a folder, not {what} (give the file itself)"),
    (lambda p: os.mkfifo(p), "{path}: is a FIFO (named pipe), not a regular file (give a file; metagen reads no "
                             "pipes, devices or sockets)"),
    (lambda p: p.symlink_to(p.name), "{path} is a symbolic link in a loop (it leads back to itself) (make the link "
                                     "name the real file)"),
    (lambda p: p.symlink_to(p.parent / "gone"), "{path} is a symbolic link to {gone}, which does not exist (make the "
                                                "link name the real file)"),
], ids=["folder", "fifo", "link-loop", "link-to-nothing"])
@pytest.mark.parametrize("name, what", [("key.json", "a key"), ("ratings.csv", "a ratings sheet")])
def test_a_key_or_sheet_that_is_no_file_is_named_so(runner, blind_folder, name, what, make, says):
    """A key.json that was a FIFO, a folder or a link loop was "there is no key.json": it is there."""
    path = blind_folder / name
    path.unlink()
    make(path)
    result = invoke(runner, "eval", "--unblind", blind_folder)
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: {says.format(path=path, what=what, gone=blind_folder / 'gone')}\n"


@pytest.mark.parametrize("text", [
    '{"pairs": [{"pair": "pair-001"}]}',
    '{"pairs": ' + "[" * 100_000 + "]" * 100_000 + "}",  # nested past json's depth: a RecursionError traceback
])
def test_a_broken_key(blind_folder, text):
    (blind_folder / "key.json").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="is not a key that --blind wrote"):
        B.read_ratings(blind_folder)


@pytest.mark.parametrize("edit", [
    lambda key: key["pairs"][0].update(kind=[1]),  # each was a TypeError traceback
    lambda key: key["grid"].update(kinds=5),
    lambda key: key["grid"].update(kinds=[[1]]),
    lambda key: key["pairs"][0].update(pair=7),
])  # fmt: skip
def test_a_hand_edited_key_with_values_of_the_wrong_type(blind_folder, edit):
    key = json.loads((blind_folder / "key.json").read_text(encoding="utf-8"))
    edit(key)
    (blind_folder / "key.json").write_text(json.dumps(key), encoding="utf-8")
    fill(blind_folder, [("pair-001", "1")], "pair,preferred,note")
    with pytest.raises(ConfigError, match="is not a key that --blind wrote"):
        B.tally(*B.read_ratings(blind_folder))


@pytest.mark.parametrize("pairs", [
    lambda pairs: [],  # an empty tally had no "all" row: a KeyError traceback from unblind
    lambda pairs: [*pairs, pairs[0]],  # the repeated pair had been counted twice
])  # fmt: skip
def test_a_key_with_no_pairs_or_a_pair_twice(blind_folder, pairs):
    key = json.loads((blind_folder / "key.json").read_text(encoding="utf-8"))
    (blind_folder / "key.json").write_text(json.dumps({**key, "pairs": pairs(key["pairs"])}), encoding="utf-8")
    (blind_folder / "ratings.csv").write_text("pair,preferred,note\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not a key that --blind wrote"):
        B.unblind(blind_folder)
    assert not (blind_folder / "unblind.md").exists()


def test_a_sheet_saved_in_cp1252_says_so(blind_folder):
    (blind_folder / "ratings.csv").write_bytes("pair,preferred,note\npair-001,1,\"caf\u00e9 keep1\"\n".encode("cp1252"))
    with pytest.raises(ConfigError) as error:
        B.read_ratings(blind_folder)
    assert error.value.message.endswith("ratings.csv: line 2: not UTF-8 text (byte 0xe9)")
    assert error.value.hint == "save the sheet as CSV UTF-8"


def test_a_key_whose_settings_are_not_a_mapping(blind_folder):
    key = json.loads((blind_folder / "key.json").read_text(encoding="utf-8"))
    (blind_folder / "key.json").write_text(json.dumps({**key, "b": "temperature=0.6"}), encoding="utf-8")
    with pytest.raises(ConfigError, match="is not a key that --blind wrote"):
        B.read_ratings(blind_folder)


def test_wilson_interval():
    low, high = B.wilson(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert B.wilson(0, 5)[0] == 0.0 and B.wilson(5, 5)[1] == 1.0
    low, high = B.wilson(5, 10)
    assert low + high == pytest.approx(1.0)
    assert B.wilson(0, 0) is None


# ----------------------------------------------------------------------------- the command


def test_cli_blind_then_unblind(runner, world_file, long_gguf, tmp_path):
    folder = tmp_path / "compare"
    (tmp_path / "a.yaml").write_text("candidates: 2\n", encoding="utf-8")
    result = invoke(runner, "eval", world_file, "--blind", folder, "--a", tmp_path / "a.yaml", "--b", "candidates=1",
                    "--seeds", "1", "--max-requests", "1", "--turns", "2", "--max-tokens", "6", "--seed", "4",
                    "--model", long_gguf, "--dtype", "float32", "--quiet")
    assert result.exit_code == 0, result.output
    assert "wrote 3 pairs" in result.stdout
    assert sorted(p.name for p in folder.iterdir()) == ["key.json", "pair-001.md", "pair-002.md", "pair-003.md",
                                                        "ratings.csv", "worlds"]
    key = json.loads((folder / "key.json").read_text(encoding="utf-8"))
    assert [e["kind"] for e in key["pairs"]] == ["story", "scene", "dialogue"]
    assert key["seed"] == 4 and all(e["seed"] == 4 for e in key["pairs"])
    assert key["configs"]["a"]["smallton/scene"]["candidates"] == 2
    assert key["configs"]["b"]["smallton/scene"]["candidates"] == 1
    assert key["configs"]["a"]["smallton/story"]["max_new_tokens"] == 6  # the shared flags apply to both
    rows = list(csv.DictReader(io.StringIO((folder / "ratings.csv").read_text(encoding="utf-8"))))
    rows[0]["preferred"], rows[1]["preferred"] = str(3 - key["pairs"][0]["a"]), "="  # B, then a tie
    sheet = io.StringIO()
    writer = csv.DictWriter(sheet, ["run", "pair", "preferred", "note"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    (folder / "ratings.csv").write_text(sheet.getvalue(), encoding="utf-8")
    result = invoke(runner, "eval", "--unblind", folder)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# metagen blind comparison")
    assert "| all | 3 | 2 | 0 | 1 | 1 | 100% |" in result.stdout
    assert (folder / "unblind.md").read_text(encoding="utf-8") == result.stdout


@pytest.mark.parametrize("args, message", [
    (["--blind", "{dir}", "--a", "candidate=2", "--b", "candidates=1"], "--a: unknown generation setting"),
    (["--blind", "{dir}", "--a", "candidates=2", "--b", "temperature=-1"], "--b: --temperature"),
    (["--blind", "{dir}", "--a", "candidates=2", "--b", "candidates=1", "--temperature", "0"],
     "--a: --candidates 2 needs sampling"),
    (["--blind", "{dir}", "--a", "candidates=2", "--b", "candidates=1,candidates=3"],
     "error: --b 'candidates=1,candidates=3': candidates is given twice (give each setting once)\n"),
    (["--blind", "{dir}", "--a", "candidates=2"], "--blind DIR, --a and --b go together"),
    (["--a", "candidates=2", "--b", "candidates=1"], "--blind DIR, --a and --b go together"),
    (["--blind", "{full}", "--a", "candidates=2", "--b", "candidates=1"], "choose an empty or new folder"),
    (["--unblind", "{dir}"], "--unblind takes only the folder"),
    # the same settings twice ran the whole grid twice for pairs of one text
    (["--blind", "{dir}", "--a", "candidates=2", "--b", "candidates=2"], "--a and --b come to the same settings"),
    (["--blind", "{dir}", "--a", "candidates=2,temperature=0.5", "--b", "temperature=0.5", "--candidates", "2"],
     "--a and --b come to the same settings for every world and kind"),
])
def test_cli_bad_blind_input(runner, world_file, tmp_path, args, message):
    _bad_blind_input(runner, [world_file], tmp_path, args, message)


@pytest.mark.parametrize("args, flag", [(["--seeds", "4"], "--seeds"), (["--temperature", "0.9"], "--temperature"),
                                        (["-o", "report"], "--out"), (["--kinds", "story"], "--kinds")])
def test_cli_unblind_refuses_a_flag_it_would_ignore(runner, tmp_path, args, flag):
    """`eval --unblind DIR --seeds 4` tallied and exited 0, the flag ignored without a word."""
    _bad_blind_input(runner, [], tmp_path, ["--unblind", "{dir}", *args],
                     f"error: --unblind takes only the folder, not {flag} (metagen eval --unblind DIR)\n")


@pytest.mark.parametrize("folder, what", [("new", "does not exist"), ("full/notes.txt", "is a file, not a folder")])
def test_cli_unblind_of_no_folder_says_so(runner, tmp_path, folder, what):
    """A folder that is not there was "there is no key.json", which sent people looking for the key."""
    _bad_blind_input(runner, [], tmp_path, ["--unblind", str(tmp_path / folder)],
                     f"error: --unblind {tmp_path / folder}: {what} (give the folder that --blind wrote)\n")


def _bad_blind_input(runner, worlds, tmp_path, args, message):
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine", encoding="utf-8")
    args = [a.format(dir=tmp_path / "new", full=full) for a in args]
    result = invoke(runner, "eval", *worlds, *args)
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("content, message", [
    ({}, "there is no key.json"),
    ({"ratings.csv": "pair,preferred,note\npair-001,1,\n"}, "there is no key.json"),
])
def test_cli_unblind_bad_folder(runner, tmp_path, content, message):
    folder = tmp_path / "blind"
    folder.mkdir()
    for name, text in content.items():
        (folder / name).write_text(text, encoding="utf-8")
    result = invoke(runner, "eval", "--unblind", folder)
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_cli_needs_a_world(runner):
    result = invoke(runner, "eval")
    assert result.exit_code == 2 and "give at least one world file" in result.output
