"""`metagen chat` (issue 17): a player talks with one character, turn by turn.

The tiny random model writes gibberish, so these tests check what metagen controls: what goes
into each prompt (the card and place pinned, the player's facts, lore by keyword and why, the
recent turns within a budget), seeds and determinism, the refusal of copied and repeated lines,
the KV cache reused across turns, the session file and --resume, the script and --json modes,
bad input, and one real terminal session driven through a pseudo-terminal.
"""

from __future__ import annotations

import codecs
import json
import os
import pty
import re
import select
import signal
import sys
import time
from pathlib import Path

import pytest

from metagen import chat as chat_module
from metagen.chat import ChatInputError, ChatSession, player_facts, repeats
from metagen.errors import ModerationRefused, RequestError
from metagen.generator import Completion
from metagen.pipeline import effective_config
from metagen.session import read_session
from metagen.world import load_world

from conftest import deny_files_in, files_in, interrupt_on_call, invoke, load_tiny_generator, write_tiny_gguf, write_world

ROOT = Path(__file__).resolve().parent.parent
WORLD = """\
world: {id: quay, name: The Quay, summary: A cold harbour town.}
locations:
  - {id: docks, name: The Docks, description: Wet planks and gulls., sights: [cranes]}
  - {id: chapel, name: The Chapel}
characters:
  - id: mira
    name: Mira Holt
    aliases: [Mira]
    role: harbour pilot
    description: A weathered woman who knows every rock.
    sample_lines: ["Slack tide is the only honest hour on this water.", "Keep your hands inside the boat."]
  - {id: tom, name: Tom}
lore:
  - {id: wall, always_include: true, text: The town lives behind a sea wall.}
  - {id: fog, keys: [fog, mist], priority: 3, text: The fog comes in every evening from the east.}
  - {id: wreck, keys: [wreck, rocks], priority: 1, text: A grain ship broke on the rocks last winter.}
content:
  banned_words: [dragon]
"""
TINY_FLAGS = ["--dtype", "float32", "--max-tokens", "8"]


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    """The tiny test model with a 2,048-token window (its byte-sized tokens make a card long);
    its file is gen.info.path."""
    return load_tiny_generator(write_tiny_gguf(tmp_path_factory.mktemp("chat") / "long.gguf", max_seq_len=2048))


@pytest.fixture
def world_path(tmp_path) -> Path:
    return write_world(tmp_path, WORLD, "quay.yaml")


@pytest.fixture
def world(world_path):
    return load_world(world_path)


def cfg_for(world, **settings):
    return effective_config(world, "dialogue", None, {"max_new_tokens": 8, **settings})


def new_session(generator, world, *, seed=1, location="docks", **settings) -> ChatSession:
    return ChatSession(generator, world, world.character("mira"), cfg_for(world, **settings),
                       location=world.location(location) if location else None, seed=seed)


class Scripted:
    """Stands in for Generator.complete: each call returns the next texts (one per candidate)."""

    def __init__(self, generator, monkeypatch, rounds: list[list[str]]):
        self.rounds, self.calls = list(rounds), []
        monkeypatch.setattr(generator, "complete", self)

    def __call__(self, prompts, cfg, *, seeds=None, on_text=None, reuse=None):
        self.calls.append({"prompt": prompts[0], "seeds": list(seeds), "stop": cfg.stop})
        texts = self.rounds.pop(0) if len(self.rounds) > 1 else self.rounds[0]
        return [Completion(text=t, tokens=[5] * max(1, len(t) // 3), prompt_tokens=len(prompts[0]), logprob=-1.0,
                           finish_reason="stop", seed=s, seconds=0.0) for t, s in zip(texts, seeds)]


# ----------------------------------------------------------------------------- prompts


def test_each_prompt_pins_the_card_the_place_and_the_players_facts(gen, world, monkeypatch):
    Scripted(gen, monkeypatch, [["Aye, the tide turns soon."] * 4])
    session = new_session(gen, world)
    session.say("Hello there. My name is Aldo and I come from the salt marshes.")
    session.say("I am a glassblower, looking for work.")
    prompt = session.prompt("What do you do?")
    user = prompt.messages[-1]["content"]
    assert "Mira Holt, harbour pilot" in user and "Place: The Docks" in user and "cranes" in user
    assert ("What Visitor has told Mira Holt about themselves: their name is Aldo; they come from the salt "
            "marshes; they are a glassblower.") in user
    assert "Slack tide is the only honest hour" in user  # sample lines, to show the voice
    # metagen writes both names; the model continues after the character's
    assert prompt.suffix.endswith("Visitor: What do you do?\nMira Holt:")
    assert prompt.suffix.startswith("Visitor: Hello there.")


@pytest.mark.parametrize("lines, facts", [
    (["My name is Aldo."], [("name", "Aldo")]),
    (["I'm Aldo Brightwater, from nowhere."], [("name", "Aldo Brightwater")]),
    (["I am tired.", "I am So tired"], []),  # lower case is no name; "So" is a common word
    (["I came from Emberfall to see the queen."], [("origin", "Emberfall")]),
    (["Call me Ish.", "call me Wren"], [("name", "Wren")]),  # the newest name wins
    (["I am a merchant and I am from the south"], [("self", "a merchant"), ("origin", "the south")]),
])
def test_player_facts_come_from_the_players_own_words(lines, facts):
    assert [(f.kind, f.value) for f in player_facts(lines)] == facts


def test_lore_comes_by_keyword_from_recent_turns_and_says_why(gen, world, monkeypatch):
    Scripted(gen, monkeypatch, [["The water is calm now."] * 4])
    session = new_session(gen, world)
    assert session.prompt("Good evening.").lore == (("wall", "always included"),)
    session.say("Is the fog coming in?")
    prompt = session.prompt("Tell me about the rocks.")
    assert prompt.lore == (("wall", "always included"), ("fog", "'fog' in Visitor's line in turn 1"),
                           ("wreck", "'rocks' in Visitor's new line"))
    assert "- The fog comes in every evening from the east." in prompt.messages[-1]["content"]
    monkeypatch.setattr(chat_module, "LORE_TOKENS", 60)  # the tiny tokenizer spends about a token a byte
    prompt = session.prompt("Tell me about the rocks.")
    assert [i for i, _ in prompt.lore] == ["wall"] and prompt.lore_left_out == ("fog", "wreck")


def test_old_turns_leave_the_prompt_in_one_go_but_stay_in_the_session(gen, world, monkeypatch):
    Scripted(gen, monkeypatch, [["Aye, the tide."] * 4])
    monkeypatch.setattr(chat_module, "HISTORY_TOKENS", 200)
    session = new_session(gen, world)
    starts = [session.say(f"Line number {i} about the weather today.").start for i in range(8)]
    assert starts[0] == 0 and starts[-1] > 0
    first_drop = next(i for i, s in enumerate(starts) if s)
    assert starts[first_drop] >= 2  # several turns leave at once, so the cache serves the next turns
    assert starts[first_drop + 1] == starts[first_drop]
    prompt = session.prompt(None)
    assert "Line number 0 " not in prompt.suffix and len(session.turns) == 8
    assert session.context().dropped == tuple(range(1, prompt.start + 1))


def test_a_line_longer_than_the_context_is_refused_and_nothing_changes(gen, world):
    session = new_session(gen, world)
    with pytest.raises(ChatInputError, match="more than the model's whole 2,048-token context"):
        session.say("word " * 6000)  # refused before it is tokenized
    with pytest.raises(ChatInputError, match=r"the line is too long: about 18\d\d tokens, and \d+ fit"):
        session.say("x" * 1800)  # fits the window alone, not with the card and an answer
    with pytest.raises(ChatInputError, match="empty"):
        session.say(" \t ")
    assert session.turns == []


def test_the_player_cannot_take_the_characters_name(gen, world):
    with pytest.raises(RequestError, match="is the name of the character"):
        ChatSession(gen, world, world.character("mira"), cfg_for(world), player="mira")
    with pytest.raises(RequestError, match="without a colon"):
        ChatSession(gen, world, world.character("mira"), cfg_for(world), player="Me: you")


# ----------------------------------------------------------------------------- answers


def test_the_model_writes_only_the_characters_line(gen, world, monkeypatch):
    spy = Scripted(gen, monkeypatch, [[
        "Visitor: I would like a boat.",  # the player's line: refused
        ' "Mind the rocks." Visitor: thanks',  # cut at the player's name, quotes stripped
        "Mira Holt: Fog tonight.", "..."]])
    session = new_session(gen, world, candidates=4)
    turn = session.say("Any advice?")
    assert spy.calls[0]["stop"][:2] == ("\n", " Visitor:")  # decoding stops at the player's turn
    assert turn.answer in ("Mind the rocks.", "Fog tonight.")
    assert turn.answers[0].rejected >= 1


def test_stage_directions_are_not_spoken(gen, world, monkeypatch):
    Scripted(gen, monkeypatch, [["(nods)", "(smiling) Aye, the fog. *sighs*"]])
    turn = new_session(gen, world, candidates=2).say("Fog tonight?")
    assert turn.answer == "Aye, the fog." and turn.answers[0].rejected == 1  # "(nods)" alone says nothing


def test_copied_sample_lines_and_repeated_own_lines_lose_to_another_candidate(gen, world, monkeypatch):
    Scripted(gen, monkeypatch, [
        ["The gulls are loud today."] * 2,
        ["The gulls are loud today.", "Keep your hands inside the boat, friend."],  # repeat, copy
        ["Slack tide is the only honest hour on this water.", "THE GULLS are loud today!"],  # all refused
        ["Nobody sails at night.", "The gulls are loud today."],  # the last round has a fresh one
    ])
    session = new_session(gen, world, candidates=2)
    session.say("Hello.")
    assert session.say("What do you see?").answer == "Nobody sails at night."
    answer = session.turns[-1].answers[-1]
    assert answer.rounds == 3 and answer.rejected == 5 and not answer.warning


def test_an_answer_in_which_the_character_names_themselves_loses(gen, world, monkeypatch):
    Scripted(gen, monkeypatch, [["Mira knows the tide.", "I know the tide, friend."]])
    turn = new_session(gen, world, candidates=2).say("Who knows the tide?")
    assert turn.answer == "I know the tide, friend."


def test_when_every_round_repeats_the_best_is_kept_with_a_warning(gen, world, monkeypatch):
    Scripted(gen, monkeypatch, [["Keep your hands inside the boat."]])
    answer = new_session(gen, world, candidates=1).say("Hi.").answers[0]
    assert answer.rounds == chat_module.MAX_ROUNDS and "copies a sample line" in answer.warning
    greedy = new_session(gen, world, strategy="greedy").say("Hi.").answers[0]
    assert greedy.rounds == 1 and greedy.warning  # greedy would say the same again


def test_answers_over_the_worlds_rating_lose_and_enforce_keeps_none(gen, world, monkeypatch):
    Scripted(gen, monkeypatch, [["The dragon sleeps below.", "The tide is out."]])
    turn = new_session(gen, world, candidates=2).say("What is down there?")
    assert turn.answer == "The tide is out." and turn.answers[0].rejected == 1  # 'dragon': a world's ban
    assert turn.answers[0].moderation["exceeds"] is False
    Scripted(gen, monkeypatch, [["The dragon sleeps below."]])
    kept = ChatSession(gen, world, world.character("mira"), cfg_for(world, candidates=1), moderation="report")
    answer = kept.say("And now?").answers[0]
    assert answer.text == "The dragon sleeps below." and "over the world's rating" in answer.warning
    assert answer.moderation["exceeds"] is True
    strict = ChatSession(gen, world, world.character("mira"), cfg_for(world, candidates=1), moderation="enforce")
    with pytest.raises(ModerationRefused, match="every answer to this line is over the world's rating"):
        strict.say("And now?")
    assert strict.turns == []
    off = ChatSession(gen, world, world.character("mira"), cfg_for(world, candidates=1), moderation="off")
    assert off.say("And now?").answers[0].moderation == {}


@pytest.mark.parametrize("line, earlier, expected", [
    ("Hello.", "hello", True),  # the whole line again, case and punctuation aside
    ("Not now. The trees are listening to us.", "Not here. The trees are listening to us. Walk.", True),
    ("Pick a small one, lass.", "The Mere takes a memory. Pick a small one, lass.", True),
    ("I don't know where she went.", "I don't know.", False),  # a short sentence may recur
    ("we like the smell of the rain in the morning", "I like the smell of the rain in the hills", True),
    ("The river is cold tonight.", "The Mere takes a memory for the crossing.", False),
])
def test_repeats_means_word_for_word(line, earlier, expected):
    assert repeats(line, earlier) is expected


def test_the_same_seed_and_lines_give_the_same_answers(gen, world):
    lines = ["Hello.", "Is the fog coming?", "My name is Aldo."]
    runs = []
    for seed in (5, 5, 6):
        session = new_session(gen, world, seed=seed, candidates=2, temperature=1.0)
        runs.append([session.say(line).answer for line in lines])
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_each_turn_prefills_only_its_new_tokens(gen, world):
    session = new_session(gen, world, candidates=2)
    first = session.say("Hello.").answers[0]
    second = session.say("And then?").answers[0]
    assert first.reused == 0
    assert second.reused > first.prompt_tokens - 20 and second.prefilled < 60
    retry = session.retry().answers[-1]
    assert retry.prefilled == 1  # the same prompt again: only its last token runs
    assert session.context().last == {"prompt_tokens": retry.prompt_tokens, "reused": retry.reused,
                                      "prefilled": 1}
    shown = json.loads(json.dumps(session.context().to_dict()))  # what a game reads instead of /context
    assert shown["prompt"].endswith("Visitor:") and shown["lore"][0] == {"id": "wall", "why": "always included"}


def test_a_head_start_prefills_the_card_while_the_player_types(gen, world):
    cold = new_session(gen, world, candidates=2)
    warm = new_session(gen, world, candidates=2)
    ran = warm.warm()
    assert ran == len(warm.prompt(None).ids) and warm.warm() == 1  # a second head start has nothing new
    first = warm.say("Hello.").answers[0]
    assert first.prefilled < 20 and first.reused == ran
    assert first.text == cold.say("Hello.").answers[0].text  # the same answer, only sooner


def test_retry_keeps_alternatives_and_undo_takes_the_turn_back(gen, world, monkeypatch):
    Scripted(gen, monkeypatch, [["First answer here."], ["Second answer here."], ["Third."]])
    session = new_session(gen, world, candidates=1)
    session.say("Hello.")
    turn = session.retry()
    assert [a.text for a in turn.answers] == ["First answer here.", "Second answer here."]
    assert turn.answers[1].seed != turn.answers[0].seed
    assert session.undo().player == "Hello." and session.turns == []
    with pytest.raises(ChatInputError):
        session.undo()
    with pytest.raises(ChatInputError):
        session.retry()


# ----------------------------------------------------------------------------- the command line


def chat_args(world_path, model_args, *extra):
    return ["chat", world_path, "--as", "mira", *model_args, *TINY_FLAGS, *extra]


def run(runner, args, input_text: str):
    """The CLI in-process with `input_text` as its standard input (not a terminal)."""
    from metagen.cli import app

    return runner.invoke(app, [str(a) for a in args], input=input_text)


def json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_script_mode_with_json_writes_one_object_per_answer_and_nothing_else(runner, world_path, model_args,
                                                                           tmp_path):
    script = tmp_path / "lines.txt"
    script.write_text("Hello.\n\nMy name is Aldo.\n/retry\n/bogus\n/context\nBye.\n", encoding="utf-8")
    result = invoke(runner, *chat_args(world_path, model_args, "--seed", 3, "--json", "--script", script))
    assert result.exit_code == 0, result.output
    records = json_lines(result.stdout)
    assert [r["turn"] for r in records] == [1, 2, 2, 3]
    assert set(records[0]) == {"turn", "speaker", "text", "alternatives", "tokens", "seconds"}
    assert records[0]["speaker"] == "Mira Holt" and records[2]["alternatives"] == [records[1]["text"]]
    assert "error: unknown command '/bogus'" in result.stderr and "--- the next prompt:" in result.stderr
    saved, turns = read_session(tmp_path / "out" / "quay" / "chat" / "mira-3.json")
    assert [t.player for t in turns] == ["Hello.", "My name is Aldo.", "Bye."]
    assert saved["facts"] == [{"kind": "name", "value": "Aldo", "turn": 2}]
    # stdin that is not a terminal works the same, and the same seed gives the same answers
    again = run(runner, chat_args(world_path, model_args, "--seed", 3, "--json", "--out", "o2"),
                "Hello.\nMy name is Aldo.\n/retry\nBye.\n")
    assert [{**r, "seconds": 0} for r in json_lines(again.stdout)] == [{**r, "seconds": 0} for r in records]


def test_resume_continues_with_the_same_answers(runner, world_path, model_args, tmp_path):
    whole = run(runner, chat_args(world_path, model_args, "--seed", 8, "--json"), "Hello.\nThe fog?\nBye.\n")
    first = run(runner, chat_args(world_path, model_args, "--seed", 8, "--json", "--out", "part"),
                "Hello.\nThe fog?\n")
    session_file = tmp_path / "part" / "quay" / "chat" / "mira-8.json"
    rest = run(runner, ["chat", world_path, *model_args, "--json", "--resume", session_file], "Bye.\n")
    assert rest.exit_code == 0, rest.output
    texts = [r["text"] for r in json_lines(first.stdout) + json_lines(rest.stdout)]
    assert texts == [r["text"] for r in json_lines(whole.stdout)]
    assert len(read_session(session_file)[1]) == 3
    assert read_session(session_file)[0]["moderation"] == "report"


def test_out_naming_a_json_file_saves_the_session_there_and_resume_continues_it(runner, world_path, model_args,
                                                                                tmp_path):
    """`-o session.json` made a folder session.json/quay/chat/mira-8.json, as story's -o story.md did:
    it is the session file itself now, and --resume of it continues with the same answers."""
    whole = run(runner, chat_args(world_path, model_args, "--seed", 8, "--json"), "Hello.\nThe fog?\n")
    path = tmp_path / "talks" / "session.json"
    first = run(runner, chat_args(world_path, model_args, "--seed", 8, "--json", "-o", path), "Hello.\n")
    assert first.exit_code == 0, first.output
    assert path.is_file() and files_in(tmp_path / "talks") == [path]
    assert f"session saved: {path} (continue it with --resume {path})" in first.stderr
    rest = run(runner, ["chat", world_path, *model_args, "--json", "--resume", path], "The fog?\n")
    assert rest.exit_code == 0, rest.output
    texts = [r["text"] for r in json_lines(first.stdout) + json_lines(rest.stdout)]
    assert texts == [r["text"] for r in json_lines(whole.stdout)]
    assert [t.player for t in read_session(path)[1]] == ["Hello.", "The fog?"]
    before = path.read_bytes()
    again = run(runner, chat_args(world_path, model_args, "--seed", 9, "-o", path), "Hi.\n")
    assert again.exit_code == 2 and path.read_bytes() == before
    assert again.stderr == f"error: {path} exists (continue it with --resume {path}, or give another --out)\n"


@pytest.mark.parametrize("flag", ["-o", "--out"])
def test_resume_with_out_is_refused(runner, world_path, model_args, tmp_path, flag):
    """Round 37: `chat --resume a.json -o b.json` went on saving to a.json, the -o silently ignored."""
    path = tmp_path / "a.json"
    first = run(runner, chat_args(world_path, model_args, "--seed", 8, "-o", path), "Hello.\n")
    assert first.exit_code == 0, first.output
    before = path.read_bytes()
    other = tmp_path / "b.json"
    again = run(runner, ["chat", world_path, *model_args, "--resume", path, flag, other], "The fog?\n")
    assert again.exit_code == 2, again.output
    assert again.stderr == (f"error: --resume continues {path} in place; --out names where a new session goes: "
                            "give one\n")
    assert path.read_bytes() == before and not other.exists()


@pytest.mark.parametrize("name, message", [
    ("talk.md", "error: --out {out} names a .md file, but a chat session is saved as JSON (give --out {stem}.json, "
                "or a folder such as {stem}; /save talk.md in the session writes the conversation as .md)"),
    ("talk.txt", "error: --out {out} names a .txt file, but a chat session is saved as JSON (give --out {stem}.json, "
                 "or a folder such as {stem})"),
])
def test_out_naming_a_file_of_another_format_is_refused_before_the_model(runner, world_path, tmp_path, monkeypatch,
                                                                        name, message):
    monkeypatch.setattr("metagen.commands.chat.load_generator", lambda *a, **k: pytest.fail("model loaded"))
    out = tmp_path / name
    result = run(runner, ["chat", world_path, "--as", "mira", "-o", out], "Hi.\n")
    assert result.exit_code == 2 and not out.exists()
    assert result.stderr == message.format(out=out, stem=out.with_suffix("")) + "\n"


def test_out_ending_in_json_with_a_slash_is_still_a_folder(runner, world_path, model_args, tmp_path):
    out = tmp_path / "sessions.json"
    result = run(runner, chat_args(world_path, model_args, "--seed", 2, "-o", f"{out}/"), "Hi.\n")
    assert result.exit_code == 0, result.output
    assert files_in(out) == [out / "quay" / "chat" / "mira-2.json"]


@pytest.mark.parametrize("extra, message", [
    (["--as", "mria"], "world 'quay' has no character 'mria' (did you mean 'mira'?"),
    (["--as", "mira", "--location", "dock"], "has no location 'dock' (did you mean 'docks'?"),
    ([], "give the character to talk with: --as ID"),
    (["--as", "mira", "--player", "Mira"], "--player 'Mira' is the name of the character you talk to"),
    (["--as", "mira", "--player", ""], "--player '' must be a name of 1 to 40"),  # was silently "Visitor"
    (["--as", "mira", "--script", "missing.txt"], "missing.txt: no such chat script"),
    (["--as", "mira", "--moderation", "enforse"], "--moderation must be one of off, report, enforce, got 'enforse'"),
])
def test_bad_input_at_start_up_is_one_line_and_exit_2(runner, world_path, model_args, tmp_path, extra, message):
    result = invoke(runner, "chat", world_path, *model_args, *extra)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["flag", "session"])
def test_a_long_player_name_is_refused_quoting_only_its_start(runner, world_path, model_args, tmp_path, where):
    """A 500-character --player (or one edited into a session file) was refused with all 500 characters
    quoted back in the one error line. It is refused, quoting the first 40 and the length."""
    name = "Aldo" * 125
    args = ["--as", "mira", "--player", name]
    if where == "session":
        made = run(runner, chat_args(world_path, model_args, "--seed", 2), "Hi.\n")
        path = tmp_path / "out" / "quay" / "chat" / "mira-2.json"
        data = json.loads(path.read_text(encoding="utf-8"))
        path.write_text(json.dumps({**data, "player": name}), encoding="utf-8")
        assert made.exit_code == 0
        args = ["--resume", path]
    result = invoke(runner, "chat", world_path, *model_args, *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and len(result.stderr.replace(str(tmp_path), "")) < 300, result.stderr
    assert f"--player {name[:40]!r}... (500 characters) must be a name of 1 to 40 printable characters" in result.stderr


DAMAGED = [
    ('{"format": "metagen-chat-session", "version": 1, "world_id": "quay"', "is damaged: it is not JSON"),
    ("[" * 100_000 + "]" * 100_000, "is damaged: it is not JSON (nested too deeply)"),
    ('{"kind": "dialogue", "text": "x"}', "is not a metagen chat session"),
    ('[1, 2]', "is not a metagen chat session"),
    (None, "turns[0].answers[0].text has the wrong type"),
    (None, "a session in the world 'elsewhere', not 'quay'"),
    (None, "is a session with --as mira; --as tom cannot change it"),
]


@pytest.mark.parametrize("text, message", DAMAGED)
def test_a_damaged_or_foreign_session_file_is_one_line_and_exit_2(runner, world_path, model_args, tmp_path, text,
                                                                  message):
    made = run(runner, chat_args(world_path, model_args, "--seed", 2), "Hi.\n")
    path = tmp_path / "out" / "quay" / "chat" / "mira-2.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    extra = []
    if text is None and "wrong type" in message:
        data["turns"][0]["answers"][0]["text"] = 7
    elif text is None and "elsewhere" in message:
        data["world_id"] = "elsewhere"
    elif text is None:
        extra = ["--as", "tom"]
    path.write_text(text if text is not None else json.dumps(data), encoding="utf-8")
    before = path.read_bytes()
    result = invoke(runner, "chat", world_path, *model_args, "--resume", path, *extra)
    assert made.exit_code == 0 and result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr and result.stderr.count("\n") == 1
    assert path.read_bytes() == before  # nothing lost


@pytest.mark.parametrize("field, value, message", [
    ("character", "nobody", "is a session with --as nobody: world 'quay' has no character 'nobody' (give the world "
                            "file the session was made with, or start a new session)"),
    ("location", "mars", "is a session with --location mars: world 'quay' has no location 'mars' (give the world"),
    ("player", "a:b", "is damaged: its player: --player 'a:b' must be a name of 1 to 40"),
    ("moderation", "enforse", "is damaged: its moderation: --moderation must be one of off, report, enforce, got "
                              "'enforse' (metagen rewrites the whole file after every turn; restore it from a copy"),
    ("model", "x", "is damaged: model has the wrong type (text) (metagen rewrites the whole file"),  # a ValueError
    ("model", [1], "is damaged: model has the wrong type (a list) (metagen rewrites the whole file"),  # traceback
])
def test_a_hand_edited_session_value_is_blamed_on_the_file_not_a_flag(runner, world_path, model_args, tmp_path,
                                                                        field, value, message):
    """A session's player or moderation edited out of shape was '--player ... must be' or '--moderation must
    be', flags never typed, and a character the world lost named no file."""
    made = run(runner, chat_args(world_path, model_args, "--seed", 2), "Hi.\n")
    path = tmp_path / "out" / "quay" / "chat" / "mira-2.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data[field] = value
    path.write_text(json.dumps(data), encoding="utf-8")
    result = invoke(runner, "chat", world_path, *model_args, "--resume", path)
    assert made.exit_code == 0 and result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {path} {message}") and result.stderr.count("\n") == 1, result.stderr


def test_resume_with_another_adapter_says_so(runner, world_path, model_args, tmp_path, wide_gguf):
    """A session made with one adapter and resumed with another (or none) went on without a word, and
    its file then recorded only the last adapter, as for the model file, which is warned about."""
    import torch

    from metagen.gguf import read_gguf
    from metagen.home import file_sha256
    from metagen.lora import AdapterConfig, save_adapter, target_shapes

    args, config = read_gguf(wide_gguf, load_tensors=False).args, AdapterConfig(rank=2, alpha=4)
    shapes = target_shapes(args)
    tensors = {f"layers.{i}.{t}.lora_{ab}": torch.zeros((2, shapes[t][1]) if ab == "a" else (shapes[t][0], 2))
               for i in range(args.n_layers) for t in config.targets for ab in "ab"}
    adapter = tmp_path / "a.safetensors"
    save_adapter(adapter, tensors, config, file_sha256(wide_gguf))
    made = run(runner, chat_args(world_path, model_args, "--seed", 2, "--adapter", adapter), "Hi.\n")
    assert made.exit_code == 0, made.output
    path = tmp_path / "out" / "quay" / "chat" / "mira-2.json"
    same = run(runner, ["chat", world_path, *model_args, "--resume", path, "--adapter", adapter], "More.\n")
    assert same.exit_code == 0 and "warning" not in same.stderr, same.output
    other = run(runner, ["chat", world_path, *model_args, "--resume", path], "Again.\n")
    assert other.exit_code == 0, other.output
    assert (f"warning: {path} was made with --adapter {adapter}; later answers come from --adapter none "
            f"(give --adapter {adapter} to go on as it began)") in other.stderr


def test_a_byte_order_mark_is_no_part_of_the_first_line(runner, world_path, model_args, tmp_path):
    """A script saved in Notepad starts with U+FEFF: '\ufeff/help' was said to the character, not run."""
    script = tmp_path / "lines.txt"
    script.write_bytes(b"\xef\xbb\xbf/help\r\nHello.\r\n")
    by_script = run(runner, chat_args(world_path, model_args, "--seed", 2, "--script", script), "")
    piped = run(runner, chat_args(world_path, model_args, "--seed", 3), script.read_bytes().decode("utf-8"))
    for result, seed in ((by_script, 2), (piped, 3)):
        assert result.exit_code == 0, result.output
        turns = read_session(tmp_path / "out" / "quay" / "chat" / f"mira-{seed}.json")[1]
        assert [t.player for t in turns] == ["Hello."], seed


def test_a_script_line_holding_a_line_separator_is_one_turn_as_piped(runner, world_path, model_args, tmp_path):
    """str.splitlines broke a --script line at U+2028 (or U+0085, a form feed): two turns from the file
    where standard input, read a line at a time, gave one."""
    script = tmp_path / "lines.txt"
    script.write_text("Hello\u2028there.\r\nBye.\n", encoding="utf-8")
    by_script = run(runner, chat_args(world_path, model_args, "--seed", 2, "--script", script), "")
    piped = run(runner, chat_args(world_path, model_args, "--seed", 3), script.read_bytes().decode("utf-8"))
    for result, seed in ((by_script, 2), (piped, 3)):
        assert result.exit_code == 0, result.output
        turns = read_session(tmp_path / "out" / "quay" / "chat" / f"mira-{seed}.json")[1]
        assert [t.player for t in turns] == ["Hello there.", "Bye."], seed  # one line, its separator a space


def test_a_session_edited_to_give_a_key_twice_is_refused(runner, world_path, model_args, tmp_path):
    """A second "seed" typed into a session was read silently, the last one winning."""
    made = run(runner, chat_args(world_path, model_args, "--seed", 2), "Hi.\n")
    path = tmp_path / "out" / "quay" / "chat" / "mira-2.json"
    path.write_text(path.read_text(encoding="utf-8").replace('"seed": 2,', '"seed": 2, "seed": 9,', 1),
                    encoding="utf-8")
    result = run(runner, ["chat", world_path, *model_args, "--resume", path], "More.\n")
    assert made.exit_code == 0 and result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {path} is damaged: it is not JSON (the key 'seed' is given twice in "
                                    "one object)")


def test_a_session_saved_again_with_a_byte_order_mark_resumes(runner, world_path, model_args, tmp_path):
    """A session opened and saved in Notepad was 'damaged: it is not JSON (Unexpected UTF-8 BOM (decode using
    utf-8-sig))', Python's words, and not damaged at all."""
    made = run(runner, chat_args(world_path, model_args, "--seed", 2), "Hi.\n")
    path = tmp_path / "out" / "quay" / "chat" / "mira-2.json"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    result = run(runner, ["chat", world_path, *model_args, "--resume", path], "More.\n")
    assert made.exit_code == 0 and result.exit_code == 0, result.output
    assert [t.player for t in read_session(path)[1]] == ["Hi.", "More."]


def test_resume_of_a_piece_or_notes_says_it_is_not_a_session(runner, world_path, model_args, tmp_path):
    """A story's .md given to --resume was "damaged: it is not JSON ... restore it from a copy"."""
    piece = tmp_path / "ada-1.md"
    piece.write_text("---\nkind: story\n---\n\nOnce.\n", encoding="utf-8")
    result = invoke(runner, "chat", world_path, *model_args, "--resume", piece)
    assert result.exit_code == 2
    assert result.stderr == (f"error: {piece} is not a metagen chat session (it is not JSON) (give a session file "
                             "that metagen chat wrote under OUT/<world>/chat/)\n")


def test_resume_refuses_a_decoding_flag_that_would_change_the_sessions_settings(runner, world_path, model_args,
                                                                                 tmp_path):
    """The session file records one set of settings; -t 1.5 on --resume rewrote them, and the turns
    made before could no longer be made again. A flag that repeats the recorded value is fine."""
    made = run(runner, chat_args(world_path, model_args, "--seed", 2), "Hi.\n")
    path = tmp_path / "out" / "quay" / "chat" / "mira-2.json"
    before = path.read_bytes()
    recorded = json.loads(before)["settings"]["temperature"]
    changed = invoke(runner, "chat", world_path, *model_args, "--resume", path, "--temperature", 1.5)
    assert made.exit_code == 0 and changed.exit_code == 2, changed.output
    assert changed.stderr == (f"error: {path} is a session with --temperature {recorded}; --temperature 1.5 cannot "
                              "change it (leave --temperature out to continue it, or start a new session)\n")
    assert path.read_bytes() == before
    same = run(runner, ["chat", world_path, *model_args, "--resume", path, "--temperature", str(recorded)], "More.\n")
    assert same.exit_code == 0, same.output


def test_inside_a_session_bad_input_is_a_message_and_the_session_goes_on(runner, world_path, model_args, tmp_path):
    (tmp_path / "taken.md").write_text("mine\n", encoding="utf-8")
    lines = ["Hello.", "/retyr", "x" * 5000, "/save taken.md", "/save notes.docx", "/save nowhere/deep/talk.md",
             "//slash in front", "/undo", "/save talk.md", "/save talk.yarn", "/quit", "never read"]
    result = run(runner, chat_args(world_path, model_args, "--seed", 4), "\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 5, result.stderr
    assert "/save nowhere/deep/talk.md: there is no folder nowhere/deep" in errors[4]
    assert not (tmp_path / "nowhere").exists()  # a typo makes no folders
    assert "unknown command '/retyr' (did you mean '/retry'?)" in errors[0]
    assert "the line is too long" in errors[1] and "/save taken.md: taken.md exists (/save never" in errors[2]
    assert "/save notes.docx: the file must end in .md, .json, .yarn or .ink" in errors[3]
    assert (tmp_path / "taken.md").read_text(encoding="utf-8") == "mine\n"
    assert "took back: Visitor: /slash in front" in result.stderr
    talk = (tmp_path / "talk.md").read_text(encoding="utf-8")
    assert "request:\n  kind: chat\n  character: mira" in talk and "**Visitor:** Hello." in talk
    assert "title: mira_chat_4" in (tmp_path / "talk.yarn").read_text(encoding="utf-8")
    assert [t.player for t in read_session(tmp_path / "out" / "quay" / "chat" / "mira-4.json")[1]] == ["Hello."]


def test_a_save_into_a_folder_it_cannot_write_is_said_as_saves_and_the_session_goes_on(runner, world_path, model_args,
                                                                                      tmp_path, monkeypatch):
    """/save ro/talk.md into another user's folder said "cannot write ro/talk.md: Permission denied", without
    the "/save ro/talk.md:" and the advice its other errors give."""
    (tmp_path / "ro").mkdir()
    deny_files_in(monkeypatch, tmp_path / "ro")
    result = run(runner, chat_args(world_path, model_args, "--seed", 4), "Hello.\n/save ro/talk.md\nBye.\n")
    assert result.exit_code == 0, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: /save ro/talk.md: cannot write"), result.stderr
    assert "(save into a folder you can write)" in errors[0] and list((tmp_path / "ro").iterdir()) == []


def test_a_new_session_never_overwrites_an_old_one(runner, world_path, model_args, tmp_path):
    first = run(runner, chat_args(world_path, model_args, "--seed", 6), "Hi.\n")
    before = (tmp_path / "out" / "quay" / "chat" / "mira-6.json").read_bytes()
    second = run(runner, chat_args(world_path, model_args, "--seed", 6), "Hello again.\n")
    assert first.exit_code == 0 and second.exit_code == 2
    assert "mira-6.json exists: a session with mira and seed 6 (continue it with --resume" in second.stderr
    assert (tmp_path / "out" / "quay" / "chat" / "mira-6.json").read_bytes() == before


def test_a_session_folder_it_cannot_write_is_refused_before_the_model_loads(runner, world_path, model_args, tmp_path,
                                                                          monkeypatch):
    """OUT/quay/chat made by another user: only OUT was probed, so the model loaded and the first
    answer was written before 'cannot write OUT/quay/chat/mira-6.json: Permission denied'."""
    folder = tmp_path / "out" / "quay" / "chat"
    folder.mkdir(parents=True)
    deny_files_in(monkeypatch, folder)
    monkeypatch.setattr("metagen.commands.chat.load_generator", lambda *a, **k: pytest.fail("model loaded"))
    result = run(runner, chat_args(world_path, model_args, "--seed", 6), "Hi.\n")
    assert result.exit_code == 1, result.output
    assert result.stderr == f"error: cannot write to output folder {Path('out') / 'quay' / 'chat'}: Permission denied\n"
    assert files_in(tmp_path / "out") == []


def test_a_folder_where_the_session_goes_is_not_called_a_session(runner, world_path, model_args, tmp_path):
    """A folder at OUT/quay/chat/mira-6.json was 'exists: a session with mira and seed 6 (continue it
    with --resume ...)', a hint that then failed."""
    (tmp_path / "out" / "quay" / "chat" / "mira-6.json").mkdir(parents=True)
    result = run(runner, chat_args(world_path, model_args, "--seed", 6), "Hi.\n")
    assert result.exit_code == 2 and "mira-6.json is a folder where a piece goes (move the folder away" in result.stderr


@pytest.mark.parametrize("input_text", ["", "\n/help\n/bogus\n", "/quit\n"])
def test_a_session_with_no_turn_leaves_no_file_to_block_the_next(runner, world_path, model_args, tmp_path,
                                                                input_text):
    """`printf '' | metagen chat ...` saved a session of 0 turns, and the next chat with that seed was
    refused: 'exists ... continue it with --resume'."""
    empty = run(runner, chat_args(world_path, model_args, "--seed", 5), input_text)
    assert empty.exit_code == 0, empty.output
    assert "no turn was taken: no session was saved" in empty.stderr and "session saved" not in empty.stderr
    assert not (tmp_path / "out" / "quay" / "chat" / "mira-5.json").exists()
    talk = run(runner, chat_args(world_path, model_args, "--seed", 5), "Hi.\n")
    assert talk.exit_code == 0, talk.output
    assert len(read_session(tmp_path / "out" / "quay" / "chat" / "mira-5.json")[1]) == 1


@pytest.mark.parametrize("input_text", ["", "Hi.\n/undo\n"])
def test_a_session_that_keeps_nothing_leaves_no_folder(runner, world_path, model_args, tmp_path, input_text):
    """`printf 'Hi.\n/undo\n' | metagen chat ...` removed its empty session file but left OUT/quay/chat/
    behind, empty; a folder that was there before stays."""
    result = run(runner, chat_args(world_path, model_args, "--seed", 5), input_text)
    assert result.exit_code == 0, result.output
    assert "no turn was taken: no session was saved" in result.stderr
    assert not (tmp_path / "out").exists()
    (tmp_path / "mine" / "quay").mkdir(parents=True)
    result = run(runner, chat_args(world_path, model_args, "--seed", 5, "--out", tmp_path / "mine"), input_text)
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "mine").rglob("*")] == ["quay"]


def test_a_session_that_cannot_be_saved_leaves_no_folder(runner, world_path, model_args, tmp_path, monkeypatch):
    from metagen.errors import OutputError
    from metagen.output import writing

    def full(folder_fd, path, data, overwrite):
        raise OutputError(f"cannot write {path}: No space left on device")

    monkeypatch.setattr(writing, "_write_in", full)
    result = run(runner, chat_args(world_path, model_args, "--seed", 5), "Hi.\n")
    assert result.exit_code == 1 and "No space left on device" in result.stderr, result.output
    assert not (tmp_path / "out").exists()


def test_a_session_stopped_before_its_first_turn_leaves_no_file(runner, world_path, model_args, tmp_path,
                                                                monkeypatch):
    from metagen.chat import ChatSession

    interrupt_on_call(monkeypatch, ChatSession, "say", 1)
    result = run(runner, chat_args(world_path, model_args, "--seed", 5), "Hi.\n")
    assert result.exit_code == 130, result.output
    assert not (tmp_path / "out").exists()  # nor the folders made for the file


@pytest.mark.parametrize("stop", ["interrupt", "terminate"])
def test_a_script_stopped_by_a_signal_says_where_its_turns_are_saved(runner, world_path, model_args, tmp_path,
                                                                    monkeypatch, stop):
    from metagen.chat import ChatSession
    from metagen.errors import Terminated

    real, calls = ChatSession.say, []

    def say(self, *args, **kwargs):  # the third line is stopped by Ctrl-C or SIGTERM (cli.py's handler)
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt if stop == "interrupt" else Terminated()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ChatSession, "say", say)
    script = tmp_path / "lines.txt"
    script.write_text("Hi.\nWho are you?\nAnd the harbour?\nBye.\n", encoding="utf-8")
    result = invoke(runner, *chat_args(world_path, model_args, "--seed", 5, "--script", script))
    assert result.exit_code == (130 if stop == "interrupt" else 143), result.output
    saved = Path("out") / "quay" / "chat" / "mira-5.json"
    assert f"session saved: {saved} (continue it with --resume {saved})" in result.stderr
    assert len(read_session(tmp_path / saved)[1]) == 2


# ----------------------------------------------------------------------------- a real terminal


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[78=>]|\r")
DIM = "\x1b[2m"


class Terminal:
    """`python -m metagen chat ...` on a pseudo-terminal: what it writes, and keys typed into it."""

    def __init__(self, args: list, cwd: Path, env: dict):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the terminal's session leader, as a shell would start it
            os.chdir(cwd)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.execvpe(sys.executable, [sys.executable, "-m", "metagen", *map(str, args)], env)
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.raw, self.reads = "", []  # everything written, and each read as it came

    def read_until(self, done, since: int = 0, timeout: float = 60.0) -> str:
        """Read until done(text written since `since`, escape sequences removed) holds; that text."""
        end = time.monotonic() + timeout
        while not done(ANSI.sub("", self.raw[since:])):
            if time.monotonic() > end:
                pytest.fail(f"timed out; the terminal shows:\n{ANSI.sub('', self.raw)[-2000:]}")
            if select.select([self.fd], [], [], 0.5)[0]:
                try:
                    data = self.decoder.decode(os.read(self.fd, 65536))
                except OSError:  # the child has ended
                    break
                self.reads.append(data)
                self.raw += data
        return ANSI.sub("", self.raw[since:])

    def say(self, keys: str) -> str:
        """Type a line and wait for the next prompt; what the terminal showed meanwhile."""
        mark = len(self.raw)
        os.write(self.fd, keys.encode("utf-8"))
        return self.read_until(lambda new: "\n" in new and new.endswith("Visitor: "), mark)

    def wait(self) -> int:
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        return os.waitstatus_to_exitcode(status)


def test_a_terminal_session_streams_retries_undoes_stops_and_ends(world_path, gen, tmp_path, isolated_home):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm", "METAGEN_HOME": str(isolated_home),
           "METAGEN_OFFLINE": "1", "COLUMNS": "80", "LINES": "24"}
    env.pop("NO_COLOR", None)
    # long answers (no newline, no early end) so that Ctrl-C lands in the middle of one
    model = ["--model", gen.info.path, "--dtype", "float32"]
    term = Terminal(["chat", world_path, "--as", "mira", *model, "--seed", 11, "--candidates", 2, "--max-tokens", 300,
                     "--min-tokens", 300, "--logit-bias", "#13=-100"], tmp_path, env)
    term.read_until(lambda text: text.endswith("Visitor: "))
    mark = len(term.reads)
    term.say("Hello there.\r")
    assert sum(DIM in r for r in term.reads[mark:]) > 2  # the first candidate streamed, dim, piece by piece
    term.say("/retry\r")
    term.say("Second line.\r")
    assert "took back: Visitor: Second line." in term.say("/undo\r")
    mark = len(term.raw)
    os.write(term.fd, b"Tell me a long story.\r")
    term.read_until(lambda new: DIM in term.raw[mark:])
    os.write(term.fd, b"\x03")  # Ctrl-C while the answer is being written
    term.read_until(lambda new: "stopped: the answer was not kept" in new and new.endswith("Visitor: "), mark)
    term.say("Bye.\r")
    os.write(term.fd, b"\x04")  # Ctrl-D ends the session
    text = term.read_until(lambda text: "session saved:" in text)
    assert term.wait() == 0 and "Traceback" not in text
    saved = tmp_path / "out" / "quay" / "chat" / "mira-11.json"
    turns = read_session(saved)[1]
    assert [t.player for t in turns] == ["Hello there.", "Bye."] and len(turns[0].answers) == 2
    # the card was prefilled while "Hello there." was typed: the answer ran only the new exchange
    assert turns[0].answers[0].prefilled <= len("\nVisitor: Hello there.\nMira Holt:")
    for answer in [a for t in turns for a in t.answers]:  # each kept answer shown in full after its preview
        visible = re.sub(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", "", answer.text)
        assert f"Mira Holt: {visible}\n" in text

    # --resume on the terminal shows where the talk stopped and goes on from there
    term = Terminal(["chat", world_path, *model, "--resume", saved], tmp_path, env)
    assert "Visitor: Bye." in term.read_until(lambda text: text.endswith("Visitor: "))
    term.say("Again.\r")
    os.write(term.fd, b"/quit\r")
    term.read_until(lambda text: "session saved:" in text)
    assert term.wait() == 0
    assert [t.player for t in read_session(saved)[1]] == ["Hello there.", "Bye.", "Again."]


def test_endless_input_without_a_line_break_ends_the_session_with_one_error(monkeypatch):
    import io
    import types

    from metagen.commands import chat as chat_command
    from metagen.errors import InputError

    monkeypatch.setattr(chat_command, "MAX_STDIN_BYTES", 8)
    monkeypatch.setattr(chat_command, "MAX_SKIPPED_BYTES", 64)
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(b"hello\n" + b"\0" * 1000)))
    lines = chat_command._read_stdin()
    assert next(lines) == "hello\n"
    with pytest.raises(InputError, match="without a line break"):
        next(lines)
