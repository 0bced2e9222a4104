"""The editor: which sentences of a candidate it strikes, and which it never does."""

from __future__ import annotations

from dataclasses import replace

import pytest

from metagen.config import GenerationConfig
from metagen.critic import critic_context, judge
from metagen.editor import strike
from metagen.grounding import writing_guard
from metagen.prompts import SceneRequest, StoryRequest, resolve_request
from metagen.text import ngrams, split_sentences, words_of
from metagen.world import load_world

from conftest import write_world

WORLD = """\
world: {id: harbourtown, name: Harbourtown, summary: "A fishing town on a cold grey coast, founded in 1820."}
locations:
  - id: docks
    name: The Old Docks
    description: Wooden piers where the fishing boats tie up.
    sights: [nets hanging like grey curtains]
    smells: [tar and fish]
characters:
  - {id: mira, name: Mira Okafor, role: salvage diver, description: She dives for what the sea keeps.}
  - {id: jonas, name: Jonas, role: crane technician, description: He fixes the cranes at night.}
"""


@pytest.fixture
def world(tmp_path):
    return load_world(write_world(tmp_path, WORLD, "w.yaml"))


def context_for(world, request):
    cfg = GenerationConfig(**writing_guard(world))
    return critic_context(world, resolve_request(world, request), "", cfg, narrator_person="third")


def test_sentences_split_at_their_ends_but_not_inside_speech_or_after_a_title():
    text = '"Go!" she said. Dr. Okafor dived... "It is here," Jonas said. The tide turned! And then'
    assert split_sentences(text) == ['"Go!" she said.', "Dr. Okafor dived...", '"It is here," Jonas said.',
                                     "The tide turned!", "And then"]
    assert split_sentences("  ") == []


def test_a_sentence_with_a_made_up_person_or_year_is_struck(world):
    context = context_for(world, StoryRequest(characters=("mira",), location="docks"))
    text = ("Mira Okafor walked the Old Docks at dawn. Her friend Bartholomew waved from a boat. "
            "In 2077 the sea rose. Nets hung like grey curtains over the tar.")
    edit = strike(text, context)
    assert edit.text == "Mira Okafor walked the Old Docks at dawn. Nets hung like grey curtains over the tar."
    assert [reason for reason, _ in edit.struck] == ["invented", "dated"]


def test_a_sentence_naming_one_of_the_cast_twice_is_struck_unless_it_opens_the_text(world):
    context = context_for(world, StoryRequest(characters=("mira", "jonas"), location="docks"))
    text = "Mira Okafor walked the Old Docks with Jonas. Jonas waved to Jonas. Nets hung like grey curtains."
    edit = strike(text, context)
    assert edit.text == "Mira Okafor walked the Old Docks with Jonas. Nets hung like grey curtains."
    assert edit.struck == (("named twice", "Jonas waved to Jonas."),)
    alone = "Mira Okafor walked the Old Docks. Jonas waved to Jonas."
    assert strike(alone, context).text == alone  # the only sentence naming Jonas: naming the cast comes first
    opening = "Mira looked up at Mira at the Old Docks. Jonas waved."
    assert strike(opening, context).text == opening  # the first sentence holds metagen's words: never struck


def test_a_made_up_relative_and_words_about_the_text_are_struck(world):
    context = context_for(world, StoryRequest(characters=("mira",), location="docks"))
    text = "Mira Okafor dived under the pier. Her husband waited on the shore. Here is the next paragraph: the end."
    edit = strike(text, context)
    assert edit.text == "Mira Okafor dived under the pier."
    assert [reason for reason, _ in edit.struck] == ["invented", "echo"]


def test_a_sentence_that_says_an_earlier_paragraph_again_is_struck(world):
    context = context_for(world, StoryRequest(characters=("mira",), location="docks"))
    earlier = "The cold wind blew over the grey water of the harbour all night long."
    context = replace(context, earlier=frozenset(ngrams(words_of(earlier), 4)))
    text = ("Mira Okafor tied her boat. The cold wind blew over the grey water of the harbour again. "
            "She counted the crates.")
    edit = strike(text, context)
    assert edit.text == "Mira Okafor tied her boat. She counted the crates."
    assert edit.struck == (("restated", "The cold wind blew over the grey water of the harbour again."),)


def test_the_first_sentence_a_needed_name_and_a_clean_text_stay(world):
    context = context_for(world, StoryRequest(characters=("mira", "jonas"), location="docks"))
    first = "Bartholomew walked the Old Docks."  # the first sentence holds metagen's opening: never struck
    assert strike(first + " Mira Okafor smiled.", context).text == first + " Mira Okafor smiled."
    # Jonas is named only beside a made-up person: the name the request needs outweighs the fault
    text = "Mira Okafor walked the Old Docks. Jonas met Bartholomew there. She dived."
    edit = strike(text, context)
    assert edit.text == text and not edit.struck
    clean = "Mira Okafor walked the Old Docks. Jonas fixed a crane. She dived."
    assert strike(clean, context).text == clean


def test_the_world_s_own_year_stays(world):
    context = context_for(world, SceneRequest(location="docks"))
    text = "The Old Docks smelled of tar and fish. The first pier was built in 1820. Nets hung grey."
    assert strike(text, context).text == text


def test_the_critic_counts_struck_sentences_against_a_candidate(world):
    context = context_for(world, StoryRequest(characters=("mira",), location="docks"))
    text = "Mira Okafor walked the Old Docks at dawn."
    assert judge(text, context, struck=2).score < judge(text, context).score
    assert judge(text, context, struck=2).findings["struck"] == 2
    assert "struck" not in judge(text, context).findings
