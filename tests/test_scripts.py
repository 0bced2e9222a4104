"""Writing systems: scripts of characters and prose, token bytes, and which tokens the guard bans."""

from __future__ import annotations

import pytest

from metagen.scripts import (_byte_decoder, banned_token_ids, bytes_scripts, foreign_letters, is_garbled, prose_scripts,
                             script_of, token_bytes, vocabulary_bytes)


@pytest.mark.parametrize("char, script", [("a", "latin"), ("é", "latin"), ("—", "latin"), ("Ж", "cyrillic"),
                                          ("λ", "greek"), ("白", "cjk"), ("の", "cjk"), ("한", "hangul"),
                                          ("ש", "hebrew"), ("ب", "arabic"), ("😀", "emoji")])
def test_script_of(char, script):
    assert script_of(char) == script


def test_prose_scripts_follow_the_share_of_letters_not_a_single_name():
    assert prose_scripts(["A wuxia world where swords sing.", "He walks the mountain road."]) == ("latin",)
    assert prose_scripts(["白云 is here.", "The river runs east past the old mill and the tea house."]) == ("latin",)
    assert prose_scripts(["林小雨走进了港口。", "A port."]) == ("latin", "cjk")


def test_foreign_letters_spare_exempt_names():
    assert foreign_letters("白云 drew his sword.", ["latin"], ["白云"]) == 0
    assert foreign_letters("白云 said 公司.", ["latin"], ["白云"]) == 2
    assert foreign_letters("公司", ["any"]) == 0


@pytest.mark.parametrize("text, garbled", [("Maëlle smiled.", False), ("MaÃ¯e smiled.", True),
                                           ("a broken \ufffd byte", True), ("Привет", True), ("Fine — fine.", False),
                                           ("a NUL\x00 byte", True), ("tab\tline\nreturn\r", False)])
def test_is_garbled(text, garbled):
    assert is_garbled(text, ["latin"]) is garbled


def test_token_bytes_reads_byte_level_and_sentencepiece_entries():
    assert token_bytes("Ġthe") == b" the"
    assert token_bytes("<0xE3>") == b"\xe3"
    assert token_bytes("\u2581the") == b" the"


def test_every_byte_of_the_byte_level_alphabet_reads_back_and_a_vocabulary_is_read_once():
    alphabet = {byte: char for char, byte in _byte_decoder().items()}
    assert [token_bytes(alphabet[b]) for b in range(256)] == [bytes([b]) for b in range(256)]
    whole = "".join(alphabet[b] for b in range(256))
    assert token_bytes(whole) == bytes(range(256))
    vocabulary = ("Ġthe", "", "<0xE3>", "日本", whole)
    assert vocabulary_bytes(vocabulary) == (b" the", b"", b"\xe3", "日本".encode(), bytes(range(256)))
    assert vocabulary_bytes(vocabulary) is vocabulary_bytes(vocabulary)


@pytest.mark.parametrize("data, scripts", [(b" the", {"latin"}), ("é".encode()[:1], {"latin"}),
                                           ("白".encode()[:1], {"cjk"}), ("白".encode()[1:], set()),
                                           ("Ã".encode(), {"latin", "mojibake"}), ("ж".encode(), {"cyrillic"})])
def test_bytes_scripts_judge_incomplete_characters_by_what_they_can_become(data, scripts):
    assert bytes_scripts(data) == scripts


def test_banned_tokens_spare_exempt_ids_and_allowed_scripts():
    def piece(text: str) -> str:
        from metagen.scripts import _byte_decoder

        encoder = {byte: char for char, byte in _byte_decoder().items()}
        return "".join(encoder[b] for b in text.encode())

    vocabulary = tuple(piece(t) for t in [" the", "白", "公", " ж", "é", "Ã"])
    assert banned_token_ids(vocabulary, ("latin",), frozenset()) == (1, 2, 3, 5)
    assert banned_token_ids(vocabulary, ("latin",), frozenset({1})) == (2, 3, 5)
    assert banned_token_ids(vocabulary, ("cjk", "latin"), frozenset()) == (3, 5)
