"""What a world has and what a text makes up: names, everyday words, relations (metagen.grounding)."""

from __future__ import annotations

import pytest

from metagen.grounding import (
    absent_things,
    character_forms,
    common_words,
    invented_ranks,
    narration_tense,
    named_twice,
    pronoun_slips,
    stock_phrases,
    strangers,
    unknown_names,
    world_vocabulary,
)
from metagen.kinship import invented_relatives, relation_vocabulary
from metagen.text import first_sentences
from metagen.world import Character, load_world

from conftest import write_world


def test_a_title_in_a_name_is_no_relation_but_a_relation_in_the_prompt_is(tmp_path):
    world = load_world(write_world(tmp_path, """\
world: {id: abbey, name: The Abbey}
locations: [{id: cloister, name: The Cloister}]
characters: [{id: maelle, name: Sister Maelle, description: She keeps the bees.}]
"""))
    assert invented_relatives("Her brothers came.", relation_vocabulary(world)) == ["brother"]
    assert invented_relatives("Her brothers came.", relation_vocabulary(world, "Her brother waits.")) == []
    assert invented_relatives("Her brother came.", relation_vocabulary(world, "Her six brothers wait.")) == []
    assert invented_relatives("His wife came.", relation_vocabulary(world, "The wives wait.")) == []
    assert invented_relatives("Sister Maelle came, and her sister.", relation_vocabulary(world, "Sister Maelle")) == [
        "sister"]  # the title is a name; "her sister" is a relation


def test_a_title_an_abbreviation_a_possessive_or_quoted_speech_is_not_an_invented_name(tmp_path):

    grandmother = Character(id="zita", name="Grandmother Zita Varga")
    assert "Zita" in character_forms(grandmother)  # the story's short name, not "Grandmother"
    lampwright = Character(id="oswin", name="Master Lampwright Oswin Tarrow", role="master lampwright of the ship")
    assert character_forms(lampwright)[-2:] == ("Oswin", "Lampwright Tarrow")  # a role word leading a name is a title
    assert character_forms(Character(id="r", name="Regent Ilse Varn"))[-2:] == ("Ilse", "Regent Varn")
    assert first_sentences("Dr. Amara Nwosu waits. Mr. Bo sits. The third one.", 2) == "Dr. Amara Nwosu waits. Mr. Bo sits."
    world = load_world(write_world(tmp_path, """\
world: {id: hill, name: The Hill}
locations: [{id: keep, name: Hollin's Keep}]
characters: [{id: ada, name: Ada}, {id: bo, name: Bo}]
"""))
    vocabulary = world_vocabulary(world)
    assert unknown_names('They walked up to Hollin\'s Keep, and Ada said, "Nearly there, Bo."', vocabulary) == []
    assert unknown_names("They met Gerald at the gate.", vocabulary) == ["Gerald"]


def test_a_made_up_name_opening_a_sentence_is_invented_and_an_everyday_word_is_not(tmp_path):

    world = load_world(write_world(tmp_path, """\
world: {id: hill, name: The Hill}
characters: [{id: ada, name: Ada, description: a giant of a woman}]
"""))
    vocabulary = world_vocabulary(world)
    assert {"towering", "yesterday", "today"} <= common_words() and "maude" not in common_words()
    # The README's story (round ten): Maude is nobody in the world.
    assert unknown_names("The door creaked. Maude's eyes lit up as Ada came in.", vocabulary) == ["Maude's"]
    assert unknown_names('"Aroniar," she said. Kistre: go.', vocabulary) == ["Aroniar", "Kistre"]
    everyday = ("Towering windows rose. Yesterday's rain fell. Slowly, Ada sighed. You're late. "
                "Sighs filled the hall. Giant-sized doors. Zoomed in, the Hill was small.")
    assert unknown_names(everyday, vocabulary) == []


@pytest.mark.parametrize("text, tense", [
    ("The Container Docks were quiet. Cranes stood over the berths.", "past"),
    ("The docks are crowded with rusted containers, and a horn sounds.", "present"),  # participles are no past
    ("She turned to the fire and it hums.", ""),  # one of each: no lean
    ('"The tide is here, it is," she said. The quay was wet and had no light.', "past"),  # speech left out
    ("It hums. The crowd drifts past the fountain.", "present"),
    ("Rain on the quay.", ""),
])
def test_the_narrations_tense_is_read_from_its_verbs(text, tense):
    assert narration_tense(text) == tense


def test_stock_phrases_leave_out_what_the_world_itself_writes(tmp_path):
    plain = load_world(write_world(tmp_path, "world: {id: hill, name: The Hill}\n"))
    assert {"marvel", "bustling", "a place of", "modern engineering"} <= set(stock_phrases(plain))
    oasis = load_world(write_world(tmp_path, """\
world: {id: sand, name: The Sands, summary: A bustling town of modern engineering.}
locations: [{id: oasis, name: The Green Oasis}]
style: {preferred_words: [majestic]}
"""))
    kept = set(stock_phrases(oasis))
    assert not kept & {"bustling", "modern engineering", "oasis", "majestic"} and "marvel" in kept


def test_absent_things_are_what_neither_the_world_nor_the_request_has(tmp_path):
    lake = load_world(write_world(tmp_path, "world: {id: mere, name: The Mere, summary: A black lake in the hills.}\n"))
    banned = set(absent_things(lake))
    assert {"sea", "ocean", "seagulls", "dragon", "wizards"} <= banned
    assert not banned & {"lake", "season", "seal"}  # only the groups' own words
    assert "sea" not in absent_things(lake, "a voyage across the sea")  # what the user asks for stays writable
    harbour = load_world(write_world(tmp_path, """\
world: {id: port, name: Saltport, summary: A harbour where the tide comes in twice a day.}
locations: [{id: tower, name: The Wizard's Tower}]
""", "port.yaml"))
    assert not set(absent_things(harbour)) & {"sea", "ocean", "dragon", "witch"}  # a cue allows the whole group
    flies = load_world(write_world(tmp_path, "world: {id: pond, name: Pond, summary: Dragonflies over the reeds.}\n",
                                   "pond.yaml"))
    banned = set(absent_things(flies))
    assert "dragon" not in banned  # its tokens begin "dragonflies", which the world writes
    assert "dragons" in banned and "wizard" in banned


@pytest.mark.parametrize("line, found", [
    ("Hi Pip! How can I help?", ["Pip"]),
    ("The rain script was edited by Lin Xiaoyu.", ["Lin Xiaoyu"]),
    ("Maëlle Vær never forgets.", ["Maëlle Vær"]),  # one name, though "Maëlle" is a form too
    ("I'm Pip. And this is my friend.", []),  # an introduction
    ("My name is Maëlle, and I am Maëlle Vær.", []),
    ("Pipes and pipits.", []),  # a name inside other words is no name
    ("The Pilot counts the buoys.", []),  # a role-like form is not judged
    ("My name is Ysolde.", ["Ysolde"]),  # another's name, claimed
    ("Ysolde is waiting, and I am Pip.", []),  # another's name, not claimed
])
def test_a_speaker_naming_themselves_or_claiming_anothers_name(line, found):
    from metagen.grounding import self_named

    forms = ("Pip", "Lin Xiaoyu", "Maëlle Vær", "Maëlle", "the Pilot")
    assert self_named(line, forms, ("Queen Ysolde", "Ysolde")) == found


def test_a_rank_is_made_up_unless_the_world_writes_it_in_any_number():
    vocabulary = frozenset("the queen kingdom witches".split())
    text = "The king's daughters and two princesses met a witch, the gods, King Arvid and the queen. Lordly halls."
    assert invented_ranks(text, vocabulary) == ["king", "princess", "god"]


@pytest.mark.parametrize("text, found", [
    # people narration brings in without a name: what "invent no one else" forbids
    ("A lone figure stood on the platform.", ["a lone figure"]),
    ("Suddenly, a hooded figure appeared at the door.", ["a hooded figure"]),
    ("The door swung open, and a young woman with red hair stood before her.", ["a young woman"]),
    ("There was an old man by the fire.", ["an old man"]),
    ("A tall, slender woman stood at the edge of the hill. Then a boy ran in.", ["a tall, slender woman", "a boy"]),
    # not strangers: one of the cast described, a likeness, a name given, a saying, speech, a thing
    ("Brannoc, a young man with a beard full of ash, stood at the edge of the path.", []),
    ("Ederyn a young man in his late 20s stood at the edge of the square.", []),
    ("Ysolde was a woman of fifty. She fought like a man possessed.", []),
    ("A young girl, Pipa Halloway, stood at the edge of the orchard. A woman named Bea waved.", []),
    ("A man who counts his camels cannot count on water.", []),
    ('"A stranger came to the door," Maelle said.', []),
    ("She took paper and a seal, my lady, to the hall.", []),
])
def test_a_stranger_is_a_person_narration_brings_in_without_a_name(text, found):
    assert strangers(text) == found


@pytest.mark.parametrize("sentence, twice", [
    ("Agnes looked up at Agnes.", ["agnes"]),
    ("Agnes had been looking after Agnes's garden.", ["agnes"]),  # a possessive names her too
    ("Widow Agnes Threlkeld smiled, and Agnes knew.", ["agnes"]),  # the full name and a short form
    ("Agnes looked up at Oswin.", []),
    ('Agnes said, "Agnes is tired," and sat.', []),  # quoted speech is the speaker's
    ("Widow Agnes Threlkeld smiled.", []),  # one name, however long
    ('Agnes said, "I am tired." Then Agnes sat down.', []),  # the quote ends the sentence: two of them
    ('Agnes said, "Sit," and looked at Agnes.', ["agnes"]),
    ('Agnes said, "Agnes, come here.', []),  # an unclosed quote (a sentence of a longer speech) is speech
])
def test_one_of_the_cast_named_twice_in_a_sentence_is_found(sentence, twice):
    cast = [Character(id="agnes", name="Widow Agnes Threlkeld", aliases=["Agnes"]), Character(id="oswin", name="Oswin")]
    assert named_twice(sentence, cast) == twice
    marks = Character(id="marks", name="\u0301\u0301")  # folds to nothing: an empty name matched everywhere
    assert named_twice(sentence, [*cast, marks]) == twice


@pytest.mark.parametrize("text, slips", [
    ("Pip's eyes lit up as she took a step closer.", ["Pip: she"]),  # a robot the world calls "it"
    ("Pip's eyes lit up as it took a step closer. She smiled.", []),  # "she": Lin, the only one who takes it
    ("Pip smiled. She had always been a friend to Lin Xiaoyu.", ["Pip: she"]),  # not Lin: Lin is named after
    ("Pip looked at Lin Xiaoyu as she laughed.", []),  # two of the cast: "she" may be Lin's
    ("Lin Xiaoyu stood there as he waved.", []),  # none of the cast is "he": foreign_pronouns counts that
    ('Pip said, "She is late," and waited.', []),  # quoted speech is the speaker's
    ("Bo smiled as he left.", []),  # Bo's pronoun is not known
])
def test_a_sentence_about_one_of_the_cast_holds_a_pronoun_to_them(text, slips):
    cast = [Character(id="lin", name="Lin Xiaoyu", description="She writes the weather."),
            Character(id="pip", name="Pip", pronouns="it/its"), Character(id="bo", name="Bo")]
    assert pronoun_slips(text, cast) == slips
