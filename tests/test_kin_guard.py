"""The kin guard: family words a character has no relative for, lowered after their possessive (metagen.kin_guard)."""

from __future__ import annotations

import pytest
import torch

from metagen.config import GenerationConfig
from metagen.errors import ConfigError
from metagen.kin_guard import KinGuardProcessor
from metagen.sampling import build_processors

from test_sampling import WordTokenizer, names

RULES = ("Queen Ysolde / Ysolde (she): daughter", "Oswin (he): wife")
WORDS = ["son", "daughter", "wife", "husband", "her", "his", "own", "grand", "ma", "eyes", "Ysolde", "Oswin", "looked",
         "at", "said"]


def guarded(texts: list[str], bias: float = 10.0) -> tuple[WordTokenizer, torch.Tensor]:
    tok = WordTokenizer(WORDS)
    tok.pieces.append("ma")  # " grand" + "ma": a family word of two tokens
    tok.vocab_size += 1
    ids = [tok.encode(t) for t in texts]
    width = max(map(len, ids))
    rows = torch.tensor([[-1] * (width - len(row)) + row for row in ids])  # left-padded, as decoding holds them
    return tok, KinGuardProcessor(RULES, tok, bias=bias)(rows, torch.zeros(len(texts), tok.vocab_size))


def word_id(tok: WordTokenizer, word: str) -> int:
    return tok.encode(" " + word)[0]


def test_after_a_possessive_the_owners_missing_relatives_lose_the_bias():
    tok, out = guarded([" Ysolde looked at her", " Oswin looked at his own", " Ysolde's"])
    assert out[0, word_id(tok, "son")] == -10 and out[0, word_id(tok, "husband")] == -10
    assert out[0, word_id(tok, "daughter")] == 0 and out[0, word_id(tok, "eyes")] == 0
    assert out[1, word_id(tok, "wife")] == 0 and out[1, word_id(tok, "son")] == -10
    assert out[2, word_id(tok, "son")] == -10 and out[2, word_id(tok, "daughter")] == 0


def test_rows_whose_owner_is_not_clear_are_left_alone():
    _, out = guarded([" Ysolde looked at his", ' Ysolde said "her', " Ysolde looked at Oswin and her", " Ysolde looked"])
    assert (out == 0).all()


def test_a_two_token_family_word_is_lowered_at_its_second_token():
    tok, out = guarded([" Ysolde looked at her grand", " Ysolde looked at the grand"])
    assert out[0, tok.pieces.index("ma")] == -10  # grandma: none of hers
    assert out[1, tok.pieces.index("ma")] == 0  # no possessive


def test_the_kin_guard_is_a_setting_of_rules(tiny_generator):
    cfg = GenerationConfig(kin_guard=RULES, repetition_penalty=1.0, temperature=0)
    assert names(build_processors(cfg, tiny_generator.tokenizer)) == ["KinGuardProcessor"]
    assert GenerationConfig().kin_guard == ()
    assert GenerationConfig.from_dict(cfg.to_dict()).kin_guard == RULES  # recorded and read back as written


def test_a_rule_in_another_shape_is_refused_as_a_setting():
    with pytest.raises(ConfigError, match=r"'Ysolde: son' is not 'NAME / OTHER NAME \(she\|he\|they\|it\|\?\): family"):
        GenerationConfig.from_dict({"kin_guard": ["Ysolde: son"]})


def test_the_first_token_of_a_longer_family_word_is_left_alone():
    tok, out = guarded([" Ysolde looked at her"])
    assert out[0, word_id(tok, "grand")] == 0  # " grand" also begins "her grand hall"


def test_a_word_such_as_new_between_possessive_and_family_word_keeps_the_guard_on():
    from metagen.kinship import possessor, read_rule

    owners = [read_rule(rule) for rule in RULES]
    assert possessor("Then Ysolde's new", owners).forms[0] == "Queen Ysolde"  # read: "Agnes's new husband" got through
