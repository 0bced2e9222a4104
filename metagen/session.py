"""A chat session's record: its turns and answers, the JSON file it is saved as after every turn
and read back from (`metagen chat --resume`), and its export as a dialogue piece (`/save`).

The file holds everything needed to continue the conversation with the same answers: the world's
hash, the character, the player, the place, the seed, every decoding setting and every turn.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from dataclasses import dataclass, field

from metagen import __version__
from metagen.config import MAX_SEED
from metagen.errors import ConfigError
from metagen.files import parse_json, read_input
from metagen.moderation import verdict
from metagen.output import Piece
from metagen.text import format_dialogue, kind_of, number_shown

SESSION_FORMAT = "metagen-chat-session"  # the "format" every session file names first
SESSION_VERSION = 1


@dataclass
class Answer:
    """One answer of the character to one player line, and how it came about."""

    text: str
    seed: int  # the attempt's seed; candidate k of round r used candidate_seed(seed, r * candidates + k)
    tokens: int  # tokens the model wrote for the kept candidate
    generated_tokens: int  # tokens written over every candidate and round
    seconds: float
    prompt_tokens: int
    reused: int  # prompt tokens whose keys and values came from the previous run's cache
    rounds: int = 1  # rounds of candidates drawn
    rejected: int = 0  # candidates refused: empty, spoken as the player, copied or repeated
    lore: list[str] = field(default_factory=list)  # lore ids in the prompt
    warning: str = ""  # set when every candidate of every round was refused and one was kept anyway
    moderation: dict = field(default_factory=dict)  # the verdict on the text (moderation.verdict); {} when off

    @property
    def prefilled(self) -> int:
        return self.prompt_tokens - self.reused


@dataclass
class Turn:
    """A player's line and the character's answers to it; the last answer is the one kept."""

    player: str
    start: int  # the first earlier turn this turn's prompt showed (older ones were dropped from it)
    answers: list[Answer]

    @property
    def answer(self) -> str:
        return self.answers[-1].text

    def to_dict(self) -> dict:
        return {"player": self.player, "start": self.start, "answers": [dataclasses.asdict(a) for a in self.answers]}


def session_record(session) -> dict:
    """A ChatSession as JSON-ready data: enough to continue it (read_session) and to say how it was made."""
    return {"format": SESSION_FORMAT, "version": SESSION_VERSION, "metagen_version": __version__,
            "world_id": session.world.id, "world_hash": session.world.content_hash,
            "world_files": [str(f) for f in session.world.files], "character": session.character.id,
            "player": session.player, "location": session.location.id if session.location else None,
            "seed": session.seed, "settings": {**session.cfg.to_dict(), "seed": session.seed},
            "moderation": session.moderation,
            "model": session.generator.info.to_dict(), "facts": [dataclasses.asdict(f) for f in session.facts()],
            "turns": [t.to_dict() for t in session.turns]}


def session_piece(session) -> Piece:
    """A ChatSession's conversation as a dialogue Piece (Markdown, JSON, Yarn or ink, with front
    matter); each answer's alternatives are recorded with its turn."""
    c, turns = session.character, []
    for t in session.turns:
        turns.append({"speaker": session.player, "speaker_id": "player", "line": t.player})
        turns.append({"speaker": c.name, "speaker_id": c.id, "line": t.answer,
                      "alternatives": [a.text for a in t.answers[:-1]]})
    kept = [t.answers[-1] for t in session.turns]
    request = {"kind": "chat", "character": c.id, "player": session.player,
               "location": session.location.id if session.location else None}
    text = format_dialogue((t["speaker"], t["line"]) for t in turns)
    return Piece(kind="dialogue", world_id=session.world.id, world_hash=session.world.content_hash,
                 world_files=[str(f) for f in session.world.files], request=request,
                 model=session.generator.info.to_dict(), settings={**session.cfg.to_dict(), "seed": session.seed},
                 seed=session.seed, prompt_tokens=kept[-1].prompt_tokens if kept else 0,
                 output_tokens=sum(a.generated_tokens for t in session.turns for a in t.answers),
                 lore_used=sorted({i for a in kept for i in a.lore}), lore_left_out=[], finish_reason="stop",
                 seconds=round(sum(a.seconds for t in session.turns for a in t.answers), 3),
                 text=text, turns=turns, subject=f"{c.id}-chat",
                 moderation=verdict(text, session.policy, session.moderation) if session.policy else {})


MAX_SESSION_BYTES = 16 * 2**20  # a session file read back is never larger
_SESSION_HINT = "give a session file that metagen chat wrote under OUT/<world>/chat/"
DAMAGED_HINT = "metagen rewrites the whole file after every turn; restore it from a copy, or start a new session"
# The fields of a saved Answer with their types; the first seven are required.
_ANSWER_TYPES = {"text": str, "seed": int, "tokens": int, "generated_tokens": int, "seconds": (int, float),
                 "prompt_tokens": int, "reused": int, "rounds": int, "rejected": int, "lore": list, "warning": str,
                 "moderation": dict}
# The fields of a session file with their types; the first seven are required.
_SESSION_TYPES = {"world_id": str, "character": str, "player": str, "location": (str, type(None)), "seed": int,
                  "settings": dict, "turns": list, "model": (dict, type(None))}


def read_session(path) -> tuple[dict, list[Turn]]:
    """A session file that session_record wrote, and its turns; ConfigError (exit 2) names what is
    wrong with a damaged or foreign file, and nothing is written to it."""
    raw = read_input(path, MAX_SESSION_BYTES, "a chat session file", ConfigError)
    try:
        data = parse_json(raw.decode("utf-8"))
    except ValueError as error:  # UnicodeDecodeError is one too
        if Path(path).suffix.lower() != ".json" or raw.lstrip().startswith(b"---"):  # a piece, a script, notes
            raise ConfigError(f"{path} is not a metagen chat session (it is not JSON)", hint=_SESSION_HINT) from None
        reason = "not UTF-8 text" if isinstance(error, UnicodeDecodeError) else str(error)
        raise ConfigError(f"{path} is damaged: it is not JSON ({reason})", hint=DAMAGED_HINT) from None
    if not isinstance(data, dict) or data.get("format") != SESSION_FORMAT:
        raise ConfigError(f"{path} is not a metagen chat session (it has no \"format\": \"{SESSION_FORMAT}\")",
                          hint=_SESSION_HINT)
    if data.get("version") != SESSION_VERSION:
        raise ConfigError(f"{path} is a chat session of version {data.get('version')!r}; this metagen reads "
                          f"version {SESSION_VERSION}")
    _check_fields(path, "", data, _SESSION_TYPES, 7)
    if not 0 <= data["seed"] < MAX_SEED:
        raise ConfigError(f"{path} is damaged: seed {number_shown(data['seed'])} is outside [0, 2**63)", hint=DAMAGED_HINT)
    turns = []
    for i, turn in enumerate(data["turns"]):
        where = f"turns[{i}]"
        _check_fields(path, where, turn, {"player": str, "start": int, "answers": list}, 3)
        if not turn["player"].strip() or not 0 <= turn["start"] <= i or not turn["answers"]:
            raise ConfigError(f"{path} is damaged: {where} has an empty line, a start outside 0 to {i}, or no answer",
                              hint=DAMAGED_HINT)
        answers = []
        for j, answer in enumerate(turn["answers"]):
            _check_fields(path, f"{where}.answers[{j}]", answer, _ANSWER_TYPES, 7)
            answers.append(Answer(**{k: answer[k] for k in _ANSWER_TYPES if k in answer}))
        turns.append(Turn(turn["player"], turn["start"], answers))
    return data, turns


def _check_fields(path, where: str, data, types: dict, required: int) -> None:
    """ConfigError unless data is a mapping whose first `required` fields are present and every field
    it has is of its type (a bool is no number)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is damaged: {where or 'the top level'} is not a mapping", hint=DAMAGED_HINT)
    for n, (key, kind) in enumerate(types.items()):
        if key not in data:
            if n < required:
                raise ConfigError(f"{path} is damaged: {where + '.' if where else ''}{key} is missing",
                                  hint=DAMAGED_HINT)
            continue
        if isinstance(data[key], bool) or not isinstance(data[key], kind):
            raise ConfigError(f"{path} is damaged: {where + '.' if where else ''}{key} has the wrong type "
                              f"({kind_of(data[key])})", hint=DAMAGED_HINT)
        if isinstance(data[key], list) and key == "lore" and not all(isinstance(x, str) for x in data[key]):
            raise ConfigError(f"{path} is damaged: {where}.lore must list lore ids", hint=DAMAGED_HINT)


__all__ = ["Answer", "MAX_SESSION_BYTES", "SESSION_FORMAT", "SESSION_VERSION", "Turn", "read_session", "session_piece",
           "session_record"]
