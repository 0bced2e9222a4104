"""`metagen serve`: models kept loaded, answering other metagen processes over a Unix socket.

Requests run one at a time, in the order they came, in the main thread: each is the same
Typer command the client would have run, with the client's arguments, working folder,
environment, umask and standard streams, after what a fresh process starts with is restored
(random states, logging, warnings, the logged decoding order, torch's thread count).
Generators stay loaded in generator.LoadedModels. Other threads accept connections, answer
status and stop at once, and pass a client's Ctrl-C, SIGTERM or departure to the running
command as the signal itself, so that it stops as it would in the client's own process.
"""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import io
import json
import logging
import os
import queue
import random
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import warnings
from datetime import datetime, timezone
from pathlib import Path

from metagen import __version__
from metagen.errors import (EXIT_GENERATION_FAILED, EXIT_INTERRUPTED, INTERRUPTED_MESSAGE, MetagenError, OutputError,
                            OutputFolderError, ServerStateError, Terminated)
from metagen.files import os_reason
from metagen.protocol import (
    JSON, SERVER_GONE, STDERR, STDIN, STDOUT, forwarded_command, lock_path, peer_uid, read_frame, read_json, send_frame,
    send_json, short_address, socket_path, status_path,
)

MOST_MODELS = 2  # models kept loaded at once; the least recently used goes first
GREETING_TIMEOUT = 10.0  # seconds a new connection has to send its request
_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # what a client passes on to its command
# What stops the server when sent to it, and the command it runs with it (SIGHUP unless ignored: nohup).
_STOPPING = (*_SIGNALS, signal.SIGHUP)
_STOP = object()  # put in the queue by `metagen serve --stop`
# What a request says of each of the client's standard streams.
_STREAM_FIELDS = {"tty": bool, "encoding": str, "errors": str, "line_buffering": bool, "write_through": bool,
                  "buffer": int}


def _block_signals() -> None:
    """Leave SIGINT, SIGTERM and SIGHUP to the main thread, where the running command gets them."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING)


class _Job:
    """One client's request, from its arrival to its exit code."""

    def __init__(self, conn: socket.socket, request: dict):
        self.conn = conn
        self.request = request
        self.stdin: queue.Queue[bytes] = queue.Queue()  # what the client read from its stdin; b"": the end
        self.gone = threading.Event()  # the client has gone away: nothing more is sent
        self.running = False  # its command is running in the main thread
        self.relayed: int | None = None  # a signal passed on from the client, not yet raised
        self.early: int | None = None  # a signal from the client before its command started
        self.cancelled = False  # the client sent a signal or went away
        self._send_lock = threading.Lock()

    def send(self, kind: bytes, payload: bytes) -> None:
        if self.gone.is_set():
            return
        try:
            with self._send_lock:
                send_frame(self.conn, kind, payload)
        except OSError:
            self.lost()

    def send_json(self, message: dict) -> None:
        self.send(JSON, json.dumps(message).encode("ascii"))

    def lost(self) -> None:
        self.gone.set()
        self.stdin.put(b"")  # a command reading stdin sees its end


class _ClientFile(io.RawIOBase):
    """One of the client's standard streams, as the raw file under the command's text stream."""

    def __init__(self, job: _Job, tty: bool):
        super().__init__()
        self.job, self.tty = job, tty

    def isatty(self) -> bool:
        return self.tty


class _Sink(_ClientFile):
    """The client's stdout or stderr: what is written goes to it as it is flushed."""

    def __init__(self, job: _Job, kind: bytes, tty: bool):
        super().__init__(job, tty)
        self.kind = kind

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.job.send(self.kind, bytes(data))
        return len(data)


class _Source(_ClientFile):
    """The client's stdin, read from the client only when the command reads it."""

    ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.ended:
            return 0
        self.job.send_json({"stdin": len(buffer)})
        data = self.job.stdin.get()[: len(buffer)]
        self.ended = not data
        buffer[: len(data)] = data
        return len(data)


def _text_stream(raw: io.RawIOBase, info: dict, reading: bool = False) -> io.TextIOWrapper:
    """A text stream over raw, buffered and encoded as the client's own stream is."""
    buffered = io.BufferedReader(raw) if reading else io.BufferedWriter(raw, int(info["buffer"]))
    return io.TextIOWrapper(buffered, encoding=info["encoding"], errors=info["errors"],
                            line_buffering=bool(info["line_buffering"]), write_through=bool(info["write_through"]))


def _exit_status(code) -> int:
    """sys.exit's argument as the exit status Python gives it."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return EXIT_GENERATION_FAILED


def _is_stream(info) -> bool:
    """A standard stream's description as the client sends it."""
    if not (isinstance(info, dict) and all(isinstance(info.get(key), kind) for key, kind in _STREAM_FIELDS.items())):
        return False
    try:
        codecs.lookup(info["encoding"])
        codecs.lookup_error(info["errors"])
    except (LookupError, ValueError):  # unknown; or a NUL or lone surrogate in the name (ValueError, UnicodeError)
        return False
    return info["buffer"] > 0


def _refusal(request: dict) -> str | None:
    """Why a request is not run here (the client then runs it itself); None to run it."""
    if request.get("version") != __version__ or request.get("package") != str(Path(__file__).resolve().parent):
        return "the server runs another metagen"
    argv, env, streams = request.get("argv"), request.get("env"), request.get("streams")
    terminal = request.get("terminal")
    well_formed = (
        isinstance(argv, list) and all(isinstance(a, str) for a in argv)
        and isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) and k and "=" not in k
                                          and "\0" not in k + v for k, v in env.items())
        and isinstance(request.get("cwd"), str) and isinstance(request.get("umask"), int)
        and all(isinstance(request.get(key), (str, type(None))) for key in ("argv0", "main_package"))
        and (terminal is None or (isinstance(terminal, list) and len(terminal) == 2
                                  and all(isinstance(n, int) and n > 0 for n in terminal)))
        and isinstance(streams, dict) and all(_is_stream(streams.get(name)) for name in ("stdin", "stdout", "stderr"))
    )
    if not well_formed:
        return "malformed request"
    if forwarded_command(argv, env) is None:
        return "not a command the server answers"
    return None


class Server:
    """One server per METAGEN_HOME: its lock, socket, status file, queue and running request."""

    def __init__(self, home: Path):
        self.home = home
        self.socket = socket_path(home)
        self.queue: queue.Queue = queue.Queue()
        self.lock = threading.Lock()  # guards current, stopping, closed, waiters
        self.current: _Job | None = None
        self.stopping = False  # no new requests: asked to stop, or signalled
        self.closed = False  # the queue has been handed back; nothing more goes in
        self.waiters: list[socket.socket] = []  # `--stop` clients, answered when all is done
        self.served = 0
        self.started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.log = sys.stderr  # the server's own stderr, for its own few lines
        self.verbose = logging.getLogger().isEnabledFor(logging.INFO)
        self.main_thread = threading.get_ident()

    def say(self, message: str) -> None:
        """One line on the server's own stderr; a log whose reader has gone (`2>&1 | grep`, ended)
        loses the line, and the server answers on."""
        with contextlib.suppress(OSError, ValueError):
            print(f"metagen serve: {message}", file=self.log, flush=True)

    # -------------------------------------------------------------------------- life

    def serve(self) -> None:
        """Take the home's lock, listen, answer until stopped, then remove the socket and status."""
        lock_fd = self._take_lock()
        try:
            listener, inode = self._listen()
            try:
                self._prepare()
                self.say(f"pid {os.getpid()}, socket {self.socket} (`metagen serve --stop` stops it)")
                thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
                thread.start()
                self._loop()
            finally:
                self._close(listener, inode)
        finally:
            os.close(lock_fd)  # released before the `--stop` clients hear, so a new server can start
            for conn in self.waiters:
                conn.close()
        self.say("stopped")

    def _take_lock(self) -> int:
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path(self.home), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as error:
            raise self._unusable_home(error) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ServerStateError(f"a metagen server already runs in {self.home}",
                                   hint="`metagen serve --status` shows it; `metagen serve --stop` stops it") from None
        return fd

    def _unusable_home(self, error: OSError) -> MetagenError:
        """One line for a METAGEN_HOME the server cannot keep its lock and socket in: a file where a
        folder goes (exit 2, as for --out), or the system's reason (exit 1)."""
        # os.path, not Path: behind a folder this user may not search, Path.exists raises (EACCES)
        blocker = next((p for p in (self.home, *self.home.parents) if os.path.exists(p) and not os.path.isdir(p)),
                       None)
        if blocker is not None:
            where = "" if blocker == self.home else f": {blocker}"
            return OutputFolderError(f"cannot start the metagen server: METAGEN_HOME {self.home}{where} is a file, not "
                                     "a folder", hint="point METAGEN_HOME at a folder, or move the file")
        lock = lock_path(self.home)
        if os.path.islink(lock) or os.path.isdir(lock):
            what = "a symbolic link" if os.path.islink(lock) else "a folder"
            return OutputFolderError(f"cannot start the metagen server: {lock} is {what}, not the server's lock file",
                                     hint="remove it, or point METAGEN_HOME elsewhere")
        where = error.filename or self.home
        return OutputError(f"cannot start the metagen server in METAGEN_HOME {self.home}: {where}: {os_reason(error)}",
                           hint="point METAGEN_HOME at a folder you can write to")

    def _listen(self) -> tuple[socket.socket, int]:
        """Bind in a private folder, make the socket 0600, then move it over whatever stale one is there."""
        try:
            info = os.lstat(self.socket)
        except FileNotFoundError:
            info = None
        if info is not None and (not Path(self.socket).is_socket() or info.st_uid != os.getuid()):
            raise ServerStateError(f"{self.socket} is there and is not a socket of yours",
                                   hint="remove it, or point METAGEN_HOME elsewhere")
        try:
            folder = Path(tempfile.mkdtemp(prefix=".serve-", dir=self.home))  # 0700: no one else can reach it
        except OSError as error:
            raise self._unusable_home(error) from None
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with short_address(folder / "s") as address:
                listener.bind(address)
            os.chmod(folder / "s", 0o600)
            listener.listen(16)
            os.replace(folder / "s", self.socket)  # a stale socket (no server behind it) is replaced
        except BaseException:
            listener.close()
            raise
        finally:
            with contextlib.suppress(OSError):
                (folder / "s").unlink()
            folder.rmdir()
        from metagen.output import write_atomic

        write_atomic(status_path(self.home), json.dumps(
            {"pid": os.getpid(), "socket": str(self.socket), "started": self.started, "version": __version__}) + "\n",
            overwrite=True)
        return listener, os.lstat(self.socket).st_ino

    def _prepare(self) -> None:
        """Import what every request needs once, and remember what a fresh process starts with."""
        import torch

        from metagen.cli import root_command
        from metagen.generator import keep_loaded_models

        self.models = keep_loaded_models(MOST_MODELS)
        root_command()  # built now (cached), not during the first request
        self.torch_seed = torch.initial_seed()
        self.threads = torch.get_num_threads()
        self.home_fd = os.open(".", os.O_RDONLY)  # the server's own working folder, to return to
        for signum in _SIGNALS:
            signal.signal(signum, self._on_signal)
        if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
            signal.signal(signal.SIGHUP, self._on_signal)

    def _preload(self) -> None:
        """Import every module a command may import late, and load the default model now when it is
        installed, so the first request is quick too. A signal to the server raises in the command's
        frame (_on_signal): raised inside a first import, it left the module half made and the client
        a traceback ("cannot import name 'Kinship'") instead of the server-stopped line."""
        import importlib
        import pkgutil

        import metagen
        from metagen import catalog
        from metagen.errors import MetagenError
        from metagen.generator import load_model

        for module in pkgutil.walk_packages(metagen.__path__, "metagen."):
            if module.name != "metagen.__main__":  # it runs the CLI
                importlib.import_module(module.name)
        if catalog.installed_path(catalog.DEFAULT_MODEL).is_file():
            try:
                load_model(None)
            except MetagenError as error:
                self.say(f"the default model did not load: {error.one_line()}")

    def _close(self, listener: socket.socket, inode: int) -> None:
        with self.lock:
            self.stopping = self.closed = True
        with contextlib.suppress(OSError):
            if os.lstat(self.socket).st_ino == inode:
                os.unlink(self.socket)
        with contextlib.suppress(OSError):
            os.unlink(status_path(self.home))
        listener.close()
        while True:  # requests still waiting: their clients run them themselves
            try:
                job = self.queue.get_nowait()
            except queue.Empty:
                break
            if job is not _STOP:
                job.send_json({"refused": "the server is stopping"})
                job.conn.close()

    def _loop(self) -> None:
        with contextlib.suppress(KeyboardInterrupt, Terminated):  # a signal to the server: stop
            self._preload()
            while not self.stopping:
                job = self.queue.get()
                if job is _STOP:
                    break
                try:
                    self._answer(job)
                except Exception:  # a bug in the server itself: said here, and the next request runs
                    self.say("a request failed in the server:\n" + traceback.format_exc().rstrip())

    def _on_signal(self, signum, frame) -> None:
        job = self.current
        if job is not None and job.relayed == signum:  # a client's own signal, passed on
            job.relayed = None
            if not job.running:
                return  # its command has ended already
            raise KeyboardInterrupt if signum == signal.SIGINT else Terminated()
        # A signal to the server itself: it stops, and the command running now with it. That
        # command's client was not signalled: it hears that the server stopped, as for a kill -9.
        self.stopping = True
        if job is not None:
            raise Terminated(SERVER_GONE.format(pid=os.getpid()), EXIT_GENERATION_FAILED)
        raise KeyboardInterrupt if signum == signal.SIGINT else Terminated()

    _on_signal.raises_terminated = True  # commands/terminal.py's terminating_raised leaves it in place

    # -------------------------------------------------------------------------- connections

    def _accept(self, listener: socket.socket) -> None:
        _block_signals()
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._greet, args=(conn,), daemon=True).start()

    def _greet(self, conn: socket.socket) -> None:
        """Check who it is and read the request; answer status and stop here, queue the rest."""
        try:
            uid = peer_uid(conn)
            if uid is not None and uid != os.getuid():
                raise OSError("another user's process")
            conn.settimeout(GREETING_TIMEOUT)
            request = read_json(read_frame(conn)) or {}
            conn.settimeout(None)
            op = request.get("op")
            if op == "status":
                send_json(conn, self.status())
            elif op == "stop":
                send_json(conn, {"stopping": os.getpid()})
                with self.lock:
                    self.stopping = True
                    self.waiters.append(conn)
                    self.queue.put(_STOP)
                return
            elif op == "run":
                reason = _refusal(request)
                with self.lock:
                    if reason is None and not self.stopping:
                        self.queue.put(_Job(conn, request))
                        return
                send_json(conn, {"refused": reason or "the server is stopping"})
        except OSError:
            pass
        conn.close()

    def status(self) -> dict:
        """What `metagen serve --status` and `metagen models list` show."""
        return {"pid": os.getpid(), "socket": str(self.socket), "started": self.started, "served": self.served,
                "queued": self.queue.qsize(), "busy": self.current is not None, "version": __version__,
                "models": self.models.describe()}

    def _watch(self, job: _Job) -> None:
        """Read what the client sends while its command runs: stdin, signals, or its going away."""
        _block_signals()
        while (frame := read_frame(job.conn)) is not None:
            if frame[0] == STDIN:
                job.stdin.put(frame[1])
                continue
            signum = (read_json(frame) or {}).get("signal")
            if signum in _SIGNALS:
                self._cancel(job, signum)
        job.lost()
        self._cancel(job, signal.SIGINT)  # a client gone mid-request: its command stops as on Ctrl-C

    def _cancel(self, job: _Job, signum: int) -> None:
        with self.lock:
            if self.current is not job or job.cancelled:
                return
            job.cancelled = True
            if not job.running:
                job.early = signum  # _run sees it as the command starts
                return
            job.relayed = signum
        signal.pthread_kill(self.main_thread, signum)

    # -------------------------------------------------------------------------- requests

    def _answer(self, job: _Job) -> None:
        started = time.perf_counter()
        try:
            try:
                os.chdir(job.request["cwd"])
            except (OSError, TypeError, ValueError):
                job.send_json({"refused": "its working folder cannot be entered here"})
                return
            job.send_json({"start": os.getpid()})
            # Busy (status, _on_signal) only once the client knows its request started: a signal to
            # the server between the two closed the connection unannounced, and the client, told
            # nothing had run, ran the whole request itself.
            with self.lock:
                self.current = job
            threading.Thread(target=self._watch, args=(job,), daemon=True).start()
            try:
                code = self._run(job)
            finally:
                with self.lock:
                    self.current = None
                os.fchdir(self.home_fd)
            job.send_json({"exit": code})
        finally:
            with contextlib.suppress(OSError):
                job.conn.shutdown(socket.SHUT_RDWR)  # wakes the watcher
            job.conn.close()
        self.served += 1
        if self.verbose:
            command = forwarded_command(job.request["argv"], job.request["env"])
            self.say(f"request {self.served}: {command}, exit {code}, {time.perf_counter() - started:.2f} s")

    def _run(self, job: _Job) -> int:
        """Run the request's command as the client's process would; its exit status."""
        from metagen.cli import program_name, run

        request = job.request
        with self._as_client(job):
            with self.lock:
                job.running = True
            try:
                if job.early is not None:
                    raise KeyboardInterrupt if job.early == signal.SIGINT else Terminated()
                run(request["argv"], program_name(request.get("argv0"), request.get("main_package")))
                code = 0
            except SystemExit as exit:
                code = _exit_status(exit.code)
            except KeyboardInterrupt:  # as cli.run says it, before a command has started
                print(INTERRUPTED_MESSAGE, file=sys.stderr)
                code = EXIT_INTERRUPTED
            except Terminated as error:  # SIGTERM passed on before cli.py's handler was in place
                print(f"error: {error.message}", file=sys.stderr)
                code = error.exit_code
            except BaseException:  # a bug: the traceback Python would print, and its exit status
                traceback.print_exc()
                code = EXIT_GENERATION_FAILED
            finally:
                job.running = False
        return code

    @contextlib.contextmanager
    def _as_client(self, job: _Job):
        """The process as the client's own for one request: streams, argv, environment, umask,
        and the state a fresh process starts with; all put back afterwards."""
        request, streams = job.request, job.request["streams"]
        saved_streams, saved_argv, saved_env = (sys.stdin, sys.stdout, sys.stderr), sys.argv, dict(os.environ)
        root = logging.getLogger()
        saved_logging = (root.handlers[:], root.level)
        saved_umask = os.umask(request["umask"] & 0o777)
        saved_interrupt = signal.getsignal(signal.SIGINT)  # a command that ends on Ctrl-C ignores the next one
        try:
            sys.stdin = _text_stream(_Source(job, streams["stdin"]["tty"]), streams["stdin"], reading=True)
            sys.stdout = _text_stream(_Sink(job, STDOUT, streams["stdout"]["tty"]), streams["stdout"])
            sys.stderr = _text_stream(_Sink(job, STDERR, streams["stderr"]["tty"]), streams["stderr"])
            sys.argv = [request.get("argv0") or "metagen", *request["argv"]]
            os.environ.clear()
            os.environ.update(request["env"])
            # Help text and rich size themselves from COLUMNS, else from the terminal on stdout.
            columns, lines = request.get("terminal") or (80, 24)
            os.environ.setdefault("COLUMNS", str(columns))
            os.environ.setdefault("LINES", str(lines))
            self._fresh_state()
            with warnings.catch_warnings():  # also forgets which warnings were shown once
                yield
        finally:
            for stream in (sys.stdout, sys.stderr):  # flushed in the order Python flushes them at exit
                with contextlib.suppress(Exception):
                    stream.flush()
            sys.stdin, sys.stdout, sys.stderr = saved_streams
            sys.argv = saved_argv
            os.environ.clear()
            os.environ.update(saved_env)
            os.umask(saved_umask)
            signal.signal(signal.SIGINT, saved_interrupt)
            root.handlers[:], level = saved_logging
            root.setLevel(level)

    def _fresh_state(self) -> None:
        """What a new process would start with: random states, torch's threads, the logged decoding order."""
        import numpy
        import torch

        from metagen.search import forget_logged_order

        random.seed()
        numpy.random.seed()
        torch.manual_seed(self.torch_seed)
        wanted = os.environ.get("OMP_NUM_THREADS", "")
        threads = int(wanted) if wanted.isdigit() and int(wanted) > 0 else self.threads
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        forget_logged_order()


__all__ = ["MOST_MODELS", "Server"]
