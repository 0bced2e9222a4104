"""Tokenizer: built from GGUF metadata; special tokens stay whole; the chat template renders
in a sandbox; the real vocabulary tokenizes like the model's own tokenizer."""

from __future__ import annotations

import pytest

from metagen.errors import ModelError
from metagen.tokenizer import CHATML_TEMPLATE, Tokenizer
from tests.conftest import tiny_tokenizer_data


@pytest.fixture(scope="module")
def tiny_tokenizer():
    return Tokenizer.from_data(tiny_tokenizer_data())


@pytest.mark.parametrize("text", ["the cat", "  two  spaces\t\ttabs\n\nlines", "Aoife Ní Bhriain 林小雨 😀", "12345", ""])
def test_round_trip(tiny_tokenizer, text):
    assert tiny_tokenizer.decode(tiny_tokenizer.encode(text)) == text


def test_merges_apply(tiny_tokenizer):
    ids = tiny_tokenizer.encode(" the")
    assert [tiny_tokenizer.hf.id_to_token(i) for i in ids] == ["Ġthe"]


def test_digits_split_one_by_one_with_smollm_pre(tiny_tokenizer):
    assert len(tiny_tokenizer.encode("2024")) == 4


def test_special_tokens_are_kept_whole(tiny_tokenizer):
    ids = tiny_tokenizer.encode("<|im_start|>user\nhi<|im_end|>")
    assert ids[0] == 1 and ids[-1] == 2
    assert tiny_tokenizer.decode(ids) == "user\nhi"
    assert tiny_tokenizer.decode(ids, skip_special=False) == "<|im_start|>user\nhi<|im_end|>"


def test_eos_ids_cover_end_of_turn_tokens(tiny_tokenizer):
    assert tiny_tokenizer.eos_ids == {0, 2}


def test_chat_template_renders(tiny_tokenizer):
    text = tiny_tokenizer.render_chat([{"role": "user", "content": "hello"}])
    assert text == "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"


def test_chatml_fallback_when_file_has_no_template():
    from dataclasses import replace

    tokenizer = Tokenizer.from_data(replace(tiny_tokenizer_data(), chat_template=None))
    assert tokenizer.chat_template is None
    text = tokenizer.render_chat([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}])
    assert text.startswith("<|im_start|>system\ns<|im_end|>\n") and text.endswith("<|im_start|>assistant\n")
    assert CHATML_TEMPLATE


def test_template_runs_sandboxed():
    from dataclasses import replace

    evil = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    tokenizer = Tokenizer.from_data(replace(tiny_tokenizer_data(), chat_template=evil))
    with pytest.raises(ModelError, match="chat template failed"):
        tokenizer.render_chat([{"role": "user", "content": "x"}])


def test_save_and_load_round_trip(tiny_tokenizer, tmp_path):
    tiny_tokenizer.save(tmp_path / "tok.json")
    loaded = Tokenizer.load(tmp_path / "tok.json")
    text = "<|im_start|>the cat 42<|im_end|>"
    assert loaded.encode(text) == tiny_tokenizer.encode(text)
    assert loaded.eos_ids == tiny_tokenizer.eos_ids and loaded.chat_template == tiny_tokenizer.chat_template
