"""`metagen worlds ...` end to end through CliRunner: exit codes, stdout and stderr."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from metagen.cli import app
from metagen.world import load_world, schema_path

ROOT = Path(__file__).resolve().parent.parent
NEXUS = ROOT / "worlds" / "nexus-hub.yaml"
HARBOUR = ROOT / "worlds" / "harbour" / "world.yaml"
BROKEN = """\
world:
  id: w
  name: W
characters:
  - id: mira
    name: Mira
    trait: [brave]
    relationships: [{with: jonsa}]
  - id: jonas
    name: Jonas
"""


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def broken(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    return path


def test_validate_ok(runner):
    result = runner.invoke(app, ["worlds", "validate", str(NEXUS), str(HARBOUR)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"ok: {NEXUS} (6 characters, 6 locations, 3 factions, 10 lore entries)",
        f"ok: {HARBOUR} (6 characters, 6 locations, 3 factions, 10 lore entries, 4 files)",
    ]
    assert result.stderr == ""


def test_check_is_validate(runner, broken):
    """`metagen worlds check W` said "No such command 'check'"."""
    ok = runner.invoke(app, ["worlds", "check", str(NEXUS)])
    assert ok.exit_code == 0 and ok.stdout == runner.invoke(app, ["worlds", "validate", str(NEXUS)]).stdout
    assert runner.invoke(app, ["worlds", "check", str(broken)]).exit_code == 2
    assert "  check " not in runner.invoke(app, ["worlds", "--help"]).stdout


def test_validate_prints_every_problem_and_exits_2(runner, broken):
    result = runner.invoke(app, ["worlds", "validate", str(NEXUS), str(broken)])
    assert result.exit_code == 2
    assert result.stdout == f"ok: {NEXUS} (6 characters, 6 locations, 3 factions, 10 lore entries)\n"
    assert result.stderr.splitlines() == [
        f"{broken}:7:5: characters[0]: unknown field 'trait' (did you mean 'traits'?)",
        f"{broken}:8:28: characters[0].relationships[0].with: unknown character 'jonsa' (did you mean 'jonas'?)",
        f"error: {broken}: 2 problems in world",
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("world:\n\tid: w\n", ":2:1: invalid YAML: a tab character (indent with spaces, not tabs)"),
        ("", ": is empty or only comments"),
        ("- a\n", ":1:1: the top level is a list"),
        (b"\xff\xfe\x00w", ": looks like a binary file"),
    ],
)
def test_validate_file_level_problems(runner, tmp_path, content, message):
    path = tmp_path / "w.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = runner.invoke(app, ["worlds", "validate", str(path)])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0].startswith(f"{path}{message}")
    assert len(result.stderr.splitlines()) == 1  # one problem: no summary line


def test_validate_missing_file_and_no_arguments(runner, tmp_path):
    result = runner.invoke(app, ["worlds", "validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "no such file" in result.stderr
    assert runner.invoke(app, ["worlds", "validate"]).exit_code == 2  # usage error


def test_validate_allow_outside(runner, tmp_path):
    (tmp_path / "inner").mkdir()
    world = tmp_path / "inner" / "w.yaml"
    world.write_text("world: {id: w, name: W}\ninclude: [../lore.yaml]\n", encoding="utf-8")
    (tmp_path / "lore.yaml").write_text("lore: [{id: a, keys: [a], text: A.}]\n", encoding="utf-8")
    refused = runner.invoke(app, ["worlds", "validate", str(world)])
    assert refused.exit_code == 2 and "outside the world's folder" in refused.stderr
    allowed = runner.invoke(app, ["worlds", "validate", "--allow-outside", str(world)])
    assert allowed.exit_code == 0 and "1 lore entry, 2 files" in allowed.stdout


def test_show_plain_when_piped(runner):
    result = runner.invoke(app, ["worlds", "show", str(HARBOUR)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("Saltgate (saltgate) | near-future harbour city")
    for text in ("Characters", "Aoife Ní Bhriain", "harbour pilot", "Places", "the Container Docks", "Factions",
                 "Lore", "(always)", "defaults.dialogue: repetition_penalty=1.15", "banned words: goddamn", "sha256: "):  # fmt: skip
        assert text in out, text
    # each tie as the story prompt says it, so a kind written the wrong way round shows
    assert "Ties, as story prompts say them" in out
    assert "Wick is Mira Okonkwo's courier: she pays Wick" in out
    assert "Beatriz \"Bea\" Mendes is like family to Wick: she gives" in out
    assert "\x1b[" not in out  # no colour codes when piped


def test_show_json(runner):
    result = runner.invoke(app, ["worlds", "show", "--json", str(NEXUS)])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["id"] == "nexus-hub" and data["characters"][0]["name"] == "林小雨"


def test_show_broken_world_is_one_line_and_exit_2(runner, broken):
    result = runner.invoke(app, ["worlds", "show", str(broken)])
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {broken}: 2 problems in world (first: {broken}:7:5:")


def test_list(runner, tmp_path, broken, monkeypatch):
    folder = tmp_path / "worlds"
    shutil.copytree(ROOT / "worlds", folder)
    shutil.copy(broken, folder / "broken.yaml")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["worlds", "list"])  # ./worlds by default
    assert result.exit_code == 2, result.output  # an invalid world among them, as `worlds validate` exits
    lines = result.stdout.splitlines()
    assert lines[0] == "3 worlds in worlds"
    rows = [line.split()[0] for line in lines[3:]]
    assert rows == ["ashenmere", "nexus-hub", "saltgate"]
    assert "worlds/harbour/world.yaml" in result.stdout and "characters.yaml" not in result.stdout
    assert result.stderr.startswith("invalid: worlds/broken.yaml: 2 problems in world")
    listed = runner.invoke(app, ["worlds", "list", "--json", "worlds"])
    assert listed.exit_code == 2
    as_json = json.loads(listed.stdout)
    assert {w["id"]: w["characters"] for w in as_json} == {"ashenmere": 6, "nexus-hub": 6, "saltgate": 6}
    (folder / "broken.yaml").unlink()
    assert runner.invoke(app, ["worlds", "list"]).exit_code == 0


def test_list_exits_2_when_a_world_is_invalid(runner, tmp_path, broken):
    """A listing that found an invalid world had exited 0, so a script never noticed; only invalid
    worlds had also said "no worlds in ... (`metagen worlds new NAME` writes one)"."""
    shutil.copy(NEXUS, tmp_path / "nexus.yaml")
    result = runner.invoke(app, ["worlds", "list", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stdout.splitlines()[0] == f"1 world in {tmp_path}" and "nexus-hub" in result.stdout
    assert result.stderr.splitlines() == [f"invalid: {broken}: 2 problems in world (first: {broken}:7:5: "
                                          "characters[0]: unknown field 'trait' (did you mean 'traits'?); "
                                          f"run `metagen worlds validate {broken}` to see all 2)"]
    (tmp_path / "nexus.yaml").unlink()
    only_invalid = runner.invoke(app, ["worlds", "list", str(tmp_path)])
    assert only_invalid.exit_code == 2 and only_invalid.stdout == ""
    assert "no worlds in" not in only_invalid.stderr and only_invalid.stderr.startswith(f"invalid: {broken}:")


def test_list_names_a_world_file_that_is_a_link_to_nothing(runner, tmp_path):
    """worlds/x.yaml linking to nothing was named, worlds/x/world.yaml linking to nothing vanished."""
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "world.yaml").symlink_to(tmp_path / "gone.yaml")
    (tmp_path / "y.yaml").symlink_to(tmp_path / "gone.yaml")
    result = runner.invoke(app, ["worlds", "list", str(tmp_path)])
    invalid = [line.split(":")[1].strip() for line in result.stderr.splitlines() if line.startswith("invalid:")]
    assert invalid == [str(tmp_path / "y.yaml"), str(tmp_path / "x" / "world.yaml")], result.stderr


def test_list_missing_and_empty_folder(runner, tmp_path):
    missing = runner.invoke(app, ["worlds", "list", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no such folder" in missing.stderr
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    a_file = runner.invoke(app, ["worlds", "list", str(tmp_path / "afile")])
    assert a_file.exit_code == 2 and f"{tmp_path / 'afile'}: is a file, not a folder" in a_file.stderr
    empty = runner.invoke(app, ["worlds", "list", str(tmp_path)])
    assert empty.exit_code == 0 and "no worlds in" in empty.stderr


def test_list_of_a_folder_it_may_not_reach_is_one_line(runner, tmp_path, monkeypatch):
    """worlds list shut/sub, shut without search permission: Path.is_dir raised PermissionError, a
    traceback with exit 1."""
    from conftest import deny_access

    folder = tmp_path / "shut" / "sub"
    deny_access(monkeypatch, "stat", folder)
    result = runner.invoke(app, ["worlds", "list", str(folder)])
    assert result.exit_code == 2, result.output
    assert result.stderr == (f"error: {folder}: cannot be read: Permission denied (check the permissions of the "
                             "folders on its way)\n")


def test_list_says_which_subfolder_it_may_not_search(runner, tmp_path, monkeypatch):
    """A world folder another user keeps 0700 was left out of the list without a word."""
    from conftest import deny_search_of

    folder = tmp_path / "worlds"
    shutil.copytree(ROOT / "worlds", folder)
    (folder / "private").mkdir()
    deny_search_of(monkeypatch, folder / "private")
    result = runner.invoke(app, ["worlds", "list", str(folder)])
    assert result.exit_code == 0, result.output  # the worlds it can read are listed as before
    assert result.stdout.splitlines()[0] == f"3 worlds in {folder}"
    assert result.stderr == f"skipped: {folder / 'private'}: cannot be searched: Permission denied\n"


def test_schema(runner):
    result = runner.invoke(app, ["worlds", "schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == json.loads(schema_path().read_text(encoding="utf-8"))


def test_new_writes_a_valid_world_and_never_overwrites(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["worlds", "new", "Ceann Tíre: the Mull"])
    assert result.exit_code == 0, result.output
    path = Path("worlds/ceann-tire-the-mull.yaml")
    assert result.stdout == f"wrote {path}; check it with: metagen worlds validate {path}\n"
    world = load_world(path)
    assert world.id == "ceann-tire-the-mull" and world.name == "Ceann Tíre: the Mull"
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert (path.parent / first.split("$schema=")[1]).resolve() == schema_path().resolve() or first.endswith(str(schema_path()))
    assert runner.invoke(app, ["worlds", "validate", str(path)]).exit_code == 0
    before = path.read_bytes()
    again = runner.invoke(app, ["worlds", "new", "Ceann Tíre: the Mull"])
    assert again.exit_code == 2 and "already exists" in again.stderr
    assert path.read_bytes() == before


def test_new_with_out_and_id(runner, tmp_path):
    out = tmp_path / "deep" / "rain.yaml"
    result = runner.invoke(app, ["worlds", "new", "林小雨的世界", "--out", str(out), "--id", "rain-world"])
    assert result.exit_code == 0, result.output
    assert load_world(out).name == "林小雨的世界"
    assert yaml.safe_load(out.read_text(encoding="utf-8"))["world"]["id"] == "rain-world"
    bad = runner.invoke(app, ["worlds", "new", "X", "--out", str(tmp_path / "x.yaml"), "--id", "Not An Id"])
    assert bad.exit_code == 2 and "not a valid id" in bad.output


@pytest.mark.parametrize("args", [["null"], ["World null", "--id", "null"], ["true"], ["007"]])
def test_new_writes_an_id_yaml_reads_as_something_else_so_that_it_validates(runner, tmp_path, args):
    """`worlds new null` wrote id: null, which its own validate refused: "world.id: is empty"."""
    out = tmp_path / "w.yaml"
    result = runner.invoke(app, ["worlds", "new", *args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert load_world(out).id == (args[2] if len(args) > 1 else args[0])


def test_new_into_a_folder_writes_the_id_there_and_a_file_in_the_way_is_bad_input(runner, tmp_path):
    """-o worlds/ names the folder to put it in (it had failed "it is a folder", exit 1); a file where a
    folder on the way goes is the user's input (exit 2), as in every command."""
    (tmp_path / "mine").mkdir()
    result = runner.invoke(app, ["worlds", "new", "Rain Town", "-o", str(tmp_path / "mine")])
    assert result.exit_code == 0, result.output
    assert load_world(tmp_path / "mine" / "rain-town.yaml").name == "Rain Town"
    (tmp_path / "a-file").write_text("mine\n", encoding="utf-8")
    bad = runner.invoke(app, ["worlds", "new", "X", "-o", str(tmp_path / "a-file" / "x.yaml")])
    assert bad.exit_code == 2 and "a file is in the way" in bad.output and "give another --out" in bad.output
    assert (tmp_path / "a-file").read_text(encoding="utf-8") == "mine\n"


def test_new_into_a_folder_it_may_not_search_is_one_line(runner, tmp_path, monkeypatch):
    """-o shut/x.yaml, shut without search permission (drw-rw-rw-): Path.is_dir raised PermissionError,
    a traceback with exit 1."""
    from conftest import deny_access, deny_files_in

    (tmp_path / "shut").mkdir()
    out = tmp_path / "shut" / "x.yaml"
    deny_access(monkeypatch, "stat", out)
    deny_files_in(monkeypatch, tmp_path / "shut")
    bad = runner.invoke(app, ["worlds", "new", "X", "-o", str(out)])
    assert bad.exit_code == 1, bad.output
    assert bad.stderr == f"error: cannot write {out}: Permission denied\n"
    assert list((tmp_path / "shut").iterdir()) == []


def test_new_refuses_an_empty_id(runner, tmp_path):
    """--id "" (an empty variable in a script) had meant the id made from the name."""
    out = tmp_path / "x.yaml"
    for given in ("", "  "):
        bad = runner.invoke(app, ["worlds", "new", "X", "--out", str(out), "--id", given])
        assert bad.exit_code == 2 and "--id: is empty (leave the option out" in bad.output, bad.output
        assert not out.exists()


def test_new_refuses_a_name_it_cannot_write_and_leaves_no_file(runner, tmp_path):
    out = tmp_path / "w.yaml"
    for name, message in (("", "name is empty"), ("   ", "name is empty"), ("caf\udce9", "not UTF-8 text"),
                          ("\a", "name is empty"), ("\u200b", "name is empty")):  # had written an invalid world
        bad = runner.invoke(app, ["worlds", "new", name, "--out", str(out)])
        assert bad.exit_code == 2 and message in bad.output and "Traceback" not in bad.output, bad.output
    (tmp_path / "taken").write_text("")
    bad = runner.invoke(app, ["worlds", "new", "X", "--out", str(tmp_path / "taken" / "w.yaml")])
    assert bad.exit_code == 2 and "cannot make the folder" in bad.output  # a file in the way: the input
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_new_asks_for_an_id_when_the_name_gives_none(runner, tmp_path):
    """林小雨 had silently become worlds/world.yaml (id 'world'), as would every other such name."""
    bad = runner.invoke(app, ["worlds", "new", "林小雨", "-o", str(tmp_path)])
    assert bad.exit_code == 2 and "has no letters an id can be made of" in bad.output and "--id" in bad.output
    assert list(tmp_path.iterdir()) == []
    good = runner.invoke(app, ["worlds", "new", "林小雨", "--id", "lin-xiaoyu", "-o", str(tmp_path)])
    assert good.exit_code == 0, good.output
    assert [p.name for p in tmp_path.iterdir()] == ["lin-xiaoyu.yaml"]


def test_help_lists_the_commands(runner):
    result = runner.invoke(app, ["worlds", "--help"])
    assert result.exit_code == 0
    for name in ("validate", "show", "list", "schema", "new"):
        assert name in result.stdout


def test_new_spells_out_letters_in_the_id(runner, tmp_path):
    """"Ysolde Vær" had become the id 'ysolde-vr' (æ dropped), unlike the 'ceann-tire' of "Ceann Tíre"."""
    result = runner.invoke(app, ["worlds", "new", "Ysolde Vær", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert load_world(tmp_path / "ysolde-vaer.yaml").id == "ysolde-vaer"
    bad = tmp_path / "bad.yaml"
    bad.write_text("world: {id: Færøerne, name: F}\n", encoding="utf-8")
    line = runner.invoke(app, ["worlds", "validate", str(bad)]).stderr
    assert "e.g. 'faeroerne'" in line, line


def test_tables_cut_a_long_value_and_keep_the_path(runner, tmp_path):
    """A 5,000-character world name had made a 5,000-column `worlds list` table."""
    name, role = "N" * 5000, "林" * 3000
    (tmp_path / "big.yaml").write_text(f"world: {{id: big, name: {name}}}\ncharacters:\n"
                                       f"  - {{id: ada, name: Ada, role: {role}}}\n", encoding="utf-8")
    listed = runner.invoke(app, ["worlds", "list", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    row = listed.stdout.splitlines()[-1]
    assert "N" * 97 + "..." in row and "N" * 98 not in row and row.endswith(str(tmp_path / "big.yaml"))
    shown = runner.invoke(app, ["worlds", "show", str(tmp_path / "big.yaml")])
    (ada,) = [line for line in shown.stdout.splitlines() if line.startswith("ada ")]
    assert "林" * 48 + "..." in ada and "林" * 49 not in ada  # wide characters count two columns
    as_json = json.loads(runner.invoke(app, ["worlds", "list", "--json", str(tmp_path)]).stdout)
    assert as_json[0]["name"] == name  # --json gives it whole


def test_show_heading_keeps_escapes_escaped(runner, tmp_path):
    """The heading's escapes were turned back into line breaks: a stop of "\\n\\n" was printed
    as `stop=['` and `']` on three lines, a name holding a line break split the first line."""
    path = tmp_path / "w.yaml"
    path.write_text('world:\n  id: w\n  name: "Two\\nLines"\n  summary: |\n    First line.\n    Second line.\n'
                    'defaults:\n  dialogue: {stop: ["\\n\\n"]}\n', encoding="utf-8")
    result = runner.invoke(app, ["worlds", "show", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Two\\nLines (w)"
    assert lines[2:4] == ["First line.", "Second line."]  # a summary's own lines stay lines
    assert "defaults.dialogue: stop=['\\n\\n']" in lines


def test_new_into_a_folder_named_with_a_slash_that_does_not_exist_yet(runner, tmp_path):
    """`-o mine/` for a folder not yet made had written a file named `mine`: Path drops the "/"."""
    result = runner.invoke(app, ["worlds", "new", "Rain Town", "-o", f"{tmp_path / 'mine'}/"])
    assert result.exit_code == 0, result.output
    assert load_world(tmp_path / "mine" / "rain-town.yaml").id == "rain-town"
    plain = runner.invoke(app, ["worlds", "new", "Rain Town", "-o", str(tmp_path / "file")])
    assert plain.exit_code == 0 and load_world(tmp_path / "file").id == "rain-town"  # no "/": the file itself


def test_new_says_why_an_id_is_not_valid(runner, tmp_path):
    """A 70-character --id was refused as "lower-case a-z, 0-9, '-' or '_'" though it was all of that."""
    long_id = "a" * 70
    bad = runner.invoke(app, ["worlds", "new", "X", "-o", str(tmp_path / "x.yaml"), "--id", long_id])
    assert bad.exit_code == 2 and "at most 64 characters" in bad.output and long_id not in bad.output, bad.output
    spelt = runner.invoke(app, ["worlds", "new", "X", "-o", str(tmp_path / "x.yaml"), "--id", "Ærø Town"])
    assert spelt.exit_code == 2 and "e.g. 'aero-town'" in spelt.output
    assert not (tmp_path / "x.yaml").exists()


def test_plain_table_aligns_wide_characters(runner):
    """林小雨 is three characters but six columns: the columns after it stood three to the right."""
    result = runner.invoke(app, ["worlds", "show", str(NEXUS)])
    header = next(line for line in result.stdout.splitlines() if line.startswith("id "))
    row = next(line for line in result.stdout.splitlines() if line.startswith("lin-xiaoyu "))
    pronouns = header.index("pronouns")
    assert row.startswith("lin-xiaoyu       林小雨")
    assert row.index("she/her") + len("林小雨") == pronouns  # three wide characters take three more columns


def test_a_terminal_table_folds_a_long_cell_instead_of_cutting_it():
    """At 50 columns `models list` showed 'smollm2-1…' and a cut path: a cell folds onto more lines."""
    import io
    import re

    from rich.console import Console

    from metagen.commands.terminal import rich_table

    path = "/home/someone/.cache/metagen/models/SmolLM2-135M-Instruct.Q4_1.gguf"
    console = Console(width=50, file=io.StringIO(), record=True)
    console.print(rich_table(["name", "size", "installed", "path"],
                             [["smollm2-135m-instruct (default)", "93.8 MiB", "yes", path]]))
    shown = console.export_text()
    assert "…" not in shown and max(len(line) for line in shown.splitlines()) <= 50
    path_column = "".join(line.split("│")[4].strip() for line in shown.splitlines() if line.count("│") == 5)
    assert path_column == path  # every character, in order, read down its column


def on_a_terminal(args: list[str], width: int) -> list[str]:
    """`python -m metagen ARGS` run in ./ with its stdout on a pseudo-terminal `width` columns wide;
    its output lines, colours taken out."""
    import fcntl
    import os
    import pty
    import re
    import struct
    import subprocess
    import sys
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, width, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR", "TTY_COMPATIBLE")}
    env.update(NO_COLOR="1", TERM="xterm", PYTHONPATH=str(ROOT))
    process = subprocess.Popen([sys.executable, "-m", "metagen", *args], cwd=ROOT, stdout=follower,
                               stderr=subprocess.DEVNULL, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the other end closed: the command is done
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=60) == 0
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode("utf-8"))
    return text.replace("\r\n", "\n").splitlines()


@pytest.mark.parametrize("width", [20, 40, 160])
def test_worlds_list_on_a_narrow_terminal_keeps_ids_and_paths_whole(width):
    """At 40 columns the table broke ids and paths mid-word (`ashenme` / `re`), at 20 it gave each
    column one character: a narrow terminal gets one `field: value` line a cell instead."""
    import re

    worlds = json.loads(CliRunner().invoke(app, ["worlds", "list", str(ROOT / "worlds"), "--json"]).stdout)
    lines = on_a_terminal(["worlds", "list"], width)
    for world in worlds:
        for whole in (world["id"], str(Path(world["path"]).relative_to(ROOT))):
            assert any(re.search(rf"(^|[\s│:]){re.escape(whole)}($|[\s│])", line) for line in lines), (whole, lines)
    if width == 160:  # room enough: the table as before
        assert any(re.fullmatch(r"┃ id +┃ name +┃ contents +┃ path +┃", line) for line in lines), lines
    else:  # nothing wider than the terminal but a value that cannot be broken
        names = [str(Path(w["path"]).relative_to(ROOT)) for w in worlds]
        assert all(len(line) <= width or line.strip() in names or line.split(":", 1)[1].strip() in names
                   for line in lines), lines


@pytest.mark.parametrize("width", [40, 60])
def test_worlds_show_on_a_narrow_terminal_keeps_the_hash_whole_and_sets_titles_apart(width):
    """At 40 and 60 columns rich broke the heading's sha256 in two (a hash no one could copy); the
    section titles ran into the rows around them ('ties: Quill (friend)' / 'Places' / 'id: ember-keep')."""
    shown = json.loads(CliRunner().invoke(app, ["worlds", "show", str(ROOT / "worlds" / "ashenmere.yaml"),
                                                "--json"]).stdout)
    lines = on_a_terminal(["worlds", "show", "worlds/ashenmere.yaml"], width)
    assert any(line.split()[-1:] == [shown["content_hash"]] for line in lines), lines
    lines = [line.rstrip() for line in lines]  # rich pads a table's caption to the table's width
    for title in ("Characters", "Places", "Factions", "Lore"):  # a blank line before; after, one or a table
        at = lines.index(title)
        assert lines[at - 1] == "" and (lines[at + 1] == "" or lines[at + 1].startswith("┏")), lines[at - 2:at + 3]
    # a single word wider than the terminal (the hash, the world file's absolute path) is printed whole
    assert all(len(line) <= width for line in lines if " " in line.strip()), lines


@pytest.mark.parametrize("width", [20, 40, 50])
def test_a_narrow_terminal_table_never_breaks_a_whole_column(width):
    import io

    from rich.console import Console

    from metagen.commands.terminal import print_table

    path = "/home/someone/.cache/metagen/models/SmolLM2-135M-Instruct.Q4_1.gguf"
    console = Console(width=width, file=io.StringIO(), force_terminal=True, color_system=None, record=True)
    print_table(console, ["name", "size", "installed", "path"],
                [["smollm2-135m-instruct (default)", "93.8 MiB", "yes", path]], whole=("name", "path"))
    lines = console.export_text().splitlines()
    whole = [line for line in lines if path in line or "smollm2-135m-instruct (default)" in line]
    assert len(whole) == 2 and all(len(line) <= width for line in lines if line not in whole), lines
