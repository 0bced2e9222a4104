"""The pronoun guard: in a sentence about one character, another's pronoun is lowered (metagen.pronoun_guard)."""

from __future__ import annotations

import pytest
import torch

from metagen.config import GenerationConfig
from metagen.errors import ConfigError
from metagen.pronoun_guard import PronounGuardProcessor, narrated_so_far
from metagen.sampling import build_processors

from test_sampling import WordTokenizer, names

RULES = ("Thorne Blackbriar / Thorne (she): -", "Ederyn (he): -", "Pip (it): -", "Quill (?): -")
WORDS = ["he", "He", "himself", "she", "She", "herself", "him", "her", "his", "Thorne", "Ederyn", "Pip", "Quill",
         "smiled", "as", "and", "said", "eyes"]


def guarded(texts: list[str]) -> tuple[WordTokenizer, torch.Tensor]:
    tok = WordTokenizer(WORDS)
    ids = [tok.encode(t) for t in texts]
    width = max(map(len, ids))
    rows = torch.tensor([[-1] * (width - len(row)) + row for row in ids])  # left-padded, as decoding holds them
    return tok, PronounGuardProcessor(RULES, tok)(rows, torch.zeros(len(texts), tok.vocab_size))


def lowered(tok: WordTokenizer, row: torch.Tensor) -> set[str]:
    return {tok.decode([i]).strip() for i in (row < 0).nonzero()[:, 0].tolist()}


def test_in_a_sentence_about_one_character_the_others_pronouns_are_lowered():
    tok, out = guarded([" Thorne smiled as", " The eyes and Thorne's eyes smiled as", " Ederyn smiled and",
                        " Thorne smiled. The eyes", ' Thorne said, "Go." He'])
    his = {"he", "He", "him", "his", "himself"}  # the words of WORDS; " His" and " Him" are not one token here
    assert lowered(tok, out[0]) == his and out[0].min() == -10
    assert lowered(tok, out[1]) == his  # named anywhere, or by a possessive
    assert lowered(tok, out[2]) == {"she", "She", "her", "herself"}
    for row in out[3:]:  # the next sentence, until it names someone: "Thorne smiled. So he" is Thorne
        assert lowered(tok, row) == his


def test_a_character_called_it_keeps_both_sexes_pronouns_away():
    tok, out = guarded([" Pip smiled as"])
    assert lowered(tok, out[0]) == {"he", "He", "him", "his", "himself", "she", "She", "her", "herself"}


@pytest.mark.parametrize("text", [
    " Thorne smiled at Ederyn as",  # two named: either could be meant
    " Thorne smiled. Ederyn and Pip smiled. The eyes",  # the nearest sentence naming anyone names two
    ' Thorne said, "And',  # quoted speech: a speaker says what they like
    ' "Thorne," she',  # named only inside a quote
    " Quill smiled as",  # pronoun not known
    " The eyes smiled as",
])
def test_rows_about_no_one_or_several_are_left_alone(text):
    _, out = guarded([text])
    assert (out == 0).all()


def test_the_narration_so_far_leaves_quoted_speech_out():
    assert narrated_so_far('Thorne smiled. "Ederyn, come," she') == ["Thorne smiled.", "she"]
    assert narrated_so_far('Thorne said, "Wait') is None
    assert narrated_so_far('Thorne said, "Go." He') == ["Thorne said, .", "He"]
    assert narrated_so_far("Thorne smiled.\nEderyn") == ["Thorne smiled.", "Ederyn"]


def test_the_pronoun_guard_is_a_setting_that_reads_the_kin_guards_rules(tiny_generator):
    tok = tiny_generator.tokenizer
    on = GenerationConfig(kin_guard=RULES[:2], pronoun_guard="on", repetition_penalty=1.0, temperature=0)
    assert names(build_processors(on, tok)) == ["KinGuardProcessor", "PronounGuardProcessor"]
    assert GenerationConfig().pronoun_guard == "redraw"
    for quiet in (GenerationConfig(kin_guard=RULES[:2], repetition_penalty=1.0, temperature=0),  # redraw: stories only
                  GenerationConfig(pronoun_guard="on", repetition_penalty=1.0, temperature=0)):  # no one to guard
        assert "PronounGuardProcessor" not in names(build_processors(quiet, tok))
    with pytest.raises(ConfigError, match="pronoun-guard must be one of redraw, on, off"):
        GenerationConfig(pronoun_guard="always")
