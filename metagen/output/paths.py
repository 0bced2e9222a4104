"""Output file names: `<out>/<world>/<kind>/<subject>-<seed>.<ext>`, every part sanitized.

A subject that leaves part of its request out gets a short hash of the whole request, so
two requests never share a name; the finished path is checked to stay inside the output folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from pathlib import Path
from typing import Any

from metagen.errors import OutputLinkError
from metagen.files import looping_link
from metagen.output.piece import to_plain
from metagen.text import TRANSLIT, slugify

MAX_COMPONENT = 80  # characters in one sanitized path part

_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{i}" for p in ("COM", "LPT") for i in range(1, 10)}


def _digest(s: str) -> str:
    return hashlib.sha256(s.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def sanitize_component(s: str) -> str:
    """One safe file-name part: [A-Za-z0-9._-], no leading dot or dash, at most 80 chars.

    Non-ASCII letters are folded (NFKD, "Café" -> "Cafe"); where letters cannot be folded
    ("林小雨") a short hash of the original keeps distinct names distinct. Never empty.
    """
    s = str(s)
    folded = unicodedata.normalize("NFKD", s.translate(TRANSLIT))
    lost = any(ord(c) > 127 and not unicodedata.combining(c) for c in folded)
    out = folded.encode("ascii", "ignore").decode("ascii")
    out = re.sub(r"[^A-Za-z0-9._-]+", "-", out)
    out = re.sub(r"-{2,}", "-", out)
    out = re.sub(r"\.{2,}", ".", out)
    out = out.strip(".-")
    if lost or len(out) > MAX_COMPONENT:
        head = out[: MAX_COMPONENT - 9].rstrip(".-") or "untitled"
        out = f"{head}-{_digest(s)}"
    if not out:
        return "untitled"
    if out.split(".")[0].upper() in _WINDOWS_RESERVED:
        out = "_" + out
    return out


def _spelt_out(request: dict) -> str:
    """The subject that names every part of request a subject names (cast, place, premise or
    time), nothing left out or cut; a subject equal to it identifies its request by itself."""
    cast = [str(c) for c in request.get("characters") or ()]
    place = request.get("location")
    if request.get("kind") == "scene":
        parts = [str(place or ""), slugify(str(request.get("time") or ""), "", limit=None)]
    elif cast or place:
        parts = ["-".join(cast)] + ([f"at-{place}"] if place else [])
    else:
        return slugify(str(request.get("premise") or ""), "story", limit=None)
    return "-".join(p for p in parts if p) or "untitled"


def request_digest(request: Any) -> str:
    """A short hash of the whole request (its recorded dict, or a Request)."""
    data = to_plain(request.to_dict() if hasattr(request, "to_dict") else request)
    return _digest(json.dumps(data, sort_keys=True, ensure_ascii=False))


def request_name(subject: str, request: Any) -> str:
    """The file-name stem of a request: its subject, with a short hash of the whole request
    when the subject leaves part of it out ("a-b-c-and-1-more", a premise's first words, a
    cut at 80 characters), so two requests never share a name."""
    data = request.to_dict() if hasattr(request, "to_dict") else dict(request)
    if subject == _spelt_out(data):
        return subject
    head = subject[: MAX_COMPONENT - 9].rstrip(".-") or "untitled"
    return f"{head}-{request_digest(data)}"


def output_path(
    out_dir: str | os.PathLike, world_id: str, kind: str, subject: str, seed: int, ext: str,
    *, request: Any = None,
) -> Path:
    """`<out>/<world>/<kind>/<subject>-<seed>.<ext>` from sanitized parts, checked to stay inside out.

    Args:
        request: the request (or its recorded dict); when given, an abbreviated subject gets
            a short hash of the whole request (see request_name).
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    ext = re.sub(r"[^a-z0-9]", "", str(ext).lower()) or "txt"
    stem = subject if request is None else request_name(subject, request)
    name = f"{sanitize_component(stem)}-{seed}.{ext}"
    out = Path(out_dir)
    path = out / sanitize_component(world_id) / sanitize_component(kind) / name
    try:
        root, resolved = out.resolve(), path.resolve()
    except (OSError, RuntimeError):  # Python 3.11 raises RuntimeError where links loop
        raise OutputLinkError(f"{looping_link(path)} is a symbolic link in a loop (it leads back to itself)",
                              hint="remove the link, or choose another --out") from None
    # Sanitized parts cannot climb out; this also catches a symlinked folder that does.
    # write_atomic checks again, without following links, as it writes.
    if root not in resolved.parents:
        raise OutputLinkError(
            f"{path} resolves outside the output folder {out}", hint=f"it resolves to {resolved}"
        )
    return path


def named_file_format(out: str | os.PathLike, typed: str | None = None) -> str | None:
    """The format `--out` names a single file in, or None when it names a folder.

    `-o story.md` names a file: a path whose extension is an output format's (md, txt, json,
    yarn, ink; any case), unless it is a folder already or was typed with a trailing "/"
    (`typed`: the text as given, since Path("x.md/") forgets it), as cp and mv read a folder.
    """
    from metagen.output.formats import FORMATS

    if typed is not None and typed.endswith(("/", os.sep)):
        return None
    path = Path(out)
    ext = path.suffix[1:].lower()
    if ext not in FORMATS or path.stem in ("", ".") or os.path.isdir(path):
        return None
    return ext
