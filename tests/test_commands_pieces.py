"""`metagen story | describe-scene | dialogue | prompt | replay` end to end through CliRunner.

The tiny random model writes gibberish; these tests check files, names, front matter,
exit codes and what reaches stdout and stderr, not the prose. A few tests run the real
model (marked real_model) with short outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from metagen.output import read_piece_file

from conftest import files_in, interrupt_on_call, invoke, killed_mid_write, write_world

ROOT = Path(__file__).resolve().parent.parent
NEXUS = ROOT / "worlds" / "nexus-hub.yaml"

WORLD = """\
world:
  id: tinyville
  name: Tinyville
  genre: village tale
style:
  length: short
  length_words: {short: 20, medium: 40, long: 80}
locations:
  - id: well
    name: The Well
    description: A stone well.
  - id: mill
    name: The Mill
characters:
  - id: ada
    name: Ada
    role: miller
    sample_lines: ["Flour again."]
  - id: bo
    name: Bo
  - id: cy
    name: Cy
lore:
  - id: flood
    keys: [well]
    text: The well flooded once.
content:
  banned_words: [dragon]
defaults:
  all: {temperature: 0.9}
"""

FRONT_MATTER_FIELDS = {
    "kind", "world_id", "world_hash", "world_files", "request", "model", "settings", "seed", "prompt_tokens",
    "output_tokens", "lore_used", "lore_left_out", "finish_reason", "seconds", "subject", "metagen_version",
    "created",
}


@pytest.fixture
def world(tmp_path) -> Path:
    return write_world(tmp_path, WORLD)


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if a command loads a model."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("metagen.commands.pieces.load_generator", refuse)


# ----------------------------------------------------------------------------- files


def test_story_files_and_front_matter(runner, world, model_args, tmp_path):
    result = invoke(runner, "story", world, "-c", "ada,bo", "-l", "well", "--seed", 7, "-n", 2,
                    "--max-tokens", 6, "--out", tmp_path / "o", *model_args)
    assert result.exit_code == 0, result.output
    folder = tmp_path / "o" / "tinyville" / "story"
    assert sorted(p.name for p in folder.iterdir()) == ["ada-bo-at-well-7.md", "ada-bo-at-well-8.md"]
    data = read_piece_file(folder / "ada-bo-at-well-7.md")
    assert FRONT_MATTER_FIELDS <= data.keys()
    assert data["kind"] == "story" and data["world_id"] == "tinyville" and data["seed"] == 7
    assert data["world_files"] == [str(world.resolve())]
    assert data["request"] == {"kind": "story", "characters": ["ada", "bo"], "location": "well", "premise": None,
                               "length": "short", "opening": True}
    assert data["model"]["dtype"] == "float32" and data["model"]["device"] == "cpu"
    settings = data["settings"]
    assert settings["seed"] == 7 and settings["max_new_tokens"] == 6
    assert settings["temperature"] == 0.9  # the world's default
    assert settings["banned"][0] == "dragon" and "marvel" in settings["banned"]  # the world's, then stock words
    assert settings["avoid_stock"] is True and settings["tense_guard"] == "off"
    assert data["lore_used"] == ["flood"] and data["lore_left_out"] == []
    assert data["output_tokens"] <= 6 and data["prompt_tokens"] > 0
    assert data["finish_reason"] in ("eos", "stop", "length")
    assert read_piece_file(folder / "ada-bo-at-well-8.md")["seed"] == 8
    assert result.stderr.count("wrote ") == 2


@pytest.mark.parametrize("command, extra, kind, subject, fmt", [
    ("story", ["-c", "ada", "-l", "well"], "story", "ada-at-well", "txt"),
    ("story", ["-c", "ada", "-l", "well"], "story", "ada-at-well", "json"),
    ("describe-scene", ["-l", "mill", "--time", "dawn"], "scene", "mill-dawn", "md"),
    ("describe-scene", ["-l", "mill"], "scene", "mill", "json"),
    ("describe-scene", ["-l", "mill"], "scene", "mill", "txt"),
    ("dialogue", ["-c", "ada,bo", "--turns", 2, "--order", "turns"], "dialogue", "ada-bo", "md"),
    ("dialogue", ["-c", "ada,bo", "--turns", 2, "--order", "turns"], "dialogue", "ada-bo", "json"),
    ("dialogue", ["-c", "ada,bo", "--turns", 2, "--order", "turns"], "dialogue", "ada-bo", "yarn"),
    ("dialogue", ["-c", "ada,bo", "--turns", 2, "--order", "turns"], "dialogue", "ada-bo", "ink"),
])
def test_each_command_and_format(runner, world, model_args, tmp_path, command, extra, kind, subject, fmt):
    out = tmp_path / "o"
    result = invoke(runner, command, world, *extra, "--seed", 3, "--max-tokens", 4, "--format", fmt,
                    "--out", out, "--quiet", *model_args)
    assert result.exit_code == 0, result.output
    assert result.stderr == "" and result.stdout == ""  # --quiet and piped: nothing at all
    path = out / "tinyville" / kind / f"{subject}-3.{fmt}"
    assert [p for p in out.rglob("*") if p.is_file()] == [path]
    text = path.read_text(encoding="utf-8")
    if fmt in ("md", "json"):
        data = read_piece_file(path)
        assert data["kind"] == kind and data["seed"] == 3 and data["settings"]["max_new_tokens"] == 4
        if kind == "dialogue":
            assert [t["speaker_id"] for t in data["turns"]] == ["ada", "bo"]
            assert data["request"]["order"] == "turns"
    elif fmt in ("yarn", "ink"):
        assert '// metagen: seed: 3' in text and ("===" in text)
    else:
        assert "---" not in text.splitlines()[:1]


def test_stdout_prints_text_and_writes_nothing(runner, world, model_args, tmp_path):
    result = invoke(runner, "describe-scene", world, "-l", "well", "--seed", 5, "--max-tokens", 6, "--stdout",
                    *model_args)
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "out").exists()  # the default folder (the tests run in tmp_path)
    again = invoke(runner, "describe-scene", world, "-l", "well", "--seed", 5, "--max-tokens", 6,
                   "--out", tmp_path / "o", "-q", *model_args)
    written = read_piece_file(tmp_path / "o" / "tinyville" / "scene" / "well-5.md")
    assert again.exit_code == 0
    assert result.stdout == written["text"] + "\n"
    assert "wrote" not in result.stderr


@pytest.mark.parametrize("flag", ["-o", "--out"])
@pytest.mark.parametrize("command", [["story", "-c", "ada", "-l", "well"], ["describe-scene", "-l", "well"]])
def test_stdout_with_out_is_refused(runner, world, model_args, tmp_path, monkeypatch, command, flag):
    """Round 37: `story ... --stdout -o x.md` printed the text and silently wrote no x.md."""
    monkeypatch.setattr("metagen.commands.pieces.load_generator", lambda *a, **k: pytest.fail("model loaded"))
    result = invoke(runner, command[0], world, *command[1:], "--stdout", flag, tmp_path / "x.md", *model_args)
    assert result.exit_code == 2, result.output
    assert result.stderr == "error: --stdout prints the text; --out names where files go: give one\n"
    assert result.stdout == "" and not (tmp_path / "x.md").exists()


def test_json_lines(runner, world, model_args, tmp_path):
    result = invoke(runner, "story", world, "-c", "cy", "--seed", 11, "-n", 3, "--max-tokens", 5, "--json",
                    "--out", tmp_path / "o", *model_args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["seed"] for line in lines] == [11, 12, 13]
    for line in lines:
        assert {"path", "kind", "world", "seed", "tokens", "seconds", "tokens_per_second"} <= line.keys()
        assert line["kind"] == "story" and line["world"] == "tinyville"
        assert Path(line["path"]).is_file() and line["tokens"] <= 5


@pytest.mark.parametrize("command, extra", [("story", ["-c", "cy"]), ("describe-scene", ["-l", "mill"]),
                                            ("dialogue", ["-c", "ada,bo", "--turns", 2])])
def test_json_lines_are_the_only_report_of_a_written_file(runner, world, model_args, tmp_path, command, extra):
    """--json printed its line on stdout and "wrote PATH" on stderr too; batch --json prints the line instead."""
    result = invoke(runner, command, world, *extra, "--seed", 3, "--max-tokens", 3, "--json", "--out", tmp_path / "o",
                    *model_args)
    assert result.exit_code == 0, result.output
    assert Path(json.loads(result.stdout)["path"]).is_file()
    assert "wrote" not in result.stderr


@pytest.mark.parametrize("out", ["o", "o/scene.md"])
def test_a_temp_file_left_by_a_killed_run_is_removed_when_its_piece_is_made(runner, world, model_args, tmp_path,
                                                                             out):
    """`describe-scene ... -o out` killed with -9 mid-write left `.mill-3.md....tmp` under out for good."""
    args = ["describe-scene", world, "-l", "mill", "--seed", 3, "--max-tokens", 3, "--out", tmp_path / out, "--json"]
    result = invoke(runner, *args, *model_args)
    piece = Path(json.loads(result.stdout)["path"])
    piece.unlink()
    killed_mid_write(piece)
    result = invoke(runner, *args, *model_args)
    assert result.exit_code == 0, result.output
    assert [p.name for p in piece.parent.iterdir()] == [piece.name]


def test_overwrite_refused_before_the_model_and_file_untouched(runner, world, model_args, tmp_path, monkeypatch):
    args = ["story", world, "-c", "ada", "-l", "well", "--seed", 1, "--max-tokens", 4, "--out", tmp_path / "o", *model_args]
    assert invoke(runner, *args).exit_code == 0
    path = tmp_path / "o" / "tinyville" / "story" / "ada-at-well-1.md"
    before = path.read_bytes()
    monkeypatch.setattr("metagen.commands.pieces.load_generator", lambda *a, **k: pytest.fail("model loaded"))
    result = invoke(runner, *args)
    assert result.exit_code == 2
    assert "exists" in result.stderr and "--overwrite" in result.stderr
    assert path.read_bytes() == before
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    assert invoke(runner, *args, "--overwrite", "--temperature", 1.3).exit_code == 0
    assert read_piece_file(path)["settings"]["temperature"] == 1.3


@pytest.mark.parametrize("flags", [[], ["--overwrite"]])
def test_a_folder_where_the_piece_goes_is_bad_input_before_the_model(runner, world, tmp_path, monkeypatch, flags):
    """story said 'cannot write ...: it is a folder', exit 1 as if writing had failed, with no hint,
    where batch says what to do and exits 2; --overwrite cannot replace a folder either."""
    path = tmp_path / "o" / "tinyville" / "story" / "ada-at-well-1.md"
    path.mkdir(parents=True)
    monkeypatch.setattr("metagen.commands.pieces.load_generator", lambda *a, **k: pytest.fail("model loaded"))
    result = invoke(runner, "story", world, "-c", "ada", "-l", "well", "--seed", 1, "--out", tmp_path / "o", *flags)
    assert result.exit_code == 2
    assert result.stderr == f"error: {path} is a folder where a piece goes (move the folder away, or choose another --out)\n"


# ----------------------------------------------------------------------------- -o FILE


@pytest.mark.parametrize("command, extra, name, fmt", [
    ("story", ["-c", "ada", "-l", "well"], "story.md", "md"),
    ("describe-scene", ["-l", "mill"], "Scene.TXT", "txt"),
    ("dialogue", ["-c", "ada,bo", "--turns", 2, "--order", "turns"], "talk.yarn", "yarn"),
    ("dialogue", ["-c", "ada,bo", "--turns", 2, "--order", "turns"], "talk.json", "json"),
])
def test_out_naming_a_file_writes_that_file(runner, world, model_args, tmp_path, command, extra, name, fmt):
    """`-o story.md` made a folder named story.md with out/<world>/<kind>/... inside it; a
    newcomer who writes it wants the file story.md, in the format its extension names."""
    path = tmp_path / "o" / "sub" / name
    args = [command, world, *extra, "--seed", 3, "--max-tokens", 4, *model_args]
    result = invoke(runner, *args, "-o", path, "--json")
    assert result.exit_code == 0, result.output
    assert files_in(tmp_path / "o") == [path]
    assert json.loads(result.stdout)["path"] == str(path)
    invoke(runner, *args, "-o", tmp_path / "folder", "--format", fmt, "-q")  # the same piece, as before
    made = files_in(tmp_path / "folder")
    if fmt in ("md", "json"):
        before, now = read_piece_file(path), read_piece_file(made[0])
        assert before["text"] == now["text"] and before["request"] == now["request"]
    else:  # all but the timings
        def timeless(p):
            return [line for line in p.read_text(encoding="utf-8").splitlines()
                    if not line.startswith(("// metagen: seconds:", "// metagen: created:"))]

        assert timeless(path) == timeless(made[0])


def test_out_naming_a_file_replays_and_is_never_overwritten_unasked(runner, world, model_args, tmp_path,
                                                                     monkeypatch):
    path = tmp_path / "o" / "story.md"
    args = ["story", world, "-c", "ada", "-l", "well", "--seed", 3, "--max-tokens", 4, "-o", path, *model_args]
    assert invoke(runner, *args).exit_code == 0
    assert invoke(runner, "replay", path).stdout.startswith(f"identical: {path}")
    before = path.read_bytes()
    with monkeypatch.context() as patched:
        patched.setattr("metagen.commands.pieces.load_generator", lambda *a, **k: pytest.fail("model loaded"))
        result = invoke(runner, *args)
    assert result.exit_code == 2 and path.read_bytes() == before
    assert result.stderr == f"error: {path} exists (pass --overwrite to replace it, or choose another --out)\n"
    assert invoke(runner, *args, "--overwrite", "--temperature", 1.3).exit_code == 0
    assert read_piece_file(path)["settings"]["temperature"] == 1.3


def test_an_interrupt_leaves_no_file_where_out_names_one(runner, world, model_args, tmp_path, monkeypatch):
    import metagen.pipeline as pipeline

    interrupt_on_call(monkeypatch, pipeline, "_compose_story", 1)
    result = invoke(runner, "story", world, "-c", "ada", "-l", "well", "--max-tokens", 4, "-o", tmp_path / "o" / "story.md",
                    *model_args)
    assert result.exit_code == 130 and files_in(tmp_path / "o") == []


@pytest.mark.parametrize("extra, message", [
    (["-n", 3], "error: --out {out} names one file, but --count 3 makes 3 pieces (give --out a folder, such as "
                "{folder}, to get one file a piece as {folder}/<world>/<kind>/<subject>-<seed>.md, or leave --count out)"),
    (["--format", "json"], "error: --format json does not match --out {out}, which names a .md file "
                           "(give --out {folder}.json, or leave --format out)"),
])
def test_out_naming_a_file_refuses_what_it_cannot_hold_before_the_model(runner, world, tmp_path, no_model,
                                                                        extra, message):
    out = tmp_path / "story.md"
    result = invoke(runner, "story", world, "-c", "ada", "-l", "well", "-o", out, *extra)
    assert result.exit_code == 2
    assert result.stderr == message.format(out=out, folder=tmp_path / "story") + "\n"
    assert files_in(tmp_path) == [world]


def test_a_yarn_file_for_a_story_is_refused(runner, world, tmp_path, no_model):
    result = invoke(runner, "story", world, "-c", "ada", "-l", "well", "-o", tmp_path / "story.yarn")
    assert result.exit_code == 2 and "the yarn format holds dialogue only, not a story" in result.stderr


@pytest.mark.parametrize("typed", ["folder", "slash"])
def test_out_ending_in_md_is_a_folder_when_it_is_one_or_ends_in_a_slash(runner, world, model_args, tmp_path, typed):
    out = tmp_path / "stories.md"
    if typed == "folder":
        out.mkdir()
    given = f"{out}/" if typed == "slash" else out
    result = invoke(runner, "story", world, "-c", "ada", "-l", "well", "--seed", 2, "--max-tokens", 4, "-o", given, "-q",
                    *model_args)
    assert result.exit_code == 0, result.output
    assert files_in(out) == [out / "tinyville" / "story" / "ada-at-well-2.md"]


@pytest.mark.parametrize("given, fmt", [("MD", "md"), ("Markdown", "md"), ("JSON", "json"), ("Text", "txt")])
def test_format_names_are_taken_in_any_case(runner, world, model_args, tmp_path, given, fmt):
    """`-o x.MD` was a Markdown file while `--format MD` was 'unknown output format'."""
    args = ["story", world, "-c", "ada", "-l", "well", "--seed", 3, "--max-tokens", 4, "-q", *model_args]
    result = invoke(runner, *args, "--format", given, "-o", tmp_path / "folder")
    assert result.exit_code == 0, result.output
    assert files_in(tmp_path / "folder") == [tmp_path / "folder" / "tinyville" / "story" / f"ada-at-well-3.{fmt}"]
    named = tmp_path / f"one.{fmt}"
    assert invoke(runner, *args, "--format", given, "-o", named).exit_code == 0 and named.is_file()


def test_a_format_alias_that_does_not_match_out_is_named_by_its_format(runner, world, tmp_path, no_model):
    result = invoke(runner, "story", world, "-c", "ada", "-l", "well", "--format", "Markdown", "-o", tmp_path / "s.json")
    assert result.exit_code == 2
    assert result.stderr == (f"error: --format md does not match --out {tmp_path / 's.json'}, which names a .json file "
                             f"(give --out {tmp_path / 's.md'}, or leave --format out)\n")


BAD_INPUTS = [
    (["story", "{world}", "-c", "adda"], "has no character 'adda'", "did you mean 'ada'?"),
    (["story", "{world}", "-l", "wel"], "has no location 'wel'", "did you mean 'well'?"),
    (["story", "{world}", "--length", "epic"], "story length 'epic' is not known", ""),
    (["story", "{world}", "--format", "yarn"], "holds dialogue only", ""),
    (["story", "{world}", "--format", "docx"], "unknown output format 'docx'", ""),
    (["story", "{world}", "--temperature", "-1"], "--temperature must be in [0, 100]", ""),
    (["story", "{missing}"], "no such file", ""),
    (["describe-scene", "{world}"], "a scene needs a location", ""),
    (["dialogue", "{world}", "-c", "ada"], "at least two characters", ""),
    (["dialogue", "{world}", "-c", "ada,bo", "--order", "loudest"], "--order must be one of", ""),
    (["dialogue", "{world}", "-c", "ada,ada"], "names a character more than once: ada", "name each character once"),
    # a blank text had been taken: -p "" as no premise, -p " " into the prompt as "This happens: ."
    (["story", "{world}", "-p", ""], "'--premise' / '-p': is empty", "leave the option out"),
    (["story", "{world}", "-p", " "], "'--premise' / '-p': is empty", "leave the option out"),
    (["describe-scene", "{world}", "-l", "well", "--time", " "], "'--time': is empty", "leave the option out"),
    (["describe-scene", "{world}", "-l", "well", "--weather", ""], "'--weather': is empty", "leave the option out"),
    (["describe-scene", "{world}", "-l", "well", "--mood", ""], "'--mood': is empty", "leave the option out"),
]


@pytest.mark.parametrize("args", [
    ["story", "{world}", "-p", ""], ["scene", "{world}", "-l", "well", "--time", " "],
    ["scene", "{world}", "-l", "well", "--weather", ""], ["scene", "{world}", "-l", "well", "--mood", ""],
])
def test_prompt_refuses_a_blank_text_option(runner, world, no_model, args):
    """`metagen prompt` had printed a prompt holding "Time:." for --time ' '."""
    result = invoke(runner, "prompt", *[a.format(world=world) for a in args])
    assert result.exit_code == 2, result.output
    assert "is empty (leave the option out for its default)" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("topic", ["   ", "\u200b"])
def test_a_topic_that_shows_nothing_is_refused(runner, world, no_model, topic):
    """--topic '   ' had made the prompt's "... between Ada and Bo, about ." """
    result = invoke(runner, "prompt", "dialogue", world, "-c", "ada,bo", "--topic", topic)
    assert result.exit_code == 2, result.output
    assert "'--topic': shows nothing (give a topic, or --topic '' for none)" in result.stderr


@pytest.mark.parametrize("args, message, hint", BAD_INPUTS)
def test_bad_input_exits_2_without_loading_the_model(runner, world, tmp_path, no_model, args, message, hint):
    args = [a.format(world=world, missing=tmp_path / "nope.yaml") for a in args]
    result = invoke(runner, *args, "--out", tmp_path / "o")
    assert result.exit_code == 2, result.output
    assert message in result.stderr and hint in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_interrupted_command_exits_130_and_writes_nothing(runner, world, model_args, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("metagen.pipeline.compose", interrupted)
    result = invoke(runner, "story", world, "-c", "ada", "-l", "well", "-n", 3, "--out", tmp_path / "o", *model_args)
    assert result.exit_code == 130 and "interrupted" in result.stderr
    assert not [p for p in (tmp_path / "o").rglob("*") if p.is_file()]


def test_each_piece_is_written_as_it_is_made_and_an_interrupt_keeps_them(runner, world, model_args, tmp_path,
                                                                          monkeypatch):
    # -n 20 used to write nothing until all 20 were made: an interrupt lost every finished one
    import metagen.pipeline as pipeline

    interrupt_on_call(monkeypatch, pipeline, "_compose_story", 3)
    out = tmp_path / "o"
    result = invoke(runner, "story", world, "-c", "ada", "-l", "well", "-n", 3, "--seed", 7, "--max-tokens", 4, "--out", out,
                    *model_args)
    assert result.exit_code == 130 and "interrupted" in result.stderr
    written = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert written == ["ada-at-well-7.md", "ada-at-well-8.md"], written
    assert result.stderr.count("wrote ") == 2


# ----------------------------------------------------------------------------- prompts


def test_show_prompt_prints_the_prompt_and_runs_nothing(runner, world, model_args, tmp_path):
    result = invoke(runner, "story", world, "-c", "ada", "-l", "well", "--show-prompt", "--out", tmp_path / "o",
                    *model_args)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("<|im_start|>system\n") and "Write the opening paragraph. Ada is at the Well." in result.stdout
    assert "prompt tokens: " in result.stderr and "lore used: flood" in result.stderr
    assert "lore left out: none" in result.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command, extra", [
    (["story", "-c", "ada", "-l", "well"], ["--moderation", "bogus"]),
    (["story", "-c", "ada", "-l", "well"], ["--format", "docx"]),
    (["story", "-c", "ada", "-l", "well"], ["--count", 0]),
    (["story", "-c", "ada", "-l", "well"], ["--seed", 2**63 - 1, "--count", 2]),
    (["story", "-c", "ada", "-l", "well"], ["-o", "{out}.md", "--count", 3]),
    (["describe-scene", "-l", "well"], ["--stdout", "--format", "yarn"]),
    (["describe-scene", "-l", "well"], ["--stdout", "-o", "{out}"]),
])
def test_show_prompt_refuses_the_output_flags_the_run_refuses(runner, world, tmp_path, no_model, command, extra):
    """`story --show-prompt --moderation bogus --format docx --count 0` printed a prompt and exited 0, where
    the run it shows refuses each of those flags: now it refuses them in the same words, before the model."""
    extra = [str(a).format(out=tmp_path / "o") for a in extra]
    run = invoke(runner, command[0], world, *command[1:], *extra)
    shown = invoke(runner, command[0], world, *command[1:], *extra, "--show-prompt")
    assert run.exit_code == shown.exit_code == 2, shown.output
    assert shown.stderr == run.stderr and len(shown.stderr.splitlines()) == 1 and shown.stdout == ""
    assert files_in(tmp_path) == [world]


@pytest.mark.parametrize("kind, command, extra", [
    ("story", "story", ["-c", "ada,bo", "--premise", "The well runs dry."]),
    ("scene", "describe-scene", ["-l", "well", "--mood", "quiet"]),
    ("dialogue", "dialogue", ["-c", "bo,cy", "--topic", "the flood"]),
])
def test_prompt_command_matches_show_prompt(runner, world, model_args, kind, command, extra):
    shown = invoke(runner, command, world, *extra, "--seed", 3, "--show-prompt", "--json", *model_args)
    printed = invoke(runner, "prompt", kind, world, *extra, "--seed", 3, "--json", *model_args)
    assert shown.exit_code == 0 and printed.exit_code == 0, printed.output
    assert json.loads(shown.stdout) == json.loads(printed.stdout)
    data = json.loads(printed.stdout)
    assert data["seed"] == 3
    opening = ""  # a story's beats name its cast; a scene names its place in the model's words
    assert data["prompt_tokens"] > 0 and data["prompt"].endswith("<|im_start|>assistant\n" + opening)
    assert data["opening"] == opening and data["kind"] == kind and data["world"] == "tinyville"


def test_a_prompt_without_a_seed_is_a_drawn_seeds_and_says_which(runner, world, model_args, tmp_path):
    """`metagen prompt story W` showed seed 0's cast and plan while `metagen story W` draws a seed:
    the prompt shown was not one the run would write from. Now it draws one too and names it."""
    drawn = invoke(runner, "prompt", "story", world, *model_args)
    assert drawn.exit_code == 0, drawn.output
    seed = int(drawn.stderr.split("seed: ")[1].split()[0])
    assert f"(drawn at random: give --seed {seed} to write from this prompt)" in drawn.stderr
    given = invoke(runner, "prompt", "story", world, "--seed", seed, *model_args)
    assert given.stdout == drawn.stdout and f"seed: {seed}\n" in given.stderr and "drawn" not in given.stderr
    as_json = json.loads(invoke(runner, "prompt", "story", world, "--seed", seed, "--json", *model_args).stdout)
    written = invoke(runner, "story", world, "--seed", seed, "--max-tokens", 4, "-o", tmp_path / "s.md", *model_args)
    assert written.exit_code == 0, written.output
    front = yaml.safe_load((tmp_path / "s.md").read_text(encoding="utf-8").split("\n---\n")[0].removeprefix("---\n"))
    assert as_json["seed"] == seed and as_json["request"] == front["request"]  # the cast and place the run drew


@pytest.mark.parametrize("kind, command, extra", [
    ("story", "story", ["-c", "ada", "-l", "well"]),
    ("scene", "describe-scene", ["-l", "well"]),
    ("dialogue", "dialogue", ["-c", "bo,cy"]),
])
def test_a_prompt_no_run_could_send_is_refused_as_the_run_refuses_it(runner, world, model_args, kind, command, extra):
    """prompt story --max-tokens 100000 (and story --show-prompt) printed a prompt and exited 0 where
    `metagen story` refuses the settings; the scene's and dialogue's prompts were refused already."""
    run = invoke(runner, command, world, *extra, "--max-tokens", 100000, "--stdout", *model_args)
    for args in ([command, world, *extra, "--show-prompt"], ["prompt", kind, world, *extra]):
        shown = invoke(runner, *args, "--max-tokens", 100000, *model_args)
        assert shown.exit_code == run.exit_code == 2 and shown.stdout == ""
        assert shown.stderr.splitlines()[-1] == run.stderr.splitlines()[-1]


def test_lore_left_out_is_reported(runner, world, model_args, tmp_path):
    # Ten long entries keyed on "well" overflow the 512-token lore budget of the tiny byte-level tokenizer.
    lore = "".join(f"  - id: fact-{i}\n    keys: [well]\n    priority: {10 - i}\n    text: {'The old well ' * 8}\n"
                   for i in range(10))
    world.write_text(WORLD.replace("lore:\n", "lore:\n" + lore), encoding="utf-8")
    printed = invoke(runner, "prompt", "dialogue", world, "-c", "ada,bo", "-l", "well", *model_args)
    assert printed.exit_code == 0, printed.output
    left = [line for line in printed.stderr.splitlines() if line.startswith("lore left out: ")]
    assert left and left[0] != "lore left out: none" and "fact-9" in left[0]
    result = invoke(runner, "dialogue", world, "-c", "ada,bo", "-l", "well", "--turns", 1, "--seed", 1,
                    "--max-tokens", 3, "--out", tmp_path / "o", *model_args)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "dialogue ada-bo-at-well: left out" in warnings[0] and "fact-9" in warnings[0]
    data = read_piece_file(tmp_path / "o" / "tinyville" / "dialogue" / "ada-bo-at-well-1.md")
    assert "fact-9" in data["lore_left_out"] and "fact-0" in data["lore_used"]


# ----------------------------------------------------------------------------- seeds and replay


def test_same_seed_same_text(runner, world, model_args, tmp_path):
    for out in ("a", "b"):
        args = ["story", world, "-c", "ada", "-l", "well", "--seed", 42, "--max-tokens", 12, "--out", tmp_path / out, "-q"]
        assert invoke(runner, *args, *model_args).exit_code == 0
    a, b = (read_piece_file(tmp_path / o / "tinyville" / "story" / "ada-at-well-42.md") for o in ("a", "b"))
    assert a["text"] == b["text"] and a["output_tokens"] == b["output_tokens"]


def test_seed_drawn_and_recorded(runner, world, model_args, tmp_path):
    result = invoke(runner, "story", world, "-c", "bo", "-n", 2, "--max-tokens", 3, "--json", "--out",
                    tmp_path / "o", *model_args)
    assert result.exit_code == 0, result.output
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert second["seed"] == first["seed"] + 1
    assert read_piece_file(first["path"])["settings"]["seed"] == first["seed"]


@pytest.mark.parametrize("command, extra, kind, name", [
    ("story", ["-c", "ada", "-l", "well"], "story", "ada-at-well-9.md"),
    ("dialogue", ["-c", "ada,bo,cy", "--turns", 3, "--format", "json"], "dialogue", "ada-bo-cy-9.json"),
])
def test_replay_reproduces_the_text(runner, world, model_args, tmp_path, command, extra, kind, name):
    out = tmp_path / "o"
    assert invoke(runner, command, world, *extra, "--seed", 9, "--max-tokens", 8, "--out", out, "-q",
                  *model_args).exit_code == 0
    path = out / "tinyville" / kind / name
    result = invoke(runner, "replay", path)  # the recorded model path and dtype
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"identical: {path}")


def test_a_story_naming_no_one_is_named_and_replayed_by_the_cast_its_seed_drew(runner, world, model_args, tmp_path):
    """`metagen story WORLD` names no cast or place: the seed draws them (plan.with_cast), the file is
    named by them, the prompt shows them, and replay makes the same text from the record."""
    from metagen.plan import with_cast
    from metagen.prompts import StoryRequest
    from metagen.world import load_world

    drawn = with_cast(load_world(world), StoryRequest(), 6)
    out = tmp_path / "o"
    result = invoke(runner, "story", world, "--seed", 6, "--max-tokens", 8, "--out", out, "--json", *model_args)
    assert result.exit_code == 0, result.output
    path = Path(json.loads(result.stdout)["path"])
    assert path == out / "tinyville" / "story" / f"{drawn.subject}-6.md"
    assert read_piece_file(path)["request"]["characters"] == list(drawn.characters)
    shown = invoke(runner, "prompt", "story", world, "--seed", 6, "--json", *model_args)
    assert json.loads(shown.stdout)["request"]["location"] == drawn.location
    assert invoke(runner, "story", world, "--seed", 6, "--out", out, *model_args).exit_code == 2  # the same file: refused
    assert invoke(runner, "replay", path).stdout.startswith(f"identical: {path}")


def test_replay_of_scenes_made_together_decodes_the_same_batch(runner, world, model_args, tmp_path, monkeypatch):
    """`-n 3` decodes three scenes in one batch; alone, a scene's sums round otherwise and the real
    model wrote other text (a sweep's replay of ember-keep-3: "differs at character 25"). Each piece
    records the batch, and replay decodes that batch again and compares its own row."""
    from metagen import pipeline

    out = tmp_path / "o"
    assert invoke(runner, "describe-scene", world, "-l", "well", "--seed", 5, "-n", 3, "--max-tokens", 8,
                  "--format", "json", "--out", out, "-q", *model_args).exit_code == 0
    path = out / "tinyville" / "scene" / "well-6.json"
    data = json.loads(path.read_text())
    assert [e["seed"] for e in data["decoded_with"]] == [5, 6, 7]
    assert {e["request"]["location"] for e in data["decoded_with"]} == {"well"}
    calls = []
    compose = pipeline.compose
    monkeypatch.setattr(pipeline, "compose", lambda *a, **k: calls.append((k["seeds"], k.get("batch_size"))) or compose(*a, **k))
    assert invoke(runner, "replay", path).stdout.startswith(f"identical: {path}")
    assert calls == [([5, 6, 7], 3)]  # (the command itself passes its --batch-size)
    data["decoded_with"] = data["decoded_with"][:1]  # an edited record that lost the piece's own entry
    path.write_text(json.dumps(data))
    result = invoke(runner, "replay", path)
    assert result.exit_code == 2 and "decoded_with does not hold the piece's own request and seed" in result.stderr
    assert invoke(runner, "describe-scene", world, "-l", "well", "--seed", 5, "--max-tokens", 8, "--format", "json",
                  "--out", tmp_path / "alone", "-q", *model_args).exit_code == 0
    assert "decoded_with" not in json.loads((tmp_path / "alone" / "tinyville" / "scene" / "well-5.json").read_text())
    # in Markdown front matter the batch is one line of JSON (a `diff -I` can pass it over; docs/batch.md)
    assert invoke(runner, "describe-scene", world, "-l", "well", "--seed", 5, "-n", 2, "--max-tokens", 8,
                  "--time", "dusk \u2028 late", "--out", tmp_path / "md", "-q", *model_args).exit_code == 0
    markdown = tmp_path / "md" / "tinyville" / "scene" / "well-dusk-late-6.md"
    (line,) = [x for x in markdown.read_text(encoding="utf-8").splitlines() if x.startswith("decoded_with: ")]
    assert json.loads(line.removeprefix("decoded_with: "))[1]["seed"] == 6
    assert read_piece_file(markdown)["decoded_with"][0]["request"]["time"] == "dusk \u2028 late"
    assert invoke(runner, "replay", markdown).stdout.startswith(f"identical: {markdown}")


def test_replay_takes_the_recorded_prompt_dtype(runner, world, wide_gguf, tmp_path):
    """bfloat16 prompts (auto on CPUs with bfloat16 units) are recorded and replayed as made, on
    any CPU; a piece that records none was made with float32 prompts."""
    out = tmp_path / "o"
    assert invoke(runner, "story", world, "-c", "ada", "-l", "well", "--seed", 9, "--max-tokens", 8, "--format", "json",
                  "--out", out, "-q", "--model", wide_gguf, "--dtype", "int8", "--prompt-dtype", "bfloat16").exit_code == 0
    path = out / "tinyville" / "story" / "ada-at-well-9.json"
    data = json.loads(path.read_text())
    assert data["model"]["dtype"] == "int8" and data["model"]["prompt_dtype"] == "bfloat16"
    assert invoke(runner, "replay", path).stdout.startswith(f"identical: {path}")
    assert invoke(runner, "story", world, "-c", "ada", "-l", "well", "--seed", 9, "--max-tokens", 8, "--format", "json",
                  "--out", out, "--overwrite", "-q", "--model", wide_gguf, "--dtype", "int8", "--prompt-dtype", "float32").exit_code == 0
    data = json.loads(path.read_text())
    del data["model"]["prompt_dtype"]  # as every piece before 0.8.0
    path.write_text(json.dumps(data))
    assert invoke(runner, "replay", path).stdout.startswith(f"identical: {path}")
    result = invoke(runner, "replay", path, "--prompt-dtype", "half")
    assert result.exit_code == 2 and "--prompt-dtype must be one of auto, float32, bfloat16" in result.stderr


def _story_piece(runner, world, model_args, tmp_path) -> tuple[Path, dict]:
    """A short story written as JSON (seed 4): its path and its data."""
    out = tmp_path / "o"
    assert invoke(runner, "story", world, "-c", "ada", "-l", "well", "--seed", 4, "--max-tokens", 8, "--format", "json",
                  "--out", out, "-q", *model_args).exit_code == 0
    path = out / "tinyville" / "story" / "ada-at-well-4.json"
    return path, json.loads(path.read_text())


def test_replay_says_when_the_text_differs(runner, world, model_args, tmp_path):
    path, data = _story_piece(runner, world, model_args, tmp_path)
    data["text"] = "Once upon a time"
    path.write_text(json.dumps(data))
    result = invoke(runner, "replay", path)
    assert result.exit_code == 1
    assert result.stdout.startswith(f"differs: {path}: first difference at character ")
    assert "recorded:" in result.stdout and "now:" in result.stdout


@pytest.mark.parametrize("mode", [5, "enforse"])
def test_replay_names_a_recorded_moderation_mode_it_cannot_use(runner, world, model_args, tmp_path, mode):
    """moderation: {mode: 5} in an edited piece was a TypeError's traceback; 'enforse' was blamed on
    --moderation, a flag the user never gave. --moderation given still replaces the recorded one."""
    path, data = _story_piece(runner, world, model_args, tmp_path)
    path.write_text(json.dumps({**data, "moderation": {**(data.get("moderation") or {}), "mode": mode}}))
    result = invoke(runner, "replay", path)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.startswith(f"error: {path} records what cannot be replayed: moderation.mode must be one "
                                    f"of off, report, enforce, got {mode!r} (")
    assert invoke(runner, "replay", path, "--moderation", "report").exit_code == 0


@pytest.mark.parametrize("flag", ["--model", "--dtype", "--device", "--prompt-dtype", "--moderation", "--adapter"])
def test_replay_refuses_an_empty_flag(runner, world, model_args, tmp_path, flag):
    """`replay P --model ""` (an empty variable in a script) had fallen back to the recorded value without a word."""
    path, _ = _story_piece(runner, world, model_args, tmp_path)
    result = invoke(runner, "replay", path, flag, "")
    assert result.exit_code == 2 and result.stdout == "", result.output
    assert f"'{flag}'" in result.stderr and "is empty (leave the option out for its default)" in result.stderr


def test_replay_warns_of_a_piece_made_by_another_version(runner, world, model_args, tmp_path):
    path, data = _story_piece(runner, world, model_args, tmp_path)
    assert "was made by metagen" not in invoke(runner, "replay", path).stderr
    path.write_text(json.dumps({**data, "metagen_version": "0.0.9"}))
    result = invoke(runner, "replay", path)
    assert result.exit_code == 0 and result.stdout.startswith("identical:")
    assert f"warning: {path} was made by metagen 0.0.9, this is " in result.stderr


def test_replay_names_the_piece_whose_record_the_world_no_longer_answers(runner, world, model_args, tmp_path):
    path, data = _story_piece(runner, world, model_args, tmp_path)
    path.write_text(json.dumps({**data, "request": {**data["request"], "characters": ["nobody"]}}))
    result = invoke(runner, "replay", path)
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert f"{path} records what cannot be replayed: world 'tinyville' has no character 'nobody'" in result.stderr
    path.write_text(json.dumps({**data, "world_files": [str(tmp_path / "moved.yaml")]}))
    result = invoke(runner, "replay", path)
    assert result.exit_code == 2
    assert f"{path} records the world {tmp_path / 'moved.yaml'}, which cannot be read: no such file" in result.stderr
    assert "give --world" in result.stderr


def test_replay_looks_a_known_model_up_by_name_not_by_its_recorded_path(runner, world, model_args, tmp_path,
                                                                        monkeypatch):
    """A known model is found in the cache by name, wherever the piece says it was (an edited or
    stale path); another model by its recorded path."""
    import metagen.generator
    from metagen.catalog import KNOWN_MODELS

    path, data = _story_piece(runner, world, model_args, tmp_path)
    tiny, known = data["model"]["path"], next(iter(KNOWN_MODELS))
    asked, real_load = [], metagen.generator.load_model

    def load_model(spec, **options):  # the known name stands for the tiny model here (no cache offline)
        asked.append(spec)
        return real_load(tiny if spec == known else spec, **options)

    monkeypatch.setattr(metagen.generator, "load_model", load_model)
    path.write_text(json.dumps({**data, "model": {**data["model"], "name": known, "path": "/etc/passwd"}}))
    result = invoke(runner, "replay", path)
    assert result.exit_code == 0 and result.stdout.startswith(f"identical: {path}"), result.output
    path.write_text(json.dumps(data))  # the tiny model is no known model: its path
    assert invoke(runner, "replay", path).exit_code == 0
    assert asked == [known, tiny]


def test_replay_of_a_piece_whose_model_file_is_gone_names_the_piece_and_model(runner, world, model_args, tmp_path):
    """It said 'model file /x.gguf does not exist (check the path, ...)': a path the user never gave."""
    path, data = _story_piece(runner, world, model_args, tmp_path)
    gone = tmp_path / "moved-away.gguf"
    path.write_text(json.dumps({**data, "model": {**data["model"], "path": str(gone)}}))
    result = invoke(runner, "replay", path)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == (f"error: {path} was made with the model {gone}, which is not here (put the model file "
                             "back where it was, or give --model with a model name or a .gguf path; another model "
                             "makes other text)\n")
    result = invoke(runner, "replay", path, "--model", data["model"]["path"])  # --model given: the recorded one unused
    assert result.exit_code == 0 and result.stdout.startswith(f"identical: {path}"), result.output


def _adapter_for(gguf: Path, path: Path, seed: int) -> Path:
    """A LoRA adapter for the model file `gguf` whose B is random (as if trained), written to `path`."""
    import torch

    from metagen.gguf import read_gguf
    from metagen.home import file_sha256
    from metagen.lora import AdapterConfig, adapter_tensors, attach, save_adapter
    from metagen.model import Transformer, random_weights

    args = read_gguf(gguf).args
    model = Transformer.from_weights(args, random_weights(args, seed=0), "float32")
    config = AdapterConfig(rank=2, alpha=4)
    with torch.no_grad():
        for module in attach(model, config, seed=seed):
            module.lora_b.copy_(0.05 * torch.randn(module.lora_b.shape, generator=torch.Generator().manual_seed(seed)))
    save_adapter(path, adapter_tensors(model), config, file_sha256(gguf))
    return path


def test_replay_takes_an_adapter_that_has_moved(runner, world, model_args, wide_gguf, tmp_path):
    """An adapter moved after the piece was made: replay said to put it back or make the piece again,
    and had no --adapter (it has --model and --world)."""
    adapter = _adapter_for(wide_gguf, tmp_path / "a.safetensors", seed=1)
    out = tmp_path / "o"
    assert invoke(runner, "story", world, "-c", "ada", "-l", "well", "--seed", 4, "--max-tokens", 8, "--format", "json",
                  "--out", out, "-q", "--adapter", adapter, *model_args).exit_code == 0
    path = out / "tinyville" / "story" / "ada-at-well-4.json"
    moved = adapter.rename(tmp_path / "moved.safetensors")
    result = invoke(runner, "replay", path)
    assert result.exit_code == 2 and result.stderr.startswith(f"error: {path} was made with the adapter {adapter} ")
    assert result.stderr.endswith("(put the adapter file back where it was, or give --adapter with its new path)\n")
    result = invoke(runner, "replay", path, "--adapter", moved)
    assert result.exit_code == 0 and result.stderr == "" and result.stdout.startswith(f"identical: {path}"), result.output
    other = _adapter_for(wide_gguf, tmp_path / "other.safetensors", seed=2)
    result = invoke(runner, "replay", path, "--adapter", other)
    assert f"warning: the adapter {other} is not the one {path} records; the text may differ" in result.stderr
    result = invoke(runner, "replay", path, "--adapter", "none")
    assert f"warning: {path} was made with an adapter and --adapter none leaves it out" in result.stderr
    result = invoke(runner, "replay", path, "--adapter", tmp_path / "nowhere.safetensors")
    assert result.exit_code == 2 and "no such file" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("out, overwrite", [("dangling", False), ("dangling", True), ("dangling/deeper", False)])
def test_an_output_folder_that_is_a_dangling_link_is_refused_before_the_model(runner, world, tmp_path, no_model, out,
                                                                              overwrite):
    """-o LINK to nowhere ran the model, then said the output folder was 'replaced during the run'."""
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    result = invoke(runner, "story", world, "-c", "ada", "-l", "well", "--seed", 1, "-o", tmp_path / out,
                    *(["--overwrite"] if overwrite else []))
    assert result.exit_code == 2
    at = "" if out == "dangling" else f": {tmp_path / 'dangling'}"
    assert result.stderr == (f"error: output folder {tmp_path / out}{at} is a dangling symbolic link (to "
                             f"{tmp_path / 'nowhere'}, which does not exist) (make the folder it points to, or "
                             "choose another --out)\n")
    assert not (tmp_path / "nowhere").exists() and (tmp_path / "dangling").is_symlink()


@pytest.mark.parametrize("out, what", [
    ("x" * 300, "cannot write to output folder"),  # a folder: one name over the system's 255 bytes
    ("d/" * 3000, "cannot write to output folder"),  # a path over the system's 4,096 bytes
    ("x" * 300 + ".md", "cannot write"),  # one file: it had loaded the model and failed to write it, exit 1
])
def test_an_out_too_long_for_the_system_is_bad_input_shown_cut(runner, world, tmp_path, no_model, monkeypatch,
                                                               out, what):
    """-o with a 300-character name was exit 1 "cannot write to output folder xxx...x: File name too long", the
    whole path echoed (6,000 characters for -o d/d/...) and no hint."""
    monkeypatch.chdir(tmp_path)
    result = invoke(runner, "story", world, "-c", "ada", "-l", "well", "-o", out)
    assert result.exit_code == 2, result.output
    shown = str(Path(out))
    assert result.stderr == (f"error: {what} {shown[:57]}... ({len(shown):,} characters): File name too long "
                             "(choose a shorter --out)\n")
    assert files_in(tmp_path) == [world]


@pytest.mark.parametrize("out", ["a", "a/deeper"])
def test_an_output_folder_that_is_a_loop_of_links_is_named_so(runner, world, tmp_path, no_model, out):
    """-o a, where a -> b and b -> a, was 'a dangling symbolic link (to b, which does not exist)': b is
    there, a link back to a, and no folder made where it points would help."""
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    result = invoke(runner, "story", world, "-c", "ada", "-l", "well", "--seed", 1, "-o", tmp_path / out)
    assert result.exit_code == 2
    at = "" if out == "a" else f": {tmp_path / 'a'}"
    assert result.stderr == (f"error: output folder {tmp_path / out}{at} is a symbolic link in a loop (it leads "
                             "back to itself) (remove the link, or choose another --out)\n")


def test_replay_refuses_a_file_that_is_not_a_piece(runner, tmp_path, no_model):
    path = tmp_path / "notes.md"
    path.write_text("just notes\n")
    result = invoke(runner, "replay", path)
    assert result.exit_code == 2 and "is not a metagen file" in result.stderr


def test_replay_of_a_file_that_cannot_be_read_is_bad_input(runner, tmp_path, no_model):
    path = tmp_path / "gone.md"
    result = invoke(runner, "replay", path)
    assert result.exit_code == 2 and f"cannot read {path}" in result.stderr, result.output
    assert "give the path of a .md or .json file metagen wrote" in result.stderr


@pytest.mark.parametrize("name, make, says", [
    ("dang.md", lambda t: (t / "dang.md").symlink_to("nothere.md"),
     "{t}/dang.md is a symbolic link to nothere.md, which does not exist (make the link name the real file)"),
    ("dang", lambda t: (t / "dang").symlink_to(t / "gone"),
     "{t}/dang is a symbolic link to {t}/gone, which does not exist (make the link name the real file)"),
    ("loop.md", lambda t: (t / "loop.md").symlink_to("loop.md"),
     "{t}/loop.md is a symbolic link in a loop (it leads back to itself) (make the link name the real file)"),
    ("lp/x.md", lambda t: (t / "lp").symlink_to("lp"),
     "{t}/lp/x.md cannot be reached: {t}/lp is a symbolic link in a loop (it leads back to itself) (make the "
     "link name the real file)"),
    ("dir.md", lambda t: (t / "dir.md").mkdir(),
     "{t}/dir.md is a folder, not a piece (give one of the .md or .json files metagen wrote in it)"),
], ids=["link-to-nothing", "link-to-nothing-no-suffix", "link-loop", "loop-on-the-way", "folder-named-md"])
def test_replay_names_a_link_to_nothing_a_loop_or_a_folder(runner, tmp_path, no_model, name, make, says):
    """`metagen replay dang.md`, a link to nothing, said "cannot read dang.md: No such file or directory",
    a link loop "Too many levels of symbolic links", and a folder named x.md "is not a metagen file (is a
    folder, not a regular file)": each is bad input named for what it is, as read_input names other inputs."""
    make(tmp_path)
    result = invoke(runner, "replay", tmp_path / name)
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: {says.format(t=tmp_path)}\n"


# ----------------------------------------------------------------------------- the real model


@pytest.mark.real_model
def test_real_story(runner, real_model_path, tmp_path):
    result = invoke(runner, "story", NEXUS, "-c", "pip", "-l", "atrium", "--seed", 1, "--max-tokens", 24,
                    "--model", real_model_path, "--dtype", "float32", "--json", "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout)
    data = read_piece_file(line["path"])
    assert 0 < data["output_tokens"] <= 24 and len(data["text"].split()) >= 3
    assert data["model"]["name"] == "SmolLM2-135M-Instruct.Q4_1" or data["model"]["sha256"]
    replayed = invoke(runner, "replay", line["path"])
    assert replayed.exit_code == 0, replayed.output


@pytest.mark.real_model
def test_real_dialogue_speakers_come_from_the_cast(runner, real_model_path, tmp_path):
    result = invoke(runner, "dialogue", NEXUS, "-c", "pip,kestrel,marcus-vell", "-l", "lantern-bazaar",
                    "--turns", 4, "--seed", 2, "--max-tokens", 24, "--model", real_model_path, "--dtype", "float32",
                    "--format", "json", "--json", "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
    data = read_piece_file(json.loads(result.stdout)["path"])
    assert len(data["turns"]) == 4
    assert {t["speaker_id"] for t in data["turns"]} <= {"pip", "kestrel", "marcus-vell"}
    assert data["turns"][0]["speaker_id"] == "pip"
    assert all(t["line"].strip() for t in data["turns"])
    assert yaml.safe_dump(data)  # the record is plain data


def test_a_scene_opens_with_the_start_words_given_or_drawn_and_records_them(runner, world, model_args, tmp_path):
    out = tmp_path / "o"
    for seed, extra in ((5, []), (6, ["--start", "The Well smelled of"])):
        result = invoke(runner, "describe-scene", world, "-l", "well", "--seed", seed, "--max-tokens", 4, "--format",
                        "json", "--out", out, "-q", "--candidates", 2, *extra, *model_args)
        assert result.exit_code == 0, result.output
    drawn, given = (read_piece_file(out / "tinyville" / "scene" / f"well-{seed}.json") for seed in (5, 6))
    # drawn per candidate, recorded with each candidate's scores; the request keeps none, so replay draws them again
    assert drawn["request"]["start"] is None
    assert [c["start"] for c in drawn["critic"]["candidates"]] == ["The Well is"] * 2  # no sounds or smells
    assert given["request"]["start"] == "The Well smelled of"
    assert all("start" not in c for c in given["critic"]["candidates"])  # the request's own, for every candidate
    result = invoke(runner, "describe-scene", world, "-l", "well", "--start", " ", "--out", tmp_path / "p", *model_args)
    assert result.exit_code == 2 and "a scene's start words are empty" in result.stderr and not (tmp_path / "p").exists()


def test_the_prompt_of_a_scene_says_what_its_candidates_start_with(runner, world, model_args):
    world.write_text(world.read_text().replace("    name: The Mill\n", "    name: The Mill\n    sounds: [wheels]\n"
                                                                        "    smells: [flour]\n"))
    printed = invoke(runner, "prompt", "scene", world, "-l", "mill", "--seed", 2, *model_args)
    assert printed.exit_code == 0, printed.output
    assert 'Start with the words "The Mill".' in printed.stdout  # what every candidate's words begin with
    line = next(x for x in printed.stderr.splitlines() if x.startswith("candidates start with: "))
    # a scene's eight default candidates, four on each sense's verb
    assert sorted(line.removeprefix("candidates start with: ").split("; ")) == ["The Mill rings with (4)",
                                                                                "The Mill smells of (4)"]
    given = invoke(runner, "prompt", "scene", world, "-l", "mill", "--start", "Dusk at the mill", *model_args)
    assert 'Start with the words "Dusk at the mill".' in given.stdout and "candidates start" not in given.stderr


def test_a_scene_records_its_contrast_and_other_kinds_refuse_the_flag(runner, world, model_args, tmp_path):
    result = invoke(runner, "describe-scene", world, "-l", "well", "--seed", 5, "--max-tokens", 4, "--format", "json",
                    "--out", tmp_path / "o", "-q", "--contrast", 0.5, *model_args)
    assert result.exit_code == 0, result.output
    assert read_piece_file(tmp_path / "o" / "tinyville" / "scene" / "well-5.json")["settings"]["context_contrast"] == 0.5
    for args, needle in [(["chat", world, "--as", "ada", "--out", tmp_path / "p"],
                          "--contrast: a chat has no fact-free prompt to contrast with"),
                         (["generate", "hi"], "--contrast: a raw prompt has no world's facts to contrast with"),
                         (["describe-scene", world, "-l", "well", "--out", tmp_path / "p"], "--contrast must be in [0, 4]")]:
        result = invoke(runner, *args, "--contrast", 9 if "-l" in args else 1, *model_args)
        assert result.exit_code == 2 and needle in result.stderr and len(result.stderr.splitlines()) == 1, result.output
    assert not (tmp_path / "p").exists()
