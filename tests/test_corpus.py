"""metagen.corpus: training examples hold exactly the prompts the pipeline decodes after, and
written targets are held to the critic's checks."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import pytest

from metagen.chat import ChatSession
from metagen.config import GenerationConfig
from metagen.corpus import ChatRequest, chat_examples, check_example, dialogue_examples, scene_example, story_examples
from metagen.dialogue import generate_dialogue, with_topic
from metagen.generator import Completion
from metagen.pipeline import compose, effective_config, make_request
from metagen.plan import write_story
from metagen.request import DialogueRequest, StoryRequest
from metagen.world import load_world
from metagen.tune import example_tokens
from tests.conftest import write_world
from tests.test_plan import WORLD


@pytest.fixture
def vale(tmp_path):
    return load_world(write_world(tmp_path, WORLD, "vale.yaml"))


def recording(texts):
    """A stand-in for Generator.complete that keeps every prompt and answers with the next text."""
    texts, prompts = iter(texts), []

    def fake(ids, cfg, *, seeds=None, on_text=None, reuse=None, plain=None, forced=None):
        prompts.append(list(ids[0]))
        text = next(texts)
        return [Completion(text, [5] * 6, len(p), -3.0, "eos", s, 0.0) for p, s in zip(ids, seeds)]

    return fake, prompts


def test_story_examples_hold_the_prompts_write_story_decodes_after(vale, wide_generator, monkeypatch):
    paragraphs = ["Ada stood at the Old Mill. The wheel was green. Bo came up the lane.",
                  "Ada said she had sold the water rights. Bo set down his reins.",
                  "Ada and Bo walked home from the Old Mill. The stream kept roaring."]
    fake, prompts = recording(itertools.chain(paragraphs, itertools.repeat(paragraphs[-1])))
    monkeypatch.setattr(wide_generator, "complete", fake)
    request = StoryRequest(characters=("ada", "bo"), location="mill", length="short")
    story = write_story(wide_generator, vale, request, GenerationConfig(max_new_tokens=60, candidates=1), seed=5)
    examples = story_examples(wide_generator, vale, request, 5, [b["text"] for b in story.plan])
    assert [e.unit for e in examples] == ["opening", "turn", "ending"]
    assert [example_tokens(wide_generator.tokenizer, e)[0] for e in examples] == prompts[:3]
    assert [e.completion for e in examples] == paragraphs


def test_dialogue_examples_hold_the_prompts_each_line_is_written_after(vale, wide_generator, monkeypatch):
    lines = ["The wheel sticks again.", "Then I will fetch the grease.", "Bring the big pot.", "I will."]
    fake, prompts = recording(lines)
    monkeypatch.setattr(wide_generator, "complete", fake)
    request = DialogueRequest(characters=("ada", "bo"), location="mill", turns=4)
    generate_dialogue(wide_generator, vale, request, GenerationConfig(max_new_tokens=20, candidates=1), seed=1,
                      order="turns")
    # with no topic given, the dialogue drew one from the world by its seed (dialogue.with_topic)
    examples = dialogue_examples(wide_generator, vale, with_topic(vale, request, 1), lines)
    assert [example_tokens(wide_generator.tokenizer, e)[0] for e in examples] == prompts
    assert examples[1].prefix.endswith("Ada: The wheel sticks again.\nBo:") and examples[1].completion == " Then I will fetch the grease.\n"
    assert not examples[0].end_of_turn


def test_scene_example_holds_the_scenes_prompt(vale, wide_generator, monkeypatch):
    text = "The Old Mill stands by the fast stream. Its wheel is green with moss. Flour dust hangs in the air."
    fake, prompts = recording([text])
    monkeypatch.setattr(wide_generator, "complete", fake)
    request = make_request("scene", vale, location="mill")
    example = scene_example(wide_generator, vale, request, text)
    # As metagen asks by default: four candidates open on the mill's two sense verbs, the task names the place.
    compose(wide_generator, vale, [request], GenerationConfig(max_new_tokens=40, candidates=4), seeds=[3])
    assert example_tokens(wide_generator.tokenizer, example)[0] == prompts[0]
    assert 'Start with the words "The Old Mill".' in example.messages[-1]["content"]


# Long turns, no two sharing words in a row (say() would draw again for a repeated answer).
LONG = [("Tell me about the wheel, miller, and spare me nothing, because that wheel is why I walked here.",
         "My grandmother built it from oak she felled herself, and every spring since then someone in this "
         "family has climbed down into the race to scrape the moss from its paddles."),
        ("And the stream that turns it, does it ever run low in the dry months of late summer?",
         "Once, in the drought, it dried to a trickle for a whole year; we ground nothing, ate our seed corn, "
         "and learned which neighbours would lend and which would only watch."),
        ("Where would a tired traveller like me sleep tonight, if the loft above the stones is taken?",
         "Bo keeps a cot behind the cart shed for carters caught by the dark, though you will share it with "
         "harness, a cat who bites, and the smell of wet flour drifting over."),
        ("What do you want most, if you could have anything at all from this green valley?",
         "Only that the wheel keeps turning after I am gone, that someone hears the race roar at night as I "
         "do now, and sleeps the better for knowing the grain is safe.")]


@pytest.mark.parametrize("request_, turns", [
    (ChatRequest("ada", player="Wren", location="mill"),
     [("Hello! I'm Wren, a tinker from over the hills. Who works this mill?", "I do, and have since I was a girl."),
      ("Is the stream always this loud?", "Louder in spring. You learn to talk over it."),
      ("Could I sleep in the loft tonight?", "If you mind the flour, and Bo does not mind you.")]),
    # Long turns: the oldest leave the prompt (ChatSession._window), and each turn's start shapes the next.
    (ChatRequest("ada"), LONG),
])
def test_chat_examples_hold_the_prompts_chat_decodes_after(vale, wide_generator, monkeypatch, request_, turns):
    fake, prompts = recording([f" {answer}\n" for _, answer in turns])
    monkeypatch.setattr(wide_generator, "complete", fake)
    # As `metagen chat vale.yaml --as ada [--player P] [--location L]` starts it, no decoding flags.
    session = ChatSession(wide_generator, vale, vale.character(request_.character),
                          effective_config(vale, "dialogue", None, {}), player=request_.player,
                          location=vale.location(request_.location) if request_.location else None)
    for line, _ in turns:
        session.say(line)
    examples = chat_examples(wide_generator, vale, request_, turns)
    assert [example_tokens(wide_generator.tokenizer, e)[0] for e in examples] == prompts
    assert [f" {t.answer}\n" for t in session.turns] == [e.completion for e in examples]  # kept as written
    assert not examples[0].end_of_turn and examples[0].prefix.endswith(f"{session.player}: {turns[0][0]}\nAda:")
    assert session.turns[-1].start > 0  # earlier turns left the prompt (the tiny model's tokens are bytes)


def test_chat_answers_are_held_to_the_dialogue_checks(vale, wide_generator):
    request = ChatRequest("ada", player="Wren")
    turns = [("Who owns the mill?", "I do, for as long as the stream runs."),
             ("Who owns the mill?", "Gerald Fairweather, since the spring."),
             ("And the stream?", "(laughs) The stream is mine too."),
             ("Anything else?", "No."),
             ("Where can I find you?", "Ask anyone for the Old Mill.")]  # not in a chat prompt without --location
    examples = chat_examples(wide_generator, vale, request, turns)
    problems = [check_example(wide_generator, vale, request, e) for e in examples]
    assert problems[0] == []
    assert problems[1] == ["names someone or something the world does not have: Gerald, Fairweather"]
    assert any("metagen cuts" in p for p in problems[2])
    assert problems[3] == ["has 1 words (want 2 to 60)"]
    assert problems[4] == ["names what its prompt does not show: Old"]
    at_the_mill = ChatRequest("ada", location="mill")
    shown = chat_examples(wide_generator, vale, at_the_mill, turns)[4]
    assert check_example(wide_generator, vale, at_the_mill, shown) == []


def test_chat_answers_may_not_say_a_sample_line_again_nor_name_a_made_up_relative(tmp_path, wide_generator):
    spoken = WORLD.replace("    role: miller\n", "    role: miller\n    sample_lines: [\"Water first, then bread.\"]\n")
    vale = load_world(write_world(tmp_path, spoken, "vale.yaml"))
    request = ChatRequest("ada", player="Wren")
    turns = [("Who works the mill?", "Water first, then bread. I work it alone, Wren."),
             ("Who works the mill?", "My husband works it with me."),
             ("Who works the mill?", "My sister Bo and I, since the spring.")]
    problems = [check_example(wide_generator, vale, request, e) for e in chat_examples(wide_generator, vale, request, turns)]
    assert problems[0] == ["says a sample line again: 'Water first, then bread.'"]  # too short to be "copied"
    assert problems[1] == ["gives someone a relative the world does not name: husband"]
    assert problems[2] == []  # the world makes Bo her sister


def test_the_checks_catch_what_a_critic_punishes_and_pass_a_good_target(vale, wide_generator):
    request = StoryRequest(characters=("ada", "bo"), location="mill", length="short")
    good = ["Ada leaned on the rail of the Old Mill while Bo unhitched his cart in the yard. Moss furred the "
            "great wheel. The stream ran loud and brown below them, and flour dust hung in the cold air.",
            "Ada told him at last that she had sold the water rights to pay the winter's debts. Bo said nothing "
            "for a long time. Then he asked who had bought them, and she could not meet his eyes.",
            "They stood together at the Old Mill until dark came down over the valley. The wheel turned on, "
            "slower than before. Neither of them spoke of leaving, and Bo carried the lamp inside."]
    examples = story_examples(wide_generator, vale, request, 5, good)
    assert [check_example(wide_generator, vale, request, e) for e in examples] == [[], [], []]
    bad = story_examples(wide_generator, vale, request, 5, [
        "Bo met Gerald Fairweather at the Old Mill. They talked. It was late and they went home to sleep.",
        "Ada said.",
        "I looked at the Old Mill, and the wheel green with moss, and the stream roaring away now"])
    problems = [check_example(wide_generator, vale, request, e) for e in bad]
    assert any("leaves out a name" in p for p in problems[0])  # Ada
    assert any("does not have" in p for p in problems[0])  # Gerald Fairweather
    assert any("has 2 words" in p for p in problems[1])
    copied = story_examples(wide_generator, vale, request, 5, [good[0].replace(
        "The stream ran loud and brown", "A water mill by a fast stream ran loud and brown"), *good[1:]])[0]
    assert 'copies 6 or more words in a row from the prompt ("a water mill by a fast ...")' in check_example(
        wide_generator, vale, request, copied)
    assert {"narrates in the wrong person", "ends mid-sentence"} <= set(problems[2])


def test_a_scene_must_start_with_the_words_its_task_gives(vale, wide_generator):
    request = make_request("scene", vale, location="mill")
    rest = (" its great wheel green with moss and turning slowly in the cold morning. Flour dust hung in the air "
            "above the sacks, and the stream ran loud and brown below the wooden rail.")
    ok, late = "The Old Mill stood by the fast stream," + rest, "By the fast stream stood the Old Mill," + rest
    assert check_example(wide_generator, vale, request, scene_example(wide_generator, vale, request, ok)) == []
    assert check_example(wide_generator, vale, request, scene_example(wide_generator, vale, request, late)) == [
        "does not start with the words its task gives: 'The Old Mill'"]


def load_build():
    """corpus/build.py, which is a script, not a module of the package."""
    spec = importlib.util.spec_from_file_location("corpus_build", Path(__file__).parent.parent / "corpus" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_skeleton_adds_only_the_sections_a_targets_file_lacks(tmp_path, wide_generator):
    build = load_build()
    three = WORLD.replace("characters:\n", "  - {id: lane, name: The Lane}\n  - {id: ford, name: The Ford}\n"
                          "characters:\n").replace("lore:\n", "  - {id: cy, name: Cy, role: reeve}\nlore:\n")
    world = write_world(tmp_path, three, "vale3.yaml")
    out = tmp_path / "targets"
    assert build.skeleton(world, out).endswith("written")
    data = build.yaml.safe_load((out / "vale.yaml").read_text())
    assert data["chats"] == [{"character": "ada", "player": "Visitor",
                              "turns": [{"line": "", "answer": ""}] * build.CHAT_TURNS}]
    assert "ada" not in data["dialogues"][0]["characters"]
    written = "world: ../vale3.yaml  # written by hand\nstories: []\nscenes: []\ndialogues: []"  # no newline at the end
    (out / "vale.yaml").write_text(written)
    assert build.skeleton(world, out).endswith("added chats")
    text = (out / "vale.yaml").read_text()
    assert text.startswith(written + "\n") and build.yaml.safe_load(text)["chats"] == data["chats"]
    assert build.skeleton(world, out).endswith("left as it is") and (out / "vale.yaml").read_text() == text
    # A chat is taken as far as its turns are written, in order.
    turns = [{"line": "Who are you?", "answer": "The miller."}, {"line": "", "answer": "Bo."},
             {"line": "And him?", "answer": "My brother."}]
    (out / "vale.yaml").write_text(build.yaml.safe_dump({**build.yaml.safe_load(text),
                                                         "chats": [{**data["chats"][0], "turns": turns}]}))
    _, found = build.examples_of(wide_generator, out / "vale.yaml")
    assert [(type(r).__name__, e.unit, e.completion) for r, e in found] == [("ChatRequest", "chat-1/answer-1",
                                                                             " The miller.\n")]


def test_a_skeletons_dialogue_is_written_to_the_topic_its_prompt_names(tmp_path, wide_generator):
    build = load_build()
    three = WORLD.replace("characters:\n", "  - {id: lane, name: The Lane}\n  - {id: ford, name: The Ford}\n"
                          "characters:\n").replace("lore:\n", "  - {id: cy, name: Cy, role: reeve}\nlore:\n")
    world_path = write_world(tmp_path, three, "vale3.yaml")
    world, out = load_world(world_path), tmp_path / "targets"
    build.skeleton(world_path, out)
    data = build.yaml.safe_load((out / "vale.yaml").read_text())
    dialogue = data["dialogues"][0]
    request = make_request("dialogue", world, characters=dialogue["characters"], location=dialogue["location"],
                           turns=dialogue["turns"])
    assert dialogue["topic"] == with_topic(world, request, build.DIALOGUE_SEED).topic and dialogue["topic"]
    for i, line in enumerate(dialogue["lines"]):
        line["text"] = f"Line {i} about the mill."
    for topic in (dialogue["topic"], ""):  # a recorded "" is a prompt with no topic
        (out / "vale.yaml").write_text(build.yaml.safe_dump({**data, "dialogues": [{**dialogue, "topic": topic}]}))
        _, found = build.examples_of(wide_generator, out / "vale.yaml")
        task = next(e for _, e in found if e.kind == "line").messages[-1]["content"]
        assert (f", about {topic}." in task) == bool(topic) and (", about " in task) == bool(topic)
