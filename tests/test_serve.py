"""`metagen serve` (issue 16): a warm server answers the generating commands with the same bytes.

Servers run as `python -m metagen serve` subprocesses on the tiny model, each with a METAGEN_HOME
of its own; clients are `python -m metagen` subprocesses, and the same command run in this
process (CliRunner, no server) is the reference. Every server is stopped in teardown.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from metagen import protocol
from metagen.cli import app
from metagen.client import _Exchange
from metagen.errors import Terminated
from metagen.server import Server, _Job

from conftest import as_in_a_terminal, files_in, invoke, write_world

TIMEOUT = 120  # seconds any one process may take before the test fails
LONG = ["story", "tiny.yaml", "-c", "ada", "--seed", 1, "--max-tokens", 400, "--min-tokens", 400, "-n", 50]


def environment(home: Path, **extra: str) -> dict:
    env = {**os.environ, "METAGEN_HOME": str(home), "METAGEN_OFFLINE": "1"}
    env.pop("METAGEN_NO_SERVER", None)
    return {**env, **extra}


def metagen(home: Path, cwd: Path, *args, input: str | None = None, **extra: str) -> subprocess.CompletedProcess:
    """`python -m metagen ARGS` run to the end: a client of the server in home, if one runs."""
    return subprocess.run([sys.executable, "-m", "metagen", *map(str, args)], cwd=cwd, env=environment(home, **extra),
                          capture_output=True, text=True, input=input, timeout=TIMEOUT)


def start(home: Path, cwd: Path, *args) -> subprocess.Popen:
    """`python -m metagen ARGS` left running, stderr piped, with Python's own Ctrl-C handler
    (a background job's SIGINT would be ignored otherwise)."""
    return subprocess.Popen([sys.executable, "-m", "metagen", *map(str, args)], cwd=cwd, env=environment(home),
                            text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=as_in_a_terminal)


def start_server(home: Path) -> subprocess.Popen:
    """`metagen serve` in the background, once it answers."""
    proc = start(home, home.parent, "serve")
    deadline = time.monotonic() + TIMEOUT
    while protocol.ask(home, "status", timeout=1.0) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"metagen serve did not start ({proc.returncode}): {proc.communicate()[1]}")
        time.sleep(0.1)
    return proc


def stop_server(proc: subprocess.Popen, home: Path) -> None:
    try:
        if proc.poll() is None:
            metagen(home, home.parent, "serve", "--stop")
        proc.wait(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def status(home: Path) -> dict:
    answer = protocol.ask(home, "status")
    assert answer is not None, "the server does not answer"
    return answer


def wait_busy(home: Path) -> None:
    """Until the server is running a request."""
    deadline = time.monotonic() + TIMEOUT
    while not status(home)["busy"]:
        assert time.monotonic() < deadline, "the request never started"
        time.sleep(0.05)


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith((".tmp", ".part"))]


def comparable(path: Path) -> str:
    """A piece file without the fields that are timings: seconds (of generation) and created."""
    return re.sub(r"(?m)^(seconds|created): .*\n", "", path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory, wide_gguf):
    """One server for the tests that leave it running, its model converted and loaded."""
    home = tmp_path_factory.mktemp("served") / "home"
    home.mkdir()
    proc = start_server(home)
    warm = metagen(home, home, "generate", "warm", "--model", wide_gguf, "--dtype", "float32", "--max-tokens", 1)
    assert warm.returncode == 0, warm.stderr
    yield home
    stop_server(proc, home)


@pytest.fixture
def server_home(shared_home, monkeypatch) -> Path:
    """The shared server's home, which the commands run in this process (the reference) use too."""
    monkeypatch.setenv("METAGEN_HOME", str(shared_home))
    return shared_home


@pytest.fixture
def home(tmp_path) -> Path:
    """A METAGEN_HOME for a server of the test's own."""
    folder = tmp_path / "own-home"
    folder.mkdir()
    return folder


@pytest.fixture(autouse=True)
def tiny_world(tmp_path) -> Path:
    return write_world(tmp_path)


REQUESTS = [
    pytest.param(["story", "tiny.yaml", "-c", "ada,bo", "--seed", 7, "--max-tokens", 16], id="story"),
    pytest.param(["describe-scene", "tiny.yaml", "--location", "well", "--seed", 3, "--max-tokens", 12], id="scene"),
    pytest.param(["dialogue", "tiny.yaml", "-c", "ada,bo", "--turns", 3, "--seed", 5, "--max-tokens", 8], id="dialogue"),
]


@pytest.mark.parametrize("request_args", REQUESTS)
def test_a_command_through_the_server_writes_the_same_bytes(server_home, tmp_path, runner, model_args, request_args):
    served = status(server_home)["served"]
    through = metagen(server_home, tmp_path, *request_args, *model_args, "--out", "served")
    here = invoke(runner, *request_args, *model_args, "--out", "here")
    assert status(server_home)["served"] == served + 1
    assert (through.returncode, here.exit_code) == (0, 0), through.stderr + here.output
    assert through.stderr == here.stderr.replace("here/", "served/")
    (served_file,), (here_file,) = files_in(tmp_path / "served"), files_in(tmp_path / "here")
    assert served_file.relative_to(tmp_path / "served") == here_file.relative_to(tmp_path / "here")
    assert comparable(served_file) == comparable(here_file)


def test_a_scene_asked_again_with_another_seed_writes_what_a_fresh_process_writes(server_home, tmp_path, runner,
                                                                                  model_args):
    """The server keeps the prompt's pass of the first (search.PromptMemo) for the second."""
    scene = ["describe-scene", "tiny.yaml", "--location", "well", "--max-tokens", 12, *model_args]
    first = metagen(server_home, tmp_path, *scene, "--seed", 21, "--out", "served")
    second = metagen(server_home, tmp_path, *scene, "--seed", 22, "--out", "served")
    here = [invoke(runner, *scene, "--seed", seed, "--out", "here") for seed in (21, 22)]
    assert [first.returncode, second.returncode, *(h.exit_code for h in here)] == [0] * 4, second.stderr
    served, alone = files_in(tmp_path / "served"), files_in(tmp_path / "here")
    assert len(served) == 2 and [comparable(f) for f in served] == [comparable(f) for f in alone]


def test_stdout_stdin_errors_and_exit_codes_are_the_client_s(server_home, tmp_path, runner, model_args):
    args = ["generate", "-", "--seed", 2, "--max-tokens", 6, *model_args]
    through = metagen(server_home, tmp_path, *args, input="a prompt on stdin")
    here = runner.invoke(app, list(map(str, args)), input="a prompt on stdin")
    assert (through.returncode, through.stdout, through.stderr) == (0, here.stdout, here.stderr)
    bad = ["describe-scene", "tiny.yaml", "--location", "nowhere", *model_args]
    through, here = metagen(server_home, tmp_path, *bad), invoke(runner, *bad)
    assert (through.returncode, through.stderr) == (2, here.stderr)
    # A usage error names the program as the client's own process would: "python -m metagen" here.
    bad = ["describe-scene", "tiny.yaml", "--bogus"]
    through, alone = metagen(server_home, tmp_path, *bad), metagen(server_home, tmp_path, "--no-server", *bad)
    assert (through.returncode, through.stderr) == (2, alone.stderr)
    assert "(see 'python -m metagen describe-scene --help')" in through.stderr


def test_each_request_starts_as_a_fresh_process_would(server_home, tmp_path, model_args):
    """-v's log of the decoding order each time, and no INFO lines once -v is gone."""
    args = ["describe-scene", "tiny.yaml", "--location", "mill", "--seed", 4, "--max-tokens", 4, *model_args, "--stdout"]
    first, second = (metagen(server_home, tmp_path, "-v", *args) for _ in range(2))
    plain = metagen(server_home, tmp_path, *args)
    untimed = [re.sub(r" in \d+\.\d+ s$", "", run.stderr, flags=re.M) for run in (first, second)]
    assert "processors in order" in first.stderr and untimed[0] == untimed[1]
    assert first.stdout == second.stdout == plain.stdout
    assert plain.stderr == ""


def test_two_clients_at_once_each_get_their_own_result(server_home, tmp_path, runner, model_args):
    def args(seed):
        # one candidate: of four, the critic keeps the tiny model's one clean text, the start words alone
        return ["describe-scene", "tiny.yaml", "--location", "well", "--seed", seed, "--max-tokens", 24, "--stdout",
                "--candidates", 1, *model_args]

    procs = [subprocess.Popen([sys.executable, "-m", "metagen", *map(str, args(seed))], cwd=tmp_path, text=True,
                              env=environment(server_home), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for seed in (11, 12)]
    outputs = [proc.communicate(timeout=TIMEOUT) for proc in procs]
    for seed, proc, (stdout, stderr) in zip((11, 12), procs, outputs):
        here = invoke(runner, *args(seed))
        assert proc.returncode == 0, stderr
        assert (stdout, stderr) == (here.stdout, here.stderr)
    assert outputs[0][0] != outputs[1][0]


def test_a_killed_client_leaves_the_server_answering(server_home, tmp_path, model_args):
    proc = start(server_home, tmp_path, *LONG, "--out", "out", *model_args)
    wait_busy(server_home)
    proc.kill()
    proc.communicate(timeout=TIMEOUT)
    again = metagen(server_home, tmp_path, "describe-scene", "tiny.yaml", "--location", "well", "--seed", 1,
                    "--max-tokens", 4, *model_args, "--out", "after")
    assert again.returncode == 0, again.stderr
    assert len(files_in(tmp_path / "after")) == 1
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(("signum", "code", "line"), [
    (signal.SIGINT, 130, "error: interrupted (SIGINT); nothing partial was written"),
    (signal.SIGTERM, 143, "error: terminated by SIGTERM"),  # the server's handler tells it from its own
], ids=["int", "term"])
def test_ctrl_c_reaches_the_command_on_the_server(server_home, tmp_path, model_args, signum, code, line):
    proc = start(server_home, tmp_path, *LONG, "--out", "out", *model_args)
    wait_busy(server_home)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == code, stderr
    assert stderr.splitlines()[-1] == line
    assert leftovers(tmp_path) == []
    assert status(server_home)["pid"]  # still there


def test_no_server_bypasses_it(server_home, tmp_path, runner, model_args):
    served = status(server_home)["served"]
    args = ["describe-scene", "tiny.yaml", "--location", "well", "--seed", 3, "--max-tokens", 4, *model_args, "--stdout"]
    alone = metagen(server_home, tmp_path, *args, METAGEN_NO_SERVER="1")  # the flag is the same switch
    assert alone.returncode == 0, alone.stderr
    assert status(server_home)["served"] == served
    assert alone.stdout == invoke(runner, "--no-server", *args).stdout != ""


def test_models_list_and_status_show_the_server(server_home, tmp_path):
    listed = metagen(server_home, tmp_path, "models", "list")
    line = listed.stdout.splitlines()[-1]
    assert line.startswith(f"server: running, pid {status(server_home)['pid']}, socket {server_home / 'serve.sock'}")
    shown = metagen(server_home, tmp_path, "serve", "--status")
    assert (shown.returncode, shown.stdout.startswith("server: running, pid ")) == (0, True)
    second = metagen(server_home, tmp_path, "serve")
    assert second.returncode == 3
    assert second.stderr.startswith(f"error: a metagen server already runs in {server_home}")


def test_a_malformed_request_is_turned_down_and_the_server_answers_on(server_home):
    from metagen import __version__
    from metagen.protocol import connect, read_frame, read_json, send_json, socket_path

    package = str(Path(protocol.__file__).resolve().parent)
    for request in [{"op": "run", "argv": ["story"], "version": __version__, "package": package, "env": {},
                     "cwd": "/", "umask": 18, "streams": {"stdout": "a pipe"}},
                    {"op": "run", "argv": ["chat"], "version": "0.0.0"}, {"op": "nothing"}]:
        with connect(socket_path(server_home), timeout=10) as sock:
            send_json(sock, request)
            answer = read_json(read_frame(sock))
        assert answer is None or "refused" in answer
    assert status(server_home)["pid"]


@pytest.mark.parametrize("field", [{"encoding": "utf-8\x00"}, {"errors": "strict\x00"}, {"encoding": "\udcff"}])
def test_a_request_naming_an_impossible_encoding_is_turned_down(server_home, field):
    """A NUL or a lone surrogate in a stream's encoding raised ValueError in the thread reading the
    request: a traceback in the server's log and the connection dropped without an answer."""
    from metagen import __version__

    good = {"tty": False, "encoding": "utf-8", "errors": "strict", "line_buffering": False, "write_through": False,
            "buffer": 8192}
    request = {"op": "run", "argv": ["generate", "x"], "version": __version__,
               "package": str(Path(protocol.__file__).resolve().parent), "env": {}, "cwd": "/", "umask": 18,
               "argv0": None, "main_package": None, "terminal": None,
               "streams": {"stdin": good, "stdout": {**good, **field}, "stderr": good}}
    with protocol.connect(protocol.socket_path(server_home), timeout=10) as sock:
        protocol.send_json(sock, request)
        assert protocol.read_json(protocol.read_frame(sock)) == {"refused": "malformed request"}
    assert status(server_home)["pid"]


def test_stop_stale_socket_and_none_running(home, tmp_path, model_args):
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # a socket file with no server behind it
    with protocol.short_address(home / "serve.sock") as address:
        stale.bind(address)
    stale.close()
    os.chmod(home / "serve.sock", 0o600)
    ran = metagen(home, tmp_path, "describe-scene", "tiny.yaml", "--location", "well", "--seed", 1, "--max-tokens", 4,
                  *model_args, "--out", "out")
    assert ran.returncode == 0, ran.stderr  # ran in its own process
    assert len(files_in(tmp_path / "out")) == 1

    proc = start_server(home)  # replaces the stale socket
    pid = status(home)["pid"]
    stopped = metagen(home, tmp_path, "serve", "--stop")
    assert (stopped.returncode, stopped.stderr) == (0, f"stopped the metagen server (pid {pid})\n")
    assert proc.wait(timeout=TIMEOUT) == 0
    assert not (home / "serve.sock").exists() and not (home / "serve.json").exists()
    again = metagen(home, tmp_path, "serve", "--stop")
    assert (again.returncode, again.stderr.count("\n")) == (3, 1)
    assert again.stderr.startswith("error: no metagen server is running in ")
    shown = metagen(home, tmp_path, "serve", "--status")
    assert (shown.returncode, shown.stdout) == (3, "server: not running (`metagen serve &` starts one)\n")
    both = metagen(home, tmp_path, "serve", "--stop", "--status")  # it stopped a server, then printed a "status"
    assert (both.returncode, both.stdout) == (2, "") and "give --stop or --status, not both" in both.stderr


@pytest.mark.parametrize(("layout", "needle"), [
    ("home is a file", "METAGEN_HOME {home} is a file, not a folder (point METAGEN_HOME at a folder, or move the file)"),
    ("a file on the way", "METAGEN_HOME {home}/sub: {home} is a file, not a folder"),
    ("lock is a folder", "{home}/serve.lock is a folder, not the server's lock file (remove it, or point METAGEN_HOME"),
    ("lock is a link", "{home}/serve.lock is a symbolic link, not the server's lock file"),
], ids=["home-file", "file-on-the-way", "lock-folder", "lock-link"])
def test_a_home_the_server_cannot_use_is_one_line(tmp_path, layout, needle):
    """METAGEN_HOME a file (or a file on its way), or serve.lock a folder or a link: a traceback, exit 1."""
    home = tmp_path / "home"
    if layout in ("home is a file", "a file on the way"):
        home.write_text("not a folder\n")
    else:
        home.mkdir()
        if layout == "lock is a folder":
            (home / "serve.lock").mkdir()
        else:
            (home / "serve.lock").symlink_to(tmp_path / "elsewhere")
    used = home / "sub" if layout == "a file on the way" else home
    ran = metagen(used, tmp_path, "serve")
    assert (ran.returncode, ran.stdout, ran.stderr.count("\n")) == (2, "", 1), ran.stderr
    assert ran.stderr.startswith("error: cannot start the metagen server: ")
    assert needle.format(home=home) in ran.stderr


def test_a_home_behind_a_folder_it_may_not_search_is_one_line(tmp_path, monkeypatch, runner):
    """METAGEN_HOME in another user's 0700 folder: looking for a file on its way, Path.exists raised
    PermissionError, a traceback with exit 1."""
    from conftest import deny_search_of

    from metagen.cli import app

    home = tmp_path / "shut" / "home"
    monkeypatch.setenv("METAGEN_HOME", str(home))
    deny_search_of(monkeypatch, tmp_path / "shut")
    ran = runner.invoke(app, ["serve"])
    assert ran.exit_code == 1, ran.output
    assert ran.stderr == (f"error: cannot start the metagen server in METAGEN_HOME {home}: {home}: Permission denied "
                          "(point METAGEN_HOME at a folder you can write to)\n")


def test_a_server_whose_log_reader_has_gone_answers_on(home, tmp_path, model_args):
    """`metagen -v serve 2>&1 | grep ...` with the grep ended: the line logged after the first request
    raised BrokenPipeError, and the server died after answering it."""
    read, write = os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "metagen", "-v", "serve"], cwd=tmp_path, env=environment(home),
                            stdout=subprocess.DEVNULL, stderr=write)
    os.close(write)
    try:
        deadline = time.monotonic() + TIMEOUT
        while protocol.ask(home, "status", timeout=1.0) is None:
            assert proc.poll() is None and time.monotonic() < deadline, "metagen serve did not start"
            time.sleep(0.1)
        os.close(read)  # the log's reader goes away
        for seed in (1, 2):
            ran = metagen(home, tmp_path, "generate", "hello", "--seed", seed, "--max-tokens", 2, *model_args)
            assert ran.returncode == 0, ran.stderr
        assert status(home)["served"] == 2
    finally:
        stop_server(proc, home)
    assert proc.returncode == 0


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=["kill", "term", "int", "hup"])
def test_a_server_gone_mid_request_is_one_line_and_exit_1(home, tmp_path, model_args, signum):
    """Killed, or stopped by a signal of its own (not the client's): the client was not signalled, so
    it says the server stopped, not "terminated by SIGTERM" (exit 143) as if it had been."""
    server = start_server(home)
    try:
        # the model converted first: its "converting ..." line would otherwise reach stderr, or
        # not, depending on how far the server got before the kill
        assert metagen(home, tmp_path, "generate", "warm", *model_args, "--max-tokens", 1).returncode == 0
        proc = start(home, tmp_path, *LONG, "--out", "out", *model_args)
        wait_busy(home)
        server.send_signal(signum)
        _, stderr = proc.communicate(timeout=TIMEOUT)
    finally:
        stop_server(server, home)
    assert proc.returncode == 1, stderr  # once (round 42, CI under load) exit 2 for SIGTERM: say what was said
    assert stderr == (f"error: the metagen server (pid {server.pid}) stopped during the request; files it finished "
                      "are whole and none is partial (run the command again)\n")
    assert leftovers(tmp_path) == []


class _SignalledWhenBusy(Server):
    """A server that SIGTERM reaches the moment its status would first say busy: when the test above
    sends it, at the earliest (under load, once, before the server had told the client anything)."""

    @property
    def current(self):
        return self.__dict__.get("_current")

    @current.setter
    def current(self, job):
        self.__dict__["_current"] = job
        if job is not None:
            self._on_signal(signal.SIGTERM, None)


def test_a_server_stopped_as_it_turns_busy_has_told_the_client_its_request_started(home, tmp_path, monkeypatch,
                                                                                  capsys):
    """Round 42's exit 2: status said busy before the server had sent "start", and a SIGTERM in between
    closed the connection unannounced. The client, told nothing had run, ran the whole request itself
    and ended with that request's own error (`--max-tokens 120 does not fit`, exit 2)."""
    monkeypatch.chdir(tmp_path)  # the server enters the request's working folder
    ours, theirs = socket.socketpair()
    stopped = []

    def answer() -> None:
        job = _Job(theirs, protocol.read_json(protocol.read_frame(theirs)))
        try:
            _SignalledWhenBusy(home)._answer(job)
        except Terminated as error:  # the server's loop takes it and stops
            stopped.append(error)

    server = threading.Thread(target=answer)
    server.start()
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = _Exchange(ours).run({"op": "run", "argv": LONG, "cwd": str(tmp_path)})
    finally:
        for signum, handler in handlers.items():  # the client passes them on once its request has started
            signal.signal(signum, handler)
        server.join(TIMEOUT)
        ours.close()
    assert (code, len(stopped)) == (1, 1)
    assert capsys.readouterr().err == "error: " + protocol.SERVER_GONE.format(pid=os.getpid()) + "\n"


def test_a_socket_that_is_not_yours_is_refused(home, monkeypatch):
    path = home / "serve.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with protocol.short_address(path) as address:
        listener.bind(address)
    with listener:
        os.chmod(path, 0o666)
        with pytest.raises(protocol.UnsafeSocket, match="mode 0666"):
            protocol.connect(path)
        os.chmod(path, 0o600)
        monkeypatch.setattr(os, "getuid", lambda: 12345)
        with pytest.raises(protocol.UnsafeSocket, match="belongs to uid"):
            protocol.connect(path)
    regular = home / "not-a-socket"
    regular.write_text("")
    with pytest.raises(protocol.UnsafeSocket, match="is not a socket"):
        protocol.connect(regular)


@pytest.mark.parametrize("flag", ["--status", "--stop"])
@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_socket_path_that_is_no_socket_says_what_to_do(runner, isolated_home, flag, kind):
    """serve.sock a regular file or a folder: 'not talking to that server: ... is not a socket', with no
    word of what to do about it."""
    isolated_home.mkdir()
    path = isolated_home / "serve.sock"
    path.mkdir() if kind == "folder" else path.write_text("")
    result = invoke(runner, "serve", flag)
    assert (result.exit_code, result.stdout) == (3, "")
    assert result.stderr == (f"error: not talking to that server: {path} is not a socket (if no server of yours runs "
                             "there, remove it; or point METAGEN_HOME elsewhere)\n")


@pytest.mark.parametrize(("state", "line"), [
    ({"served": 0}, "0 requests answered; models loaded: none yet"),
    ({"served": 1, "models": ["m (int4, cpu)"]}, "1 request answered; models loaded: m (int4, cpu)"),
    ({"served": 2, "busy": True, "queued": 3}, "2 requests answered, running one now, 3 queued; models loaded: none yet"),
])  # fmt: skip
def test_the_status_line_counts_in_words(state, line):
    """`--status` said '1 requests answered', and nothing of a request running now."""
    said = protocol.describe_status({"pid": 7, "socket": "/h/serve.sock", **state})
    assert said == f"server: running, pid 7, socket /h/serve.sock, {line}"


@pytest.mark.parametrize(("args", "env", "command"), [
    (["story", "w.yaml"], {}, "story"),
    (["-v", "describe-scene", "w.yaml"], {}, "describe-scene"),
    (["prompt", "story", "w.yaml"], {}, "prompt"),
    (["--no-server", "story", "w.yaml"], {}, None),
    (["story", "w.yaml"], {"METAGEN_NO_SERVER": "1"}, None),
    (["story", "w.yaml"], {"METAGEN_NO_SERVER": "0"}, "story"),
    (["chat", "w.yaml"], {}, None),
    (["tune"], {}, None),
    (["serve"], {}, None),
    (["models", "list"], {}, None),
    (["--help"], {}, None),
    ([], {}, None),
])
def test_which_commands_a_server_answers(args, env, command):
    assert protocol.forwarded_command(args, env) == command


def test_the_server_imports_every_module_before_its_first_request(tmp_path):
    """A signal to the server raises in the running command; raised inside a module's first import
    (metagen.kinship, which a story imports late) it left the client a traceback, not one line."""
    check = ("import sys; from metagen.server import Server; Server._preload(None); "
             "print(all(m in sys.modules for m in ('metagen.kinship', 'metagen.plan', 'metagen.moderation')))")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "METAGEN_HOME": str(tmp_path / "empty-home")})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
