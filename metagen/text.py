"""Small text helpers shared across metagen: ids from names, loose folding, hints, transcripts.

One transliteration table serves both the file names in output.py and the loose comparisons
of the critic and `metagen eval`, so a name folds the same way in both. No metagen imports
here: every other module may import this one.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import re
import unicodedata
from collections.abc import Iterable, Sequence

# Letters that NFKD does not decompose into ASCII but that have a usual spelling.
TRANSLIT = str.maketrans(
    {"ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O", "đ": "d",
     "Đ": "D", "ð": "d", "Ð": "D", "ł": "l", "Ł": "L", "þ": "th", "Þ": "Th", "ı": "i"}
)
# Curly apostrophes compare as the straight one; file names keep them (and so get a hash).
_QUOTES = str.maketrans({"’": "'", "‘": "'"})


def slugify(text: str, fallback: str = "world", limit: int | None = 64) -> str:
    """An ASCII id from free text: "Aoife Ní Bhriain" -> "aoife-ni-bhriain"; cut at limit characters."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:limit].strip("-")
    return slug or fallback


def id_from(name: str, fallback: str = "world") -> str:
    """A new id made from a name, with the letters NFKD cannot fold spelt out: "Ysolde Vær" -> "ysolde-vaer".

    Only for ids a user has yet to write (`worlds new`, the id a validation message suggests): output
    file names keep slugify's spelling, so a name batch --resume looks for stays the name on disk.
    """
    return slugify(name.translate(TRANSLIT), fallback)


def listing(items: Iterable[str], most: int = 5) -> str:
    """Items joined with commas for a message: the first `most`, then "and N more", so that a list
    a user can make as long as they like (30,000 `-c` names) stays one short line."""
    items = list(items)
    shown = ", ".join(items[:most])
    return shown if len(items) <= most else f"{shown} and {len(items) - most:,} more"


LONG_NUMBER = 10**40  # a whole number this large is named by its size in a message, not written out


def number_shown(value) -> str:
    """A value as a message shows it (repr), but a whole number of more than 40 digits by its size
    alone: a 4,000-digit --seed had made a 4,000-character error line."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= LONG_NUMBER:
        return f"a {'negative ' if value < 0 else ''}number of more than {len(str(LONG_NUMBER)) - 1} digits"
    return repr(value)


def shorten(text: str, limit: int = 40) -> str:
    """Text cut to limit characters, ending in "..." when cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


# A value a message quotes ('...' or "...", as repr writes it) or writes out (a long run of digits).
_VALUE_IN_MESSAGE = re.compile(r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[-+]?\d{41,}""")


def values_shortened(message: str, limit: int = 40) -> str:
    """message with each value in it of more than limit characters cut short (shorten) and its
    length said: "'99999...' (5,000 digits)". Click's "'VALUE' is not a valid int." had written a
    5,000-digit --seed out whole (more digits than the 4,300 int() reads)."""

    def cut(match: re.Match) -> str:
        written = match.group()
        quote = written[0] if written[0] in "'\"" else ""
        value = written[1:-1] if quote else written
        if quote:
            with contextlib.suppress(ValueError, SyntaxError):  # repr's escapes, undone to count the value
                value = ast.literal_eval(written)
        if len(value) <= limit:
            return written
        digits = value.lstrip("+-")
        size = f"{len(digits):,} digits" if digits.isascii() and digits.isdigit() else f"{len(value):,} characters"
        shown = shorten(value, limit)
        return f"{shown!r} ({size})" if quote else f"{shown} ({size})"

    return _VALUE_IN_MESSAGE.sub(cut, message)


# Each kind of value in the words of a message, bool before int (True is an int too).
_KIND_WORDS = ((bool, "true/false"), (int, "a whole number"), (float, "a number"), (str, "text"),
               ((list, tuple), "a list"), (dict, "a mapping"))


def kind_of(value) -> str:
    """What a value is, in words for a message: "text", "a whole number", "a list", not Python's
    `str`, `int`, `list` (a world or replayed file is written in YAML or JSON, not Python)."""
    if value is None:
        return "nothing"
    return next((words for kinds, words in _KIND_WORDS if isinstance(value, kinds)), "something else")


def kind_named(kind: type) -> str:
    """What a value of this type is called, in kind_of's words: str -> "text", for "must be ..."."""
    return next((words for kinds, words in _KIND_WORDS if issubclass(kind, kinds)), "something else")


def blank(text: str) -> bool:
    """Whether text shows nothing: empty, or only spaces, controls and format characters (NUL, U+200B)."""
    return all(c.isspace() or unicodedata.category(c) in ("Cc", "Cf") for c in text)


def upper_first(text: str) -> str:
    """Text with its first letter upper case and the rest as written: "the Crooked Kettle" -> "The
    Crooked Kettle" (str.capitalize would lower the rest: "The crooked kettle")."""
    return text[:1].upper() + text[1:]


def fold(text: str) -> str:
    """Text compared loosely: case folded, accents and a few letters spelled plainly ("Søren" -> "soren")."""
    if text.isascii():  # no accents, letters to spell out or curly quotes: most of the text folded
        return text.lower()
    text = unicodedata.normalize("NFKD", text.casefold().translate(TRANSLIT).translate(_QUOTES))
    return "".join(c for c in text if not unicodedata.combining(c))


_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)]*(?=\s|$)")
_ABBREVIATIONS = frozenset("Dr Mr Mrs Ms St Mt Prof Capt Sgt Lt".split())  # a full stop after these ends no sentence


def sentence_cut(text: str, limit: int) -> tuple[int, bool]:
    """Where first_sentences cuts text (0 before the first whole sentence), and whether the cut is
    final: more text can no longer move it (a decoding loop may stop there: metagen.search).

    The cut falls after `limit` sentences, or at a paragraph break after the first two. A
    sentence end is sure once something follows it ("3." could still become "3.5").
    """
    kept, count = 0, 0
    for match in _SENTENCE_END.finditer(text):
        before = text[:match.start()].split()
        if match.group() == "." and before and before[-1] in _ABBREVIATIONS:
            continue  # "Dr. Nwosu" goes on
        count += 1
        kept = match.end()
        rest = text[kept:]
        if count >= limit or (count >= 2 and rest.lstrip(" \t").startswith("\n")):
            return kept, bool(rest)
    return kept, False


def first_sentences(text: str, limit: int) -> str:
    """At most `limit` whole sentences of text, ending at a paragraph break after the first two;
    all of it when limit is 0.

    A small model writes its best sentences first and drifts after a few; a cut-off last
    sentence is dropped when a whole one comes before it. Leading space is kept: the text may
    continue words metagen wrote before it (a scene's opening).
    """
    kept = sentence_cut(text, limit)[0] if limit > 0 else 0
    return text[:kept].rstrip() if kept else text.rstrip()


# Where split_sentences ends a sentence: as _SENTENCE_END, but not before words that go on in lower
# case ("Go!" she said is one sentence).
_SENTENCE_BREAK = re.compile(r"[.!?…]+[\"'”’)]*(?=\s+[^\s a-z]|\s*$)")


def split_sentences(text: str) -> list[str]:
    """text as its sentences, each stripped; what follows the last sentence end is one more."""
    found, start = [], 0
    for match in _SENTENCE_BREAK.finditer(text):
        before = text[start:match.start()].split()
        if match.group() == "." and before and before[-1] in _ABBREVIATIONS:
            continue  # "Dr. Nwosu" goes on
        found.append(text[start:match.end()].strip())
        start = match.end()
    found.append(text[start:].strip())
    return [s for s in found if s]


def closest(word: str, options: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The option most like word (difflib's ratio at least cutoff), or None."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=cutoff)
    return close[0] if close else None


def did_you_mean(word: str, options) -> str:
    """A hint: "did you mean 'x'?" for a close match, else the valid options."""
    options = list(options)
    close = closest(word, options)
    if close:
        return f"did you mean '{close}'?"
    if not options:
        return "there are none"
    shown = ", ".join(options[:12]) + (f", ... ({len(options)} in all)" if len(options) > 12 else "")
    return f"expected one of: {shown}"


def speaker_prefix(name: str) -> str:
    """What metagen writes before the model writes a line: "Name:"."""
    return f"{name}:"


def format_dialogue(lines: Iterable[tuple[str, str]]) -> str:
    """Turns as text, one "Name: line" a line."""
    return "\n".join(f"{speaker_prefix(name)} {line}" for name, line in lines)


def format_turns(turns: Sequence[dict]) -> str:
    """Recorded turns ({"speaker", "line"} dicts) as text, one "Name: line" a line."""
    return format_dialogue((t.get("speaker", ""), t.get("line", "")) for t in turns)


_OPENS_AFTER = "([{—–-"  # a quote after a space, the start or one of these opens speech


def balanced_quotes(paragraph: str) -> str:
    """The paragraph with its straight double quotes paired: a closing quote that closes nothing
    is dropped (`again."` with no speech opened), and speech still open at the end (a paragraph
    cut after its first sentences) is closed. A paragraph whose quotes pair already is unchanged.

    8 of 30 round-six eval stories had a paragraph like this."""
    if paragraph.count('"') % 2 == 0:
        return paragraph
    kept, speaking = [], False
    for i, ch in enumerate(paragraph):
        if ch == '"':
            opens = i == 0 or paragraph[i - 1].isspace() or paragraph[i - 1] in _OPENS_AFTER
            if not speaking and not opens:
                continue  # closes nothing
            speaking = not speaking
        kept.append(ch)
    text = "".join(kept).rstrip()
    return text + '"' if speaking else text




def words_of(text: str) -> list[str]:
    """Lower-case words (letters, digits, apostrophes), for n-gram counts."""
    return re.findall(r"[\w']+", fold(text))


def ngrams(words: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """The runs of n consecutive words."""
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


# Scripts written without spaces between words: keys there match as plain substrings.
_NO_SPACE_SCRIPT = re.compile(r"[\u0e00-\u0e7f\u2e80-\u9fff\u3040-\u30ff\uac00-\ud7af\uf900-\ufaff]")


def mentions(text: str, key: str) -> bool:
    """Whether `key` occurs in `text`, case-insensitively, as a whole word (substring for CJK)."""
    folded, needle = text.casefold(), key.casefold().strip()
    if not needle:
        return False
    if _NO_SPACE_SCRIPT.search(needle):
        return needle in folded
    return re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", folded) is not None


# What json.dumps(ensure_ascii=False) leaves raw and a reader must not get raw: DEL and the C1
# controls (NEL among them), the line and paragraph separators (line breaks to YAML and to many
# editors) and the bidi controls (they reorder what a terminal shows).
_JSON_RAW = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def json_text(data, **kwargs) -> str:
    """json.dumps that keeps letters readable (CJK stays CJK) but writes _JSON_RAW's characters as
    \\u escapes (json escapes only C0 by itself): one line, whatever the data holds."""
    import json

    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(data, ensure_ascii=False, **kwargs))


__all__ = [
    "TRANSLIT", "balanced_quotes", "blank", "closest", "did_you_mean", "first_sentences", "fold", "format_dialogue", "format_turns",
    "id_from", "json_text", "kind_named", "kind_of", "listing", "mentions", "ngrams", "number_shown", "sentence_cut",
    "shorten", "slugify", "speaker_prefix", "words_of",
]
