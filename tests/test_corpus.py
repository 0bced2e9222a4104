"""metagen.corpus: training examples hold exactly the prompts the pipeline decodes after, and
written targets are held to the critic's checks."""

from __future__ import annotations

import itertools

import pytest

from metagen.config import GenerationConfig
from metagen.corpus import check_example, dialogue_examples, scene_example, story_examples
from metagen.dialogue import generate_dialogue
from metagen.generator import Completion
from metagen.pipeline import compose, make_request
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

    def fake(ids, cfg, *, seeds=None, on_text=None, reuse=None):
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
    examples = dialogue_examples(wide_generator, vale, request, lines)
    assert [example_tokens(wide_generator.tokenizer, e)[0] for e in examples] == prompts
    assert examples[1].prefix.endswith("Ada: The wheel sticks again.\nBo:") and examples[1].completion == " Then I will fetch the grease.\n"
    assert not examples[0].end_of_turn


def test_scene_example_holds_the_scenes_prompt(vale, wide_generator, monkeypatch):
    text = "The Old Mill stands by the fast stream. Its wheel is green with moss. Flour dust hangs in the air."
    fake, prompts = recording([text])
    monkeypatch.setattr(wide_generator, "complete", fake)
    request = make_request("scene", vale, location="mill")
    compose(wide_generator, vale, [request], GenerationConfig(max_new_tokens=40, candidates=1), seeds=[3])
    example = scene_example(wide_generator, vale, request, text)
    assert example_tokens(wide_generator.tokenizer, example)[0] == prompts[0]


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
    assert {"narrates in the wrong person", "ends mid-sentence"} <= set(problems[2])
