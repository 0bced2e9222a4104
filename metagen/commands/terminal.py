"""Text from world files, model files and the model, made safe to print on a terminal.

A world or a GGUF is written by someone else: an escape sequence in a character's name
would move the cursor, retitle the window or hide the rest of a line. Messages and tables
show such characters escaped (`\\x1b`); generated text keeps its words, newlines and tabs
and loses only control characters, and only when it goes to a terminal.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls, and the Unicode line/paragraph separators and bidi controls.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROLS_BUT_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def escaped(text: str) -> str:
    """Untrusted text for a message or a table: every control character written as an escape."""
    return _CONTROLS.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


_JSON_RAW = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def json_text(data, **kwargs) -> str:
    """json.dumps that keeps letters readable (CJK stays CJK) but writes DEL, C1 controls, line
    separators and bidi controls as \\u escapes: json escapes only C0 by itself."""
    import json

    text = json.dumps(data, ensure_ascii=False, **kwargs)
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def printable(text: str, terminal: bool) -> str:
    """Generated text for stdout: on a terminal without C0/C1 controls but newline and tab."""
    return _CONTROLS_BUT_LINES.sub("", text) if terminal else text
