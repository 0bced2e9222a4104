"""Story plans: beats from the world's data by seed, written beat by beat with carried context."""

from __future__ import annotations

import pytest

from metagen import pieces
from metagen.config import GenerationConfig
from metagen.errors import RequestError
from metagen.plan import BEATS_BY_LENGTH, make_plan, story_messages, write_story
from metagen.prompts import StoryRequest, resolve_request
from metagen.world import load_world

WORLD = """\
world: {id: vale, name: The Vale, genre: pastoral fantasy}
style: {tense: past, point_of_view: third, avoided_words: [suddenly]}
locations:
  - id: mill
    name: The Old Mill
    description: A water mill by a fast stream.
    sights: [a wheel green with moss]
    sounds: [the stream roaring]
    smells: [wet flour]
characters:
  - id: ada
    name: Ada
    role: miller
    goals: [keep the mill turning]
    secrets: [she sold the water rights]
    relationships: [{with: bo, kind: sister, description: they share the mill}]
  - {id: bo, name: Bo, role: carter, goals: [leave the valley]}
lore:
  - {id: drought, keys: [mill], text: The last drought dried the stream for a year.}
"""


@pytest.fixture
def world(tmp_path):
    path = tmp_path / "vale.yaml"
    path.write_text(WORLD, encoding="utf-8")
    return load_world(path)


def plan_for(world, seed, **request):
    return make_plan(world, resolve_request(world, StoryRequest(**request)), seed)


def test_a_plan_is_built_from_the_worlds_data_and_follows_the_seed(world):
    plan = plan_for(world, 3, characters=("ada", "bo"), location="mill", length="medium")
    assert [b.id for b in plan] == ["opening", "turn", "complication", "ending"]
    opening = plan[0].instruction
    assert "Ada and Bo at The Old Mill" in opening and "Ada wants to keep the mill turning" in opening
    assert any(d in opening for d in ("a wheel green with moss", "the stream roaring", "wet flour"))
    middle = " ".join(b.instruction for b in plan[1:3])
    facts = ["she sold the water rights", "they share the mill", "The last drought dried the stream",
             "Bo wants to leave the valley"]
    assert sum(f in middle for f in facts) == 2
    assert plan == plan_for(world, 3, characters=("ada", "bo"), location="mill", length="medium")
    others = {tuple(b.instruction for b in plan_for(world, s, characters=("ada", "bo"), location="mill"))
              for s in range(8)}
    assert len(others) > 1


@pytest.mark.parametrize("length", sorted(BEATS_BY_LENGTH))
def test_the_length_sets_the_number_of_beats(world, length):
    assert len(plan_for(world, 1, characters=("ada", "bo"), location="mill", length=length)) == BEATS_BY_LENGTH[length]


def test_a_premise_is_the_first_turn(world):
    plan = plan_for(world, 5, characters=("ada",), premise="The stream runs backwards.")
    assert "This happens: The stream runs backwards." in plan[1].instruction


def test_the_first_messages_hold_the_cast_place_and_style(world):
    messages = story_messages(world, resolve_request(world, StoryRequest(characters=("ada",), location="mill")))
    assert "third person, past tense" in messages[0]["content"] and "suddenly" in messages[0]["content"]
    assert "- Ada, miller." in messages[1]["content"] and "Place: The Old Mill" in messages[1]["content"]


def test_write_story_keeps_each_beats_pick_and_reuses_the_cache(world, wide_generator, monkeypatch):
    widths = []
    model = wide_generator.model
    original = type(model).forward

    def counting(self, tokens, cache, pad=None, last_only=False):
        if tokens.shape[1] > 1:
            widths.append(tokens.shape[1])
        return original(self, tokens, cache, pad, last_only)

    monkeypatch.setattr(type(model), "forward", counting)
    cfg = GenerationConfig(max_new_tokens=24, candidates=2)
    request = StoryRequest(characters=("ada",), length="short")
    story = write_story(wide_generator, world, request, cfg, seed=4)
    assert [b["beat"] for b in story.plan] == ["opening", "turn", "ending"]
    assert story.text == "\n\n".join(b["text"] for b in story.plan)
    assert [len(b["candidates"]) for b in story.critic["beats"]] == [2, 2, 2]
    assert len(widths) == 3 and widths[1] < widths[0] + 60  # later beats prefill only what is new
    again = write_story(wide_generator, world, request, cfg, seed=4)
    assert again.text == story.text


def test_a_plan_that_cannot_fit_is_refused_before_writing(world, tiny_generator):
    request = StoryRequest(characters=("ada",), premise="A very long premise. " * 40)
    with pytest.raises(RequestError, match="the story's plan needs about"):
        write_story(tiny_generator, world, request, GenerationConfig(max_new_tokens=8), seed=1)


def test_a_story_piece_records_its_plan(world, wide_generator):
    request = StoryRequest(characters=("ada",), length="short")
    piece = pieces.compose(wide_generator, world, [request], GenerationConfig(max_new_tokens=9), seeds=[2]).pieces[0]
    assert [b["beat"] for b in piece.plan] == ["opening", "turn", "ending"]
    assert piece.front_matter()["plan"][0]["instruction"].startswith("Write the opening paragraph about Ada")
    assert piece.output_tokens <= 9
