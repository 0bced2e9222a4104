"""Prompt building: facts of the named entities, lore by keyword within a budget, what was
cut, requests and their round trips, dialogue helpers (metagen.dialogue). Tokens are counted as words here."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metagen.dialogue import (
    clean_dialogue_line,
    continue_dialogue,
    dialogue_preamble,
    dialogue_stops,
    speaker_order,
)
from metagen.errors import RequestError
from metagen.opening import answer_opening, be_form, candidate_starts, scene_starts, sense_starts
from metagen.prompts import (
    TEMPLATE_MARGIN,
    DialogueRequest,
    SceneRequest,
    StoryRequest,
    build_prompt,
    request_from_dict,
    resolve_request,
    select_lore,
)
from metagen.text import format_dialogue, mentions
from metagen.world import load_world

from conftest import write_world

ROOT = Path(__file__).resolve().parent.parent

WORLD = """\
world:
  id: harbour
  name: Little Harbour
  genre: harbour town
  tone: salty and kind
  summary: A small harbour behind a wall.
style:
  point_of_view: first
  tense: present
  avoided_words: [suddenly, very]
  length_words: {short: 100, medium: 250, long: 500}
content:
  banned_words: [darn]
  banned_topics: [politics]
characters:
  - id: mira
    name: Mira Okonkwo
    role: salvage diver
    description: A broad diver in a patched drysuit.
    traits: [brave, blunt]
    voice: short sentences
    goals: [find the sunken archive]
    secrets: [she found a server]
    relationships:
      - with: jonas
        kind: ex-partner
        description: they split after the strike
      - with: aoife
        kind: old friend
    sample_lines: ["Slack tide is twenty minutes.", "We go down, we come up.", "No heroics.", "Fourth line."]
  - id: jonas
    name: Jonas Halvorsen
    role: crane technician
    traits: [patient]
    voice: slow and careful
    relationships:
      - with: mira
        kind: ex-partner
    sample_lines: ["A crane is just a big arm."]
  - id: aoife
    name: Aoife Ní Bhriain
    role: harbour pilot
    sample_lines: ["Fog's thick as porridge."]
  - id: lin
    name: 林小雨
    role: weather designer
locations:
  - id: docks
    name: the Container Docks
    description: Where the ships tie up.
    sights: [orange floodlights]
    sounds: [crane motors whining]
    smells: [diesel and rust]
  - id: market
    name: the Night Market
lore:
  - id: wall
    always_include: true
    text: The city lives behind a sea wall.
  - id: cranes
    keys: [crane]
    priority: 5
    text: The cranes are run by an AI called Cormorant.
  - id: strike
    keys: [Strike]
    priority: 3
    text: The dockers struck for forty days in 2059 and won one berth.
  - id: archive
    keys: [archive]
    priority: 1
    text: The city archive sank with the old town hall, and divers still look for it in the dark.
  - id: art
    keys: [art]
    text: Nobody in the harbour makes art any more.
  - id: rain
    keys: [雨]
    text: Rain is called 雨 by the weather designers.
  - id: never
    keys: [volcano]
    text: There is no volcano.
"""


def words(text: str) -> int:
    return len(text.split())


@pytest.fixture
def world(tmp_path):
    return load_world(write_world(tmp_path, WORLD, "harbour.yaml"))


def user_text(prompt) -> str:
    assert [m["role"] for m in prompt.messages] == ["system", "user"]
    return prompt.messages[1]["content"]


def test_story_prompt_holds_facts_lore_and_style(world):
    request = StoryRequest(characters=("mira", "jonas"), location="docks", premise="A strange light at night.")
    prompt = build_prompt(world, request, count_tokens=words, context_length=2048, max_new_tokens=256)
    text = user_text(prompt)
    for fact in (
        "Mira Okonkwo, salvage diver.", "A broad diver in a patched drysuit.", "Traits: brave; blunt.",
        "Speaks: short sentences.", "Wants: find the sunken archive.", "Secret: she found a server.",
        "Jonas Halvorsen, crane technician.", "Jonas Halvorsen is Mira Okonkwo's ex-partner: they split after the strike.",
        "Place: the Container Docks.", "Sights: orange floodlights.", "Sounds: crane motors whining.",
        "Smells: diesel and rust.", "Premise: A strange light at night.", "the first person, present tense",
        "Tone: salty and kind.", "Avoid these words: suddenly, very.", "Do not write about: politics.",
        "about 250 words", "Mira Okonkwo: Slack tide is twenty minutes.", "Jonas Halvorsen: A crane is just a big arm.",
    ):  # fmt: skip
        assert fact in text, fact
    assert "Aoife" not in text  # a tie to someone not in the request stays out
    assert "darn" not in text  # banned words are decoding bans, never primed in the prompt
    assert "Fourth line." not in text  # at most three sample lines each
    # always_include first, then keyword matches by priority; "strike" matched case-insensitively
    assert prompt.lore_used == ("wall", "cranes", "strike", "archive")
    assert prompt.lore_left_out == () and prompt.warnings == []
    assert text.index("The city lives behind") < text.index("The cranes are run") < text.index("The dockers struck")
    assert text.rstrip().endswith("Begin the story now.")  # the task comes last
    assert prompt.request.subject == "mira-jonas-at-docks"


def test_budget_accounting_is_exact_for_an_additive_counter(world):
    request = StoryRequest(characters=("mira", "jonas"), location="docks")
    prompt = build_prompt(world, request, count_tokens=words, context_length=2048, max_new_tokens=256)
    assert prompt.prompt_tokens == sum(words(m["content"]) for m in prompt.messages)
    budget = prompt.budget
    assert budget.base_tokens + budget.lore_tokens == prompt.prompt_tokens
    assert budget.lore_budget == 512 and budget.margin == TEMPLATE_MARGIN
    assert prompt.prompt_tokens + 256 + TEMPLATE_MARGIN <= 2048


def test_lore_that_does_not_fit_is_reported_not_dropped(world):
    request = StoryRequest(characters=("mira", "jonas"), location="docks")
    full = build_prompt(world, request, count_tokens=words, context_length=2048, max_new_tokens=256)
    small = build_prompt(world, request, count_tokens=words, context_length=2048, max_new_tokens=256, lore_budget=25)
    assert small.budget.lore_tokens <= 25
    assert set(small.lore_used) | set(small.lore_left_out) == set(full.lore_used)
    assert small.lore_used[0] == "wall" and small.lore_left_out
    (warning,) = small.warnings
    assert warning.startswith(f"left out {len(small.lore_left_out)} lore entr")
    assert all(i in warning for i in small.lore_left_out) and "lore budget 25 tokens" in warning
    for entry_id in small.lore_left_out:
        entry = next(e for e in world.lore if e.id == entry_id)
        assert entry.text not in user_text(small)


def test_a_short_context_squeezes_lore_then_refuses(world):
    request = StoryRequest(characters=("mira", "jonas"), location="docks")
    base = build_prompt(world, request, count_tokens=words, context_length=4096, max_new_tokens=0, lore_budget=0)
    fit = base.prompt_tokens + TEMPLATE_MARGIN + 100
    squeezed = build_prompt(world, request, count_tokens=words, context_length=fit + 12, max_new_tokens=100)
    assert squeezed.prompt_tokens + 100 + TEMPLATE_MARGIN <= fit + 12
    assert squeezed.lore_left_out and squeezed.warnings
    with pytest.raises(RequestError) as info:
        build_prompt(world, StoryRequest(characters=("jonas",), premise="word " * 3000), count_tokens=words,
                     context_length=2048, max_new_tokens=256)  # fmt: skip
    message = info.value.one_line()
    assert "before any lore" in message and "shorten the premise" in message
    assert f"(context 2048 - 256 kept for the text - {TEMPLATE_MARGIN} for the template)" in message
    assert "lower --max-tokens (max_new_tokens in a world's defaults or a jobs file's settings)" in message
    assert any("lower --max-tokens)" in w for w in squeezed.warnings if w.startswith("left out"))


@pytest.mark.parametrize("max_new_tokens", [2016, 2048, 999_999])
def test_a_text_budget_that_fills_the_context_says_so_not_only_0_fit(world, max_new_tokens):
    """--max-tokens 999999 was refused as 'the prompt needs about 270 tokens before any lore, but only
    0 fit (context 2048 - 999999 kept for the text - 32 for the template)': sums that say nothing."""
    import re

    request = StoryRequest(characters=("mira", "jonas"), location="docks")
    with pytest.raises(RequestError) as info:
        build_prompt(world, request, count_tokens=words, context_length=2048, max_new_tokens=max_new_tokens)
    message = info.value.one_line()
    need = int(re.search(r"the prompt needs about (\d+),", message)[1])
    fits = 2048 - TEMPLATE_MARGIN - need
    assert message == (
        f"{max_new_tokens} tokens kept for the text leave no room for the prompt in the model's context of 2048 "
        f"tokens (the prompt needs about {need}, the template {TEMPLATE_MARGIN}) (lower --max-tokens "
        f"(max_new_tokens in a world's defaults or a jobs file's settings) so that at most {fits} are kept for the "
        "text)")
    build_prompt(world, request, count_tokens=words, context_length=2048, max_new_tokens=fits)  # and that fits


def test_sample_lines_are_cut_before_refusing(world):
    request = DialogueRequest(characters=("mira", "jonas"))
    full = build_prompt(world, request, count_tokens=words, context_length=4096, max_new_tokens=0, lore_budget=0)
    tight = full.prompt_tokens + TEMPLATE_MARGIN - 5
    prompt = build_prompt(world, request, count_tokens=words, context_length=tight, max_new_tokens=0)
    assert any(w.startswith("sample lines cut to") for w in prompt.warnings)
    assert prompt.prompt_tokens <= tight - TEMPLATE_MARGIN


@given(context=st.integers(50, 1500), max_new=st.integers(0, 600), lore_budget=st.one_of(st.none(), st.integers(0, 300)))
@settings(max_examples=80, deadline=None)
def test_prompt_always_fits_or_refuses_and_never_loses_lore(context, max_new, lore_budget):
    world = _example("harbour/world.yaml")
    request = StoryRequest(characters=("mira", "jonas"), location="docks", premise="Fog over the gap.")
    try:
        prompt = build_prompt(world, request, count_tokens=words, context_length=context, max_new_tokens=max_new,
                              lore_budget=lore_budget)  # fmt: skip
    except RequestError as error:
        assert "shorten" in error.one_line() or "lower --max-tokens" in error.one_line()
        return
    assert prompt.prompt_tokens + max_new + TEMPLATE_MARGIN <= context
    assert prompt.budget.lore_tokens <= (512 if lore_budget is None else lore_budget)
    offered = [e.id for e in select_lore(world, "x")]  # always_include ones are always offered
    assert set(offered) <= set(prompt.lore_used) | set(prompt.lore_left_out)
    assert not set(prompt.lore_used) & set(prompt.lore_left_out)
    assert bool(prompt.lore_left_out) == any(w.startswith("left out") for w in prompt.warnings)


_EXAMPLES: dict = {}


def _example(name: str):
    if name not in _EXAMPLES:
        _EXAMPLES[name] = load_world(ROOT / "worlds" / name)
    return _EXAMPLES[name]


@pytest.mark.parametrize(
    ("text", "key", "hit"),
    [
        ("The CRANE swung.", "crane", True),
        ("cranes everywhere", "crane", False),  # whole words only
        ("a party at the docks", "art", False),
        ("art, then more art", "art", True),
        ("at 4:12 the clock stopped", "4:12", True),
        ("fog over the Gap.", "gap", True),
        ("下雨了", "雨", True),  # no spaces between words in Chinese: substring
        ("Über alles", "über", True),
        ("", "x", False),
        ("text", "  ", False),
    ],
)
def test_mentions(text, key, hit):
    assert mentions(text, key) is hit


def test_lore_keys_match_against_the_selected_entities_text(world):
    story = build_prompt(world, StoryRequest(location="docks"), count_tokens=words, context_length=2048,
                         max_new_tokens=200)
    assert "cranes" in story.lore_used  # "crane motors whining" is one of the docks' sounds
    assert "archive" not in story.lore_used
    scene = build_prompt(world, SceneRequest(location="docks"), count_tokens=words, context_length=2048, max_new_tokens=200)
    assert scene.lore_used == ()  # a scene is written from the place's own facts alone
    cjk = build_prompt(world, StoryRequest(characters=("lin",), premise="下雨的夜晚"), count_tokens=words,
                       context_length=2048, max_new_tokens=200)  # fmt: skip
    assert "rain" in cjk.lore_used and "never" not in cjk.lore_used


def test_unknown_ids_give_did_you_mean_and_valid_ids(world):
    with pytest.raises(RequestError) as info:
        resolve_request(world, StoryRequest(characters=("mria",)))
    line = info.value.one_line()
    assert "has no character 'mria'" in line and "did you mean 'mira'?" in line and "mira, jonas, aoife, lin" in line
    with pytest.raises(RequestError) as info:
        build_prompt(world, SceneRequest(location="dock"), count_tokens=words, context_length=2048, max_new_tokens=10)
    assert "did you mean 'docks'?" in info.value.one_line()
    with pytest.raises(RequestError) as info:
        resolve_request(world, SceneRequest(location="volcano-top"))
    assert "(expected one of: docks, market)" in info.value.one_line()


def test_names_resolve_to_ids_end_to_end_in_unicode(world):
    request = DialogueRequest(characters=("Aoife Ní Bhriain", "林小雨"), location="the Night Market", topic="天气")
    resolved = resolve_request(world, request)
    assert resolved.request.characters == ("aoife", "lin") and resolved.request.location == "market"
    assert resolved.request.subject == "aoife-lin-at-market"
    prompt = build_prompt(world, request, count_tokens=words, context_length=2048, max_new_tokens=200)
    text = user_text(prompt)
    assert "between Aoife Ní Bhriain and 林小雨 in the Night Market, about 天气." in text
    assert "Aoife Ní Bhriain speaks first." in text


def test_dialogue_prompt_and_helpers(world):
    request = DialogueRequest(characters=("mira", "jonas"), location="docks", topic="the strike", turns=5)
    messages = dialogue_preamble(world, request)
    text = messages[1]["content"]
    assert "Write a conversation of 5 lines between Mira Okonkwo and Jonas Halvorsen" in text
    assert "each written as 'Name: line'" in text and "Mira Okonkwo speaks first." in text
    assert "Examples of their lines:\nMira Okonkwo: Slack tide is twenty minutes." in text
    assert "Secret:" not in text  # secrets stay out of dialogue, or a tiny model blurts them
    assert "The dockers struck" in text  # "the strike" triggers the lore
    assert [c.id for c in speaker_order(world, request)] == ["mira", "jonas", "mira", "jonas", "mira"]
    lines = [("Mira Okonkwo", "We go."), ("Jonas Halvorsen", "Not yet.")]
    assert format_dialogue(lines) == "Mira Okonkwo: We go.\nJonas Halvorsen: Not yet."
    assert continue_dialogue(lines, "Mira Okonkwo") == "Mira Okonkwo: We go.\nJonas Halvorsen: Not yet.\nMira Okonkwo:"
    assert continue_dialogue([], "林小雨") == "林小雨:"
    assert dialogue_stops(["Mira Okonkwo", "Jonas Halvorsen"]) == ["\n", " Mira Okonkwo:", " Jonas Halvorsen:"]
    with pytest.raises(RequestError):
        dialogue_preamble(world, StoryRequest())


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        (" Hold the line.\nJonas Halvorsen: No.", "Hold the line."),
        ('"Hold the line."', "Hold the line."),
        ("Hold it. Jonas Halvorsen: no", "Hold it."),
        ("Mira Okonkwo: I said hold it.", "I said hold it."),
        ("“雨停了。”", "雨停了。"),
        ("   ", ""),
    ],
)
def test_clean_dialogue_line(raw, line):
    assert clean_dialogue_line(raw, ["Mira Okonkwo", "Jonas Halvorsen"]) == line


@pytest.mark.parametrize("cast", [["Mira Okonkwo", "Jonas Halvorsen"], ["Jonas Halvorsen", "Mira Okonkwo"]])
def test_a_line_is_cut_at_the_next_speaker_whatever_the_cast_order(cast):
    # the speaker's own echoed prefix is dropped first, so the other's later in the line still cuts it
    assert clean_dialogue_line("Jonas Halvorsen: Hello, Mira Okonkwo: the stalls are open", cast) == "Hello,"
    assert clean_dialogue_line("Jonas Halvorsen: Mira Okonkwo: the stalls are open", cast) == "the stalls are open"


def test_scene_prompt(world):
    request = SceneRequest(location="docks", time="dusk", weather="rain", mood="uneasy", characters=("jonas",))
    text = user_text(build_prompt(world, request, count_tokens=words, context_length=2048, max_new_tokens=200))
    assert "Place: the Container Docks." in text and "Time: dusk. Weather: rain. Mood: uneasy." in text.replace("\n", " ")
    assert "Who is there: Jonas Halvorsen" in text and "Describe the Container Docks in three or four sentences" in text
    declared = replace(world, characters=tuple(replace(c, pronouns="he/him") for c in world.characters))
    text = user_text(build_prompt(declared, request, count_tokens=words, context_length=2048, max_new_tokens=200))
    assert "Who is there: Jonas Halvorsen (he/him), " in text  # a declared pronoun beside the name
    assert "Name no other people" in text
    # the place first, not one of its sights, and its verb in the world's tense (present here)
    assert 'Task: Start with the words "The Container Docks are".' in text
    assert request.subject == "docks-dusk"


# ----------------------------------------------------------------------------- how a piece starts (metagen.opening)


@pytest.mark.parametrize("name, tense, verb", [
    ("The Crooked Kettle", "past", "was"), ("The Container Docks", "past", "were"), ("The Fountain Atrium", "present", "is"),
    ("The Salt Pans of Oru Kessam", "present", "are"), ("Ember Keep", "present", "is"), ("The Moss", "past", "was"),
    ("Abbey of the Lantern Order", "past", "was"), ("Saint Agnes's", "present", "is"), ("The Narrows", "present", "are"),
])
def test_a_place_name_takes_its_verb_in_the_tense(name, tense, verb):
    assert be_form(name, tense) == verb


def test_a_scene_opens_on_a_sense_its_place_gives_drawn_by_the_seed(world):
    docks, market = world.location("docks"), world.location("market")
    assert scene_starts(docks, "present") == ["The Container Docks ring with", "The Container Docks smell of"]
    assert scene_starts(docks, "past") == ["The Container Docks rang with", "The Container Docks smelled of"]
    assert scene_starts(market, "past") == ["The Night Market was"]  # no sounds or smells: its verb of being
    request = SceneRequest(location="docks")
    drawn = [candidate_starts(world, request, seed, 4) for seed in range(12)]
    senses = scene_starts(docks, "present")
    for starts in drawn:  # the first drawn verb twice, then the other twice
        assert starts[0] == starts[1] != starts[2] == starts[3] and {starts[1], starts[2]} == set(senses)
    assert {starts[0] for starts in drawn} == set(senses)  # the seed draws which verb leads
    assert candidate_starts(world, request, 5, 4) == drawn[5]  # the same seed, the same words
    assert candidate_starts(world, request, 5, 1) == drawn[5][:1]  # one candidate: the lead verb alone
    assert candidate_starts(world, request, 5, 3) == [drawn[5][0], drawn[5][0], drawn[5][2]]
    assert candidate_starts(world, SceneRequest(location="market"), 3, 4) == ["The Night Market is"] * 4
    own = SceneRequest(location="docks", start="Under the floodlights,")
    assert candidate_starts(world, own, 3, 4) == ["Under the floodlights,"] * 4
    with pytest.raises(ValueError):
        candidate_starts(world, request, 3, 0)
    text = user_text(build_prompt(world, replace(request, start=drawn[0][0]), count_tokens=words,
                                  context_length=2048, max_new_tokens=200))
    assert f'Task: Start with the words "{drawn[0][0]}".' in text


def test_a_sense_whose_facts_all_say_nothing_is_no_start(world):
    docks = world.location("docks")
    hushed = replace(docks, smells=("nothing at all, though people swear it smells of rain",))
    assert scene_starts(hushed, "present") == sense_starts(hushed, "present") == ["The Container Docks ring with"]
    assert sense_starts(replace(hushed, sounds=("No sound at all.", "none")), "present") == []
    assert scene_starts(replace(hushed, sounds=(), smells=("tar",)), "past") == ["The Container Docks smelled of"]
    assert scene_starts(replace(hushed, sounds=()), "past") == ["The Container Docks were"]
    # one fact of something is enough
    assert sense_starts(replace(hushed, smells=("nothing", "tar")), "past")[1] == "The Container Docks smelled of"


def test_a_scenes_plain_prompt_is_the_same_request_without_the_places_facts(world):
    prompt = build_prompt(world, SceneRequest(location="docks", time="dusk", characters=("jonas",)),
                          count_tokens=words, context_length=2048, max_new_tokens=200)
    full, plain = prompt.messages[-1]["content"], prompt.plain_messages[-1]["content"]
    assert "You can see:" in full and "You can see:" not in plain and "You can smell:" not in plain
    assert plain.splitlines()[0] == "Place: the Container Docks."
    assert full.splitlines()[-3:] == plain.splitlines()[-3:]  # time, who is there and the task as they were
    assert prompt.plain_messages[0] == prompt.messages[0]
    assert build_prompt(world, StoryRequest(characters=("mira",)), count_tokens=words, context_length=2048,
                        max_new_tokens=200).plain_messages is None  # a story's beats build their own


def test_a_dialogues_plain_prompt_names_the_cast_and_place_and_keeps_the_sample_lines(world):
    request = DialogueRequest(characters=("mira", "jonas"), location="docks", topic="the strike")
    prompt = build_prompt(world, request, count_tokens=words, context_length=2048, max_new_tokens=200)
    full, plain = prompt.messages[-1]["content"], prompt.plain_messages[-1]["content"]
    blocks = plain.split("\n\n")
    assert blocks[:2] == ["Characters: Mira Okonkwo, Jonas Halvorsen.", "Place: the Container Docks."]
    assert blocks[2].startswith("Examples of their lines:\n") and blocks[2] in full  # the same lines in both
    assert full.endswith(blocks[-1]) and blocks[-1].startswith("Task: ")  # the same task
    assert "Speaks:" in full and "Speaks:" not in plain and "gantry" not in plain
    # sample lines cut for room are cut from both
    tight = build_prompt(world, request, count_tokens=words, max_new_tokens=200,
                         context_length=prompt.budget.base_tokens + 200 + prompt.budget.margin - 1)
    cut = [b for b in tight.plain_messages[-1]["content"].split("\n\n") if b.startswith("Examples")]
    assert any("sample lines cut" in w for w in tight.warnings)
    assert cut == [b for b in tight.messages[-1]["content"].split("\n\n") if b.startswith("Examples")]
    assert not cut or len(cut[0].splitlines()) < len(blocks[2].splitlines())


def test_the_answer_opens_with_the_requested_names(world):
    def opening(request, style=None):
        return build_prompt(world, request, count_tokens=words, context_length=2048, max_new_tokens=200,
                            opening_style=style).opening

    story = StoryRequest(characters=("mira", "jonas"), location="docks")
    assert opening(story) == ""  # a planned story's beats name its cast and place
    assert opening(story, "place-cast") == "In the Container Docks, Mira Okonkwo and Jonas Halvorsen"
    assert opening(SceneRequest(location="docks")) == ""  # the model names the place itself
    assert opening(SceneRequest(location="docks", opening=True)) == "The Container Docks"
    assert opening(StoryRequest(characters=("mira",)), "place-cast") == "Mira Okonkwo"  # no place: the cast alone
    assert opening(SceneRequest(location="docks", opening=False)) == ""
    assert opening(DialogueRequest(characters=("mira", "jonas"))) == ""
    assert opening(story, "first-name") == "Mira Okonkwo"
    assert opening(story, "cast") == "Mira Okonkwo and Jonas Halvorsen"
    assert opening(story, "place") == "The Container Docks"
    assert opening(story, "none") == ""
    with pytest.raises(RequestError, match="opening style 'cats'"):
        answer_opening(resolve_request(world, story), "cats")


@pytest.mark.parametrize(
    "request_",
    [
        StoryRequest(characters=("mira", "jonas"), location="docks", premise="Fog.", length="long"),
        StoryRequest(),
        SceneRequest(location="docks", time="dusk", characters=("jonas",)),
        DialogueRequest(characters=("aoife", "lin"), topic="雨", turns=3),
    ],
    ids=lambda r: r.kind,
)
def test_requests_round_trip_through_dicts(request_):
    data = request_.to_dict()
    assert data["kind"] == request_.kind and isinstance(data["characters"], list)
    assert request_from_dict(data) == request_
    assert type(request_).from_dict(data) == request_


def test_subjects_are_ascii_slugs():
    assert StoryRequest(characters=("mira", "jonas"), location="docks").subject == "mira-jonas-at-docks"
    assert StoryRequest(premise="Nobody sleeps in Saltgate tonight, again").subject == "nobody-sleeps-in-saltgate-tonight-again"
    assert StoryRequest(premise="雨").subject == "story"
    assert StoryRequest(characters=("a", "b", "c", "d", "e")).subject == "a-b-c-and-2-more"
    assert SceneRequest(location="docks", time="林").subject == "docks"
    assert DialogueRequest(characters=("mira", "jonas")).subject == "mira-jonas"
    assert DialogueRequest(characters=("Aoife Ní Bhriain", "林小雨"), location="the Docks").subject == "aoife-ni-bhriain-x-at-the-docks"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: StoryRequest(length="epic"), "story length 'epic' is not known"),
        (lambda: DialogueRequest(characters=("mira",)), "at least two characters"),
        (lambda: SceneRequest(location=""), "a scene needs a location"),
        (lambda: DialogueRequest(characters=("mira", "jonas"), turns=0), "turns must be 1 to 200"),
        (lambda: StoryRequest(characters=("mira", "mira")), "names a character more than once: mira"),
        (lambda: request_from_dict({"kind": "poem"}), "unknown request kind 'poem'"),
        (lambda: StoryRequest.from_dict({"kind": "scene"}), "expected a story request"),
        (lambda: StoryRequest.from_dict({"premis": "x"}), "did you mean 'premise'?"),
    ],
)
def test_bad_requests(make, message):
    with pytest.raises(RequestError, match=message.replace("?", r"\?").replace("(", r"\(")):
        make()


def test_same_character_by_id_and_name_is_refused(world):
    """The line listed the whole cast ("names the same character twice: ada, bo, Lin Xiaoyu, 林小雨"),
    not which two were one, and said nothing of what to do."""
    with pytest.raises(RequestError) as caught:
        resolve_request(world, StoryRequest(characters=("jonas", "mira", "Mira Okonkwo")))
    assert caught.value.one_line() == ("story request names the same character twice: 'mira' and 'Mira Okonkwo' "
                                       "are both mira (name each character once)")


def test_a_character_named_many_times_is_one_short_line(world):
    """`-c` with one character 30,000 times printed all 30,000 names, a 210 KB line: now the names
    given more than once, each with its count, the first five and how many more."""
    with pytest.raises(RequestError) as caught:
        StoryRequest(characters=("mira",) * 30_000 + ("jonas", "jonas"))
    assert caught.value.one_line() == ("story request names a character more than once: mira (30,000 times), "
                                       "jonas (name each character once)")
    many = tuple(f"c{i}" for i in range(30)) * 2
    with pytest.raises(RequestError) as caught:
        StoryRequest(characters=many)
    assert caught.value.one_line() == ("story request names a character more than once: c0, c1, c2, c3, c4 and "
                                       "25 more (name each character once)")


def test_impossible_budgets_are_refused(world):
    with pytest.raises(RequestError, match="impossible budget"):
        build_prompt(world, StoryRequest(), count_tokens=words, context_length=0, max_new_tokens=1)


@pytest.mark.parametrize("name", ["nexus-hub.yaml", "ashenmere.yaml", "harbour/world.yaml"])
def test_example_worlds_build_every_kind_within_a_small_window(name):
    world = _example(name)
    cast = tuple(c.id for c in world.characters[:2])
    place = world.locations[0].id
    for request in (
        StoryRequest(characters=cast, location=place, premise="Something is lost."),
        SceneRequest(location=place, time="night"),
        DialogueRequest(characters=cast, location=place, topic="what was lost"),
    ):
        prompt = build_prompt(world, request, count_tokens=words, context_length=2048, max_new_tokens=400)
        assert prompt.prompt_tokens + 400 + TEMPLATE_MARGIN <= 2048
        if request.kind != "scene":  # scenes carry no lore
            assert prompt.lore_used and prompt.lore_used[0] == next(e.id for e in world.lore if e.always_include)
        assert prompt.to_dict()["request"]["kind"] == request.kind


def test_no_torch_import():
    code = "import sys, metagen.prompts, metagen.world, metagen.commands.worlds; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.parametrize("kind, description, sentence", [
    ("daughter", "estranged for years.", "Maelle is Ysolde's daughter: estranged for years."),
    ("owes money to", None, "Ysolde owes money to Maelle."),
    (None, "they were at school together", "Ysolde and Maelle: they were at school together."),
    (None, None, "Ysolde and Maelle: they know each other."),
    ("rival", "she never forgave the duel!", "Maelle is Ysolde's rival: she never forgave the duel!"),
])
def test_a_tie_says_who_is_whose(kind, description, sentence):
    from metagen.prompts import tie_sentence
    from metagen.world import Relationship

    assert tie_sentence("Ysolde", "Maelle", Relationship(other="maelle", kind=kind, description=description)) == sentence


@pytest.mark.parametrize("world_file, who, other, sentence", [
    ("nexus-hub.yaml", "kestrel", "ottoline-graves", "Ottoline is Kestrel's mentor: Ottoline teaches Kestrel to build"),
    ("nexus-hub.yaml", "ottoline-graves", "kestrel", "Kestrel is Ottoline's apprentice."),
    ("harbour/world.yaml", "mira", "wick", "Wick is Mira's courier: she pays Wick"),
    # a noun that names no one said "Ysolde is Ederyn's servant", "Ederyn is Thorne's distrust" (round 48)
    ("ashenmere.yaml", "ederyn", "ysolde", "Ysolde is Ederyn's queen: the queen trusts him"),
    ("ashenmere.yaml", "ysolde", "brannoc", "Ysolde owes an old debt to Brannoc: he carried her"),
    ("ashenmere.yaml", "brannoc", "ysolde", "Brannoc is owed a debt by Ysolde."),
    ("ashenmere.yaml", "thorne", "ederyn", "Thorne is wary of Ederyn: she thinks his spells"),
    ("ashenmere.yaml", "ederyn", "thorne", "Ederyn is distrusted by Thorne."),
    ("harbour/world.yaml", "bea", "wick", "Beatriz is like family to Wick: she gives Wick a bowl"),
])
def test_the_example_worlds_ties_say_what_their_descriptions_say(world_file, who, other, sentence):
    # a noun kind is what the other is to this character: nexus-hub had Kestrel's tie as "apprentice",
    # so the prompt said "Ottoline is Kestrel's apprentice: Ottoline teaches Kestrel", and readers found
    # the roles reversed in the stories (experiments/log.md, round forty-six)
    from metagen.prompts import tie_sentence

    world = _example(world_file)
    character = next(c for c in world.characters if c.id == who)
    tie = next(t for t in character.relationships if t.other == other)
    first = {c.id: c.name.removeprefix("Queen ").split()[0] for c in world.characters}
    assert tie_sentence(first[who], first[other], tie).startswith(sentence)
