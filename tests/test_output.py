"""Tests for metagen.output: paths, formats, reading back, atomic no-clobber writes."""

from __future__ import annotations

import errno
import json
import multiprocessing as mp
import os
import re
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metagen.output import formats, writing
from metagen.prompts import DialogueRequest, SceneRequest, StoryRequest
from metagen.errors import (
    EXIT_BAD_INPUT,
    EXIT_GENERATION_FAILED,
    ConfigError,
    OutputError,
    OutputExistsError,
    OutputLinkError,
)
from metagen.output import (
    FORMATS,
    OutputFolder,
    Piece,
    check_format,
    check_not_exists,
    check_writable,
    escape_ink,
    escape_yarn,
    is_complete,
    node_name,
    output_path,
    parse_front_matter,
    read_piece_file,
    recorded_difference,
    render,
    request_name,
    sanitize_component,
    write_atomic,
    write_piece,
)

TURNS = [
    {"speaker": "Mira", "speaker_id": "mira", "line": "The gate opens at dawn."},
    {"speaker": "林小雨", "speaker_id": "lin", "line": "我会等你。"},
]


def make_piece(**changes) -> Piece:
    base = dict(
        kind="story",
        world_id="harbor",
        world_hash="3f2a",
        world_files=["worlds/harbor.yaml"],
        request={"kind": "story", "characters": ["mira"], "location": None, "premise": "Ōsaka pier"},
        model={"name": "tiny", "sha256": "ab" * 32, "path": "/cache/tiny.gguf"},
        settings={"strategy": "sample", "temperature": 0.8, "top_p": 0.95, "stop": ["\n\n"]},
        seed=7,
        prompt_tokens=120,
        output_tokens=64,
        lore_used=["the pier"],
        lore_left_out=[],
        finish_reason="eos",
        seconds=1.25,
        text="Mira walked to the pier.\n\nThe sea was calm.",
        subject="mira",
        created="2026-01-02T03:04:05+00:00",
    )
    base.update(changes)
    return Piece(**base)


def make_dialogue(**changes) -> Piece:
    text = "\n".join(f"{t['speaker']}: {t['line']}" for t in TURNS)
    changes.setdefault("turns", [dict(t) for t in TURNS])
    changes.setdefault("text", text)
    return make_piece(kind="dialogue", **changes)


def files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# ------------------------------------------------------------------------------ Piece


def test_front_matter_has_every_field_but_text_in_order():
    piece = make_piece()
    front = piece.front_matter()
    assert "text" not in front and "turns" not in front
    assert list(front)[:3] == ["kind", "world_id", "world_hash"]
    assert list(front)[-3:] == ["subject", "metagen_version", "created"]
    assert front["settings"]["stop"] == ["\n\n"]


def test_front_matter_includes_turns_for_dialogue():
    assert make_dialogue().front_matter()["turns"] == TURNS


@pytest.mark.parametrize("change", [{"kind": "poem"}, {"finish_reason": "crash"}, {"seed": "7"}])
def test_piece_rejects_bad_values(change):
    with pytest.raises(ValueError):
        make_piece(**change)


def test_front_matter_turns_tuples_and_paths_into_plain_values():
    piece = make_piece(world_files=(Path("a.yaml"),), settings={"stop": ("x",)})
    front = piece.front_matter()
    assert front["world_files"] == ["a.yaml"] and front["settings"]["stop"] == ["x"]
    render(piece, "md")  # safe_dump accepts it
    render(piece, "json")


# ------------------------------------------------------------------------------ paths


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("../x", "x"),
        ("/etc/passwd", "etc-passwd"),
        ("a/b", "a-b"),
        ("..", "untitled"),
        (".", "untitled"),
        ("", "untitled"),
        ("   ", "untitled"),
        ("..\\..\\windows", "windows"),
        (".hidden", "hidden"),
        ("--flag", "flag"),
        ("Mira the Brave", "Mira-the-Brave"),
        ("Café Straße", "Cafe-Strasse"),
        ("Ｍｉｒａ", "Mira"),
        ("a///b...c", "a-b.c"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("gate_7.v2", "gate_7.v2"),
    ],
)
def test_sanitize_component_table(raw, expected):
    assert sanitize_component(raw) == expected


def test_sanitize_component_keeps_unfoldable_names_distinct():
    a, b = sanitize_component("林小雨"), sanitize_component("林大雨")
    assert re.fullmatch(r"untitled-[0-9a-f]{8}", a)
    assert a != b
    assert sanitize_component("林小雨") == a  # stable across calls
    assert re.fullmatch(r"x-[0-9a-f]{8}", sanitize_component("x林"))


def test_sanitize_component_caps_length_and_keeps_long_names_distinct():
    a, b = sanitize_component("a" * 300), sanitize_component("a" * 299 + "b")
    assert len(a) <= 80 and len(b) <= 80 and a != b


SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


@given(st.text())
def test_sanitize_component_always_safe(raw):
    out = sanitize_component(raw)
    assert SAFE.fullmatch(out) and len(out) <= 80
    assert out not in (".", "..") and ".." not in out
    assert sanitize_component(out) == out


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=200)
@given(world=st.text(), kind=st.text(), subject=st.text(), seed=st.integers(), ext=st.text())
def test_output_path_never_leaves_out_dir(tmp_path, world, kind, subject, seed, ext):
    out = tmp_path / "out"
    path = output_path(out, world, kind, subject, seed, ext)
    assert path.resolve().is_relative_to(out.resolve())
    parts = path.relative_to(out).parts
    assert len(parts) == 3 and all(SAFE.fullmatch(p) for p in parts)


def test_output_path_layout(tmp_path):
    path = output_path(tmp_path, "harbor", "story", "Mira the Brave", 42, "md")
    assert path == tmp_path / "harbor" / "story" / "Mira-the-Brave-42.md"
    hostile = output_path(tmp_path, "../../etc", "/story", "../../passwd", 1, "../md")
    assert hostile == tmp_path / "etc" / "story" / "passwd-1.md"


def test_output_path_refuses_a_symlink_that_leads_outside(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "harbor").symlink_to(outside)
    with pytest.raises(OutputError, match="outside the output folder"):
        output_path(out, "harbor", "story", "mira", 1, "md")


# ---------------------------------------------------------------------------- formats


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_dialogue(fmt):
    text = render(make_dialogue(), fmt)
    assert text.endswith("\n")
    assert "gate opens at dawn" in text and "我会等你" in text


@pytest.mark.parametrize("fmt", ["md", "txt", "json"])
@pytest.mark.parametrize("kind", ["story", "scene"])
def test_prose_formats_render_stories_and_scenes(kind, fmt):
    assert "The sea was calm." in render(make_piece(kind=kind), fmt)


@pytest.mark.parametrize("fmt", ["yarn", "ink"])
@pytest.mark.parametrize("kind", ["story", "scene"])
def test_dialogue_formats_refuse_prose(kind, fmt):
    with pytest.raises(ConfigError, match="dialogue only") as caught:
        render(make_piece(kind=kind), fmt)
    assert caught.value.exit_code == EXIT_BAD_INPUT
    with pytest.raises(ConfigError):
        check_format(kind, fmt)


def test_unknown_format_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown output format 'docx'"):
        render(make_piece(), "docx")


def test_txt_is_the_text_only():
    assert render(make_piece(), "txt") == "Mira walked to the pier.\n\nThe sea was calm.\n"


def test_md_front_matter_round_trips_with_unicode():
    piece = make_dialogue(subject="林小雨", request={"subject": "林小雨", "mood": "ünïcode ✓"})
    text = render(piece, "md")
    assert text.startswith("---\n") and "\n---\n\n" in text
    assert "林小雨" in text  # allow_unicode: written as is, not escaped
    assert parse_front_matter(text) == piece.front_matter()
    assert "**Mira:** The gate opens at dawn." in text


def test_md_writes_each_critic_candidate_and_struck_sentence_on_one_line():
    """A story's critic record took ~20 lines a candidate: 380 lines of YAML before the story."""
    struck = [["invented", "Nobody: said 'that', # not a comment, with a \u2028 line separator."]]
    critic = {"beats": [{"beat": "opening", "chosen": 1,
                         "candidates": [{"seed": 7, "start": "The Quay rang with", "score": 0.459, "names": 0.667},
                                        {"seed": 2**62, "score": -1.5, "logprob": -1.4}],
                         "struck": struck}]}
    piece = make_piece(critic=critic, plan=[{"beat": "opening", "text": "A long paragraph. " * 12}])
    text = render(piece, "md")
    assert "    - {seed: 7, start: The Quay rang with, score: 0.459, names: 0.667}\n" in text
    assert f"    - {{seed: {2**62}, score: -1.5, logprob: -1.4}}\n" in text
    assert sum(1 for line in text.splitlines() if "invented" in line) == 1
    assert parse_front_matter(text) == piece.front_matter()  # the same record, read back


def test_md_story_reads_back_exactly(tmp_path):
    piece = make_piece(text="First line.\n---\nnot front matter\n")
    path = write_piece(piece, tmp_path, "md", overwrite=False)
    data = read_piece_file(path)
    assert data["text"] == piece.text
    assert {k: v for k, v in data.items() if k != "text"} == piece.front_matter()


@given(text=st.text(), note=st.text(), seconds=st.floats(allow_nan=False))
def test_md_round_trip_any_text(text, note, seconds):
    piece = make_piece(text=text, request={"note": note, note: [note]}, seconds=seconds)
    rendered = render(piece, "md")
    assert parse_front_matter(rendered) == piece.front_matter()
    with tempfile.TemporaryDirectory() as folder:
        path = write_piece(piece, folder, "md", overwrite=False)
        assert read_piece_file(path) == {**piece.front_matter(), "text": text}


def test_json_holds_front_matter_and_text():
    piece = make_dialogue()
    text = render(piece, "json")
    assert "林小雨" in text  # ensure_ascii=False
    assert json.loads(text) == {**piece.front_matter(), "text": piece.text}


def test_yarn_structure():
    piece = make_dialogue(subject="gate talk")
    lines = render(piece, "yarn").splitlines()
    name = node_name(piece)
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name)
    assert lines[0] == f"title: {name}"
    assert lines[1].startswith("tags: ")
    body = lines[lines.index("---") + 1 : -1]
    assert lines[-1] == "==="
    assert [line for line in body if not line.startswith("// metagen: ")] == [
        "Mira: The gate opens at dawn.",
        "林小雨: 我会等你。",
    ]
    assert '// metagen: finish_reason: "eos"' in body


def test_yarn_escapes_special_characters():
    line = "Hi {name} #tag <<jump x>> [b]bold[/b] back\\slash // not a comment\nnext"
    assert escape_yarn(line) == (
        r"Hi \{name\} \#tag \<\<jump x\>\> \[b\]bold\[\/b\] back\\slash \/\/ not a comment next"
    )


def _unescape(s: str) -> str:
    return re.sub(r"\\(.)", r"\1", s)


def _live_tokens(s: str) -> list[str]:
    """s split into escapes (backslash + char) and live chars, in order."""
    return re.findall(r"\\.|.", s, flags=re.S)


def _live_syntax(s: str, singles: str, pairs: tuple[str, ...]) -> list[str]:
    """Live special chars, and adjacent live pairs, that a reader would take for syntax."""
    tokens = _live_tokens(s)
    found = [t for t in tokens if len(t) == 1 and t in singles]
    found += [a + b for a, b in zip(tokens, tokens[1:]) if len(a) == len(b) == 1 and a + b in pairs]
    return found


LINES = st.lists(
    st.sampled_from(list("ab :\\#{}[]<>|~*+-=/()\n\t\u2028") + ["林", "->", "<>", "//", "/*"])
).map("".join)


@given(LINES)
def test_yarn_escape_leaves_no_live_syntax(line):
    escaped = escape_yarn(line)
    assert "\n" not in escaped and "\u2028" not in escaped
    assert _unescape(escaped) == formats._one_line(line)
    assert _live_syntax(escaped, "\\#{}<>[]/", ()) == []


def test_ink_structure():
    piece = make_dialogue(subject="gate talk")
    lines = render(piece, "ink").splitlines()
    name = node_name(piece)
    assert lines[0].startswith("// metagen")
    code = [line for line in lines if line and not line.startswith("//")]
    assert code[0] == f"-> {name}"
    assert code[1] == f"=== {name} ==="
    assert code[2:-1] == ["Mira: The gate opens at dawn.", "林小雨: 我会等你。"]
    assert code[-1] == "-> END"


def test_ink_escapes_special_characters():
    line = "{a|b} #tag [x] ~ go -> knot <> glue // c /* d */ \\"
    assert escape_ink(line) == r"\{a\|b\} \#tag \[x\] \~ go \-> knot \<> glue \/\/ c \/\* d \*\/ \\"
    assert escape_ink("* choice", line_start=True) == r"\* choice"
    assert escape_ink("- gather", line_start=True) == r"\- gather"
    assert escape_ink("VAR x", line_start=True) == r"\VAR x"


@given(LINES)
def test_ink_escape_leaves_no_live_syntax(line):
    escaped = escape_ink(line)
    assert "\n" not in escaped
    assert _unescape(escaped) == formats._one_line(line)
    assert _live_syntax(escaped, "\\#{}[]|~*/<", ("->", "<>", "<-")) == []
    # ink strips comments before it reads escapes: no // or /* may survive even escaped
    assert "//" not in escaped and "/*" not in escaped


def test_ink_speaker_names_cannot_start_syntax():
    piece = make_dialogue(turns=[{"speaker": "=== -> * VAR", "speaker_id": "x", "line": "hi"}])
    code = [line for line in render(piece, "ink").splitlines() if line and not line.startswith("//")]
    assert code[2] == r"\VAR: hi"


def test_node_names_stay_valid_for_any_subject():
    for subject in ["", "7 seas", "林小雨", "../x", "gate-talk.v2"]:
        name = node_name(make_dialogue(subject=subject, seed=-3))
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name), name


# ---------------------------------------------------------------------------- reading


@pytest.mark.parametrize(
    "name, content, error",
    [
        ("notes.csv", "hello", ConfigError),
        ("plain.md", "# Just a heading\n", ConfigError),
        ("broken.md", "---\nkey: [unclosed\n---\n\ntext\n", ConfigError),
        ("list.json", "[1, 2]", ConfigError),
        ("bad.json", "{not json", ConfigError),
        ("other.json", '{"title": "not ours"}', ConfigError),
        ("binary.md", b"\xff\xfe\x00", ConfigError),
    ],
)
def test_read_piece_file_rejects_other_files(tmp_path, name, content, error):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(error, match="not a metagen file") as caught:
        read_piece_file(path)
    assert "\n" not in caught.value.one_line()


@pytest.mark.parametrize("suffix, name", [(".yarn", "Yarn"), (".ink", "ink"), (".INK", "ink")])
def test_a_yarn_or_ink_dialogue_is_named_for_what_it_is(tmp_path, suffix, name):
    """metagen's own .yarn and .ink dialogues were 'not a metagen file', which they are: replay
    reads .md and .json pieces only, and says so."""
    path = tmp_path / f"ada-bo-5{suffix}"
    path.write_text("title: ada_bo_5\ntags: metagen\n---\n// metagen: kind: \"dialogue\"\nAda: Hi.\n===\n")
    with pytest.raises(ConfigError) as caught:
        read_piece_file(path)
    assert caught.value.one_line() == (f"{path} is {name} dialogue: replay reads the .md and .json pieces metagen "
                                       "writes, not Yarn or ink (make the dialogue with --format md or json to "
                                       "replay it)")


def test_a_piece_cut_short_inside_its_front_matter_says_so(tmp_path):
    path = tmp_path / "cut.md"
    path.write_text("---\nkind: story\nseed: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="front matter is never closed"):
        read_piece_file(path)


def test_read_piece_file_missing_is_an_output_error(tmp_path):
    with pytest.raises(OutputError, match="cannot read"):
        read_piece_file(tmp_path / "gone.md")


# ---------------------------------------------------------------------------- writing


def test_only_the_temp_files_of_writers_that_are_gone_are_removed(tmp_path):
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(ended.stdout)
    here, hour = writing._HOST, writing.STALE_TEMP_SECONDS
    names = {
        f".a-1.md.{here}.{dead}.7.0123abcd.tmp": (0, False),  # this machine, its writer ended: removed
        f".a-1.md.{here}.{os.getpid()}.7.0123abcd.tmp": (2 * hour, True),  # a live writer's, however old
        f".a-1.md.elsewhere.{dead}.7.0123abcd.tmp": (0, True),  # another machine's, new: may be writing
        f".a-1.md.elsewhere.{dead}.8.0123abcd.tmp": (2 * hour, False),  # ... an hour old: killed there
        f".a-1.md.{dead}.7.0123abcd.tmp": (2 * hour, False),  # an older metagen's (no machine), old
        f".b-1.md.{here}.{dead}.7.0123abcd.tmp": (0, True),  # not a piece asked about
        "a-1.md": (2 * hour, True),
    }
    for name, (age, _) in names.items():
        (tmp_path / name).write_text("x")
        os.utime(tmp_path / name, (time.time() - age,) * 2)
    assert writing.remove_stale_temps(tmp_path, {"a-1.md"}) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for n, (_, kept) in names.items() if kept)
    assert writing.remove_stale_temps(tmp_path / "missing", {"a-1.md"}) == 0


def test_write_atomic_creates_folders_and_refuses_to_clobber(tmp_path):
    path = tmp_path / "out" / "harbor" / "story" / "mira-1.md"
    assert write_atomic(path, "first", overwrite=False) == path
    assert path.read_text(encoding="utf-8") == "first"
    with pytest.raises(OutputExistsError, match="mira-1.md exists") as caught:
        write_atomic(path, "second", overwrite=False)
    assert "--overwrite" in caught.value.hint
    assert caught.value.exit_code == EXIT_BAD_INPUT
    assert path.read_text(encoding="utf-8") == "first"
    write_atomic(path, "second ✓", overwrite=True)
    assert path.read_text(encoding="utf-8") == "second ✓"
    assert files_in(tmp_path) == ["out/harbor/story/mira-1.md"]


def test_write_atomic_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_atomic(tmp_path / "x.md", "x", overwrite=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _bare_enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC)


@pytest.mark.parametrize(
    "call, overwrite",
    [
        ("write", False), ("write", True), ("fsync", False), ("fsync", True),
        ("link", False),  # link publishes without overwrite, replace with it
        ("replace", True),
    ],
)
@pytest.mark.parametrize("failure", [_enospc, _bare_enospc])
def test_failed_write_leaves_no_file_and_no_temp(tmp_path, monkeypatch, call, overwrite, failure):
    path = tmp_path / "w" / "story" / "x-1.md"
    with monkeypatch.context() as m:
        m.setattr(writing.os, call, failure)
        with pytest.raises(OutputError) as caught:
            write_atomic(path, "x" * 100_000, overwrite=overwrite)
    assert caught.value.exit_code == EXIT_GENERATION_FAILED
    assert caught.value.message == f"cannot write {path}: No space left on device"
    assert files_in(tmp_path) == []


def test_failed_overwrite_keeps_the_old_file(tmp_path, monkeypatch):
    path = write_atomic(tmp_path / "x.md", "old", overwrite=False)
    with monkeypatch.context() as m:
        m.setattr(writing.os, "fsync", _enospc)
        with pytest.raises(OutputError):
            write_atomic(path, "new", overwrite=True)
    assert path.read_text() == "old" and files_in(tmp_path) == ["x.md"]


def test_overwrite_refuses_another_users_file_in_a_sticky_folder_before_the_work(tmp_path, monkeypatch):
    sticky = tmp_path / "shared"
    sticky.mkdir()
    sticky.chmod(0o1777)
    path = write_atomic(sticky / "x.md", "old", overwrite=False)
    owner = path.stat().st_uid
    monkeypatch.setattr(writing.os, "geteuid", lambda: owner + 1)  # another user, not root, not the folder's
    with pytest.raises(OutputError, match="cannot replace .*x.md: it belongs to another user") as caught:
        check_not_exists(path, overwrite=True)
    assert caught.value.exit_code == EXIT_GENERATION_FAILED
    check_not_exists(sticky / "new.md", overwrite=True)  # nothing there to replace
    sticky.chmod(0o777)
    check_not_exists(path, overwrite=True)  # without the sticky bit, the folder's write permission decides
    monkeypatch.setattr(writing.os, "geteuid", lambda: owner)
    sticky.chmod(0o1777)
    check_not_exists(path, overwrite=True)  # one's own file


def test_reason_falls_back_to_strerror_for_a_bare_errno(tmp_path, monkeypatch):
    def fail(*args):
        raise OSError(errno.EROFS)

    monkeypatch.setattr(writing.os, "fsync", fail)
    with pytest.raises(OutputError, match="Read-only file system"):
        write_atomic(tmp_path / "x.md", "x", overwrite=False)


def test_interrupt_mid_write_leaves_no_temp(tmp_path, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(writing.os, "write", interrupted)
        with pytest.raises(KeyboardInterrupt):
            write_atomic(tmp_path / "x.md", "x", overwrite=False)
    assert files_in(tmp_path) == []


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("failure", [_enospc, _interrupt])
def test_a_failed_write_takes_back_the_folders_it_made(tmp_path, monkeypatch, failure):
    """A full disk or a Ctrl-C while the first piece of a kind was written left OUT/<world>/<kind>/
    behind, empty (and OUT itself on a first run); folders that hold a piece, or were there, stay."""
    root = OutputFolder(tmp_path / "out")
    write_atomic(tmp_path / "out" / "w" / "story" / "a-1.md", "a", overwrite=False, root=root)
    (tmp_path / "mine").mkdir()
    for path, folder in ((tmp_path / "out" / "w" / "scene" / "b-1.md", root),
                         (tmp_path / "new" / "w" / "scene" / "b-1.md", OutputFolder(tmp_path / "new")),
                         (tmp_path / "mine" / "w" / "b-1.md", OutputFolder(tmp_path / "mine"))):
        with monkeypatch.context() as m:
            m.setattr(writing.os, "write", failure)
            with pytest.raises((OutputError, KeyboardInterrupt)):
                write_atomic(path, "b", overwrite=False, root=folder)
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert left == ["mine", "out", "out/w", "out/w/story", "out/w/story/a-1.md"]


def test_file_system_without_hard_links_still_refuses_to_clobber(tmp_path, monkeypatch):
    def no_links(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(writing.os, "link", no_links)
    path = write_atomic(tmp_path / "x.md", "first", overwrite=False)
    with pytest.raises(OutputExistsError):
        write_atomic(path, "second", overwrite=False)
    assert path.read_text() == "first" and files_in(tmp_path) == ["x.md"]


def test_write_atomic_under_a_file_is_an_output_error(tmp_path):
    (tmp_path / "out").write_text("I am a file")
    with pytest.raises(OutputError, match="cannot write"):
        write_atomic(tmp_path / "out" / "w" / "x.md", "x", overwrite=False)


def test_write_atomic_onto_a_folder_is_an_output_error(tmp_path):
    (tmp_path / "x.md").mkdir()
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="it is a folder"):
            write_atomic(tmp_path / "x.md", "x", overwrite=overwrite)


def _deny_under(folder: Path):
    real_open = os.open

    def fake_open(path, flags, *args, **kwargs):
        # A name opened inside an open folder (dir_fd=) is under folder here too.
        inside = str(path).startswith(str(folder)) or "dir_fd" in kwargs
        makes_file = flags & os.O_CREAT or flags & getattr(os, "O_TMPFILE", -1) == getattr(os, "O_TMPFILE", 0)
        if inside and makes_file:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    return fake_open


def test_unwritable_folder_simulated(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(writing.os, "open", _deny_under(out))
    with pytest.raises(OutputError, match="cannot write to output folder .*Permission denied"):
        check_writable(out)
    with pytest.raises(OutputError, match="Permission denied"):
        write_atomic(out / "w" / "x.md", "x", overwrite=False)
    with pytest.raises(OutputError, match="cannot create output folder"):
        check_writable(out / "new" / "deeper")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores file permissions")
def test_unwritable_folder_for_real(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o500)
    try:
        with pytest.raises(OutputError):
            check_writable(out)
        with pytest.raises(OutputError):
            write_atomic(out / "x.md", "x", overwrite=False)
    finally:
        out.chmod(0o700)


@pytest.fixture
def ctrl_c_raises():
    """Ctrl-C's own handler for the test: a suite started in the background (`pytest &` in a
    script) inherits SIGINT ignored, and a signal sent to the process would then do nothing."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_during_the_writability_probe_leaves_no_probe_file(tmp_path, monkeypatch, ctrl_c_raises):
    """`metagen serve` passes a client's Ctrl-C to the command at any moment; one that came while
    check_writable's probe file existed left it behind (seen once in a CI run)."""
    import signal

    real_open_temp = writing._open_temp

    def open_then_ctrl_c(folder_fd, name):
        made = real_open_temp(folder_fd, name)
        os.kill(os.getpid(), signal.SIGINT)
        return made

    monkeypatch.setattr(writing, "_open_temp", open_then_ctrl_c)
    monkeypatch.setattr(writing, "_probe_unnamed", lambda folder_fd: False)  # the named probe (no O_TMPFILE)
    with pytest.raises(KeyboardInterrupt):
        check_writable(tmp_path)
    assert list(tmp_path.iterdir()) == []
    # Sent by a thread started earlier (torch's workers, a server's): the kernel hands it to the sender,
    # so masking it in the main thread did not hold it (seen in CI); Python still interrupts the main thread.
    import threading

    go, sent = threading.Event(), threading.Event()

    def send_when_told():
        go.wait()
        os.kill(os.getpid(), signal.SIGINT)
        sent.set()

    sender = threading.Thread(target=send_when_told)
    sender.start()

    def ctrl_c_from_another_thread(folder_fd, name):
        made = real_open_temp(folder_fd, name)
        go.set()
        sent.wait()
        return made

    monkeypatch.setattr(writing, "_open_temp", ctrl_c_from_another_thread)
    with pytest.raises(KeyboardInterrupt):
        check_writable(tmp_path)
    sender.join()
    assert list(tmp_path.iterdir()) == []


def test_check_writable(tmp_path):
    check_writable(tmp_path)
    check_writable(tmp_path / "not" / "yet")
    assert not (tmp_path / "not").exists()  # checking creates nothing
    assert files_in(tmp_path) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        check_writable(tmp_path / "file")
    with pytest.raises(OutputError, match="is a file"):
        check_writable(tmp_path / "file" / "sub")


def test_check_not_exists(tmp_path):
    path = tmp_path / "x.md"
    check_not_exists(path, overwrite=False)
    path.write_text("x")
    with pytest.raises(OutputExistsError, match="x.md exists"):
        check_not_exists(path, overwrite=False)
    check_not_exists(path, overwrite=True)
    with pytest.raises(OutputExistsError, match="is a folder where a piece goes"):  # bad input (2), not a failed write
        check_not_exists(tmp_path, overwrite=True)


def _race_writer(path: str, content: str, barrier, results) -> None:
    barrier.wait()
    try:
        write_atomic(path, content, overwrite=False)
        results.put(("won", content[0]))
    except OutputExistsError:
        results.put(("exists", content[0]))


def test_processes_racing_for_one_path_exactly_one_wins(tmp_path):
    ctx = mp.get_context("spawn")
    path = str(tmp_path / "w" / "story" / "race-1.md")
    contents = [letter * 2_000_000 for letter in "abcd"]
    barrier, results = ctx.Barrier(len(contents)), ctx.Queue()
    procs = [ctx.Process(target=_race_writer, args=(path, c, barrier, results)) for c in contents]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    winners = [letter for outcome, letter in outcomes if outcome == "won"]
    assert len(winners) == 1
    assert sorted(outcome for outcome, _ in outcomes) == ["exists", "exists", "exists", "won"]
    assert Path(path).read_text() == winners[0] * 2_000_000
    assert files_in(tmp_path) == ["w/story/race-1.md"]


def test_threads_overwriting_one_path_never_interleave(tmp_path):
    path = tmp_path / "x.md"
    contents = [letter * 1_000_000 for letter in "abcdef"]
    barrier = threading.Barrier(len(contents))
    errors = []

    def write(content):
        barrier.wait()
        try:
            write_atomic(path, content, overwrite=True)
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(c,)) for c in contents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert path.read_text() in contents
    assert files_in(tmp_path) == ["x.md"]


def test_threads_racing_without_overwrite_exactly_one_wins(tmp_path):
    path = tmp_path / "x.md"
    barrier = threading.Barrier(8)
    outcomes = []

    def write(i):
        barrier.wait()
        try:
            write_atomic(path, str(i) * 100_000, overwrite=False)
            outcomes.append(("won", i))
        except OutputExistsError:
            outcomes.append(("exists", i))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    won = [i for outcome, i in outcomes if outcome == "won"]
    assert len(won) == 1 and len(outcomes) == 8
    assert path.read_text() == str(won[0]) * 100_000
    assert files_in(tmp_path) == ["x.md"]


# ------------------------------------------------------------------ write_piece, resume


@pytest.mark.parametrize("fmt", FORMATS)
def test_write_piece_places_the_file_and_counts_as_complete(tmp_path, fmt):
    piece = make_dialogue(subject="Mira", seed=11, request={"kind": "dialogue", "characters": ["Mira"]})
    path = write_piece(piece, tmp_path, fmt, overwrite=False)
    assert path == tmp_path / "harbor" / "dialogue" / f"Mira-11.{fmt}"
    assert path.read_text(encoding="utf-8") == render(piece, fmt)
    assert is_complete(path)
    with pytest.raises(OutputExistsError):
        write_piece(piece, tmp_path, fmt, overwrite=False)
    write_piece(replace(piece, text="changed"), tmp_path, fmt, overwrite=True)


def test_write_piece_checks_the_format_before_writing(tmp_path):
    with pytest.raises(ConfigError):
        write_piece(make_piece(), tmp_path, "yarn", overwrite=False)
    assert files_in(tmp_path) == []


def test_is_complete_rejects_missing_partial_and_foreign_files(tmp_path):
    assert not is_complete(tmp_path / "missing.md")
    assert not is_complete(tmp_path)
    good = write_piece(make_piece(), tmp_path, "md", overwrite=False)
    text = good.read_text(encoding="utf-8")
    cases = {
        "cut.md": text[: text.index("finish_reason")],  # cut inside the front matter
        "no-reason.md": text.replace("finish_reason: eos\n", ""),
        "other-reason.md": text.replace("finish_reason: eos", "finish_reason: crashed"),
        "plain.md": "just words\n",
        "cut.json": render(make_piece(), "json")[:200],
        "cut.yarn": render(make_dialogue(), "yarn").replace("===\n", ""),
        "cut.ink": render(make_dialogue(), "ink").replace("-> END\n", ""),
        "empty.txt": "",
    }
    for name, content in cases.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
        assert not is_complete(tmp_path / name), name
    temp = good.parent / f".{good.name}.123.456.abcd.tmp"
    temp.write_text(text, encoding="utf-8")
    assert not is_complete(temp)


def test_output_module_does_not_import_torch():
    code = "import sys, metagen.output; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ------------------------------------------------------- a name identifies its request (issue 14)

SPELT_OUT = [
    StoryRequest(characters=("ada",)),
    StoryRequest(characters=("ada", "bo", "cy"), location="mill"),
    StoryRequest(location="mill"),
    StoryRequest(premise="A lost coin in the well."),
    SceneRequest(location="well"),
    SceneRequest(location="well", time="the night of the festival"),
    DialogueRequest(characters=("ada", "bo", "cy"), location="well"),
]
ABBREVIATED = [
    StoryRequest(characters=("ada", "bo", "cy", "dee")),
    StoryRequest(characters=("ada", "bo", "cy", "eve")),
    DialogueRequest(characters=("ada", "bo", "cy", "dee", "eve")),
    StoryRequest(premise="A lost coin in the well at the mill."),
    StoryRequest(premise="A lost coin in the well at the market."),
    StoryRequest(characters=("a" * 60, "b" * 30)),
    StoryRequest(characters=("a" * 60, "b" * 31)),
    SceneRequest(location="well", time="x" * 90),
]


@pytest.mark.parametrize("request_", SPELT_OUT, ids=lambda r: r.subject)
def test_a_name_that_spells_its_request_out_is_unchanged(tmp_path, request_):
    """Existing files keep their names, so old runs still resume and replay."""
    plain = output_path(tmp_path, "w", request_.kind, request_.subject, 7, "md")
    assert output_path(tmp_path, "w", request_.kind, request_.subject, 7, "md", request=request_) == plain
    assert request_name(request_.subject, request_.to_dict()) == request_.subject


def test_abbreviated_names_carry_a_hash_of_the_whole_request(tmp_path):
    names = [output_path(tmp_path, "w", r.kind, r.subject, 7, "md", request=r).name for r in ABBREVIATED]
    assert len(set(names)) == len(names), names
    assert names[0].startswith("ada-bo-cy-and-1-more-") and names[0].endswith("-7.md")
    assert all(len(n) <= 80 + len("-7.md") for n in names)


ids = st.sampled_from(["ada", "bo", "cy", "dee", "eve", "a-b", "and", "1", "more", "x" * 40])


@settings(max_examples=300, deadline=None)
@given(first=st.lists(ids, min_size=1, max_size=6, unique=True), second=st.lists(ids, min_size=1, max_size=6, unique=True),
       place=st.sampled_from([None, "well", "mill"]), kind=st.sampled_from([StoryRequest, DialogueRequest]))
def test_two_requests_share_a_name_only_when_it_spells_both_out(first, second, place, kind):
    if kind is DialogueRequest and (len(first) < 2 or len(second) < 2):
        return
    a, b = kind(characters=tuple(first), location=place), kind(characters=tuple(second), location=place)
    if request_name(a.subject, a) == request_name(b.subject, b):
        assert first == second


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_complete_piece_with_empty_text_counts_as_complete(tmp_path, fmt):
    piece = make_dialogue(text="", turns=[], request={"kind": "dialogue", "characters": ["mira"]}, subject="mira")
    path = write_piece(piece, tmp_path, fmt, overwrite=False)
    assert is_complete(path)
    same = {"kind": "dialogue", "world_id": "harbor", "request": piece.request, "seed": piece.seed}
    assert recorded_difference(path, same) is None
    other = {**same, "request": {"kind": "dialogue", "characters": ["mira", "jonas"]}}
    assert recorded_difference(path, other) == (None if fmt == "txt" else "request")


def test_a_folder_swapped_for_a_link_is_refused_when_the_file_is_written(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder = OutputFolder(out)
    write_atomic(out / "w" / "story" / "a-1.md", "one", overwrite=False, root=folder)
    (out / "w").rename(tmp_path / "moved")
    (out / "w").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(OutputLinkError, match="out/w is a symbolic link"):
        write_atomic(out / "w" / "story" / "a-2.md", "two", overwrite=False, root=folder)
    (out / "w").unlink()
    (out / "w").mkdir()
    (out / "w" / "story").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(OutputLinkError, match="out/w/story is a symbolic link"):
        write_atomic(out / "w" / "story" / "a-2.md", "two", overwrite=True, root=folder)
    assert list(elsewhere.iterdir()) == []


def test_an_output_folder_replaced_during_a_run_is_refused(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder = OutputFolder(out)
    write_atomic(out / "a-1.md", "one", overwrite=False, root=folder)
    out.rename(tmp_path / "moved")
    out.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(OutputLinkError, match="was replaced during the run") as error:
        write_atomic(out / "a-2.md", "two", overwrite=False, root=folder)
    assert error.value.exit_code == EXIT_BAD_INPUT
    assert list(elsewhere.iterdir()) == []


def test_the_output_folder_moved_away_between_mkdir_and_open_is_a_replaced_folder(tmp_path, monkeypatch):
    """The race the link-swapping batch test found: `out` renamed away right after mkdir made sure
    of it. That is the output folder replaced (exit 2), not an I/O error (exit 1)."""
    out = tmp_path / "out"
    root = OutputFolder(out)
    write_atomic(out / "w" / "a.md", "first", overwrite=False, root=root)  # pins which folder out is
    real_mkdir, moved = Path.mkdir, []

    def mkdir_then_moved_away(self, *args, **kwargs):
        real_mkdir(self, *args, **kwargs)
        if self == out and not moved:
            moved.append(out.rename(tmp_path / "aside"))

    monkeypatch.setattr(Path, "mkdir", mkdir_then_moved_away)
    with pytest.raises(OutputLinkError, match="was replaced during the run"):
        write_atomic(out / "w" / "b.md", "second", overwrite=False, root=root)
    assert moved and (tmp_path / "aside" / "w" / "a.md").read_text() == "first"


def test_a_folder_that_vanishes_during_the_walk_is_made_again(tmp_path, monkeypatch):
    """Another process moving an output folder away between our mkdir and open costs a retry, not the piece."""
    import errno as errno_module

    from metagen.output import writing

    real_open, failures = os.open, []

    def flaky_open(name, flags, *args, **kwargs):
        if name == "kind" and kwargs.get("dir_fd") is not None and not failures:
            failures.append(name)
            raise FileNotFoundError(errno_module.ENOENT, "No such file or directory", name)
        return real_open(name, flags, *args, **kwargs)

    monkeypatch.setattr(writing.os, "open", flaky_open)
    root = writing.OutputFolder(tmp_path / "out")
    target = tmp_path / "out" / "world" / "kind" / "piece.md"
    writing.write_atomic(target, "text", overwrite=False, root=root)
    assert failures == ["kind"] and target.read_text() == "text"

    def always_gone(name, flags, *args, **kwargs):
        if name == "other" and kwargs.get("dir_fd") is not None:
            raise FileNotFoundError(errno_module.ENOENT, "No such file or directory", name)
        return real_open(name, flags, *args, **kwargs)

    monkeypatch.setattr(writing.os, "open", always_gone)
    with pytest.raises(writing.OutputError, match="kept vanishing"):
        writing.write_atomic(tmp_path / "out" / "world" / "other" / "p.md", "x", overwrite=False, root=root)


def test_an_output_folder_gone_between_mkdir_and_the_look_is_walked_to_again(tmp_path, monkeypatch):
    """Another process swapped out/ for a link and back: our mkdir met the link (FileExistsError), and when
    we looked the name was empty (the link removed, the folder not yet back). That is a folder that
    vanished, to walk to again, not "a file stands where a folder is needed" (exit 1, found by a CI run)."""
    from metagen.output import writing

    out = tmp_path / "out"
    real_mkdir, failures = Path.mkdir, []

    def link_there_then_gone(self, *args, **kwargs):
        if self == out and not failures:
            failures.append(self)
            raise FileExistsError(17, "File exists", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(writing.Path, "mkdir", link_there_then_gone)
    write_atomic(out / "w" / "a.md", "a", overwrite=False, root=OutputFolder(out))
    assert failures == [out] and files_in(out) == ["w/a.md"]

    (tmp_path / "file").write_text("x")  # a real file at the name is still that error
    with pytest.raises(writing.OutputError, match="a file stands where a folder is needed"):
        write_atomic(tmp_path / "file" / "w" / "a.md", "a", overwrite=False, root=OutputFolder(tmp_path / "file"))


def test_a_link_met_inside_the_output_folder_and_gone_by_the_look_is_still_refused(tmp_path, monkeypatch):
    """O_NOFOLLOW said a link stood at w (ELOOP); by the time we looked the link was gone. A link was
    there during the run: refused as one (exit 2), not an unexplained "too many levels of links" (exit 1)."""
    from metagen.output import writing

    real_open, real_stat = os.open, os.stat

    def link_at_w(name, flags, *args, **kwargs):
        if name == "w" and kwargs.get("dir_fd") is not None:
            raise OSError(errno.ELOOP, "Too many levels of symbolic links", name)
        return real_open(name, flags, *args, **kwargs)

    def gone_at_w(name, *args, **kwargs):
        if name == "w" and kwargs.get("dir_fd") is not None:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", name)
        return real_stat(name, *args, **kwargs)

    monkeypatch.setattr(writing.os, "open", link_at_w)
    monkeypatch.setattr(writing.os, "stat", gone_at_w)
    with pytest.raises(OutputLinkError, match="was replaced by a symbolic link during the run"):
        write_atomic(tmp_path / "out" / "w" / "a.md", "a", overwrite=False, root=OutputFolder(tmp_path / "out"))


def _taken_back_before_the_temp_file(monkeypatch, other: OutputFolder) -> list[str]:
    """`other`'s write fails and takes back the empty folders it made just after this write opened the
    file's folder, before it made its temp file there: the window that shards of one batch (or many
    `metagen scene -o out &`) writing into one folder share. Returns the names written at that moment."""
    real_open_temp, taken = writing._open_temp, []

    def open_temp_after_removal(folder_fd: int, name: str):
        if not taken:
            taken.append(name)
            other.remove_made()
        return real_open_temp(folder_fd, name)

    monkeypatch.setattr(writing, "_open_temp", open_temp_after_removal)
    return taken


@pytest.mark.parametrize("out_there", [True, False], ids=["out-there", "first-run"])
def test_a_folder_another_run_takes_back_mid_write_costs_a_retry_not_the_piece(tmp_path, monkeypatch, out_there):
    """Run A made out/w/scene (and out, on a first run), then failed and took back what it made, empty,
    while run B had the folder open and no temp file in it yet: B met a removed folder ("cannot write
    ...: No such file or directory") and, on a first run, called the output folder replaced."""
    out = tmp_path / "out"
    if out_there:
        out.mkdir()
    a, b = OutputFolder(out), OutputFolder(out)
    b.pin()  # as plan_batch does, when the folder is there
    os.close(a.open_folder_of(out / "w" / "scene" / "a-1.md"))  # A made the folders and is writing
    # A third run is walking through out: the removed out stays alive, so the out made again is another
    # inode on any file system (ext4 hands a freed inode's number straight to the next folder made).
    third = os.open(out, os.O_RDONLY)
    taken = _taken_back_before_the_temp_file(monkeypatch, a)
    try:
        write_atomic(out / "w" / "scene" / "b-1.md", "b", overwrite=False, root=b)
    finally:
        os.close(third)
    assert taken == ["b-1.md"] and a.made == []  # A did take its folders back under B
    assert files_in(out) == ["w/scene/b-1.md"] and (out / "w" / "scene" / "b-1.md").read_text() == "b"


def test_a_folder_taken_back_by_failing_runs_in_turn_costs_retries_not_the_piece(tmp_path, monkeypatch):
    """Many shards failing at once (a full disk) can each make and take back the same folder in turn under
    one write: 24 processes into one new folder, half failing every write, lost 6 pieces in 72,000 to
    "kept vanishing" at 3 walks."""
    out = tmp_path / "out"
    out.mkdir()
    real_open_temp, taken = writing._open_temp, []

    def open_temp_after_removals(folder_fd: int, name: str):
        if len(taken) < 5:  # five failing runs, one after another
            taken.append(name)
            os.rmdir(out / "w")
        return real_open_temp(folder_fd, name)

    monkeypatch.setattr(writing, "_open_temp", open_temp_after_removals)
    write_atomic(out / "w" / "a.md", "a", overwrite=False, root=OutputFolder(out))
    assert len(taken) == 5 and files_in(out) == ["w/a.md"]


def test_an_output_folder_taken_back_twice_under_one_write_is_walked_to_again(tmp_path, monkeypatch):
    """Two failing runs in turn (found by 24 processes into one new folder): the out made again after
    one took it back was taken back by the next between our opening it and checking it against the
    pin. That is a folder that vanished, to walk to again, not the output folder replaced."""
    out = tmp_path / "out"
    out.mkdir()
    root = OutputFolder(out)
    root.pin()
    out.rmdir()  # the first run took it back; the pin holds it open
    real_open, opened = os.open, []

    def open_then_taken_back(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        if path == out and not opened:
            opened.append(fd)
            out.rmdir()  # the run that made it again took it back too
            out.mkdir()  # and a third made it once more
        return fd

    monkeypatch.setattr(writing.os, "open", open_then_taken_back)
    write_atomic(out / "w" / "a.md", "a", overwrite=False, root=root)
    assert opened and files_in(out) == ["w/a.md"]


def test_an_output_folder_taken_back_and_replaced_by_a_link_is_still_refused(tmp_path):
    """Writing on into an output folder made again after another run took the empty one back is for a
    folder at its name, not for a link put there: that is still the output folder replaced."""
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    root = OutputFolder(out)
    root.pin()
    out.rmdir()
    out.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(OutputLinkError, match="was replaced during the run"):
        write_atomic(out / "w" / "a.md", "a", overwrite=False, root=root)
    assert list(elsewhere.iterdir()) == []


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_an_output_folder_lets_go_of_its_pinned_folder(tmp_path):
    """The pin holds the output folder open; a `metagen scene -n 500` (one OutputFolder a piece) or a
    server's many batches must not run out of descriptors."""
    before = len(os.listdir("/proc/self/fd"))
    for i in range(50):
        write_piece(make_piece(seed=i), tmp_path, "md", overwrite=False)
    assert len(os.listdir("/proc/self/fd")) <= before


def test_json_lines_in_files_hold_no_raw_control_or_bidi_characters():
    """decoded_with's line and the yarn/ink metadata comments are JSON on one line: a premise with a
    bidi override (U+202E, it reorders what a terminal shows), NEL or a C1 control is escaped there,
    as metagen's JSON on stdout escapes it, and reads back as written."""
    premise = "the pier\u202e at dawn\x85 then \x9b night\u2028"
    scene = make_piece(kind="scene", request={"kind": "scene", "premise": premise},
                       decoded_with=[{"request": {"kind": "scene", "premise": premise}, "seed": 7}])
    line = next(l for l in render(scene, "md").splitlines() if l.startswith("decoded_with: "))
    assert not any(c in line for c in "\u202e\x85\x9b\u2028")
    assert json.loads(line.removeprefix("decoded_with: "))[0]["request"]["premise"] == premise
    for fmt in ("yarn", "ink"):
        comments = [l for l in render(make_dialogue(request={"kind": "dialogue", "premise": premise}), fmt).splitlines()
                    if l.startswith("// metagen: request: ")]
        assert comments and not any(c in comments[0] for c in "\u202e\x85\x9b\u2028")
        assert json.loads(comments[0].removeprefix("// metagen: request: "))["premise"] == premise


def test_replay_names_a_missing_piece_a_folder_and_a_name_without_md(tmp_path):
    """`metagen replay x` said "x is not a metagen file" for a path that is not there, for the
    output folder, and for a piece's name typed without its .md."""
    (tmp_path / "o").mkdir()
    (tmp_path / "ada-1.md").write_text("---\nkind: story\n---\n", encoding="utf-8")
    with pytest.raises(OutputError, match=r"^cannot read .*nope: No such file or directory$"):
        read_piece_file(tmp_path / "nope")
    with pytest.raises(ConfigError) as folder:
        read_piece_file(tmp_path / "o")
    assert folder.value.one_line() == (f"{tmp_path / 'o'} is a folder, not a piece "
                                       "(give one of the .md or .json files metagen wrote in it)")
    with pytest.raises(ConfigError) as named:
        read_piece_file(tmp_path / "ada-1")
    assert named.value.one_line() == f"{tmp_path / 'ada-1'}: no such file (did you mean {tmp_path / 'ada-1.md'}?)"
    (tmp_path / "notes.csv").write_text("hi\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not a metagen file"):
        read_piece_file(tmp_path / "notes.csv")


def test_read_piece_file_names_a_link_to_nothing_and_is_complete_takes_it_as_unfinished(tmp_path):
    """A piece that is a link to nothing was OutputError "cannot read x.md: No such file or directory"
    (exit 1 to a library caller); it is a ConfigError naming where the link points, and --resume's
    is_complete, which reads through the same function, still calls it unfinished rather than raise."""
    (tmp_path / "dang.md").symlink_to("nothere.md")
    with pytest.raises(ConfigError) as caught:
        read_piece_file(tmp_path / "dang.md")
    assert caught.value.one_line() == (f"{tmp_path / 'dang.md'} is a symbolic link to nothere.md, which does not "
                                       "exist (make the link name the real file)")
    assert caught.value.exit_code == 2
    assert is_complete(tmp_path / "dang.md") is False


def test_a_txt_piece_is_named_for_what_it_is(tmp_path):
    """`metagen replay scene.txt` on metagen's own .txt piece said "not a metagen file": it is one, but
    plain text records nothing to replay from."""
    path = tmp_path / "atrium-1.TXT"
    path.write_text("The Fountain Atrium glows.\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        read_piece_file(path)
    assert caught.value.one_line() == (f"{path} is plain text: replay reads the .md and .json pieces metagen "
                                       "writes, which record how they were made; a .txt piece records nothing "
                                       "(make the piece with --format md or json to replay it)")
