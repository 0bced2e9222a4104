"""`metagen chat WORLD --as CHARACTER`: talk with a world's character, in a terminal or from a script.

On a terminal the answer streams as it is written and slash commands steer the session. From a
pipe or `--script FILE` each input line is one player line (slash commands too), and `--json`
writes one JSON object per answer and nothing else on stdout; messages go to stderr. The session
is saved after every turn (metagen.session), and `--resume FILE` continues it.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import sys
import threading
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Callable, Iterator, Optional

import typer

from metagen.commands.help import typed_path
from metagen.commands.options import load_generator, with_decoding_options
from metagen.commands.pieces import Location, WorldArg
from metagen.commands.terminal import escaped, printable, stdin_unreadable
from metagen.text import json_text
from metagen.errors import (ConfigError, InputError, MetagenError, OutputError, OutputExistsError, RequestError,
                            Terminated)
from metagen.files import MAX_STDIN_BYTES

MAX_SKIPPED_BYTES = 64 * MAX_STDIN_BYTES  # one line this long without a break ends the session: no text is coming

As = Annotated[Optional[str], typer.Option("--as", "-a", help="The character to talk with (an id or name).", show_default=False)]
Player = Annotated[Optional[str], typer.Option("--player", help="Your name in the conversation. [default: Visitor]", show_default=False)]
Script = Annotated[Optional[Path], typer.Option("--script", help="Read the player's lines from FILE, one a line (slash commands too), instead of the terminal.", show_default=False)]
Resume = Annotated[Optional[Path], typer.Option("--resume", help="Continue the session saved in FILE (its character, player, place, seed and settings).", show_default=False)]
Out = Annotated[Path, typer.Option("--out", "-o", help="Output folder: the session is saved to OUT/<world>/chat/<character>-<seed>.json after every turn. "
                                   "A path ending in .json that is not a folder (-o session.json) is the session file itself.")]
AsJson = Annotated[bool, typer.Option("--json", help="One JSON object per answer on stdout (turn, speaker, text, alternatives, tokens, seconds) and nothing else.")]
Moderation = Annotated[Optional[str], typer.Option("--moderation", help="off | report: answers over the world's rating lose to others, each records its verdict | enforce: the same, and an answer still over it is not kept. See docs/moderation.md. [default: report, or what the --resume session records]", show_default=False)]

COMMANDS = {
    "/retry": "another answer to your last line (the earlier ones are kept as alternatives)",
    "/undo": "take back your last line and its answers",
    "/context": "the next turn's exact prompt, its tokens, the lore in it and why, the facts pinned, "
                "the turns dropped, the tokens the cache saves",
    "/save": "FILE: write the conversation to FILE (.md, .json, .yarn or .ink, with front matter); never overwrites",
    "/help": "this list",
    "/quit": "end the session (so does Ctrl-D); it is saved after every turn",
}
SAVE_FORMATS = ("md", "json", "yarn", "ink")
_DIM, _PLAIN = "\x1b[2m", "\x1b[0m"


@with_decoding_options
def chat(world: WorldArg, character: As = None, player: Player = None, location: Location = None,
         script: Script = None, resume: Resume = None, out: Out = Path("out"), as_json: AsJson = False,
         moderation: Moderation = None, *, settings: dict, model_options: dict):
    """Talk with a character of a world: you type a line, the character answers in its own voice."""
    from metagen.chat import ChatSession

    if resume is not None and typed_path("out") is not None:  # the session is saved back to its own file
        raise ConfigError(f"--resume continues {resume} in place; --out names where a new session goes: give one")
    setup = _prepare(world, character, player, location, resume, out, settings, moderation)
    lines = _script_lines(script) if script is not None else None
    generator = load_generator(model_options)
    session = ChatSession(generator, setup.world, setup.character, setup.cfg, player=setup.player,
                          location=setup.location, seed=setup.seed, turns=setup.turns, moderation=setup.moderation)
    if setup.model and setup.model.get("sha256") not in (None, generator.info.sha256):
        _note(f"warning: {resume} was made with another model file; later answers come from this one")
    elif setup.model and _recorded_adapter(setup.model).get("sha256", "") != generator.info.adapter_sha256:
        was = _recorded_adapter(setup.model).get("path") or "none"
        _note(f"warning: {resume} was made with --adapter {was}; later answers come from --adapter "
              f"{generator.info.adapter or 'none'} (give --adapter {was} to go on as it began)")
    saver = _Saver(setup.path, claimed=resume is not None)
    saver.save(session)
    terminal = lines is None and sys.stdin.isatty()
    console = _Console(session, saver, terminal=terminal, as_json=as_json)
    try:
        if terminal:
            console.greet(resume is not None)
            console.warm()
        console.run(lines if lines is not None else (_read_terminal(session.player) if terminal else _read_stdin()))
    except (KeyboardInterrupt, Terminated):  # a signal ends a script (or a terminal's wait): the turns so far are kept
        if session.turns and saver.ok:
            _note(f"session saved: {saver.path} (continue it with --resume {saver.path})")
        raise
    finally:  # however it ends (no input, an error, a signal): a new session with no turn leaves no file
        released = resume is None and not session.turns and saver.release()
    if released:
        _note("no turn was taken: no session was saved")
        return
    _note(f"session saved: {saver.path} (continue it with --resume {saver.path})")
    if not saver.ok:
        raise OutputError(f"the last turns could not be saved to {saver.path}: {saver.error}")


# ----------------------------------------------------------------------------- start-up


@dataclass
class _Setup:
    """What a chat needs before the model is loaded, all of it checked."""

    world: object
    character: object
    location: object
    player: str
    cfg: object
    seed: int
    turns: list
    path: Path  # the session file
    model: dict  # the model a resumed session records ({} for a new one)
    moderation: str  # off | report | enforce


def _prepare(world_path: Path, character: str | None, player: str | None, location: str | None,
             resume: Path | None, out: Path, settings: dict, moderation: str | None) -> _Setup:
    """The world, character, place, player, settings and session file, checked before any model."""
    from metagen.chat import DEFAULT_PLAYER, check_player
    from metagen.config import CLI_NAMES
    from metagen.moderation import check_mode
    from metagen.output import check_not_folder, check_writable, output_path
    from metagen.pipeline import effective_config, seeds_for
    from metagen.session import read_session
    from metagen.world import load_world

    if moderation is not None:
        check_mode(moderation)
    world = load_world(world_path)
    record, turns = read_session(resume) if resume is not None else ({}, [])
    mode = check_mode(moderation) if moderation else _recorded(
        resume, "moderation", lambda: check_mode(str(record.get("moderation") or "report")))
    if resume is not None:
        _check_resumed(resume, record, world, character, player, location, settings.get("seed"))
    ref = character or record.get("character")
    if not ref:
        raise RequestError("give the character to talk with: --as ID",
                           hint=f"{world.id}'s characters: {', '.join(c.id for c in world.characters) or 'none'}")
    who = world.character(ref) if character else _recorded(resume, "--as", lambda: world.character(ref), ref)
    place_ref = location or record.get("location")
    place = None if not place_ref else world.location(place_ref) if location else _recorded(
        resume, "--location", lambda: world.location(place_ref), place_ref)
    if player is not None:
        name = check_player(player, who)  # "" is refused
    else:
        name = _recorded(resume, "player", lambda: check_player(record.get("player") or DEFAULT_PLAYER, who))
    try:
        cfg = effective_config(world, "dialogue", record.get("settings"), settings)
        kept = effective_config(world, "dialogue", record.get("settings"), {}) if resume is not None else cfg
    except ConfigError as error:
        if resume is None:
            raise
        raise ConfigError(f"{resume} is damaged: its settings: {error.message}") from None
    if resume is not None:  # a session records one set of settings: a flag may not change them half way
        for key in settings:
            if key != "seed" and getattr(cfg, key, None) != getattr(kept, key, None):
                flag = CLI_NAMES.get(key, key)
                raise ConfigError(f"{resume} is a session with {flag} {getattr(kept, key)}; {flag} "
                                  f"{getattr(cfg, key)} cannot change it",
                                  hint=f"leave {flag} out to continue it, or start a new session")
    if cfg.context_contrast:  # a chat answer has no fact-free twin prompt (metagen.chat)
        if settings.get("context_contrast"):
            raise ConfigError(f"{CLI_NAMES['context_contrast']}: a chat has no fact-free prompt to contrast with; "
                              "use it with story, describe-scene or dialogue")
        cfg = replace(cfg, context_contrast=0.0)  # a world's dialogue default: off here
    seed = record["seed"] if resume is not None else seeds_for(1, cfg.seed)[0]
    if resume is not None:
        if world.content_hash != record.get("world_hash"):
            _note(f"warning: {world_path} has changed since {resume} was saved; earlier answers stay as they were")
        check_writable(resume.parent)
        path = resume
    elif _named_session_file(out):  # `-o session.json`: that file, as story's `-o story.md` (pieces.run_pieces)
        check_writable(out.parent)
        path = out
        if os.path.lexists(path):  # no --overwrite: a session is continued, never replaced
            raise OutputExistsError(f"{path} exists", hint=f"continue it with --resume {path}, or give another --out")
    else:
        check_writable(out)
        path = output_path(out, world.id, "chat", who.id, seed, "json")
        check_writable(path.parent)  # OUT/<world>/chat: another user's, or read-only
        check_not_folder(path)  # not "a session ... continue it with --resume", which would fail
        if os.path.lexists(path):
            raise OutputExistsError(f"{path} exists: a session with {who.id} and seed {seed}",
                                    hint=f"continue it with --resume {path}, or give another --seed or --out")
    return _Setup(world, who, place, name, cfg, seed, turns, path, dict(record.get("model") or {}), mode)


def _recorded(resume: Path | None, what: str, check, value: str | None = None):
    """check() of what a --resume file records, not of a flag typed now: its error names the file.
    A character or place (value given) the world no longer has is the world's change; the rest, damage."""
    from metagen.errors import MetagenError
    from metagen.session import DAMAGED_HINT

    try:
        return check()
    except MetagenError as error:
        if resume is None:
            raise
        if value is not None:
            raise type(error)(f"{resume} is a session with {what} {value}: {error.message}",
                              hint="give the world file the session was made with, or start a new session") from None
        raise type(error)(f"{resume} is damaged: its {what}: {error.message}", hint=DAMAGED_HINT) from None


def _named_session_file(out: Path) -> bool:
    """Whether --out names the session file itself (`-o session.json`) rather than a folder; the
    output.named_file_format rule, so `-o talk.md` is refused: a session is saved as JSON."""
    from metagen.output import named_file_format

    named = named_file_format(out, typed_path("out"))
    if named not in (None, "json"):
        export = f"; /save {out.name} in the session writes the conversation as .{named}" if named in SAVE_FORMATS else ""
        raise ConfigError(f"--out {out} names a .{named} file, but a chat session is saved as JSON",
                          hint=f"give --out {out.with_suffix('.json')}, or a folder such as {out.with_suffix('')}{export}")
    return named == "json"


def _check_resumed(resume: Path, record: dict, world, character, player, location, seed) -> None:
    """A resumed session keeps its world, character, player, place and seed: flags that say otherwise are refused."""
    if record["world_id"] != world.id:
        raise ConfigError(f"{resume} is a session in the world '{record['world_id']}', not '{world.id}'",
                          hint="give the world file the session was made with")
    given = {"--as": character and world.character(character).id, "--player": player,
             "--location": location and world.location(location).id, "--seed": seed}
    kept = {"--as": record["character"], "--player": record["player"], "--location": record["location"],
            "--seed": record["seed"]}
    for flag, value in given.items():
        if value is not None and value != kept[flag]:
            raise ConfigError(f"{resume} is a session with {flag} {kept[flag]}; {flag} {value} cannot change it",
                              hint=f"leave {flag} out to continue it, or start a new session")


def _script_lines(path: Path) -> list[str]:
    """The player's lines of a --script file (UTF-8, at most 1 MiB), read before the model is loaded."""
    from metagen.files import read_input, text_lines

    data = read_input(path, MAX_STDIN_BYTES, "a chat script", ConfigError)
    try:  # a byte-order mark (Notepad's UTF-8) made the first line '\ufeff/help', said to the character
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path} is not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})",
                          hint="save the script as UTF-8") from None
    return text_lines(text)  # as standard input's lines: one line piped is one turn from a file too


def _read_stdin() -> Iterator[str]:
    """Standard input one line at a time, as each arrives (a game writes a line and waits for the
    answer). A line that is not UTF-8 or is over 1 MiB becomes "" after a message."""
    first = True
    while True:
        raw = _read_line(MAX_STDIN_BYTES + 1)
        if not raw:
            return
        if first:  # a file saved with a byte-order mark, piped in: the mark is no part of the first line
            raw, first = raw.removeprefix(b"\xef\xbb\xbf"), False
        if len(raw) > MAX_STDIN_BYTES and not raw.endswith(b"\n"):
            skipped = len(raw)
            while raw and not raw.endswith(b"\n"):  # the rest of the line goes unread into memory
                raw = _read_line(MAX_STDIN_BYTES)
                skipped += len(raw)
                if skipped > MAX_SKIPPED_BYTES:  # /dev/zero, a binary file: no line will ever end
                    raise InputError(f"standard input sent {MAX_SKIPPED_BYTES // 2**20} MiB without a line break",
                                     hint="chat reads lines of text; give it text, or --script FILE")
            _note(f"error: a line over {MAX_STDIN_BYTES:,} bytes was skipped (say it in a shorter line)")
            continue
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as error:
            _note(f"error: a line is not UTF-8 text (byte 0x{raw[error.start]:02x}) and was skipped "
                  "(check the terminal's encoding)")


def _read_line(limit: int) -> bytes:
    """One line of standard input, at most limit bytes; InputError when it cannot be read (0>FILE)."""
    try:
        return sys.stdin.buffer.readline(limit)
    except OSError as error:
        raise stdin_unreadable(error, "give the player's lines from a file or a pipe, or --script FILE") from None


def _read_terminal(player: str) -> Iterator[str]:
    """The player's lines typed at a prompt with line editing; Ctrl-C there gives a fresh prompt."""
    try:  # line editing and history for input(): Up brings back a line
        importlib.import_module("readline")
    except ImportError:  # pragma: no cover - Windows without pyreadline
        pass
    prompt = escaped(f"{player}: ")
    while True:
        try:
            if sys.stdout.isatty():
                yield input(prompt)
                continue
            sys.stderr.write(prompt)  # stdout is a file or a pipe: it gets the conversation only
            sys.stderr.flush()
            line = sys.stdin.readline()
            if not line:
                return
            yield line
        except EOFError:  # Ctrl-D
            sys.stdout.write("\n")
            return
        except KeyboardInterrupt:
            sys.stdout.write("\n")
        except UnicodeDecodeError:
            _note("error: the line is not UTF-8 text (check the terminal's encoding)")


# ----------------------------------------------------------------------------- the session


def _recorded_adapter(model: dict) -> dict:
    """The adapter a session's model record names ({} for none, or for a record edited out of shape)."""
    adapter = model.get("adapter")
    return adapter if isinstance(adapter, dict) else {}


def _note(message: str) -> None:
    """A message for the person: one line on stderr."""
    typer.echo(message, err=True)


class _Saver:
    """Writes the session file after every turn, atomically; a new session's first write claims its name."""

    def __init__(self, path: Path, claimed: bool):
        from metagen.output import OutputFolder

        self.path, self.claimed, self.root = path, claimed, OutputFolder(path.parent)
        self.ok, self.error = True, ""

    def save(self, session) -> None:
        from metagen.output import write_atomic
        from metagen.session import session_record

        try:
            write_atomic(self.path, json_text(session_record(session), indent=1) + "\n", overwrite=self.claimed,
                         root=self.root)
        except OutputError as error:
            if not self.claimed:
                raise  # nothing has been said yet: the session cannot start
            self.ok, self.error = False, error.one_line()
            _note(f"warning: could not save the session: {error.one_line()} (it goes on; /save FILE writes it "
                  "elsewhere)")
            return
        self.claimed, self.ok = True, True

    def release(self) -> bool:
        """Remove the file a new session claimed and never put a turn in, and the folders made for it:
        left, the file would hold its character and seed as 'exists' to the next chat. True when it is gone."""
        try:
            folder_fd = self.root.open_folder_of(self.path)
            try:
                os.unlink(self.path.name, dir_fd=folder_fd)
            finally:
                os.close(folder_fd)
        except FileNotFoundError:
            pass
        except (OSError, OutputError) as error:
            reason = error.one_line() if isinstance(error, OutputError) else error.strerror
            _note(f"warning: could not remove the empty session {self.path}: {reason}")
            return False
        self.root.remove_made()
        return True


class _Console:
    """One session's input and output: player lines and slash commands in, answers and messages out."""

    def __init__(self, session, saver: _Saver, *, terminal: bool, as_json: bool):
        self.session, self.saver, self.terminal, self.as_json = session, saver, terminal, as_json
        # Stream a preview only where a person watches stdout and no JSON is asked for.
        self.preview = terminal and not as_json and sys.stdout.isatty()
        self.info = sys.stdout if terminal and not as_json else sys.stderr  # /context, /help, the greeting
        self.warming: threading.Thread | None = None

    def warm(self) -> None:
        """Prefill the prompt while the player types the first line, so that the first answer streams sooner."""

        def run() -> None:
            try:
                self.session.warm()
            except Exception as error:  # noqa: BLE001 - only a head start: the answer prefills what it needs
                logging.getLogger(__name__).info("could not prefill the prompt ahead: %s", error)

        self.warming = threading.Thread(target=run, name="metagen-chat-warm", daemon=True)
        self.warming.start()

    def settle(self) -> None:
        """Wait for the head start to finish: the session's cache has one user at a time."""
        if self.warming is not None:
            self.warming.join()
            self.warming = None

    def greet(self, resumed: bool) -> None:
        s = self.session
        c, where = s.character, f" at {s.location.name}" if s.location else ""
        role = f" ({c.role})" if c.role else ""
        _note(escaped(f"Talking with {c.name}{role}{where}, as {s.player}. /help lists the commands; Ctrl-D ends."))
        if resumed:
            for turn in s.turns[-3:]:
                self._write(f"{s.player}: {turn.player}\n{c.name}: {turn.answer}\n")

    def run(self, lines) -> None:
        try:
            self._run(lines)
        finally:
            self.settle()

    def _run(self, lines) -> None:
        for raw in lines:
            try:
                self.settle()
                if not self.handle(raw):
                    return
            except MetagenError as error:  # bad input inside a session: a message, and it goes on
                _note(f"error: {escaped(error.one_line())}")
            except KeyboardInterrupt:  # Ctrl-C outside an answer (/context, /save): back to the prompt
                if not self.terminal:
                    raise
                sys.stdout.write("\n")

    def handle(self, raw: str) -> bool:
        """One line of input; False when the session ends."""
        text = raw.strip()
        if not text:
            return True
        if not text.startswith("/") or text.startswith("//"):  # "//x" says "/x"
            line = text[1:] if text.startswith("//") else text
            self.answer(lambda on_text: self.session.say(line, on_text),
                        "stopped: the answer was not kept and your line was not added (Up brings it back)")
            return True
        name, _, argument = text.partition(" ")
        if name == "/quit":
            return False
        if name == "/help":
            self._write("".join(f"  {c:<9} {what}\n" for c, what in COMMANDS.items()) +
                        "  //text    a line that starts with '/'\n")
        elif name == "/retry":
            self.answer(self.session.retry, "stopped: no new answer was kept")
        elif name == "/undo":
            turn = self.session.undo()
            self.saver.save(self.session)
            _note(escaped(f"took back: {self.session.player}: {turn.player}"))
        elif name == "/context":
            self._write(_context_text(self.session))
        elif name == "/save":
            self.export(argument.strip())
        else:
            from metagen.chat import ChatInputError
            from metagen.text import did_you_mean

            raise ChatInputError(f"unknown command {name!r} ({did_you_mean(name, COMMANDS)})",
                                 hint="/help lists the commands; start a line with // to say it")
        return True

    def answer(self, make: Callable, stopped: str) -> None:
        """Run make(on_text) for a turn, previewing the first candidate, then show and save the kept answer."""
        s = self.session
        preview = _Preview(escaped(s.character.name) + ": ") if self.preview else None
        try:
            turn = make(preview)
        except KeyboardInterrupt:
            if preview is None or not self.terminal:
                raise  # a script stops as any command does: exit 130, the session saved up to its last turn
            preview.erase()
            _note(stopped)
            return
        except BaseException:
            if preview is not None:
                preview.erase()
            raise
        kept = turn.answers[-1]
        if self.as_json:
            record = {"turn": len(s.turns), "speaker": s.character.name, "text": kept.text,
                      "alternatives": [a.text for a in turn.answers[:-1]], "tokens": kept.tokens,
                      "seconds": kept.seconds}
            self._write(json_text(record) + "\n", sys.stdout)
        elif preview is not None:
            preview.finish(kept.text)
        else:
            self._write(f"{s.character.name}: {kept.text}\n", sys.stdout)
        if kept.warning:
            _note(f"note: {kept.warning}")
        self.saver.save(s)

    def export(self, path_text: str) -> None:
        """/save FILE: the conversation in the format its extension names, never over an existing file."""
        from metagen.output import render, write_atomic
        from metagen.session import session_piece

        if not path_text:
            raise ConfigError("/save needs a file name", hint=f"e.g. /save talk.md ({', '.join(SAVE_FORMATS)})")
        path = Path(path_text).expanduser()
        fmt = path.suffix.lower().lstrip(".")
        if fmt not in SAVE_FORMATS:
            raise ConfigError(f"/save {path_text}: the file must end in .md, .json, .yarn or .ink")
        if not self.session.turns:
            raise ConfigError("/save: there is nothing to save yet")
        if not path.parent.is_dir():  # a typo must not make folders wherever it points
            raise ConfigError(f"/save {path_text}: there is no folder {path.parent}",
                              hint="make it first, or save into a folder that exists")
        try:
            write_atomic(path, render(session_piece(self.session), fmt), overwrite=False)
        except OutputExistsError:
            raise OutputExistsError(f"/save {path_text}: {path} exists", hint="/save never overwrites; choose "
                                    "another name") from None
        except OutputError as error:  # a folder this user cannot write: said as /save's, like its other errors
            raise type(error)(f"/save {path_text}: {error.message}",
                              hint=error.hint or "save into a folder you can write") from None
        _note(f"wrote {path}")

    def _write(self, text: str, stream=None) -> None:
        stream = stream or self.info
        stream.write(printable(text, stream.isatty()))
        stream.flush()


def _context_text(session) -> str:
    """/context: the next prompt as the model reads it, then what went into it, one item a line."""
    ctx = session.context()
    lines = [f"--- the next prompt: {ctx.tokens} tokens, {ctx.reused} of them already in the cache; the player's "
             "line goes at its end ---", ctx.text, "---"]
    lines.append("lore: " + ("; ".join(f"{i} ({why})" for i, why in ctx.lore) or "none"))
    if ctx.lore_left_out:
        lines.append(f"lore left out for lack of room: {', '.join(ctx.lore_left_out)}")
    lines.append(f"facts about {session.player}: " + ("; ".join(f.sentence() for f in ctx.facts) or "none yet"))
    if ctx.dropped:
        lines.append(f"turns 1-{ctx.dropped[-1]} are no longer in the prompt (the session file keeps them)")
    if ctx.last:
        lines.append(f"last answer: {ctx.last['prompt_tokens']} prompt tokens, {ctx.last['reused']} reused from "
                     f"the cache, {ctx.last['prefilled']} prefilled")
    return "\n".join(lines) + "\n"


class _Preview:
    """The first candidate shown dim while it is written, then replaced by the answer the critic keeps."""

    def __init__(self, prefix: str):
        self.prefix, self.shown = prefix, ""
        self.dim = not os.environ.get("NO_COLOR")
        sys.stdout.write(prefix)
        sys.stdout.flush()

    def __call__(self, piece: str) -> None:
        piece = printable(piece, True).replace("\t", " ")
        if not piece:
            return
        self.shown += piece
        sys.stdout.write(f"{_DIM}{piece}{_PLAIN}" if self.dim else piece)
        sys.stdout.flush()

    def erase(self) -> None:
        """Back to the start of the prefix's row, clearing everything the preview wrote."""
        columns = shutil.get_terminal_size().columns or 80
        rows = max(1, -(-_width(self.prefix + self.shown) // columns))
        sys.stdout.write("\r" + (f"\x1b[{rows - 1}A" if rows > 1 else "") + "\x1b[J")
        sys.stdout.flush()

    def finish(self, text: str) -> None:
        self.erase()
        sys.stdout.write(self.prefix + printable(text, True) + "\n")
        sys.stdout.flush()


def _width(text: str) -> int:
    """Columns text takes on a terminal: wide characters two, combining marks none."""
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
               for ch in text)


__all__ = ["COMMANDS", "chat"]
