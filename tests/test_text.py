"""Small text helpers: quotes paired in a story paragraph."""

from __future__ import annotations

import pytest

from metagen.text import balanced_quotes


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
