"""`metagen chat` (issue 17): a player talks with one character, turn by turn.

The tiny random model writes gibberish, so these tests check what metagen controls: what goes
into each prompt (the card and place pinned, the player's facts, lore by keyword and why, the
recent turns within a budget), seeds and determinism, the refusal of copied and repeated lines,
the KV cache reused across turns, the session file and --resume, the script and --json modes,
bad input, and one real terminal session driven through a pseudo-terminal.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from metagen import chat as chat_module
from metagen.chat import ChatInputError, ChatSession, player_facts, repeats
from metagen.errors import RequestError
from metagen.generator import Completion
from metagen.pipeline import effective_config
from metagen.world import load_world

from conftest import load_tiny_generator, write_tiny_gguf, write_world

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


def test_when_every_round_repeats_the_best_is_kept_with_a_warning(gen, world, monkeypatch):
    Scripted(gen, monkeypatch, [["Keep your hands inside the boat."]])
    answer = new_session(gen, world, candidates=1).say("Hi.").answers[0]
    assert answer.rounds == chat_module.MAX_ROUNDS and "copies a sample line" in answer.warning


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
