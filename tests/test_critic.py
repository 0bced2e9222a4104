"""The critic: what it rewards and punishes in a candidate, and the script guard a world gets."""

from __future__ import annotations

import pytest

from metagen.config import GenerationConfig
from metagen.critic import NARRATION_WEIGHTS, WEIGHTS, Verdict, best_index, critic_context, judge, longest_shared_run
from metagen.grounding import HE_WORDS, SHE_WORDS, foreign_pronouns, pronoun_of, world_prose, writing_guard
from metagen.kinship import invented_relatives, relation_vocabulary
from metagen.prompts import SceneRequest, StoryRequest, resolve_request
from metagen.text import words_of
from metagen.world import load_world

from conftest import FAMILY_WORLD, write_world

WORLD = """\
world: {id: harbourtown, name: Harbourtown, summary: A fishing town on a cold grey coast.}
style: {avoided_words: [suddenly]}
locations:
  - id: docks
    name: The Old Docks
    description: Wooden piers where the fishing boats tie up.
    sights: [nets hanging like grey curtains]
    smells: [tar and fish]
characters:
  - {id: mira, name: Mira Okafor, role: salvage diver, traits: [brave], description: She dives for what the sea keeps.,
     goals: [raise her father's boat]}
  - {id: jonas, name: Jonas, role: crane technician, description: He fixes the cranes at night.}
  - {id: bai, name: 白云, role: a wandering swordsman who came by sea}
  - {id: tock, name: Tock, pronouns: it/its, role: harbour robot, description: It counts the crates.}
  - {id: wren, name: Wren, pronouns: They/Them, role: net mender}
lore:
  - {id: storm, keys: [docks], text: The great storm of the last winter broke half the piers.}
content:
  banned_words: [dragon]
"""


@pytest.fixture
def world(tmp_path):
    return load_world(write_world(tmp_path, WORLD, "w.yaml"))


def context_for(world, request, prompt_text="", **kw):
    cfg = GenerationConfig(banned=("dragon",), **writing_guard(world))
    return critic_context(world, resolve_request(world, request), prompt_text, cfg, **kw)


def test_narration_weighs_fluency_over_stock_phrases_as_readers_did(world):
    context = context_for(world, SceneRequest(location="docks", characters=("mira",)))
    stock = "Mira stands on the Old Docks, a place of grey nets."
    fluent_with_stock = dict(logprob=-10.0, tokens=10)  # a mean of -1.0 a token
    halting = dict(logprob=-15.0, tokens=10)  # -1.5 a token
    for weights in (WEIGHTS, NARRATION_WEIGHTS):
        verdict = judge(stock, context, weights=weights, **fluent_with_stock)
        assert verdict.findings["stock"] == 1.0
        assert verdict.score == pytest.approx(sum(weights[k] * v for k, v in verdict.findings.items()))
    plain = "Mira stands on the Old Docks among grey nets."
    # a spoken line's critic still prefers the plain wording though the model found it less likely ...
    assert judge(plain, context, **halting).score > judge(stock, context, **fluent_with_stock).score
    # ... narration's (fitted to readers' picks) keeps the fluent one: its stock phrase cost readers nothing
    assert (judge(stock, context, weights=NARRATION_WEIGHTS, **fluent_with_stock).score
            > judge(plain, context, weights=NARRATION_WEIGHTS, **halting).score)


def test_writing_guard_takes_the_prose_script_and_exempts_names_in_others(world):
    guard = writing_guard(world)
    assert guard == {"scripts": ("latin",), "script_exempt": ("白云",)}
    assert all("白云" not in text for text in world_prose(world))


def test_names_and_details_in_the_models_words_score_higher(world):
    context = context_for(world, SceneRequest(location="docks", characters=("mira",)))
    grounded = judge("Mira stands on the Old Docks among the nets; the tar smells sharp.", context)
    vague = judge("Someone stands somewhere. It is a place.", context)
    assert grounded.findings["names"] == 1.0 and vague.findings["names"] == 0.0
    assert grounded.findings["details"] > vague.findings["details"]
    assert grounded.score > vague.score


@pytest.mark.parametrize("bad, finding", [
    ("Mira meets Captain Harrowgate at the Old Docks.", "invented"),
    ("Mira at the Old Docks said 公司 twice.", "garbled"),
    ("MaÃ¯e at the Old Docks.", "garbled"),
    ("Mira at the Old Docks saw a dragon.", "banned"),
    ("Mira at the Old Docks suddenly ran.", "banned"),
    ("Mira at the Old Docks. ## Chapter <b>", "markup"),
    ("Mira at the Old Docks. In your own words: it is wet.", "echo"),
    ("I will describe the Old Docks in three sentences. Mira waits.", "echo"),
    ("Mira walked to the Old Docks and then", "unfinished"),
    ("Mira walked to the Old Docks with her husband.", "relatives"),
    ("Mira walked to the Old Docks where the king waited.", "ranks"),
    ("Mira found the Old Docks a marvel of modern engineering.", "stock"),
    ("The Old Docks were a place of great beauty for Mira.", "stock"),
    ("Mira walked to the Old Docks, her eyes shining with tears.", "stock"),
    ("Mira walked to the Old Docks with a mixture of sadness and relief.", "stock"),
])
def test_each_defect_costs_score(world, bad, finding):
    context = context_for(world, SceneRequest(location="docks", characters=("mira",)))
    clean = judge("Mira walked to the Old Docks.", context)
    verdict = judge(bad, context)
    assert verdict.findings[finding] > 0 and verdict.score < clean.score


def test_a_relative_is_made_up_only_when_the_world_knows_no_one_of_that_relation(world):
    # the world gives Mira a father: a parent or a child may be spoken of, a sibling or spouse may not
    assert invented_relatives("Her mother's nets and her father's boat.", relation_vocabulary(world)) == []
    assert invented_relatives("Two brothers, their wives and an aunt.", relation_vocabulary(world)) == [
        "brother", "wife", "aunt"]
    context = context_for(world, SceneRequest(location="docks", characters=("mira",)))
    assert "relatives" not in judge("Mira walked to the Old Docks, thinking of her father.", context).findings


def test_names_of_the_world_in_their_own_script_are_not_garbled(world):
    context = context_for(world, StoryRequest(characters=("bai",)))
    assert judge("白云 stepped off the boat.", context).findings["garbled"] == 0


def test_copying_the_prompt_is_punished_using_its_facts_is_not(world):
    prompt = "Sights: nets hanging like grey curtains on the wooden piers where the fishing boats tie up."
    context = context_for(world, SceneRequest(location="docks"), prompt)
    copied = judge("The Old Docks: nets hanging like grey curtains on the wooden piers where the fishing boats tie up.",
                   context)
    used = judge("At the Old Docks grey nets hang from the piers and the fishing boats knock together.", context)
    assert copied.findings["copied"] > 0 and used.findings["copied"] == 0
    assert used.score > copied.score


def test_longest_shared_run_counts_words():
    source = "a b c d e f g h".split()
    assert longest_shared_run("x a b c d e f g y".split(), source) == 7
    assert longest_shared_run("a b c d e x".split(), source) == 0


def test_a_dialogue_line_that_gets_the_kin_backwards_loses(world):
    from dataclasses import replace

    context = replace(context_for(world, StoryRequest()), kin_side="parent")
    wrong = judge("Ah, Mother! The nets are torn.", context)
    right = judge("Ah, daughter! The nets are torn.", context)
    assert wrong.findings["kin"] == 1.0 and "kin" not in right.findings
    assert right.score - wrong.score == pytest.approx(2.0, abs=0.01)
    assert "kin" not in judge("Ah, Mother! The nets are torn.", context_for(world, StoryRequest())).findings


def test_a_family_word_against_the_worlds_ties_loses(tmp_path):
    from dataclasses import replace

    world = load_world(write_world(tmp_path, FAMILY_WORLD))
    context = replace(context_for(world, StoryRequest()), speaker_id="ada", listener_id="dee")
    wrong = judge("Ah! My sister Dee is here.", context)
    right = judge("Ah! My daughter Dee is here.", context)
    assert wrong.findings["ties"] == 1.0 and "ties" not in right.findings
    assert right.score - wrong.score == pytest.approx(2.0, abs=0.01)
    narration = context_for(world, StoryRequest())  # no speaker: Dee need only be someone's sister
    assert judge("Ada smiled at her sister, Dee.", narration).findings["ties"] == 1.0
    story = context_for(world, StoryRequest(characters=("ada", "dee")), narrator_person="third")
    assert judge("Ada knelt before her mother.", story).findings["ties"] == 1.0  # Ada is the mother
    assert "ties" not in judge("Dee knelt before her mother.", story).findings
    assert "ties" not in judge("Ada knelt before her mother.", narration).findings  # a spoken line: not narration


def test_a_line_whose_speaker_names_themselves_loses(world):
    from dataclasses import replace

    context = replace(context_for(world, StoryRequest()), speaker_forms=("Pip",))
    wrong = judge("Hi Pip! The nets are torn.", context)
    right = judge("I'm Pip. The nets are torn.", context)
    assert wrong.findings["self"] == 1.0 and "self" not in right.findings
    assert "self" not in judge("Hi Pip! The nets are torn.", context_for(world, StoryRequest())).findings


def test_best_index_prefers_the_first_of_equals():
    from metagen.critic import Verdict

    assert best_index([Verdict({}, 1.0), Verdict({}, 2.0), Verdict({}, 2.0)]) == 1
    # one text in two batch rows: float noise must not pick the later row (batch size would change the choice)
    assert best_index([Verdict({}, -2.0517829179763796), Verdict({}, -8.7), Verdict({}, -2.051782560348511)]) == 0
    assert best_index([Verdict({}, -2.0517), Verdict({}, -2.0510)]) == 1


def test_first_sentences_keeps_whole_sentences_and_the_leading_space():
    from metagen.text import first_sentences

    assert first_sentences(" in the fog. Cranes turn. Gulls cry. Ships wait. Horns blow.", 4) == \
        " in the fog. Cranes turn. Gulls cry. Ships wait."
    assert first_sentences("One. Two.\n\nThree.", 4) == "One. Two."
    assert first_sentences("One whole. And a cut-off", 4) == "One whole."
    assert first_sentences("no end at all ", 4) == "no end at all"


def test_a_characters_pronoun_comes_from_what_the_world_says_of_them(world):
    mira, jonas, bai = (world.character(i) for i in ("mira", "jonas", "bai"))
    assert (pronoun_of(mira), pronoun_of(jonas), pronoun_of(bai)) == ("she", "he", "")  # "her father" is not Mira
    assert foreign_pronouns([mira]) == HE_WORDS and foreign_pronouns([mira, jonas]) == frozenset()
    assert foreign_pronouns([mira, bai]) == frozenset() and foreign_pronouns([]) == frozenset()  # one not known


def test_a_declared_pronoun_wins_and_holds_a_mixed_cast_to_its_pronouns(world):
    mira, jonas, tock, wren = (world.character(i) for i in ("mira", "jonas", "tock", "wren"))
    assert (pronoun_of(tock), pronoun_of(wren)) == ("it", "they")  # declared; any case
    assert foreign_pronouns([mira, tock]) == HE_WORDS and foreign_pronouns([jonas, tock]) == SHE_WORDS
    assert foreign_pronouns([tock, wren]) == HE_WORDS | SHE_WORDS
    context = context_for(world, StoryRequest(characters=("mira", "tock")), narrator_person="third")
    right = judge("Mira walked to the Old Docks. She tied her rope while Tock counted its crates.", context)
    wrong = judge("Mira walked to the Old Docks. She tied her rope while Tock counted his crates.", context)
    assert right.findings["pronoun"] == 0 and wrong.findings["pronoun"] == 1 and wrong.score < right.score
    slipped = judge("Mira walked to the Old Docks. Tock smiled as she counted its crates.", context)
    assert slipped.findings["pronoun"] == 1  # the sentence is Tock's: its "she" is Tock's too


def test_narration_giving_a_woman_the_wrong_pronoun_costs_score(world):
    context = context_for(world, StoryRequest(characters=("mira",), location="docks"), narrator_person="third")
    right = judge("Mira walked to the Old Docks. She tied her rope.", context)
    wrong = judge("Mira walked to the Old Docks. He tied his rope.", context)
    quoted = judge('Mira walked to the Old Docks. "He left," she said.', context)
    assert right.findings["pronoun"] == 0 and quoted.findings["pronoun"] == 0
    assert wrong.findings["pronoun"] == 2 and wrong.score < right.score
    mixed = context_for(world, StoryRequest(characters=("mira", "jonas")), narrator_person="third")
    assert "pronoun" not in judge("He tied his rope.", mixed).findings


def test_narration_naming_one_of_the_cast_twice_in_a_sentence_costs_score(world):
    context = context_for(world, StoryRequest(characters=("mira", "jonas")), narrator_person="third")
    right = judge("Mira walked to the Old Docks. Jonas looked up at her.", context)
    wrong = judge("Mira walked to the Old Docks. Mira looked up at Mira.", context)
    assert "twice" not in right.findings and wrong.findings["twice"] == 1 and wrong.score < right.score
    spoken = context_for(world, StoryRequest(characters=("mira", "jonas")))  # no narrator: no cast to hold
    assert "twice" not in judge("Mira looked up at Mira.", spoken).findings


def test_a_last_paragraph_closing_on_its_finishing_image_scores_higher(world):
    from dataclasses import replace

    context = replace(context_for(world, StoryRequest(characters=("mira",), location="docks"), narrator_person="third"),
                      finish=frozenset({"nets", "hanging", "curtains"}))
    closing = judge("Mira walked to the Old Docks. She looked back once. Nets were hanging there like curtains.", context)
    early = judge("Nets were hanging like curtains. Mira walked to the Old Docks. She looked back once. She left.", context)
    assert closing.findings["finish"] == 1.0 and early.findings["finish"] == 0.0 and closing.score > early.score
    assert "finish" not in judge("Mira left.", replace(context, finish=frozenset())).findings  # other beats


def test_narration_in_the_tense_not_asked_for_costs_score(world):
    from dataclasses import replace

    context = replace(context_for(world, StoryRequest(characters=("mira",), location="docks"), narrator_person="third"),
                      tense="present")
    right = judge("Mira walks to the Old Docks. She ties her rope and waits.", context)
    wrong = judge("Mira walked to the Old Docks. She tied her rope and waited.", context)
    quoted = judge('Mira walks to the Old Docks. "I waited, I looked, I left," she says.', context)
    assert "tense" not in right.findings and "tense" not in quoted.findings  # speech keeps its own tense
    assert wrong.findings["tense"] == 1 and wrong.score < right.score
    unasked = replace(context, tense="")
    assert "tense" not in judge("Mira walked to the Old Docks.", unasked).findings


@pytest.mark.parametrize("text", ["Here is the next paragraph: Ada walked home.", "Ada walked home. The End.",
                                  "Ada: I am going home.\nBo: Then go.", "In the opening paragraph, Ada walks home.",
                                  "Ada walked home. Write a 3-4 sentence ending.", "The last sentence is a refrain.",
                                  "Traits: brisk; sceptical; warm; asks direct questions.",
                                  "I am tired. Speaks: quick and bright. Wants: to go home."])
def test_text_about_the_text_and_scripts_count_as_echoes(text):
    from metagen.critic import CriticContext, judge

    context = CriticContext(names=(), details=frozenset(), prompt_words=(), vocabulary=frozenset({"ada", "bo"}),
                            banned=(), scripts=("any",), exempt=())
    assert judge(text, context).findings["echo"] >= 1
    assert judge("Ada walked to the end of the lane, and the end came quietly.", context).findings["echo"] == 0
    assert judge("The Old Mill: a wheel, a stream and Ada waiting.", context).findings["echo"] == 0  # a label
    assert judge("Ada kept one thing back, the secret: she never left.", context).findings["echo"] == 0


def test_a_third_person_narrator_saying_thank_you_is_not_in_the_second_person(world):
    context = context_for(world, StoryRequest(characters=("mira",), location="docks"), narrator_person="third")
    assert judge("Mira nodded, the nearest she came to a thank you. She tied her rope.", context).findings["voice"] == 0
    assert judge("Mira nodded. You could see her tie the rope.", context).findings["voice"] == 1


def test_a_characters_name_spelled_wrongly_counts_as_invented_wherever_it_stands(tmp_path):
    from metagen.grounding import misspelled_names, name_spellings, unknown_names, world_vocabulary

    world = load_world(write_world(tmp_path, """\
world: {id: mere, name: The Mere}
characters:
  - {id: maelle, name: Sister Maëlle, role: healer}
  - {id: ysolde, name: Queen Ysolde Vær}
  - {id: quill, name: Quill, role: a clerk who writes with a quill}
"""))
    spellings, vocabulary = name_spellings(world), world_vocabulary(world)
    assert spellings == {"Maëlle", "Ysolde", "Quill"}  # titles and short words are not checked
    text = "Málle's eyes shone. Ysoldé sat. Maelle and Ysolde laughed. Quills lay about. MAËLLE!"
    assert misspelled_names(text, spellings, vocabulary) == ["Málle", "Ysoldé"]
    assert unknown_names(text, vocabulary, spellings) == ["Málle", "Ysoldé"]  # each once, sentence starts included
    assert unknown_names(text, vocabulary) == []  # without the spellings: only made-up words mid-sentence
    context = critic_context(world, resolve_request(world, StoryRequest(characters=("maelle",))), "",
                             GenerationConfig())
    assert judge("Málle smiled at the fire.", context).findings["invented"] == 1
    assert judge("Maëlle smiled at the fire.", context).findings["invented"] == 0


def test_a_paragraph_saying_an_earlier_one_again_costs_score(world):
    from dataclasses import replace

    from metagen.text import ngrams, words_of

    context = context_for(world, StoryRequest(characters=("mira",)), narrator_person="third")
    before = "The fire in the great hall burned low while Mira mended her nets."
    told = replace(context, earlier=frozenset(ngrams(words_of(before), 4)))
    again = judge("Mira looked up. The fire in the great hall burned low again.", told)
    fresh = judge("Mira looked up. Rain drummed on the roof of the net shed.", told)
    assert again.findings["restated"] == 5 and "restated" not in fresh.findings
    assert again.score < fresh.score
    assert "restated" not in judge("Mira looked up. The fire in the great hall burned low again.", context).findings


@pytest.mark.parametrize("finding, worse, better, count", [
    ("misplaced", "The Old Docks smelled of tar, hanging like grey curtains over the water.",
     "The Old Docks smelled of tar. The nets, hanging like grey curtains, dripped on the piers.", 1.0),
    ("misplaced", "The Old Docks rang with nets and tar.", "The Old Docks rang with gulls crying over the water.", 1.0),
    # a sound verb with what another sense perceives, in words no fact of the place uses (round forty-one)
    ("misplaced", "The Old Docks rang with a warm, golden light.", "The Old Docks rang with a low, steady hum.", 1.0),
    ("misplaced", "The Old Docks smelled of music and smoke.", "The Old Docks smelled of a sharp, briny scent.", 1.0),
    ("listed", "The Old Docks smelled of tar; nets like grey curtains; boats; gulls.",
     "The Old Docks smelled of tar; nets hung like grey curtains over the boats.", 2.0),
])
def test_a_scene_that_pins_or_lists_its_places_facts_loses(world, finding, worse, better, count):
    context = context_for(world, SceneRequest(location="docks"), target_words=10)
    pinned, kept = judge(worse, context), judge(better, context)
    assert pinned.findings[finding] == count and finding not in kept.findings
    assert pinned.score < kept.score


def test_misplaced_facts_reads_modifiers_and_what_owns_them(world):
    from metagen.critic import misplaced_facts, place_facts

    facts = place_facts(world.location("docks"))
    # the description's first sentence is about the place: its name owns it
    assert misplaced_facts("The Old Docks smelled of tar, where the fishing boats tie up.", facts) == []
    assert misplaced_facts("The sea smelled of tar, where the fishing boats tie up.", facts) == ["where the fishing boats"]
    # a fact's own head words, in any form of be, have and do, in the same sentence
    assert misplaced_facts("Nets were hanging like grey curtains; gulls cried.", facts) == []
    assert misplaced_facts("Gulls cried. Tar was hanging like grey curtains.", facts) == ["hanging like grey curtains"]
    # a run that opens on the fact's head is the fact said whole, not misplaced; nor is a fact's list
    assert misplaced_facts("Tar and fish, nets hanging like grey curtains.", facts) == []
    assert misplaced_facts("It smelled of tar and fish.", facts) == []


def test_a_year_the_world_never_writes_is_a_finding(tmp_path):
    from metagen.grounding import off_world_dates, world_dates

    world = load_world(write_world(tmp_path, """\
world: {id: port, name: The Port, era: "2041, after the Long Wall"}
characters: [{id: mira, name: Mira}]
locations: [{id: docks, name: Old Docks}]
"""))
    assert world_dates(world) == {"2041"}
    text = ("In the year 1875 the 2041 quays opened; by the 1980s and the 21st century, 1,200 men and 12000 crates; "
            "in the year 4035 or 500 AD, 20 ads.")
    assert off_world_dates(text, world_dates(world)) == ["year 1875", "1980s", "21st century", "year 4035", "500 AD"]
    context = context_for(world, StoryRequest(characters=("mira",), location="docks"))
    assert judge("Mira reached the Old Docks in 1875.", context).findings["dated"] == 1
    assert "dated" not in judge("Mira reached the Old Docks in 2041.", context).findings


def test_a_name_said_again_is_not_copied_text():
    from metagen.critic import NAME_GAP, longest_shared_run, names_out
    prompt = names_out(words_of("Describe the Salt Pans of Oru Kessam in three sentences."), ["the Salt Pans of Oru Kessam"])
    assert prompt == ("describe", NAME_GAP, "in", "three", "sentences")
    assert longest_shared_run(words_of("The Salt Pans of Oru Kessam lay white under the sun."), prompt) == 0
    copied = names_out(words_of("Mira mends the nets on the long grey quay at dawn."), ["Mira"])
    assert longest_shared_run(words_of("Then she mends the nets on the long grey quay."), copied) == 8



def test_a_verdicts_record_leaves_out_findings_of_nothing():
    verdict = Verdict(findings={"names": 0.6666, "invented": 0.0, "copied": 0.0001, "logprob": -1.23456}, score=0.4594)
    assert verdict.to_dict() == {"score": 0.459, "names": 0.667, "logprob": -1.235}
