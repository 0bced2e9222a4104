"""The metagen server's socket: where it lives, who may use it, and the frames sent over it.

Kept free of torch, typer and the rest of the library, so that the client can decide from
this module alone, before anything heavy is imported, whether a running server answers a
command (docs/serve.md). A frame is one kind byte, a 4-byte big-endian length and the payload.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import struct
from pathlib import Path

# The commands a server answers: those that load a model. chat (interactive) and tune run here.
FORWARDED = frozenset({"story", "describe-scene", "dialogue", "batch", "generate", "replay", "prompt", "eval"})
ROOT_FLAGS = frozenset({"-v", "--verbose"})  # root options that may stand before a forwarded command
NO_SERVER_FLAG = "--no-server"
NO_SERVER_ENV = "METAGEN_NO_SERVER"  # the same switch as an environment variable
TRUE_WORDS = frozenset({"1", "true", "t", "yes", "y", "on"})  # what click's bool reads as yes

# What a client hears when the server stops while running its request: killed (the client sees the
# socket close) or stopped by a signal of its own (the command ends with this line).
SERVER_GONE = ("the metagen server (pid {pid}) stopped during the request; files it finished are whole and "
               "none is partial (run the command again)")

# Frame kinds. Client -> server: a JSON request or control message, stdin bytes (b"" at end).
# Server -> client: JSON control messages, the command's stdout and stderr bytes.
JSON, STDIN, STDOUT, STDERR = b"j", b"i", b"o", b"e"
_HEADER = struct.Struct(">cI")
MAX_FRAME = 64 * 2**20  # a larger frame is a broken or hostile peer
MAX_ADDRESS = 100  # bytes; Linux holds at most 107 of a socket's path


class UnsafeSocket(Exception):
    """A socket file or a peer that is not this user's own: never talked to."""


def socket_path(home: Path) -> Path:
    return home / "serve.sock"


def status_path(home: Path) -> Path:
    """The running server's pid, socket and start time (JSON), for people and scripts."""
    return home / "serve.json"


def lock_path(home: Path) -> Path:
    """Held (flock) by the running server for its whole life: one server per home."""
    return home / "serve.lock"


def forwarded_command(args: list[str], environ: os._Environ | dict) -> str | None:
    """The command a running server may answer for these arguments; None: run it here.

    Only `[-v] COMMAND ...` forwards; --no-server, METAGEN_NO_SERVER=1, --help and --version
    before the command, or anything this cannot read, run here, where the CLI itself parses them.
    """
    if environ.get(NO_SERVER_ENV, "").strip().lower() in TRUE_WORDS:
        return None
    for arg in args:
        if arg in ROOT_FLAGS:
            continue
        return arg if arg in FORWARDED else None
    return None


# ----------------------------------------------------------------------------- frames


def send_frame(sock: socket.socket, kind: bytes, payload: bytes) -> None:
    sock.sendall(_HEADER.pack(kind, len(payload)) + payload)


def send_json(sock: socket.socket, message: dict) -> None:
    # ASCII JSON: arguments and environment values that are not UTF-8 travel as \udcXX escapes.
    send_frame(sock, JSON, json.dumps(message).encode("ascii"))


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(sock: socket.socket) -> tuple[bytes, bytes] | None:
    """The next (kind, payload); None when the peer has closed, gone or sent something malformed
    (or the socket's timeout passed)."""
    try:
        header = _read_exactly(sock, _HEADER.size)
        if header is None:
            return None
        kind, size = _HEADER.unpack(header)
        if size > MAX_FRAME:
            return None
        payload = _read_exactly(sock, size) if size else b""
    except OSError:
        return None
    return None if payload is None else (kind, payload)


def read_json(frame: tuple[bytes, bytes] | None) -> dict | None:
    """A JSON frame's object; None for anything else."""
    if frame is None or frame[0] != JSON:
        return None
    try:
        message = json.loads(frame[1])
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


# ----------------------------------------------------------------------------- who is there


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end (SO_PEERCRED; None where the system has none)."""
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    _, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return uid


def check_socket_file(path: Path) -> None:
    """The socket file must be a socket of this user's with no group or other permissions.

    FileNotFoundError when there is none; UnsafeSocket, naming what is wrong, otherwise.
    """
    info = os.lstat(path)
    if not stat.S_ISSOCK(info.st_mode):
        raise UnsafeSocket(f"{path} is not a socket")
    if info.st_uid != os.getuid():
        raise UnsafeSocket(f"{path} belongs to uid {info.st_uid}, not to you (uid {os.getuid()})")
    if info.st_mode & 0o077:
        raise UnsafeSocket(f"{path} has mode {stat.S_IMODE(info.st_mode):04o}; a server's socket is 0600")


@contextlib.contextmanager
def short_address(path: Path):
    """An address for bind or connect: the path itself, or for a long one its name alone, said
    from inside its folder (this process's working folder is put back after; one thread only)."""
    if len(os.fsencode(path)) <= MAX_ADDRESS:
        yield str(path)
        return
    here = os.open(".", os.O_RDONLY)
    try:
        os.chdir(path.parent)
        yield path.name
    finally:
        os.fchdir(here)
        os.close(here)


def connect(path: Path, timeout: float | None = None) -> socket.socket:
    """A connection to the server at path, checked to be this user's own.

    OSError (FileNotFoundError, ConnectionRefusedError: a stale socket file) when no server
    answers there; UnsafeSocket when the file or the process behind it is someone else's.
    """
    check_socket_file(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        with short_address(path) as address:
            sock.connect(address)
        uid = peer_uid(sock)
        if uid is not None and uid != os.getuid():
            raise UnsafeSocket(f"the server at {path} runs as uid {uid}, not as you (uid {os.getuid()})")
    except BaseException:
        sock.close()
        raise
    return sock


def ask(home: Path, op: str, timeout: float = 10.0) -> dict | None:
    """Send one request without a command and return the server's answer; None when no server
    answers. "status": its state; "stop": returns once the server has stopped. UnsafeSocket as
    for connect."""
    try:
        sock = connect(socket_path(home), timeout)
    except OSError:
        return None
    with sock:
        try:
            send_json(sock, {"op": op})
            answer = read_json(read_frame(sock))
            if op == "stop" and answer is not None:
                sock.settimeout(None)  # the server finishes its running request first
                while read_frame(sock) is not None:
                    pass
            return answer
        except OSError:
            return None


def describe_status(status: dict | None) -> str:
    """One line: the running server's pid, socket and loaded models, or that none runs."""
    if status is None:
        return "server: not running (`metagen serve &` starts one)"
    models = "; ".join(status.get("models") or []) or "none yet"
    served = status.get("served", 0)
    busy = ", running one now" if status.get("busy") else ""
    busy += f", {status['queued']} queued" if status.get("queued") else ""
    return (f"server: running, pid {status.get('pid')}, socket {status.get('socket')}, "
            f"{served} request{'' if served == 1 else 's'} answered{busy}; models loaded: {models}")


__all__ = ["FORWARDED", "NO_SERVER_ENV", "NO_SERVER_FLAG", "SERVER_GONE", "UnsafeSocket", "ask", "check_socket_file",
           "connect", "describe_status", "forwarded_command", "lock_path", "peer_uid", "read_frame", "read_json",
           "send_frame", "send_json", "short_address", "socket_path", "status_path"]
