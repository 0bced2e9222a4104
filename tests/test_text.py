"""Small text helpers: quotes paired in a story paragraph, ids made from names, values in messages."""

from __future__ import annotations

import pytest

from metagen.text import (balanced_quotes, id_from, kind_named, kind_of, number_shown, slugify, upper_first,
                         values_shortened)


@pytest.mark.parametrize("paragraph, paired", [
    ('It never came back again."', "It never came back again."),  # closes nothing
    ('She said. "I was wrong. I am not sure.', 'She said. "I was wrong. I am not sure."'),  # cut inside speech
    ('The stars" shone "bright" tonight.', 'The stars shone "bright" tonight.'),
    ('"Go," she said. "Now."', '"Go," she said. "Now."'),  # paired already: untouched
    ("No speech at all.", "No speech at all."),
    ('He paused—"Wait.', 'He paused—"Wait."'),
])
def test_quotes_in_a_paragraph_pair_up(paragraph, paired):
    assert balanced_quotes(paragraph) == paired
    assert balanced_quotes(paired) == paired


@pytest.mark.parametrize("text, limit, cut", [
    ("One. Two. Three", 2, (9, True)),  # after the second sentence, and something follows
    ("One. Two.", 2, (9, False)),  # "Two." could still become "Two.5"
    ("One. Two. Thr", 4, (9, False)),  # fewer than four: the cut may move on
    ("One. Two.\n\nThree. Four.", 4, (9, True)),  # a paragraph break after two ends it
    ("Dr. Bo waits. He sits. Then", 2, (22, True)),  # "Dr." ends no sentence
    ("No sentence yet", 3, (0, False)),
])
def test_sentence_cut_says_where_and_whether_it_is_final(text, limit, cut):
    from metagen.text import first_sentences, sentence_cut

    assert sentence_cut(text, limit) == cut
    assert first_sentences(text, limit) == (text[:cut[0]].rstrip() if cut[0] else text.rstrip())


def test_first_sentences_keeps_everything_without_a_limit():
    from metagen.text import first_sentences

    assert first_sentences("One. Two. Three. Four. Five", 0) == "One. Two. Three. Four. Five"


def test_id_from_spells_out_the_letters_slugify_drops():
    """`worlds new "Ysolde Vær"` had made the id 'ysolde-vr': NFKD folds é but has no ASCII for æ, ø, ß."""
    assert id_from("Ysolde Vær") == "ysolde-vaer"
    assert id_from("Søren Łukasz Straße") == "soren-lukasz-strasse"
    assert id_from("Ceann Tíre") == "ceann-tire" and id_from("林小雨") == "world"
    assert slugify("Ysolde Vær") == "ysolde-vr"  # file names keep their spelling: batch --resume finds them by name


@pytest.mark.parametrize("value, words", [
    (None, "nothing"), (True, "true/false"), (3, "a whole number"), (0.5, "a number"), ("x", "text"),
    ([1], "a list"), ((1,), "a list"), ({"a": 1}, "a mapping"), (b"x", "something else"),
])
def test_kind_of_names_a_value_as_a_yaml_writer_would(value, words):
    assert kind_of(value) == words
    if value is not None:  # what "must be ..." says of its type is what "got ..." says of its value
        assert kind_named(type(value)) == words


@pytest.mark.parametrize("text, capitalised", [
    ("the Crooked Kettle", "The Crooked Kettle"),  # the rest as written, unlike str.capitalize
    ("The Old Mill", "The Old Mill"),
    ("ëlle", "Ëlle"),
    ("", ""),
])
def test_upper_first_raises_only_the_first_letter(text, capitalised):
    assert upper_first(text) == capitalised


@pytest.mark.parametrize("value, shown", [
    (10**40 - 1, "9" * 40),  # 40 digits: written out, as 2**63 and every smaller number is
    (-(10**40 - 1), "-" + "9" * 40),
    (10**40, "a number of more than 40 digits"),
    (-(10**40), "a negative number of more than 40 digits"),
    pytest.param(10**5000, "a number of more than 40 digits", id="5000-digits"),  # more than str() converts
    (1.5, "1.5"), (1e308, "1e+308"), ("5", "'5'"), (True, "True"),
])
def test_number_shown_names_a_long_whole_number_by_its_size(value, shown):
    """A 4,000-digit --seed or --count was echoed whole: a 4,000-character error line."""
    assert number_shown(value) == shown


@pytest.mark.parametrize("message, shortened", [
    ("'" + "9" * 5000 + "' is not a valid int.", "'" + "9" * 37 + "...' (5,000 digits) is not a valid int."),
    ("-" + "9" * 1000 + " is not in the range x>=1.", "-" + "9" * 36 + "... (1,000 digits) is not in the range x>=1."),
    ("'--seed': 'abc' is not a valid int.", "'--seed': 'abc' is not a valid int."),
    ("'" + "9" * 40 + "' is not a valid int.", "'" + "9" * 40 + "' is not a valid int."),
    ('"' + "it's " * 20 + '" is not a valid float.', '"' + "it's " * 7 + "it...\" (100 characters) is not a valid float."),
], ids=["quoted-digits", "bare-digits", "short", "40-digits", "quote-inside"])
def test_values_shortened_cuts_a_long_value_and_gives_its_length(message, shortened):
    assert values_shortened(message) == shortened
