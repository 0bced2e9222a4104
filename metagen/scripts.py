"""Writing systems: which scripts a world writes in, and which tokens would leave them.

A 135M model drifts into other scripts (a run of CJK characters at the end of an English
story) and into mojibake ("MaÃ¯e" for "Maëlle"). The guard bans every token that would
write a letter of a script the world's prose does not use, or a mojibake character, while
the world's own names keep whatever script they are written in (a wuxia world in English
whose hero is 白云 keeps 白云, and nothing else in CJK). Scripts are Unicode blocks grouped
coarsely; "latin" (with digits, punctuation and symbols) is always allowed.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable

# (first code point, last code point, script): the blocks that matter for drift.
_BLOCKS = (
    (0x0370, 0x03FF, "greek"), (0x1F00, 0x1FFF, "greek"),
    (0x0400, 0x052F, "cyrillic"), (0x1C80, 0x1C8F, "cyrillic"), (0x2DE0, 0x2DFF, "cyrillic"),
    (0xA640, 0xA69F, "cyrillic"),
    (0x0530, 0x058F, "armenian"), (0x0590, 0x05FF, "hebrew"),
    (0x0600, 0x06FF, "arabic"), (0x0750, 0x077F, "arabic"), (0x08A0, 0x08FF, "arabic"),
    (0xFB50, 0xFDFF, "arabic"), (0xFE70, 0xFEFF, "arabic"),
    (0x0700, 0x08FF, "other"), (0x0900, 0x0DFF, "indic"), (0x0E00, 0x0E7F, "thai"),
    (0x0E80, 0x10FF, "other"), (0x1100, 0x11FF, "hangul"), (0x1200, 0x1DFF, "other"),
    (0x2E80, 0x2FDF, "cjk"), (0x3000, 0x303F, "cjk"), (0x3040, 0x30FF, "cjk"),
    (0x3100, 0x312F, "cjk"), (0x3130, 0x318F, "hangul"), (0x3190, 0x33FF, "cjk"),
    (0x3400, 0x4DBF, "cjk"), (0x4E00, 0x9FFF, "cjk"), (0xA000, 0xA4CF, "other"),
    (0xA960, 0xA97F, "hangul"), (0xAC00, 0xD7FF, "hangul"), (0xF900, 0xFAFF, "cjk"),
    (0xFF00, 0xFFEF, "cjk"), (0x10000, 0x1EFFF, "other"), (0x1F000, 0x1FAFF, "emoji"),
    (0x20000, 0x3FFFF, "cjk"),
)
SCRIPTS = ("latin", "greek", "cyrillic", "armenian", "hebrew", "arabic", "indic", "thai", "hangul", "cjk",
           "emoji", "other")
ANY = "any"  # the setting that switches the guard off
# Characters that are letters of no language a world writes in: "Ã"/"Â" start the mojibake of
# UTF-8 read as Latin-1 ("Ã©" for "é"), control characters never belong in prose (tab, line feed
# and carriage return do; a NUL byte made `diff` call a scene file binary), U+FFFD is a broken byte.
MOJIBAKE = re.compile("[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\u00c2\u00c3\u0080-\u009f\ufffd]")
_ASCII_LETTER = re.compile("[A-Za-z]")  # bytes_scripts' shortcut: an ASCII text's letters are Latin
# A script holding at least this share of the prose's letters is one the world writes in.
PROSE_SHARE = 0.2


def script_of(char: str) -> str:
    """The script of one character ("latin" for ASCII, Latin letters, digits, punctuation, symbols)."""
    point = ord(char)
    if point < 0x0370:
        return "latin"
    for first, last, script in _BLOCKS:
        if first <= point <= last:
            return script
    return "latin"  # general punctuation, arrows, math: shared by every script


def script_letters(texts: Iterable[str]) -> Counter:
    """How many letters of the texts each script has (prose_scripts' tally, to add to)."""
    return Counter(script_of(c) for text in texts for c in text if c.isalpha())


def prose_scripts(texts: Iterable[str], counts: Counter | None = None) -> tuple[str, ...]:
    """The scripts a world writes its prose in: latin, and any other with PROSE_SHARE of the letters.

    Args:
        counts: a tally of other texts (script_letters) to add to the texts'.
    """
    counts = script_letters(texts) + (counts or Counter())
    total = sum(counts.values()) or 1
    others = sorted(s for s, n in counts.items() if s != "latin" and n / total >= PROSE_SHARE)
    return ("latin", *others)


def foreign_letters(text: str, allowed: Iterable[str], exempt: Iterable[str] = ()) -> int:
    """Letters of `text` outside the allowed scripts, not counting those of exempt words (names)."""
    allowed = set(allowed)
    if ANY in allowed:
        return 0
    for word in exempt:
        text = text.replace(word, " ")
    return sum(1 for c in text if c.isalpha() and script_of(c) not in allowed)


def is_garbled(text: str, allowed: Iterable[str], exempt: Iterable[str] = ()) -> bool:
    """Mojibake, broken bytes or letters of a script the world does not write in."""
    return bool(MOJIBAKE.search(text)) or foreign_letters(text, allowed, exempt) > 0


# ----------------------------------------------------------------------------- tokens


@functools.lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet, back to bytes."""
    visible = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for byte in range(256):
        if byte in visible:
            table[chr(byte)] = byte
        else:
            table[chr(256 + extra)] = byte
            extra += 1
    return table


@functools.lru_cache(maxsize=1)
def _byte_translation() -> dict[int, int]:
    """_byte_decoder for str.translate: each alphabet character to the code point of its byte."""
    return {ord(char): byte for char, byte in _byte_decoder().items()}


_BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


def token_bytes(piece: str) -> bytes | None:
    """A vocabulary entry's raw bytes: byte-level BPE ("Ġthe") or SentencePiece ("▁the", "<0xE3>")."""
    match = _BYTE_TOKEN.match(piece)
    if match:
        return bytes([int(match.group(1), 16)])
    if _byte_decoder().keys() >= set(piece):
        # Each character becomes the one whose code point is its byte; latin-1 writes those bytes.
        return piece.translate(_byte_translation()).encode("latin-1")
    return piece.replace("\u2581", " ").encode("utf-8")


@functools.lru_cache(maxsize=4)
def vocabulary_bytes(vocabulary: tuple[str, ...]) -> tuple[bytes, ...]:
    """Every token's raw bytes (token_bytes; b"" for an empty entry), once per vocabulary: the
    script guard and the sentence opening both scan all of it in every process."""
    return tuple(token_bytes(piece) if piece else b"" for piece in vocabulary)


def _partial_scripts(tail: bytes) -> set[str]:
    """Scripts a character could belong to whose UTF-8 encoding begins with `tail` (incomplete)."""
    length = 2 if tail[0] < 0xE0 else 3 if tail[0] < 0xF0 else 4
    missing = length - len(tail)
    scripts = set()
    for filler in (0x80, 0xBF):
        try:
            scripts.add(script_of((tail + bytes([filler]) * missing).decode("utf-8")))
        except UnicodeDecodeError:
            scripts.add("other")
    return scripts


def bytes_scripts(data: bytes) -> set[str]:
    """Scripts of the letters these bytes write, an incomplete trailing character included; a
    leading run of continuation bytes belongs to a character begun (and checked) before."""
    start = 0
    while start < len(data) and 0x80 <= data[start] < 0xC0:
        start += 1
    data = data[start:]
    text = data.decode("utf-8", errors="ignore")
    whole = len(text.encode("utf-8"))
    if text.isascii():  # most of a vocabulary: every letter Latin, script_of not needed
        scripts = {"latin"} if _ASCII_LETTER.search(text) else set()
    else:
        scripts = {script_of(c) for c in text if c.isalpha()}
    if MOJIBAKE.search(text):
        scripts.add("mojibake")
    if whole < len(data) and data[whole] >= 0xC0:
        scripts |= _partial_scripts(data[whole:])
    return scripts


@functools.lru_cache(maxsize=16)
def banned_token_ids(vocabulary: tuple[str, ...], allowed: tuple[str, ...],
                     exempt_ids: frozenset[int]) -> tuple[int, ...]:
    """Ids of tokens that would write a letter of a script not in `allowed`, or mojibake."""
    allowed_set = set(allowed)
    banned = []
    for token_id, data in enumerate(vocabulary_bytes(vocabulary)):
        if token_id in exempt_ids or not data:
            continue
        scripts = bytes_scripts(data)
        if scripts - allowed_set:
            banned.append(token_id)
    return tuple(banned)


__all__ = ["ANY", "MOJIBAKE", "SCRIPTS", "banned_token_ids", "bytes_scripts", "foreign_letters", "is_garbled",
           "prose_scripts", "script_letters", "script_of", "token_bytes", "vocabulary_bytes"]
