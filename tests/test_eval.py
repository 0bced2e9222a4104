"""metagen.eval and `metagen eval`: metrics on hand-made texts, the grid, the report, the CLI end to end
with the tiny random model, and one tiny grid on the real model (marked real_model)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from metagen import eval as E
from metagen.cli import app
from metagen.errors import ConfigError
from metagen.world import load_world

from conftest import FAMILY_WORLD, write_world

ROOT = Path(__file__).resolve().parent.parent
NEXUS = ROOT / "worlds" / "nexus-hub.yaml"

SMALL_WORLD = """\
world:
  id: smallton
  name: Smallton
summary: unused
"""

WORLD = """\
world:
  id: smallton
  name: Smallton
  summary: A fishing village where the Tollmaster counts boats.
style:
  length: short
  length_words: {short: 20, medium: 40, long: 80}
locations:
  - id: well
    name: The Old Well
    description: A stone well.
  - id: mill
    name: Mill Yard
characters:
  - id: ada
    name: Queen Ada Vær
    aliases: [the Miller]
    sample_lines: ["Flour again."]
  - id: bo
    name: Bo Lee
    sample_lines: ["Tide waits for nobody.", "The nets will hold until the spring tide comes in."]
  - id: cy
    name: Cyrus
    pronouns: he/him
  - id: dee
    name: Sister Dee
lore:
  - id: flood
    keys: [well]
    text: The well flooded in the year of Greyrain.
content:
  banned_words: [dragon, OK]
"""


@pytest.fixture
def world(tmp_path):
    return load_world(write_world(tmp_path, WORLD, "smallton.yaml"))


@pytest.fixture(scope="session")
def long_gguf(tmp_path_factory) -> Path:
    """The tiny test model with a 2048-token window: its byte-level vocabulary needs room for prompts."""
    from conftest import write_tiny_gguf

    return write_tiny_gguf(tmp_path_factory.mktemp("long") / "long.gguf", max_seq_len=2048)


@pytest.fixture(scope="session")
def long_generator(long_gguf):
    from conftest import load_tiny_generator

    return load_tiny_generator(long_gguf)


def output(kind, text, request, turns=(), system="metagen", seed=1, tokens=10, finish="eos"):
    return E.Output("smallton", kind, system, {"kind": kind, **request}, seed, text, tokens, finish, list(turns))


# ----------------------------------------------------------------------------- names and grounding


def test_character_forms_skip_titles_and_short_first_words(world):
    ada, bo, cy, dee = world.characters
    assert E.character_forms(ada) == ("Queen Ada Vær", "the Miller", "Ada", "Queen Vær")
    assert E.character_forms(bo) == ("Bo Lee",)  # "Bo" has fewer than 3 letters
    assert E.character_forms(cy) == ("Cyrus",)
    assert E.character_forms(dee) == ("Sister Dee", "Dee")
    assert E.location_forms(world.locations[0]) == ("The Old Well", "Old Well")


@pytest.mark.parametrize("text, named", [
    ("Ada walked home.", True),
    ("ada walked home.", True),
    ("The MILLER laughed.", True),
    ("Queen Ada Vaer waved.", True),  # accents folded
    ("Adamant stone.", False),  # whole words only
    ("Queen Adela waved.", False),
])
def test_names_any(world, text, named):
    assert E.names_any(text, E.character_forms(world.characters[0])) is named


def test_fold_spells_letters_plainly():
    assert E.fold("Søren Ní Bhriain’s") == "soren ni bhriain's"


def test_grounding_needs_every_character_and_the_place(world):
    ref = E.world_reference(world)
    request = {"characters": ["ada", "bo"], "location": "well", "premise": None, "length": "short"}
    ok = E.score(world, output("story", "The Miller met Bo Lee at the old well.", request), ref)
    assert ok.missing == []
    miss = E.score(world, output("story", "Ada met Bo at the well.", request), ref)
    assert miss.missing == ["Bo Lee", "The Old Well"]


def test_dialogue_grounding_counts_speakers_and_cast_turns(world):
    ref = E.world_reference(world)
    request = {"characters": ["ada", "cy"], "location": None, "topic": None, "turns": 3}
    turns = [("Ada", "Hello, Cyrus."), ("Narrator", "They sat."), ("Ada", "I hear Zorbo is late.")]
    scored = E.score(world, output("dialogue", "...", request, turns, system="baseline"), ref)
    assert scored.cast_turns == 2
    assert scored.missing == []  # Cyrus is named in a line though he never speaks
    assert scored.unknown == [[], [], ["Zorbo"]]
    summary = E.summarize([scored], seconds=1.0)
    assert summary["speakers_from_cast"] == pytest.approx(2 / 3)
    assert summary["unknown_names"] == pytest.approx(1 / 3)
    assert summary["turns"] == 3 and summary["no_turns"] == 0


def test_dialogue_grounding_in_the_models_words_needs_one_name_in_the_lines(world):
    ref = E.world_reference(world)
    request = {"characters": ["ada", "bo"], "location": None, "topic": None, "turns": 2}
    silent = [("Queen Ada Vær", "Good morning."), ("Bo Lee", "Morning to you.")]
    scored = E.score(world, output("dialogue", "...", request, silent), ref)
    assert scored.missing == [] and scored.grounded_written is False  # both speak; no line names anyone
    named = [("Queen Ada Vær", "Good morning, Bo Lee."), ("Bo Lee", "Morning to you.")]
    assert E.score(world, output("dialogue", "...", request, named), ref).grounded_written is True
    summary = E.summarize([scored, E.score(world, output("dialogue", "...", request, named), ref)], 1.0)
    assert summary["grounding"] == 1.0 and summary["grounding_model"] == 0.5


def test_invented_names_per_output_and_per_line(world):
    ref = E.world_reference(world)
    request = {"characters": ["ada", "bo"], "location": None, "topic": None, "turns": 2}
    turns = [("Bo Lee", "I saw Zorbo."), ("Queen Ada Vær", "Yes."), ("Bo Lee", "Fine."), ("Queen Ada Vær", "No.")]
    outs = [E.score(world, output("dialogue", "...", request, turns), ref),
            E.score(world, output("dialogue", "...", request, turns[1:]), ref)]
    summary = E.summarize(outs, 2.0)
    assert summary["invented_lines"] == summary["unknown_names"] == pytest.approx(1 / 7)
    assert summary["invented_outputs"] == 0.5
    assert summary["seconds_per_piece"] == 1.0


def test_a_cast_name_spelled_wrongly_is_an_invented_name(world):
    ref = E.world_reference(world)
    request = {"characters": ["cy"], "location": None, "premise": None, "length": "short"}
    assert E.score(world, output("story", "Cyrys nodded. Cyrus left.", request), ref).unknown == [["Cyrys"]]
    assert E.score(world, output("story", "Cyrus nodded.", request), ref).unknown == [[]]


def test_a_year_the_world_never_writes_is_an_off_world_date(world):
    ref = E.world_reference(world)
    request = {"characters": ["cy"], "location": None, "premise": None, "length": "short"}
    outs = [E.score(world, output("story", "In the year 1875 Cyrus left.", request), ref),
            E.score(world, output("story", "Cyrus left at dawn.", request), ref)]
    assert outs[0].dates == ["year 1875"] and outs[1].dates == []
    assert E.summarize(outs, 1.0)["off_world_dates"] == 0.5


def test_the_worlds_prose_copied_in_another_tense_is_copied():
    from metagen.measure import copies_prose
    from metagen.text import words_of
    prose = tuple(words_of("The great hall is lit by one fire that has burned since the Starfall."))
    assert copies_prose("Her great hall was lit by one fire that had burned since the Starfall.", prose)
    assert not copies_prose("One fire had burned in the hall since the night the star fell.", prose)


def test_a_rank_the_world_never_writes_is_a_made_up_rank(world):
    ref = E.world_reference(world)
    request = {"characters": ["cy"], "location": None, "premise": None, "length": "short"}
    outs = [E.score(world, output("story", "Cyrus bowed to the king and the gods.", request), ref),
            E.score(world, output("story", "Cyrus bowed to the queen. King Orm waved.", request), ref)]
    assert outs[0].ranks == ["king", "god"] and outs[1].ranks == []  # the world has a Queen; "King Orm" is a name
    assert E.summarize(outs, 1.0)["invented_ranks"] == 0.5


def test_an_unnamed_person_brought_into_a_story_is_a_stranger(world):
    ref = E.world_reference(world)
    request = {"characters": ["cy"], "location": None, "premise": None, "length": "short"}
    outs = [E.score(world, output("story", "Cyrus waited. A hooded figure stood at the door.", request), ref),
            E.score(world, output("story", "Cyrus, a tall man, waited by the door.", request), ref)]
    assert outs[0].strangers == ["a hooded figure"] and outs[1].strangers == []
    assert E.summarize(outs, 1.0)["strangers"] == 0.5
    scene = E.score(world, output("scene", "A fisherman mends his nets.", {"location": "well"}), ref)
    assert scene.strangers == [] and E.summarize([scene], 1.0)["strangers"] is None  # scenes may have one


def test_family_words_against_the_worlds_ties_are_wrong_kin(tmp_path):
    world = load_world(write_world(tmp_path, FAMILY_WORLD))
    ref = E.world_reference(world)
    request = {"characters": ["ada", "dee"], "location": None, "topic": None, "turns": 2}
    mixed_up = [("Queen Ada", "Ah! My sister Dee."), ("Sister Dee", "Your mother sends word.")]
    right = [("Queen Ada", "Ah! My daughter Dee."), ("Sister Dee", "Mother, listen.")]
    outs = [E.score(world, output("dialogue", "...", request, turns), ref) for turns in (mixed_up, right)]
    assert outs[0].kin == ["My sister", "Your mother"] and outs[1].kin == []
    story = {"characters": ["ada"], "location": None, "premise": None, "length": "short"}
    outs.append(E.score(world, output("story", "Ada turned to her sister, Dee.", story), ref))
    assert outs[2].kin == ["her sister"]
    assert E.summarize(outs[:2], 1.0)["wrong_kin"] == 0.5


def test_a_story_told_in_the_present_when_the_past_is_asked_is_in_the_wrong_tense(world):
    ref = E.world_reference(world)
    request = {"characters": ["cy"], "location": None, "premise": None, "length": "short"}
    outs = [E.score(world, output("story", "Cyrus is at the gate. He waits and the bell rings.", request), ref),
            E.score(world, output("story", "Cyrus was at the gate. He waited.", request), ref)]
    assert [o.wrong_tense for o in outs] == [True, False]
    assert E.summarize(outs, 1.0)["wrong_tense"] == 0.5


def test_a_past_story_with_one_sentence_in_the_present_slips_though_its_tense_is_right(world):
    ref = E.world_reference(world)
    request = {"characters": ["cy"], "location": None, "premise": None, "length": "short"}
    slipping = "Cyrus was at the gate. He waited for an hour. The gate is old and rusted. He turned away."
    quoted = 'Cyrus was at the gate. "It is late," he said. He turned away.'
    outs = [E.score(world, output("story", text, request), ref) for text in (slipping, quoted)]
    assert [o.wrong_tense for o in outs] == [False, False]  # the whole leans to the past either way
    assert [o.tense_slips for o in outs] == [1, 0]  # quoted speech keeps its speaker's tense
    assert E.summarize(outs, 1.0)["tense_slips"] == 0.5


def test_a_story_that_calls_its_cast_by_a_pronoun_none_of_them_takes_counts(world):
    ref = E.world_reference(world)
    request = {"characters": ["cy"], "location": None, "premise": None, "length": "short"}
    outs = [E.score(world, output("story", "Cyrus was at the gate. He rang his bell.", request), ref),
            E.score(world, output("story", 'Cyrus was at the gate. "She left," he said.', request), ref),
            E.score(world, output("story", "Cyrus was at the gate. She gave him her bell.", request), ref)]
    assert [o.pronouns for o in outs] == [[], [], ["she", "her"]]  # quoted speech aside
    assert E.summarize(outs, 1.0)["wrong_pronoun"] == 1 / 3
    # a cast of both, or one of whom has no known pronoun, is not judged
    for cast in (["cy", "dee"], ["cy", "bo"]):
        text = "Cyrus was at the gate. She gave him her bell."
        assert E.score(world, output("story", text, {**request, "characters": cast}), ref).pronouns == []


def test_a_scene_with_a_stock_phrase_the_world_never_writes_counts(world):
    ref = E.world_reference(world)
    request = {"characters": ["cy"], "location": None, "premise": None, "length": "short"}
    outs = [E.score(world, output("story", "Cyrus was at the gate, a marvel of old stone.", request), ref),
            E.score(world, output("story", "Cyrus was at the gate. Marvellous, he thought.", request), ref)]
    assert [o.stock for o in outs] == [["marvel"], []]  # whole words only
    assert E.summarize(outs, 1.0)["stock"] == 0.5


@pytest.mark.parametrize("speaker, line, copied", [
    ("Bo Lee", "Well, tide waits for nobody, Ada.", True),  # a sample line whole
    ("Bo Lee", "The nets will hold until the spring, I promise.", True),  # 7 words of a sample line in a row
    ("Bo Lee", "The nets will hold, I promise.", False),  # 4 words
    ("Queen Ada Vær", "Tide waits for nobody.", False),  # Bo's line, not Ada's
    ("Queen Ada Vær", "Flour again.", False),  # her own sample line, but too short to count
    ("Narrator", "Tide waits for nobody.", True),  # a speaker from outside the cast: the cast's lines
])
def test_dialogue_lines_copied_from_the_speakers_sample_lines(world, speaker, line, copied):
    request = {"characters": ["ada", "bo"], "location": None, "topic": None, "turns": 2}
    scored = E.score(world, output("dialogue", "...", request, [(speaker, line), ("Bo Lee", "Hm.")]),
                     E.world_reference(world))
    assert scored.copied == [copied, False]
    assert E.summarize([scored], 1.0)["copied"] == (0.5 if copied else 0.0)


def test_a_garbled_dialogue_is_counted_even_without_turns(world):
    request = {"characters": ["ada", "bo"], "location": None, "topic": None, "turns": 2}
    scored = E.score(world, output("dialogue", "你好世界。再见。", request, system="baseline"), E.world_reference(world))
    assert scored.turns == [] and scored.garbled is True


def test_story_copied_from_the_world_prose_counts_eight_words_after_the_opening(world):
    ref = E.world_reference(world)
    request = {"characters": ["ada"], "location": "well", "premise": None, "length": "short"}
    copied = "In the Old Well, Queen Ada Vær said the well flooded in the year of Greyrain."
    seven = "In the Old Well, Queen Ada Vær said the well flooded in the year of rain."
    scored = [E.score(world, dataclasses.replace(output("story", text, request),
                                                 opening="In the Old Well, Queen Ada Vær"), ref)
              for text in (copied, seven)]
    assert [o.copied for o in scored] == [[True], [False]]
    assert E.summarize(scored, 1.0)["copied"] == 0.5


@pytest.mark.parametrize("text, settings, garbled", [
    ("Ada walked home.", None, False),
    ("Ada walked home. 你好世界", None, True),  # another script than the world's prose
    ("Ada walked home. 你好世界", {"scripts": ["latin", "cjk"]}, False),  # the piece's guard allowed it
    ("Ada walked home. 你好世界", {"scripts": ["any"]}, True),  # guard off: held to the world's scripts
    ("Ada met 白云 at home.", {"scripts": ["latin"], "script_exempt": ["白云"]}, False),  # an exempt name
    ("MaÃ¯e walked home.", None, True),  # mojibake
])
def test_garbled_outputs_are_counted(world, text, settings, garbled):
    request = {"characters": ["ada"], "location": None, "premise": None, "length": "short"}
    scored = E.score(world, output("story", text, request), E.world_reference(world), settings)
    assert scored.garbled is garbled
    assert E.summarize([scored], 1.0)["garbled"] == int(garbled)


# ----------------------------------------------------------------------------- other metrics


def test_repetition_counts_repeated_four_grams():
    assert E.repetition("a b c d a b c d") == pytest.approx(1 - 4 / 5)
    assert E.repetition("one two three four five") == 0.0
    assert E.repetition("too short") == 0.0
    assert E.repetition("Go on go on go on go on") > 0.5


def test_distinct_2_over_several_texts():
    assert E.distinct_n(["a b c", "a b d"]) == pytest.approx(3 / 4)
    assert E.distinct_n(["same words here", "same words here"]) == pytest.approx(2 / 4)
    assert E.distinct_n(["one", ""]) is None


@pytest.mark.parametrize("text, hits", [
    ("A dragon! Dragons? DRAGON.", 2),
    ("ok, okay, OK then", 2),
    ("a dragonfly and a book", 0),
])
def test_banned_hits_whole_words_any_case(text, hits):
    assert E.banned_hits(text, ["dragon", "OK"]) == hits


def test_unknown_names_heuristic(world):
    vocab = E.world_vocabulary(world)
    text = ("Ada met Zorbo at the Old Well. Then Bo said hi to Mr Quix.\n"
            "Pellam waved. She saw Greyrain's flood and the Tollmaster. NASA called. I think so, Ada's friend.")
    # An everyday word opening a sentence (Then), the world's words (Greyrain, Tollmaster), stop
    # words (Mr, I) and all-capital words (NASA) are not counted; a made-up name opening one is.
    assert E.unknown_names(text, vocab) == ["Zorbo", "Quix", "Pellam"]


def test_parse_turns_reads_labels_and_skips_headings():
    text = ("Title: A Talk\n**Ada:** Hello there.\nBo (smiling): Hi.\n  Narrator: Night fell.\n"
            "a line without a label\nScene: the well\nCyrus: Bye: for now.")
    assert E.parse_turns(text) == [("Ada", "Hello there."), ("Bo", "Hi."), ("Narrator", "Night fell."),
                                   ("Cyrus", "Bye: for now.")]


def test_speaker_of(world):
    cast = world.characters[:2]
    assert E.speaker_of("Queen Ada", cast) == "ada"
    assert E.speaker_of("Bo Lee", cast) == "bo"
    assert E.speaker_of("Bo", cast) is None  # too short a first name to count alone
    assert E.speaker_of("Cyrus", cast) is None  # in the world, not in the cast


# ----------------------------------------------------------------------------- the grid


def test_grid_covers_each_kind_within_the_cap(world):
    grid = E.build_grid(world, max_requests=6, turns=4)
    stories = [r for r in grid if r.kind == "story"]
    assert [len(r.characters) for r in stories] == [1, 2, 3, 1, 2, 3]
    assert [r.location for r in stories] == ["well", "mill"] * 3
    assert [r.location for r in grid if r.kind == "scene"] == ["well", "mill"]
    pairs = [r.characters for r in grid if r.kind == "dialogue"]
    assert pairs[:2] == [("ada", "bo"), ("cy", "dee")]  # spread over the cast
    assert len(pairs) == 6 and len(set(pairs)) == 6
    assert all(r.turns == 4 for r in grid if r.kind == "dialogue")


def test_story_cast_sets_every_storys_cast_size(world):
    stories = E.build_grid(world, ("story",), max_requests=3, story_cast=2)
    assert [r.characters for r in stories] == [("ada", "bo"), ("bo", "cy"), ("cy", "dee")]
    with pytest.raises(ConfigError, match="--story-cast"):
        E.build_grid(world, ("story",), story_cast=-1)


def test_story_cast_is_at_most_the_worlds_characters(world):
    """--story-cast 5 over four characters wrote stories of four and recorded story_cast 5 in report.json."""
    assert {len(r.characters) for r in E.build_grid(world, ("story",), story_cast=4)} == {4}
    with pytest.raises(ConfigError) as error:
        E.build_grid(world, ("story",), story_cast=5)
    assert error.value.one_line() == ("--story-cast 5: world 'smallton' has only 4 characters to cast (give "
                                      "--story-cast 4 or less, or 0 for one, two, three in turn)")
    assert E.build_grid(world, ("scene",), story_cast=5)  # no story to cast


def test_seeds_stop_at_the_largest_seed():
    """--seed 2**63 - 1 --seeds 2 answered with seed 2**63, which no command takes, and recorded it."""
    assert E.seed_list(2, 2**63 - 2) == [2**63 - 2, 2**63 - 1]
    with pytest.raises(ConfigError, match=r"--seed 9223372036854775807 with --seeds 2 passes the largest seed"):
        E.seed_list(2, 2**63 - 1)


def test_grid_cap_and_kinds(world):
    grid = E.build_grid(world, ("scene", "dialogue"), max_requests=1)
    assert [r.kind for r in grid] == ["scene", "dialogue"]
    with pytest.raises(ConfigError):
        E.build_grid(world, max_requests=0)


def test_parse_kinds():
    assert E.parse_kinds("story, dialogue,story") == ("story", "dialogue")
    with pytest.raises(ConfigError, match="did you mean 'scene'"):
        E.parse_kinds("scenes")
    with pytest.raises(ConfigError):
        E.parse_kinds(" , ")


def test_naive_prompts(world):
    story, scene, dialogue = (next(r for r in E.build_grid(world, max_requests=2) if r.kind == k)
                              for k in ("story", "scene", "dialogue"))
    assert E.naive_prompt(world, story) == "Write a story about Queen Ada Vær in The Old Well."
    assert E.naive_prompt(world, scene) == "Describe The Old Well."
    assert E.naive_prompt(world, dialogue) == "Write a dialogue between Queen Ada Vær and Bo Lee."


def test_kind_config_budgets(world):
    assert E.kind_config(world, "story", {}).max_new_tokens == E.DEFAULT_MAX_TOKENS
    assert E.kind_config(world, "scene", {"max_new_tokens": 50}).max_new_tokens == 50
    line = E.kind_config(world, "dialogue", {"max_new_tokens": 50})
    assert line.max_new_tokens == 60  # a dialogue line keeps its own budget
    assert "dragon" in line.banned  # the world's banned words are decoding bans, as in the commands


# ----------------------------------------------------------------------------- running and reporting


def test_run_eval_and_report(world, long_generator):
    run = E.run_eval(long_generator, [world], seeds=[1, 2], max_requests=1, turns=2,
                     settings={"max_new_tokens": 8}, batch_size=3)
    assert len(run.outputs) == 3 * 2 * 2  # kinds x seeds x systems
    report = E.build_report(run, [world])
    assert set(report) == {"metagen_version", "created", "model", "settings", "worlds", "summary", "by_world",
                           "targets", "outputs"}
    ours = report["summary"]["dialogue"]["metagen"]
    assert ours["speakers_from_cast"] == 1.0 and ours["turns"] == 4
    for kind in E.KINDS:
        for system in ("metagen", "baseline"):
            metrics = report["summary"][kind][system]
            assert {"grounding", "grounding_model", "unknown_names", "invented_outputs", "garbled", "copied",
                    "banned_hits", "repetition", "distinct_2", "words", "tokens", "tokens_per_second",
                    "seconds_per_piece", "finish_reasons"} <= set(metrics)
            assert metrics["seconds_per_piece"] > 0
            assert metrics["outputs"] == 2 and metrics["banned_hits"] == 0
    assert report["targets"]["dialogue"]["speakers_from_cast"] is True
    assert report["worlds"] == [{"id": "smallton", "path": str(world.path),
                                 "requests": {"story": 1, "scene": 1, "dialogue": 1}}]
    json.dumps(report)
    markdown = E.render_markdown(report)
    assert "| " + " | ".join(E.COLUMNS) + " |" in markdown
    assert markdown.count("| dialogue | metagen |") == 2  # all worlds, then smallton
    assert "## Targets" in markdown


def test_report_without_baseline(world, long_generator):
    run = E.run_eval(long_generator, [world], kinds=("scene",), seeds=[3], max_requests=1,
                     settings={"max_new_tokens": 4}, baseline=False)
    report = E.build_report(run, [world])
    assert list(report["summary"]["scene"]) == ["metagen"]
    assert "repetition" not in report["targets"]["scene"]
    assert [o["system"] for o in report["outputs"]] == ["metagen"]


@pytest.mark.parametrize("variant", ["metagen", "no-opening", "story-opening-first-name", "no-lore"])
def test_prompt_variants(world, long_generator, variant):
    run = E.run_eval(long_generator, [world], kinds=("story", "scene"), seeds=[1], max_requests=1,
                     settings={"max_new_tokens": 4}, baseline=False, variant=variant)
    story, scene = run.outputs
    assert run.settings["variant"] == variant and story.output_tokens <= 4
    assert scene.opening == ""  # a scene names its place in the model's own words
    if variant == "no-opening":
        assert not story.opening
    else:
        if variant in ("metagen", "no-lore"):  # a planned story has no opening: its beats name the cast
            assert story.opening == ""
        else:
            first = "Queen Ada Vær" if variant == "story-opening-first-name" else "In the Old Well, Queen Ada Vær"
            assert story.text.startswith(first) and story.opening.startswith(first)


def test_grounding_of_the_models_words_leaves_out_the_opening(world):
    request = {"location": "well", "time": None, "weather": None, "mood": None, "characters": []}
    scored = E.score(world, output("scene", "The Old Well is dark. Rain falls.", request), E.world_reference(world))
    assert scored.missing == [] and scored.missing_written == []
    scored = E.score(world, dataclasses.replace(output("scene", "The Old Well is dark.", request),
                                                opening="The Old Well"), E.world_reference(world))
    assert scored.missing == [] and scored.missing_written == ["The Old Well"]
    summary = E.summarize([scored], 1.0)
    assert summary["grounding"] == 1.0 and summary["grounding_model"] == 0.0


def test_prompt_variant_is_checked(world, long_generator):
    with pytest.raises(ConfigError, match="--prompt-variant") as error:
        E.run_eval(long_generator, [world], variant="nolore")
    assert error.value.hint == "did you mean 'no-lore'?"


def test_misses_are_listed(world):
    request = {"location": "well", "time": None, "weather": None, "mood": None, "characters": []}
    outs = [E.score(world, output("scene", "Rain on the stones.", request), E.world_reference(world))]
    run = E.EvalRun(settings={"kinds": ["scene"], "seeds": [1], "max_requests": 1, "turns": 4, "max_tokens": 120,
                              "baseline": False, "batch_size": 8, "flags": {}, "configs": {}},
                    model={"name": "m"}, outputs=outs)
    report = E.build_report(run, [world])
    assert report["summary"]["scene"]["metagen"]["grounding"] == 0.0
    assert report["targets"]["scene"]["grounding"] is False
    markdown = E.render_markdown(report)
    assert "missing The Old Well" in markdown and "grounding NOT met" in markdown


# ----------------------------------------------------------------------------- the command


@pytest.fixture
def world_file(tmp_path):
    path = tmp_path / "smallton.yaml"
    path.write_text(WORLD, encoding="utf-8")
    return path


def test_cli_end_to_end(runner, world_file, long_gguf, tmp_path):
    out = tmp_path / "report"
    result = runner.invoke(app, ["eval", str(world_file), "--seeds", "1", "--max-requests", "1", "--turns", "2",
                                 "--max-tokens", "6", "--out", str(out), "--model", str(long_gguf),
                                 "--dtype", "float32", "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# metagen eval")
    assert (out / "report.md").read_text(encoding="utf-8") == result.stdout
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["settings"]["seeds"] == [1]
    assert report["settings"]["flags"] == {"max_new_tokens": 6}
    assert len(report["outputs"]) == 6
    assert report["settings"]["configs"]["smallton/story"]["max_new_tokens"] == 6


@pytest.mark.parametrize("args, message", [
    (["--kinds", "poem"], "unknown kind 'poem'"),
    (["--max-requests", "0"], "--max-requests"),
    (["--max-requests", "100000000000"], "--max-requests must be 1 to 10000"),  # once a hang building the grid
    (["--seeds", "100000000000"], "--seeds must be 1 to 10000"),  # once a MemoryError traceback
    (["--temperature", "-1"], "--temperature"),
    (["--prompt-variant", "short"], "--prompt-variant"),
    # these ran and wrote report.json
    (["--story-cast", "99999999999999999999999"], "--story-cast must be below 2**63 (at most 19 digits)"),
    (["--batch-size", "257"], "--batch-size must be at most 256, got 257"),
    (["--story-cast", "5"], "--story-cast 5: world 'smallton' has only 4 characters to cast"),
    (["--seed", str(2**63 - 1), "--seeds", "2"], "passes the largest seed, 2**63 - 1"),
])
def test_cli_bad_input(runner, world_file, args, message):
    """Each refused before the model loads (none is in the test's cache) and before any report."""
    result = runner.invoke(app, ["eval", str(world_file), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert not Path("eval-report").exists()


@pytest.mark.parametrize("sections, kinds, message", [
    ("", "story,scene,dialogue", "has no characters and no locations: nothing to measure for story, scene, dialogue "
                                 "(add to the world what it lacks)"),
    ("", "scene", "has no locations: nothing to measure for scene (add to the world what it lacks)"),
    ("", "dialogue", "has no characters: nothing to measure for dialogue (add to the world what it lacks)"),
    ("locations: [{id: l, name: L}]\ncharacters: [{id: c, name: C}]\n", "story,scene,dialogue",
     "has only one character: nothing to measure for dialogue (give --kinds story,scene, or add to the world "
     "what it lacks)"),
])
def test_cli_refuses_a_world_with_nothing_to_measure_before_the_model(runner, tmp_path, monkeypatch, sections, kinds,
                                                                      message):
    """A world with no places or no characters loaded the model, wrote report tables with no rows and exited 0."""
    monkeypatch.setattr("metagen.commands.eval.load_generator", lambda *a, **k: pytest.fail("the model was loaded"))
    path = tmp_path / "bare.yaml"
    path.write_text("world: {id: bare, name: Bare}\n" + sections, encoding="utf-8")
    out = tmp_path / "report"
    result = runner.invoke(app, ["eval", str(path), "--kinds", kinds, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: {path}: world 'bare' {message}\n"
    assert not out.exists()


def test_cli_refuses_a_world_given_twice(runner, world_file, tmp_path):
    """Once a report merged both into one world's rows, each output counted twice and distinct-2 pooled copies."""
    copy = tmp_path / "copy.yaml"
    copy.write_text(world_file.read_text(encoding="utf-8"), encoding="utf-8")
    for second in (world_file, copy):
        out = tmp_path / "report"
        result = runner.invoke(app, ["eval", str(world_file), str(second), "--out", str(out)])
        assert result.exit_code == 2, result.output
        assert f"{second}: world 'smallton' is given twice (also as {world_file})" in result.output
        assert "Traceback" not in result.output
        assert not out.exists()


def test_cli_missing_world(runner, tmp_path):
    result = runner.invoke(app, ["eval", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "no such file" in result.output


# ----------------------------------------------------------------------------- the real model


@pytest.mark.real_model
def test_real_model_tiny_grid(real_generator):
    nexus = load_world(NEXUS)
    run = E.run_eval(real_generator, [nexus], seeds=[1], max_requests=1, turns=2, settings={"max_new_tokens": 24})
    report = E.build_report(run, [nexus])
    assert report["summary"]["dialogue"]["metagen"]["speakers_from_cast"] == 1.0
    for kind in E.KINDS:
        assert report["summary"][kind]["metagen"]["banned_hits"] == 0
        assert report["summary"][kind]["metagen"]["tokens"] > 0
    assert all(o["output_tokens"] <= 24 for o in report["outputs"] if o["kind"] != "dialogue")
