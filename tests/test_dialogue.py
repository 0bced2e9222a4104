"""Turn-by-turn dialogue: speakers always from the cast, one completion per line, seeds per
line, next speaker by the model's likelihood or in turn order, unicode names."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from metagen import dialogue
from metagen.config import GenerationConfig
from metagen.dialogue import EMPTY_LINE, generate_dialogue, score_speakers, spoken_line, without_stage_directions
from metagen.errors import ConfigError
from metagen.generator import Completion
from metagen.prompts import DialogueRequest
from metagen.text import speaker_prefix
from metagen.world import load_world

from tests.conftest import load_tiny_generator, write_tiny_gguf, write_world

WORLD = """\
world:
  id: quay
  name: The Quay
  summary: A cold harbour.
characters:
  - id: mira
    name: Mira
    aliases: [Mi]
    sample_lines: ["Slack tide."]
  - id: lin
    name: 林小雨
  - id: aoife
    name: Aoife Ní Bhriain
locations:
  - id: docks
    name: the docks
lore:
  - id: wall
    always_include: true
    text: The town lives behind a sea wall.
"""

CAST = {"mira": "Mira", "lin": "林小雨", "aoife": "Aoife Ní Bhriain"}
CFG = GenerationConfig(max_new_tokens=8, temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0)


def make_generator(path, context_length: int):
    """The tiny test model (conftest's weights) with a longer window: a chat preamble needs
    more than tiny_generator's 256 byte-sized tokens."""
    return load_tiny_generator(write_tiny_gguf(path, max_seq_len=context_length))


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    return make_generator(tmp_path_factory.mktemp("dialogue") / "tiny.gguf", 2048)


@pytest.fixture
def world(tmp_path):
    return load_world(write_world(tmp_path, WORLD, "quay.yaml"))


def speakers(result) -> list[str]:
    return [t["speaker_id"] for t in result.turns]


class Spy:
    """Wraps generator.complete, recording each call's cfg and seeds."""

    def __init__(self, generator, monkeypatch, replies=None):
        self.calls = []
        self.real = generator.complete
        self.replies = list(replies or [])  # texts returned instead of running the model, in order
        monkeypatch.setattr(generator, "complete", self)

    def __call__(self, prompts, cfg, *, seeds=None, on_text=None, reuse=None, plain=None):
        self.calls.append({"prompt": prompts[0], "cfg": cfg, "seeds": seeds, "plain": plain})
        if self.replies:
            text = self.replies.pop(0)
            if text is not None:
                if on_text:
                    on_text(0, text)
                return [Completion(text, [5] * len(text), len(prompts[0]), -1.0, "stop", seeds[0], 0.0)]
        return self.real(prompts, cfg, seeds=seeds, on_text=on_text, reuse=reuse, plain=plain)


# ----------------------------------------------------------------------------- speakers and turns


@pytest.mark.parametrize("order", ["likelihood", "turns"])
def test_every_turn_is_a_cast_member_with_a_line(gen, world, order):
    request = DialogueRequest(characters=("mira", "lin", "aoife"), location="docks", topic="the tide", turns=5)
    result = generate_dialogue(gen, world, request, CFG, seed=7, order=order)
    assert len(result.turns) == request.turns
    assert all(t["speaker_id"] in CAST and t["speaker"] == CAST[t["speaker_id"]] for t in result.turns)
    assert all(t["line"].strip() and "\n" not in t["line"] for t in result.turns)
    assert result.turns[0]["speaker_id"] == "mira"  # the first named speaks first
    assert result.text.split("\n") == [f"{t['speaker']}: {t['line']}" for t in result.turns]
    assert result.finish_reason == "length" and result.seed == 7
    assert result.prompt.lore_used == ("wall",)
    assert result.prompt_tokens > 0 and result.output_tokens >= request.turns
    assert result.logprob < 0 and result.seconds > 0
    assert result.to_dict()["turns"] == result.turns


def test_turns_order_goes_round_the_cast(gen, world):
    request = DialogueRequest(characters=("aoife", "mira", "lin"), turns=7)
    result = generate_dialogue(gen, world, request, CFG, seed=1, order="turns")
    assert speakers(result) == ["aoife", "mira", "lin"] * 2 + ["aoife"]


def test_likelihood_order_never_repeats_the_last_speaker(gen, world, monkeypatch):
    """Even when the scores favour whoever just spoke, the next speaker is someone else."""
    offered = []

    def favour_the_last(generator, messages, transcript, names):
        last = transcript.rsplit("\n", 1)[-1]
        offered.append((last, list(names)))
        return [0.0 if last.startswith(speaker_prefix(n) + " ") else -5.0 for n in names]

    monkeypatch.setattr(dialogue, "score_speakers", favour_the_last)
    request = DialogueRequest(characters=("mira", "lin", "aoife"), turns=6)
    ids = speakers(generate_dialogue(gen, world, request, CFG, seed=3))
    assert len(offered) == 5 and all(a != b for a, b in zip(ids, ids[1:]))
    assert not any(last.startswith(speaker_prefix(n) + " ") for last, names in offered for n in names)


def test_two_characters_alternate_in_either_order(gen, world, monkeypatch):
    def never(*args):
        raise AssertionError("one candidate needs no scoring")

    monkeypatch.setattr(dialogue, "score_speakers", never)
    request = DialogueRequest(characters=("lin", "mira"), turns=4)
    for order in ("likelihood", "turns"):
        assert speakers(generate_dialogue(gen, world, request, CFG, seed=2, order=order)) == ["lin", "mira"] * 2


def test_likelihood_order_picks_the_highest_score(gen, world, monkeypatch):
    seen = []

    def fake(generator, messages, transcript, names):
        seen.append(list(names))
        return [{"Mira": -3.0, "林小雨": -1.0, "Aoife Ní Bhriain": -2.0}[n] for n in names]

    monkeypatch.setattr(dialogue, "score_speakers", fake)
    request = DialogueRequest(characters=("mira", "lin", "aoife"), turns=5)
    result = generate_dialogue(gen, world, request, CFG, seed=4)
    # mira first; then lin (best); then aoife (best without lin); then lin again ...
    assert speakers(result) == ["mira", "lin", "aoife", "lin", "aoife"]
    assert seen[0] == ["林小雨", "Aoife Ní Bhriain"] and seen[1] == ["Mira", "Aoife Ní Bhriain"]


def test_a_tie_goes_to_the_earlier_cast_member(gen, world, monkeypatch):
    monkeypatch.setattr(dialogue, "score_speakers", lambda generator, messages, transcript, names: [0.0] * len(names))
    request = DialogueRequest(characters=("aoife", "lin", "mira"), turns=4)
    assert speakers(generate_dialogue(gen, world, request, CFG, seed=4)) == ["aoife", "lin", "aoife", "lin"]


def test_the_chosen_speaker_is_the_direct_argmax(gen, world, monkeypatch):
    """Each likelihood choice equals the argmax of an unbatched full forward pass per candidate."""
    choices = []
    real = dialogue.score_speakers

    def spy(generator, messages, transcript, names):
        direct = [direct_score(generator, messages, transcript, n) for n in names]
        choices.append((names, direct))
        return real(generator, messages, transcript, names)

    monkeypatch.setattr(dialogue, "score_speakers", spy)
    request = DialogueRequest(characters=("mira", "lin", "aoife"), turns=5)
    result = generate_dialogue(gen, world, request, CFG, seed=11)
    assert len(choices) == 4
    for (names, direct), turn in zip(choices, result.turns[1:]):
        assert turn["speaker"] == names[max(range(len(names)), key=lambda i: (direct[i], -i))]


def direct_score(generator, messages, transcript: str, name: str) -> float:
    tokenizer, model = generator.tokenizer, generator.model
    prefix = tokenizer.encode_chat(messages, suffix=transcript)
    ids = tokenizer.encode_chat(messages, suffix=transcript + "\n" + speaker_prefix(name))
    assert ids[: len(prefix)] == prefix
    logits = model(torch.tensor([ids]), model.new_cache(1, len(ids)))[0]  # (T, V)
    logprobs = torch.log_softmax(logits, dim=-1)
    return sum(float(logprobs[j - 1, ids[j]]) for j in range(len(prefix), len(ids)))


def test_batched_scores_equal_direct_scores(gen):
    # names of different token lengths, so the batch is left-padded
    messages, transcript = [{"role": "user", "content": "Talk."}], "Mira: Hello there."
    names = ["Mira", "林小雨", "Aoife Ní Bhriain", "Al"]
    batched = score_speakers(gen, messages, transcript, names)
    assert batched == pytest.approx([direct_score(gen, messages, transcript, n) for n in names], abs=1e-4)
    assert all(s < 0 for s in batched)


# ----------------------------------------------------------------------------- seeds and decoding


def test_same_seed_same_dialogue(gen, world):
    request = DialogueRequest(characters=("mira", "lin", "aoife"), turns=4)
    first = generate_dialogue(gen, world, request, CFG, seed=42)
    second = generate_dialogue(gen, world, request, CFG, seed=42)
    assert first.turns == second.turns and first.text == second.text
    assert first.logprob == second.logprob and first.output_tokens == second.output_tokens


def test_a_contrasted_line_is_also_read_after_the_fact_free_preamble(gen, world, monkeypatch):
    request = DialogueRequest(characters=("mira", "lin"), turns=3)
    cfg = replace(CFG, context_contrast=2.0)
    spy = Spy(gen, monkeypatch)
    result = generate_dialogue(gen, world, request, cfg, seed=42)
    decode = lambda ids: gen.tokenizer.decode(ids, skip_special=False)  # noqa: E731
    for call in spy.calls:
        prompt, plain = decode(call["prompt"]), decode(call["plain"].ids[0])
        transcript = prompt[prompt.rindex("<|im_start|>assistant"):]
        assert plain.endswith(transcript) and "Characters: " in plain and "Speaks:" not in plain  # same lines, no facts
        assert len(call["plain"].ids) == len(call["seeds"])
    assert generate_dialogue(gen, world, request, cfg, seed=42).text == result.text
    assert generate_dialogue(gen, world, request, CFG, seed=42).text != result.text


def test_different_seeds_differ(gen, world):
    request = DialogueRequest(characters=("mira", "lin"), turns=3)
    texts = {generate_dialogue(gen, world, request, CFG, seed=s).text for s in (1, 2, 3)}
    assert len(texts) == 3


def test_each_line_uses_seed_plus_its_index_and_stops_at_other_speakers(gen, world, monkeypatch):
    spy = Spy(gen, monkeypatch)
    request = DialogueRequest(characters=("mira", "aoife"), turns=3)
    cfg = replace(CFG, stop=("###",))
    result = generate_dialogue(gen, world, request, cfg, seed=100, order="turns")
    assert [c["seeds"] for c in spy.calls] == [[100], [101], [102]]
    first = spy.calls[0]["cfg"]
    assert first.stop == ("\n", " Aoife Ní Bhriain:", "###")  # the others' prefixes, then cfg's own
    assert " Mi:" in spy.calls[1]["cfg"].stop and " Mira:" in spy.calls[1]["cfg"].stop  # aliases too
    assert first.max_new_tokens == cfg.max_new_tokens and first.temperature == cfg.temperature
    assert first.min_new_tokens == 1  # no candidate ends empty on a line break or end-of-text
    # the prompt ends with the transcript so far and the next speaker's prefix
    so_far = "\n".join(result.text.split("\n")[:2])
    text = gen.tokenizer.decode(spy.calls[2]["prompt"], skip_special=False)
    assert text.endswith("<|im_start|>assistant\n" + so_far + "\nMira:")


def test_an_empty_line_is_retried_once_with_another_seed(gen, world, monkeypatch):
    spy = Spy(gen, monkeypatch, replies=["  ", None, None])
    request = DialogueRequest(characters=("mira", "lin"), turns=2)
    result = generate_dialogue(gen, world, request, CFG, seed=10)
    assert [c["seeds"] for c in spy.calls] == [[10], [12], [11]]  # the retry uses seed + turns + i
    assert spy.calls[1]["cfg"].min_new_tokens == 1 and "\n" not in spy.calls[1]["cfg"].stop
    assert all(t["line"] for t in result.turns) and result.warnings == []


@pytest.mark.parametrize(("first", "shown"), [
    ('""', '""'),  # what the model wrote was already shown, and stays
    ("  ", EMPTY_LINE),  # nothing was shown: the placeholder is
])
def test_a_line_empty_twice_becomes_a_placeholder_with_a_warning(gen, world, monkeypatch, first, shown):
    Spy(gen, monkeypatch, replies=[first, "\n", "Fine."])
    streamed = []
    request = DialogueRequest(characters=("mira", "lin"), turns=2)
    result = generate_dialogue(gen, world, request, CFG, seed=10, on_text=streamed.append)
    assert [t["line"] for t in result.turns] == [EMPTY_LINE, "Fine."]
    assert "turn 1 (Mira)" in result.warnings[0]
    assert "".join(streamed) == f"Mira: {shown}\n林小雨: Fine."


def test_banned_words_still_apply(gen, world):
    request = DialogueRequest(characters=("mira", "lin"), turns=3)
    pushed = replace(CFG, logit_bias=(("z", 6.0),))
    assert "z" in generate_dialogue(gen, world, request, pushed, seed=5).text.casefold()
    banned = replace(pushed, banned=("z",))
    assert "z" not in generate_dialogue(gen, world, request, banned, seed=5).text.casefold()


def test_streaming_shows_names_then_lines(gen, world):
    pieces = []
    request = DialogueRequest(characters=("lin", "aoife"), turns=3)
    result = generate_dialogue(gen, world, request, CFG, seed=8, on_text=pieces.append)
    shown = "".join(pieces).split("\n")
    assert len(shown) == 3
    for line, turn in zip(shown, result.turns):
        assert line.startswith(f"{turn['speaker']}: ")


def test_a_long_dialogue_slides_old_lines_out_of_the_window(world, tmp_path, monkeypatch):
    small = make_generator(tmp_path / "small.gguf", 1000)
    lines = [f"Line {i}: the tide is turning and so are we." for i in range(30)]
    spy = Spy(small, monkeypatch, replies=lines)
    request = DialogueRequest(characters=("mira", "lin"), turns=30)
    cfg = replace(CFG, max_new_tokens=16)
    result = generate_dialogue(small, world, request, cfg, seed=0)
    assert [t["line"] for t in result.turns] == lines
    assert any("outgrew the model's context" in w for w in result.warnings)
    assert all(len(c["prompt"]) + cfg.max_new_tokens <= small.context_length for c in spy.calls)
    last = small.tokenizer.decode(spy.calls[-1]["prompt"])
    assert lines[28] in last and lines[0] not in last and "Task: Write a conversation" in last


def test_bad_order_and_seed_are_config_errors(gen, world):
    request = DialogueRequest(characters=("mira", "lin"), turns=2)
    with pytest.raises(ConfigError, match="order"):
        generate_dialogue(gen, world, request, CFG, seed=1, order="random")
    with pytest.raises(ConfigError, match="seed"):
        generate_dialogue(gen, world, request, CFG, seed=-1)


# ----------------------------------------------------------------------------- the real model


@pytest.mark.real_model
def test_real_model_writes_lines_for_the_cast(real_generator, world):
    request = DialogueRequest(characters=("mira", "aoife", "lin"), location="docks", topic="a storm coming", turns=3)
    cfg = GenerationConfig(max_new_tokens=24)
    result = generate_dialogue(real_generator, world, request, cfg, seed=1)
    assert len(result.turns) == 3
    assert all(t["speaker_id"] in CAST for t in result.turns)
    assert all(t["line"].strip() and t["line"] != EMPTY_LINE for t in result.turns), result.text


def complete_in_turn(gen, monkeypatch, texts: list[str]) -> None:
    """gen.complete answers row k of a call with texts[k % len(texts)] (one candidate line each)."""
    def fake(prompts, cfg, *, seeds, **kwargs):
        return [Completion(texts[k % len(texts)], [5] * 8, len(prompts[0]), -8.0, "stop", seeds[k], 0.0)
                for k in range(len(prompts))]

    monkeypatch.setattr(gen, "complete", fake)


def test_candidates_lose_to_each_other_for_copying_a_sample_line(gen, world, monkeypatch):
    """Of a line's candidates the critic keeps one in the speaker's own words, never a copy of
    the world's sample line, and records every score."""
    from dataclasses import replace

    complete_in_turn(gen, monkeypatch, ["Slack tide, slack tide, slack tide and the water is still today.",
                 "The nets are dry and the tide is late."])
    world = replace(world, characters=tuple(replace(c, sample_lines=("Slack tide, slack tide, slack tide and the "
                                                                     "water is still today.",))
                                            for c in world.characters))
    request = DialogueRequest(characters=("mira", "lin"), turns=2)
    result = generate_dialogue(gen, world, request, replace(CFG, candidates=2), seed=3, order="turns")
    assert [t["line"] for t in result.turns] == ["The nets are dry and the tide is late."] * 2
    assert [line["chosen"] for line in result.critic["lines"]] == [1, 1]
    copied = result.critic["lines"][0]["candidates"][0]
    assert copied["copied"] > 0 and copied["score"] < result.critic["lines"][0]["candidates"][1]["score"]


@pytest.mark.parametrize("line, spoken", [
    ("(chuckles) Yes, (pauses) tonight.", "Yes, tonight."),
    ("I see. *sighs*", "I see."),
    ("Go now [to the Queen], quickly!", "Go now, quickly!"),
    ("We sail at dawn (sighing softly around her", "We sail at dawn"),  # cut off by the token budget
    ("(nods)", ""),
    ("A 3*4*5 crate, (laughs) no more.", "A 3*4*5 crate, no more."),  # arithmetic is not acting
])
def test_stage_directions_are_removed_wherever_they_stand(line, spoken):
    assert without_stage_directions(line) == spoken


def test_a_spoken_line_has_no_stage_directions():
    assert spoken_line("Mira: (smiling) The tide turns at six. *waves*\nJonas: Aye.", ["Mira", "Jonas"]) == (
        "The tide turns at six.")


@pytest.mark.parametrize("line, spoken", [
    ('"I don\'t even understand why they\'re so sad," she said.', "I don't even understand why they're so sad."),
    ('"Memories are not lost," Maëlle said softly.', "Memories are not lost."),
    ('The light still glows under the water." She looked at the books.', "The light still glows under the water."),
    ('Now, what would you like to do with it?"', "Now, what would you like to do with it?"),
    ('As my mother said, "Memories are not lost.', "As my mother said, Memories are not lost."),  # its pair never came
    ('It is what they call "memory". Old spells make it.', 'It is what they call "memory". Old spells make it.'),
    ('"Home" is a strange word.', '"Home" is a strange word.'),
])
def test_a_spoken_line_leaves_out_narration_and_stray_quote_marks(line, spoken):
    assert dialogue.without_narration(line) == spoken
    assert spoken_line("Mira: " + line, ["Mira"]) == spoken



TOPIC_WORLD = """\
world: {id: keep, name: The Keep}
characters:
  - id: ysolde
    name: Queen Ysolde Vær
    goals: [keep the realm fed through the winter, Find out who she was]
  - id: maelle
    name: Sister Maëlle
    goals: [give her mother back one memory.]
    relationships: [{with: ysolde, kind: mother, description: estranged for ten years.}]
  - id: tam
    name: Tam
  - id: bo
    name: Bo
    relationships: [{with: tam, kind: brother, description: "  They share   one boat."}]
  - id: wick
    name: Wick
"""


@pytest.fixture
def topic_world(tmp_path):
    return load_world(write_world(tmp_path, TOPIC_WORLD, "keep.yaml"))


def test_a_dialogue_without_a_topic_turns_on_a_goal_of_its_speakers_drawn_by_the_seed(topic_world):
    request = DialogueRequest(characters=("ysolde", "maelle"))
    topics = {dialogue.world_topic(topic_world, request, seed) for seed in range(40)}
    assert topics == {"Ysolde's wish to keep the realm fed through the winter",
                      "Ysolde's wish to find out who she was", "Maëlle's wish to give her mother back one memory"}
    assert dialogue.world_topic(topic_world, request, 7) == dialogue.world_topic(topic_world, request, 7)


def test_without_goals_the_topic_is_the_speakers_tie_and_else_there_is_none(topic_world):
    assert dialogue.world_topic(topic_world, DialogueRequest(characters=("tam", "bo")), 1) == (
        "what lies between them: they share one boat")
    assert dialogue.world_topic(topic_world, DialogueRequest(characters=("tam", "wick")), 1) is None


def test_a_given_topic_is_kept_and_a_chosen_one_is_recorded_in_the_request(gen, topic_world):
    given = DialogueRequest(characters=("ysolde", "maelle"), topic="the harvest", turns=2)
    assert dialogue.with_topic(topic_world, given, 3) is given
    none = replace(given, topic="")  # --topic '': no topic at all
    assert dialogue.with_topic(topic_world, none, 3) is none
    result = generate_dialogue(gen, topic_world, replace(given, topic=None), CFG, seed=3)
    chosen = dialogue.world_topic(topic_world, given, 3)
    assert result.prompt.request.topic == chosen
    assert f"about {chosen}." in result.prompt.messages[-1]["content"]


def test_a_candidate_line_in_which_the_speaker_names_themselves_loses(gen, world, monkeypatch):
    complete_in_turn(gen, monkeypatch, ["Hi Mira! The nets are dry.", "Hi Aoife! The nets are dry."])
    request = DialogueRequest(characters=("mira", "aoife"), turns=1, topic="nets")
    result = generate_dialogue(gen, world, request, replace(CFG, candidates=2), seed=3, order="turns")
    assert result.turns[0]["line"] == "Hi Aoife! The nets are dry."  # Mira speaks first
    assert result.critic["lines"][0]["candidates"][0]["self"] == 1.0


def test_a_speakers_own_one_token_names_lose_logits_in_their_lines(gen, world, monkeypatch):
    class Words:  # writes "Mira" and " Mira" as one token each, every other text as several
        vocabulary = {"Mira": 11, " Mira": 12, " Mi": 13}

        def encode(self, text):
            return [self.vocabulary[text]] if text in self.vocabulary else [1, 2]

    mira, lin = world.characters[0], world.characters[1]
    assert dialogue.own_name_tokens(Words(), dialogue.spoken_names(world, mira)) == [11, 12, 13]  # "Mi": an alias
    assert dialogue.own_name_tokens(Words(), dialogue.spoken_names(world, lin)) == []
    seen = []

    def fake(prompts, cfg, *, seeds, **kwargs):
        seen.append(cfg.logit_bias)
        return [Completion("The nets are dry.", [5] * 4, len(prompts[0]), -4.0, "stop", s, 0.0) for s in seeds]

    monkeypatch.setattr(gen, "complete", fake)
    monkeypatch.setattr(dialogue, "own_name_tokens", lambda tokenizer, forms: [7] if "Mira" in forms else [])
    generate_dialogue(gen, world, DialogueRequest(characters=("mira", "lin"), turns=2, topic="nets"), CFG, seed=1,
                      order="turns")
    assert seen == [(("#7", dialogue.OWN_NAME_BIAS),), ()]


def test_a_name_in_another_script_is_also_called_by_its_prose_aliass_first_word(tmp_path):
    world = load_world(write_world(tmp_path, """\
world: {id: hub, name: The Hub}
characters:
  - {id: lin, name: 林小雨, aliases: [Lin Xiaoyu, Little Rain]}
  - {id: pip, name: Pip}
""", "hub.yaml"))
    assert dialogue.spoken_names(world, world.characters[0])[-1] == "Lin"
    assert dialogue.spoken_names(world, world.characters[1]) == ("Pip",)


def test_a_candidate_line_that_hangs_the_wrong_family_word_on_the_listener_loses(gen, topic_world, monkeypatch):
    complete_in_turn(gen, monkeypatch, ["I am glad your sister Maëlle came home.", "I am glad my daughter Maëlle came home."])
    request = DialogueRequest(characters=("ysolde", "maelle"), turns=1, topic="the harvest")
    result = generate_dialogue(gen, topic_world, request, replace(CFG, candidates=2), seed=3, order="turns")
    assert result.turns[0]["line"] == "I am glad my daughter Maëlle came home."  # said to Maëlle by her mother
    assert result.critic["lines"][0]["candidates"][0]["ties"] == 1.0
