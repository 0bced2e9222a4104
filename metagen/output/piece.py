"""The record of one generated piece: what it is, how it was made, and the plain values it is saved as.

Every output format stores a Piece's front matter (all fields but the text); to_plain turns
its values into what both YAML and JSON accept.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timezone
from typing import Any

from metagen import __version__
from metagen.prompts import KINDS

FINISH_REASONS = ("eos", "stop", "length")


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Piece:
    """One generated story, scene or dialogue and everything needed to reproduce it."""

    kind: str  # "story" | "scene" | "dialogue"
    world_id: str  # the world's id, from its file
    world_hash: str  # sha256 of the world files, so a changed world is noticed
    world_files: list  # the world files read, as str paths
    request: dict  # what was asked for (subject, cast, place, ...)
    model: dict  # generator.ModelInfo.to_dict: name, path, sha256, dtype, device (prompt_dtype, adapter)
    settings: dict  # every effective decoding setting, after the merge
    seed: int  # the piece's seed; every candidate's seed derives from it (config.candidate_seed)
    prompt_tokens: int  # tokens in the prompt
    output_tokens: int  # tokens generated
    lore_used: list  # lore entries that fitted in the prompt
    lore_left_out: list  # lore entries dropped for the token budget
    finish_reason: str  # "eos" | "stop" | "length"
    seconds: float  # wall time of the generation; of a scene decoded with others, the whole batch's
    text: str  # the generated text (for dialogue, the turns as "Name: line" lines)
    turns: list = field(default_factory=list)  # dialogue only: {"speaker", "speaker_id", "line"}
    plan: list = field(default_factory=list)  # story only: the beats written, {"beat", "instruction", "text"} each
    critic: dict = field(default_factory=dict)  # with candidates: each unit's scores and the one kept
    moderation: dict = field(default_factory=dict)  # the verdict on the text (metagen.moderation.verdict); {}: off
    # scenes decoded in one batch with others: every scene of the batch, in order, {"request", "seed"}
    # each (this one among them). Replay decodes the same batch: floating-point sums round otherwise in
    # another batch shape, and a scene alone can come out as another text.
    decoded_with: list = field(default_factory=list)
    subject: str = ""  # what the piece is about; names the file
    metagen_version: str = __version__  # the metagen that wrote it
    created: str = field(default_factory=_now_iso)  # ISO 8601 timestamp, UTC

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.finish_reason not in FINISH_REASONS:
            raise ValueError(
                f"finish_reason must be one of {', '.join(FINISH_REASONS)}, got {self.finish_reason!r}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")

    def front_matter(self) -> dict:
        """Every field but text, in field order, as plain YAML/JSON values; turns only for dialogue."""
        out = {}
        for f in fields(self):
            if f.name == "text" or (f.name == "turns" and self.kind != "dialogue"):
                continue
            if f.name in ("plan", "critic", "moderation", "decoded_with") and not getattr(self, f.name):
                continue
            out[f.name] = to_plain(getattr(self, f.name))
        return out



def to_plain(value: Any) -> Any:
    """Turn tuples, paths, dates and number-likes into values safe_dump and json both accept."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((to_plain(v) for v in value), key=repr)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    # Anything else (a Path, an enum) is recorded by its text rather than failing after
    # the generation has already been paid for.
    return str(value)
