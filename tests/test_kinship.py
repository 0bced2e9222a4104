"""Family words against a world's ties (metagen.kinship)."""

from __future__ import annotations

import pytest

from metagen.kinship import courtship_words, kin_side, kinship, misspoken_kin, narrated_kin, wrong_kin
from metagen.world import load_world

from conftest import write_world


KIN_WORLD = """\
world: {id: keep, name: The Keep}
characters:
  - {id: ysolde, name: Queen Ysolde, relationships: [{with: maelle, kind: daughter}]}
  - {id: maelle, name: Sister Maelle}
  - {id: tam, name: Tam, relationships: [{with: ysolde, kind: mother}]}
  - {id: bo, name: Bo}
"""


def test_kin_side_reads_either_sides_ties(tmp_path):

    world = load_world(write_world(tmp_path, KIN_WORLD))
    ysolde, maelle, tam, bo = (world.character(i) for i in ("ysolde", "maelle", "tam", "bo"))
    assert kin_side(ysolde, [ysolde, maelle]) == "parent"  # her own tie says Maelle is her daughter
    assert kin_side(maelle, [ysolde, maelle]) == "child"  # told from the mother's side only
    assert kin_side(ysolde, [ysolde, tam]) == "parent"  # Tam's tie says Ysolde is his mother
    assert kin_side(ysolde, [ysolde, bo]) == kin_side(bo, [ysolde, bo]) == ""  # no tie in this cast


@pytest.mark.parametrize("line, side, found", [
    ("Ah, Mother! What has been happening?", "parent", ["Mother"]),
    ("How is your mother these days?", "parent", ["your mother"]),
    ("Yes, Father.", "parent", ["Father"]),
    ("My mother taught me that.", "parent", []),  # her own mother
    ("I miss my Mother.", "parent", []),
    ("Mother Superior will hear of it.", "parent", []),  # a title
    ("Ask the Mother.", "parent", []),
    ("I love my daughter.", "child", ["my daughter"]),
    ("Your mother is still standing by the shelf.", "child", ["Your mother"]),  # said to the mother herself
    ("Mother, listen.", "child", []),  # what a child says
    ("Mother, listen.", "", []),
])
def test_kin_words_a_parent_or_child_gets_backwards(line, side, found):

    assert misspoken_kin(line, side) == found


@pytest.mark.parametrize("text, speaker, listener, found", [
    ("Ah! My sister Maelle.", "ysolde", "maelle", ["My sister"]),  # Maelle is her daughter
    ("You're talking about my daughter, Maelle.", "ysolde", "maelle", []),
    ("Maelle, my sister, listen.", "ysolde", "maelle", ["my sister"]),  # the family word after the name
    ("Maelle, my daughter, listen.", "ysolde", "maelle", []),
    ("I am glad that your sister Maelle came.", "ysolde", "maelle", ["your sister"]),  # said to Maelle herself
    ("Ask your dear mother Queen Ysolde.", "tam", "maelle", []),  # Maelle's mother, by Ysolde's tie
    ("Ask your mother Queen Ysolde.", "maelle", "tam", []),  # Tam's own tie
    ("My mother Ysolde said so.", "ysolde", "maelle", ["My mother"]),  # the speaker herself
    ("She turned to her sister, Maelle.", "", "", ["her sister"]),  # no one's sister
    ("She turned to her daughter Maelle.", "", "", []),  # someone's daughter
    ("My mother said we could sit here.", "maelle", "ysolde", ["My mother"]),  # said to the mother herself
    ("That was my mother's choice.", "maelle", "ysolde", ["my mother"]),
    ("Ah, my mother! Sit.", "maelle", "ysolde", []),  # said to her: an address
    ("My mother said we could sit here.", "maelle", "tam", []),  # to someone else
    ("Your daughter keeps the books.", "ysolde", "maelle", []),  # "your daughter": Maelle has none, invented_relatives's case
    ("Your daughter keeps the books.", "maelle", "ysolde", ["Your daughter"]),  # from that daughter
    ("My brother Bo laughed.", "", "", ["My brother"]),  # Bo has no family
    ("My brother laughed at Bo.", "", "", []),  # no name after the family word: invented_relatives's case
    ("Sister Maelle and her mother", "", "", []),  # a title, no claim
])
def test_family_words_hung_on_a_name_are_held_to_the_worlds_ties(tmp_path, text, speaker, listener, found):

    kin = kinship(load_world(write_world(tmp_path, KIN_WORLD)))
    assert wrong_kin(text, kin, speaker=speaker, listener=listener) == found


def test_a_world_without_family_ties_has_no_kinship(tmp_path):

    world = load_world(write_world(tmp_path, """\
world: {id: keep, name: The Keep}
characters:
  - {id: bo, name: Bo, relationships: [{with: al, kind: rival}]}
  - {id: al, name: Al}
"""))
    assert kinship(world) is None


def test_a_family_word_in_a_sentence_about_one_character_is_theirs(tmp_path):
    world = load_world(write_world(tmp_path, """\
world: {id: keep, name: The Keep}
characters:
  - {id: ysolde, name: Queen Ysolde, relationships: [{with: maelle, kind: daughter}]}
  - {id: maelle, name: Sister Maelle}
"""))
    kin = kinship(world)
    assert narrated_kin("Ysolde stood before her mother. Maelle stood before her mother.", kin) == [
        "Ysolde: her mother"]  # Maelle's mother is Ysolde; Ysolde has none
    assert narrated_kin("Queen Ysolde thought of her own daughter.", kin) == []
    assert narrated_kin("Ysolde looked at Maelle and her mother.", kin) == []  # two named: whose is unclear
    assert narrated_kin('Ysolde said, "Ask her mother."', kin) == []  # quoted speech


def test_kinship_names_the_relatives_a_family_word_can_mean(tmp_path):
    world = load_world(write_world(tmp_path, """\
world: {id: keep, name: The Keep}
characters:
  - {id: ysolde, name: Queen Ysolde, description: She rules., relationships: [{with: maelle, kind: daughter}]}
  - {id: maelle, name: Sister Maelle}
  - {id: bran, name: Bran, relationships: [{with: maelle, kind: brother}]}
"""))
    kin = kinship(world)
    assert kin.relatives("maelle", "mother") == ["ysolde"]
    assert kin.relatives("maelle", "Parent") == ["ysolde"]
    assert kin.relatives("maelle", "father") == []  # her parent is a woman
    assert kin.relatives("maelle", "brother") == ["bran"]  # Bran's sex is not known: he may be
    assert kin.relatives("ysolde", "mother") == []


@pytest.mark.parametrize("text, found", [
    ("Ysolde's eyes narrowed. She turned to face her father.", ["Ysolde: her father"]),  # still Ysolde
    ("Maelle wept. The fire hissed. She turned to her mother.", []),  # Maelle's mother is Ysolde
    ("Maelle wept. She turned to her father.", ["Maelle: her father"]),  # her parent is a mother
    ("Ysolde rose. Maelle wept. She turned to her mother.", []),  # Maelle's, the last named alone
    ("Ysolde looked at Maelle. She turned to her father.", []),  # after two named: whose is unclear
    ("Bran waited. He thought of his brother.", []),  # Bran's pronoun is not known
    ("Ysolde rose. He thought of his brother.", []),  # not Ysolde's pronoun: someone else
])
def test_a_family_word_after_a_pronoun_belongs_to_the_character_last_named_alone(tmp_path, text, found):
    world = load_world(write_world(tmp_path, """\
world: {id: keep, name: The Keep}
characters:
  - {id: ysolde, name: Queen Ysolde, description: She rules., relationships: [{with: maelle, kind: daughter}]}
  - {id: maelle, name: Sister Maelle}
  - {id: bran, name: Bran}
"""))
    assert narrated_kin(text, kinship(world)) == found


GUARD_WORLD = """\
world: {id: keep, name: The Keep}
characters:
  - id: ysolde
    name: Queen Ysolde
    description: A tall woman; she rules the Keep.
    relationships: [{with: maelle, kind: daughter}]
  - {id: maelle, name: Sister Maelle, description: She keeps the books.}
  - {id: oswin, name: Oswin Hale, description: He keeps bees. Since his wife died he barely speaks.}
"""


def guard_owners(tmp_path):
    from metagen.kinship import kin_guard_rules, read_rule

    rules = kin_guard_rules(load_world(write_world(tmp_path, GUARD_WORLD)))
    return rules, {owner.forms[0]: owner for owner in map(read_rule, rules)}


def test_kin_guard_rules_give_each_character_their_ties_and_their_cards_family_words(tmp_path):
    rules, _ = guard_owners(tmp_path)
    assert rules == ("Queen Ysolde / Ysolde (she): child, daughter, stepdaughter",  # no son: Maelle is "she"
                     "Sister Maelle / Maelle (she): mama, mom, mother, mum, parent, stepmother",
                     "Oswin Hale / Oswin (he): wife")  # his card's own word


@pytest.mark.parametrize(("text", "owner"), [
    ("The hall was cold. Queen Ysolde's", "Queen Ysolde"),
    ("Then Oswin’s", "Oswin Hale"),
    ("Ysolde sat down. She told her", "Queen Ysolde"),  # the nearest sentence naming anyone names her alone
    ("Ysolde looked at her own", "Queen Ysolde"),
    ("Oswin thought of his late", "Oswin Hale"),
    ("Ysolde looked at his", None),  # she is no "his"
    ("Ysolde smiled at Maelle and her", None),  # either of them
    ('Ysolde said, "Tell her', None),  # a speaker's words
    ('Ysolde said, "Go." Then she kissed her', "Queen Ysolde"),  # the quotation is over
    ("The wind rose. Her", None),  # no one named yet
    ("Ysolde smiled", None),  # no possessive
])  # fmt: skip
def test_possessor_is_the_one_character_a_possessive_can_only_mean(tmp_path, text, owner):
    from metagen.kinship import possessor

    _, owners = guard_owners(tmp_path)
    found = possessor(text, list(owners.values()))
    assert (found.forms[0] if found else None) == owner


def test_a_kin_guard_rule_in_another_shape_names_itself():
    from metagen.errors import ConfigError
    from metagen.kinship import read_rule, write_rule

    assert read_rule(write_rule(("Amos",), "", ())).pronoun == ""  # "(?)": not known
    with pytest.raises(ConfigError, match=r"'Amos: wife' is not 'NAME / OTHER NAME"):
        read_rule("Amos: wife")
    with pytest.raises(ConfigError, match="unknown family words: wyfe"):
        read_rule("Amos (he): wyfe")


def test_courtship_is_for_worlds_that_speak_of_it_group_by_group(tmp_path):
    plain = load_world(write_world(tmp_path, KIN_WORLD, "plain.yaml"))
    assert {"married", "wedding", "beloved", "in love", "sweetheart"} <= set(courtship_words(plain))
    widowed = load_world(write_world(tmp_path, KIN_WORLD.replace("name: Bo}", "name: Bo, description: A widow.}"),
                                     "widowed.yaml"))
    words = set(courtship_words(widowed))
    assert "wedding" not in words and "married" not in words  # a widow's world may speak of her wedding
    assert "beloved" in words and "in love" in words  # and still not of courting
    groom = load_world(write_world(tmp_path, KIN_WORLD.replace("name: Bo}", "name: Bettany Groom}"), "groom.yaml"))
    words = set(courtship_words(groom))
    assert "groom" not in words  # her name stays writable
    assert "married" in words and "bride" in words  # and a surname does not make the world speak of weddings
    assert "wedding" not in courtship_words(plain, "a wedding at the inn")  # the request's own words stay writable
    assert "beloved" in courtship_words(plain, "a wedding at the inn")
