"""The `metagen` console script: a running `metagen serve` answers the command, else this process.

Nothing heavy is imported before the choice. When the command is one a server answers
(protocol.FORWARDED) and a server of this user's listens in METAGEN_HOME, the arguments,
working folder, environment, umask and what the standard streams are go over the socket, and
the command's stdout, stderr (the same bytes) and exit code come back; Ctrl-C and SIGTERM are
passed on to the command. A server that turns the request down before starting it (it is
stopping, or runs other metagen code) leaves the command to run here (docs/serve.md).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
import threading
from pathlib import Path

from metagen import __version__
from metagen.errors import EXIT_BAD_INPUT, EXIT_GENERATION_FAILED, EXIT_INTERRUPTED, INTERRUPTED_MESSAGE, Terminated
from metagen.protocol import (
    JSON, SERVER_GONE, STDERR, STDIN, STDOUT, UnsafeSocket, connect, forwarded_command, read_frame, read_json,
    send_frame, send_json, socket_path,
)


def main() -> None:
    """Console-script entry point."""
    try:
        os.getcwd()
    except FileNotFoundError:  # torch's MKL dies loading from a deleted folder with a line of its own
        sys.stderr.write("error: the current folder no longer exists (cd to one that does, and run the "
                         "command again)\n")
        sys.exit(EXIT_BAD_INPUT)
    from metagen.commands.terminal import ready_standard_streams, terminating_raised

    refused = ready_standard_streams()
    if refused:
        if sys.stderr is not None:
            sys.stderr.write(f"error: {refused}\n")
        sys.exit(EXIT_BAD_INPUT)
    try:
        code = forward(sys.argv[1:])
        if code is None:
            with terminating_raised():  # the commands take most of start-up to import
                from metagen.cli import run
    except KeyboardInterrupt:  # Ctrl-C while waiting for a busy server to start the request, or in the import
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # another, while this one is said, is ignored
        sys.stderr.write(INTERRUPTED_MESSAGE + "\n")
        sys.exit(EXIT_INTERRUPTED)
    except Terminated as error:  # SIGTERM or SIGHUP in the import: as `run` says it
        with contextlib.suppress(OSError):
            sys.stderr.write(f"error: {error.message}\n")
        sys.exit(error.exit_code)
    if code is None:
        run()
    sys.exit(code)


def forward(args: list[str]) -> int | None:
    """Run the command on a running server: its exit code, or None to run it here."""
    if forwarded_command(args, os.environ) is None:
        return None
    from metagen.home import cache_dir
    from metagen.errors import MetagenError

    try:
        home = cache_dir()
    except MetagenError:  # no cache folder, so no server: the command says so if it needs one
        return None
    try:
        sock = connect(socket_path(home))
    except UnsafeSocket as error:
        sys.stderr.write(f"warning: not using the metagen server: {error}; running the command here\n")
        return None
    except OSError:  # no server, or a stale socket file
        return None
    with sock:
        try:
            request = _request(args)
        except (OSError, ValueError):  # no working folder, or a closed standard stream
            return None
        return _Exchange(sock).run(request)


def _stream(stream, fd: int) -> dict:
    """What the command needs to know of one of this process's standard streams."""
    if stream is None:
        raise ValueError("a standard stream is closed")
    try:
        block = os.fstat(fd).st_blksize
    except OSError:
        block = 0
    return {"tty": stream.isatty(), "encoding": stream.encoding, "errors": stream.errors,
            "line_buffering": stream.line_buffering, "write_through": getattr(stream, "write_through", False),
            "buffer": block if block > 1 else io.DEFAULT_BUFFER_SIZE}  # as Python sizes its own buffer


def _terminal_size() -> list[int] | None:
    """The size of the terminal on stdout as [columns, lines]: what help text is wrapped to."""
    try:
        return list(os.get_terminal_size(1))
    except OSError:
        return None


def _request(args: list[str]) -> dict:
    umask = os.umask(0o22)
    os.umask(umask)
    main_module = sys.modules.get("__main__")
    return {
        "op": "run", "argv": args, "version": __version__, "package": str(Path(__file__).resolve().parent),
        # for click's program name: "metagen", or "python -m metagen"
        "argv0": sys.argv[0], "main_package": getattr(main_module, "__package__", None),
        "cwd": os.getcwd(), "env": dict(os.environ), "umask": umask, "terminal": _terminal_size(),
        "streams": {"stdin": _stream(sys.stdin, 0), "stdout": _stream(sys.stdout, 1),
                    "stderr": _stream(sys.stderr, 2)},
    }


def _silence(stream) -> None:
    """Point a stream whose reader has gone at /dev/null, so that leaving does not fail on it."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, stream.fileno())
        os.close(null)
    except (OSError, ValueError):
        pass


class _Exchange:
    """One request's conversation: output frames written out as they come, stdin read on demand,
    signals passed on; a second Ctrl-C leaves at once."""

    def __init__(self, sock):
        self.sock = sock
        self.send_lock = threading.Lock()  # the stdin thread and signal handlers both send
        self.pid = None
        self.signalled = False
        self.closed: set[bytes] = set()  # the output streams whose reader has gone

    def run(self, request: dict) -> int | None:
        send_json(self.sock, request)
        while True:
            frame = read_frame(self.sock)
            if frame is None:
                if self.pid is None:
                    return None  # turned down before it started: nothing ran
                sys.stderr.write("error: " + SERVER_GONE.format(pid=self.pid) + "\n")
                return EXIT_GENERATION_FAILED
            kind, payload = frame
            if kind in (STDOUT, STDERR) and kind not in self.closed:
                stream = sys.stdout if kind == STDOUT else sys.stderr
                try:
                    stream.buffer.write(payload)
                    stream.buffer.flush()
                except OSError:  # a reader that has gone (`| head`): the rest of that stream is dropped
                    self.closed.add(kind)
                    _silence(stream)
            elif kind == JSON:
                message = read_json(frame) or {}
                if "refused" in message:
                    return None
                if "start" in message:
                    self.pid = message["start"]
                    for signum in (signal.SIGINT, signal.SIGTERM):
                        if signal.getsignal(signum) is not signal.SIG_IGN:  # as a background job's SIGINT
                            signal.signal(signum, self._pass_on)
                elif "stdin" in message:
                    threading.Thread(target=self._feed_stdin, args=(int(message["stdin"]),), daemon=True).start()
                elif "exit" in message:
                    return int(message["exit"])

    def _send(self, kind: bytes, payload: bytes) -> None:
        with self.send_lock:
            try:
                send_frame(self.sock, kind, payload)
            except OSError:
                pass  # the server is gone; the read loop says so

    def _pass_on(self, signum, frame) -> None:
        """Ctrl-C or SIGTERM: the command gets the same signal; a second one leaves at once."""
        if self.signalled:
            raise KeyboardInterrupt
        self.signalled = True
        self._send(JSON, json.dumps({"signal": signum}).encode())

    def _feed_stdin(self, size: int) -> None:
        try:
            data = os.read(0, min(size, 1 << 20))
        except OSError:
            data = b""
        self._send(STDIN, data)


__all__ = ["forward", "main"]
