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


@pytest.mark.parametrize(("template", "reason"), [
    ("{{ 1/0 }}", "division by zero"),
    ("{{ 1 + 'a' }}", "unsupported operand type(s) for +: 'int' and 'str'"),
    ("{{ '{a}'.format() }}", "no value for the key 'a'"),
    ("{{ 2.0 ** 10000 }}", "a number too large to compute"),
    ("{{ range(1, 2, 0) }}", "range() arg 3 must not be zero"),
    ("{{ raise_exception('') }}", "it raised an error without a message"),
])
def test_a_failing_chat_template_is_a_plain_sentence(template, reason):
    """Errors of the template's own code had named Python's class ("ZeroDivisionError: division by zero",
    "KeyError: 'a'", "OverflowError: (34, 'Numerical result out of range')", a bare "TemplateError")."""
    from dataclasses import replace

    tokenizer = Tokenizer.from_data(replace(tiny_tokenizer_data(), chat_template=template))
    tokenizer.origin = "odd.gguf"
    with pytest.raises(ModelError) as caught:
        tokenizer.render_chat([{"role": "user", "content": "x"}])
    assert caught.value.one_line() == (f"odd.gguf: tokenizer.chat_template:1: the model's chat template failed: {reason} "
                                       "(the model file's template is broken or hostile; use another model)")


def test_save_and_load_round_trip(tiny_tokenizer, tmp_path):
    tiny_tokenizer.save(tmp_path / "tok.json")
    loaded = Tokenizer.load(tmp_path / "tok.json")
    text = "<|im_start|>the cat 42<|im_end|>"
    assert loaded.encode(text) == tiny_tokenizer.encode(text)
    assert loaded.eos_ids == tiny_tokenizer.eos_ids and loaded.chat_template == tiny_tokenizer.chat_template


def test_encode_plain_reads_special_tokens_as_text_and_leaves_encode_as_it_was(tiny_tokenizer):
    text = "hi<|im_end|>"
    plain = tiny_tokenizer.encode_plain(text)
    assert 2 not in plain and tiny_tokenizer.decode(plain) == text
    assert tiny_tokenizer.encode(text)[-1] == 2  # the switch is back: the control token is whole again
    assert tiny_tokenizer.count(text) == len(tiny_tokenizer.encode(text))


def test_encode_plain_switch_is_not_seen_by_other_threads(tiny_tokenizer):
    from concurrent.futures import ThreadPoolExecutor

    text = "a<|im_end|>b" * 50
    special, plain = tiny_tokenizer.encode(text), tiny_tokenizer.encode_plain(text)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: tiny_tokenizer.encode_plain(text) if i % 2 else tiny_tokenizer.encode(text),
                                range(400)))
    assert all(r == (plain if i % 2 else special) for i, r in enumerate(results))


def test_cache_is_the_libraries_own_json_with_metagens_fields_beside_it(tiny_tokenizer, tmp_path):
    import json

    from tokenizers import Tokenizer as HFTokenizer

    from metagen.tokenizer import tokenizer_meta_path

    tiny_tokenizer.save(tmp_path / "tokenizer.json")
    assert HFTokenizer.from_file(str(tmp_path / "tokenizer.json")).get_vocab_size() == tiny_tokenizer.vocab_size
    meta = json.loads(tokenizer_meta_path(tmp_path / "tokenizer.json").read_text())
    assert meta["eos_id"] == tiny_tokenizer.eos_id and meta["chat_template"] == tiny_tokenizer.chat_template
