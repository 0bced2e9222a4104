"""Interruptions never cost the user anything (issue 7).

Real signals go to a real `python -m metagen` process running the tiny model: SIGINT
exits 130 and SIGTERM 143, with one `error:` line, no traceback, no partial or temp file,
and a batch says how far it got; `metagen batch --resume` then finishes the rest. An
interrupt in the middle of writing a file is simulated in-process, where it can be placed
exactly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metagen.cli import app
from metagen.output import is_complete

from conftest import as_in_a_terminal, files_in, write_world

WORLD = """\
world: {id: tinyville, name: Tinyville}
style: {length: short, length_words: {short: 20, medium: 40, long: 80}}
locations:
  - {id: well, name: The Well}
characters:
  - {id: ada, name: Ada}
  - {id: bo, name: Bo}
"""
JOBS = """\
world: tiny.yaml
seed: 100
settings: {max_new_tokens: 40, min_new_tokens: 40}
jobs:
  - {kind: story, characters: [ada], location: well, count: 10}
"""
SIGNALS = [
    pytest.param(signal.SIGINT, 130, "error: interrupted (SIGINT); nothing partial was written", id="SIGINT"),
    pytest.param(signal.SIGTERM, 143, "error: terminated by SIGTERM", id="SIGTERM"),
    # the terminal was closed: it was Python's default, death by the signal with nothing said (a shell's 129)
    pytest.param(signal.SIGHUP, 129, "error: terminated by SIGHUP (the terminal was closed)", id="SIGHUP"),
]


@pytest.fixture
def world(tmp_path) -> Path:
    return write_world(tmp_path, WORLD)


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith((".tmp", ".part")) or p.name.startswith(".staging-")]


def start(args: list, cwd: Path, ignored: tuple = ()) -> subprocess.Popen:
    """`python -m metagen ARGS` with stderr piped (stdout is not needed), importing this checkout's
    metagen (cwd is tmp_path), with the signals in `ignored` ignored as `nohup` does."""
    def signals() -> None:
        as_in_a_terminal()
        for signum in ignored:
            signal.signal(signum, signal.SIG_IGN)

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.Popen([sys.executable, "-m", "metagen", *map(str, args)], cwd=cwd, text=True, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=signals)


def read_until(proc: subprocess.Popen, marker: str) -> str:
    """stderr up to and including the first line that holds marker (stderr is line-buffered)."""
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if marker in line:
            return "".join(seen)
    proc.wait(timeout=60)
    pytest.fail(f"metagen ended ({proc.returncode}) before {marker!r}: {''.join(seen)}")


def check_stderr(stderr: str, last_line: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert lines[-1] == last_line, stderr
    assert [line for line in lines if line.startswith("error:")] == [last_line]
    return lines


@pytest.mark.parametrize(("signum", "code", "last_line"), SIGNALS)
def test_signal_during_a_batch_keeps_what_was_finished_and_resume_does_the_rest(
        runner, tmp_path, world, model_args, signum, code, last_line):
    (tmp_path / "jobs.yaml").write_text(JOBS, encoding="utf-8")
    out = tmp_path / "out"
    proc = start(["batch", "jobs.yaml", "--out", out, "--batch-size", 1, *model_args], tmp_path)
    seen = read_until(proc, "wrote ")  # the first file is written and counted
    proc.send_signal(signum)
    stderr = seen + proc.communicate(timeout=120)[1]
    assert proc.returncode == code, stderr
    lines = check_stderr(stderr, last_line)
    said = [line for line in lines if line.startswith("interrupted after ")]
    assert len(said) == 1 and said[0].endswith(" of 10; rerun with --resume to finish"), stderr
    finished = int(said[0].split()[2])
    written = files_in(out)
    assert 1 <= finished <= len(written) <= finished + 1  # one more may land between the signal and the count
    assert len(written) < 10
    assert all(is_complete(p) for p in written)
    assert leftovers(tmp_path) == []

    resumed = runner.invoke(app, ["batch", "jobs.yaml", "--out", str(out), "--resume", *model_args])
    assert resumed.exit_code == 0, resumed.output
    assert f"written {10 - len(written)}, skipped {len(written)} (resume)" in resumed.stderr
    assert [p.name for p in files_in(out)] == [f"ada-at-well-{seed}.md" for seed in range(100, 110)]
    assert all(is_complete(p) for p in files_in(out))


@pytest.mark.parametrize(("signum", "code", "last_line"), SIGNALS)
def test_signal_during_a_story_writes_nothing(tmp_path, world, model_args, signum, code, last_line):
    out = tmp_path / "out"
    proc = start(["-v", "story", "tiny.yaml", "-c", "ada", "-l", "well", "--seed", 1, "--max-tokens", 600, "--min-tokens", 600,
                  "--out", out, *model_args], tmp_path)
    seen = read_until(proc, "metagen.generator: loaded")  # -v logs it just before generation starts
    time.sleep(0.2)
    proc.send_signal(signum)
    stderr = seen + proc.communicate(timeout=120)[1]
    assert proc.returncode == code, stderr
    check_stderr(stderr, last_line)
    assert files_in(out) == []
    assert leftovers(tmp_path) == []


def test_sighup_under_nohup_is_still_ignored(tmp_path, world, model_args):
    """`nohup metagen ...` ignores SIGHUP so that the run outlives its terminal: metagen keeps it so."""
    out = tmp_path / "out"
    proc = start(["-v", "story", "tiny.yaml", "-c", "ada", "-l", "well", "--seed", 1, "--max-tokens", 40, "--min-tokens", 40,
                  "--out", out, *model_args], tmp_path, ignored=(signal.SIGHUP,))
    seen = read_until(proc, "metagen.generator: loaded")
    proc.send_signal(signal.SIGHUP)
    stderr = seen + proc.communicate(timeout=120)[1]
    assert proc.returncode == 0, stderr
    assert [p.name for p in files_in(out)] == ["ada-at-well-1.md"]


def _interrupt_during_write(monkeypatch, on_call: int):
    """KeyboardInterrupt half-way through the bytes of the on_call-th file written."""
    import metagen.output.writing as writing

    real, calls = writing._write_all, []

    def write(fd, data):
        calls.append(1)
        if len(calls) == on_call:
            os.write(fd, data[: len(data) // 2])
            raise KeyboardInterrupt
        real(fd, data)

    monkeypatch.setattr(writing, "_write_all", write)
    return lambda: monkeypatch.setattr(writing, "_write_all", real)


def test_interrupt_in_the_middle_of_a_write_leaves_no_partial_file(runner, tmp_path, world, model_args, monkeypatch):
    _interrupt_during_write(monkeypatch, on_call=2)
    out = tmp_path / "out"
    result = runner.invoke(app, ["story", "tiny.yaml", "-c", "ada", "-l", "well", "--seed", 7, "-n", 3, "--max-tokens", 4,
                                 "--out", str(out), *model_args])
    assert result.exit_code == 130, result.output
    lines = check_stderr(result.stderr, "error: interrupted (SIGINT); nothing partial was written")
    (written,) = files_in(out)  # the first of three; the second was cut off mid-write
    assert written.name == "ada-at-well-7.md" and is_complete(written)
    assert f"wrote {written}" in lines
    assert leftovers(tmp_path) == []
    # A second Ctrl-C while metagen reports the first and exits is ignored: it printed the message
    # twice, or a traceback from one of torch's exit handlers (conftest puts the handler back).
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_interrupt_while_the_first_piece_is_written_leaves_no_folder(runner, tmp_path, world, model_args,
                                                                      monkeypatch):
    """It left OUT/tinyville/story/ behind, empty: no partial file, but the folders made for it."""
    _interrupt_during_write(monkeypatch, on_call=1)
    out = tmp_path / "out"
    result = runner.invoke(app, ["story", "tiny.yaml", "-c", "ada", "-l", "well", "--seed", 7, "--max-tokens", 4, "--out", str(out),
                                 *model_args])
    assert result.exit_code == 130, result.output
    check_stderr(result.stderr, "error: interrupted (SIGINT); nothing partial was written")
    assert not out.exists()


def _torch_loading(pid: int) -> bool:
    """Whether the process has begun to load torch's libraries (metagen's code is running by then)."""
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


# A real signal, sent by the process to itself while metagen.client imports the commands or as click
# starts to parse the command line: where a Ctrl-C or a `kill` a moment after Enter lands (importing the
# commands takes most of start-up).
_SIGNALLED_AT_START = """\
import builtins, os, signal, sys
from typer.core import TyperGroup
from metagen.client import main

signum, when = int(sys.argv[1]), sys.argv[2]
sys.argv = ["metagen", *sys.argv[3:]]
real_parse, real_import = TyperGroup.parse_args, builtins.__import__

def parse_args(self, ctx, args):
    os.kill(os.getpid(), signum)
    return real_parse(self, ctx, args)

def imported(name, *args, **kwargs):
    if name == "metagen.commands.batch":  # half-way through importing metagen.cli
        os.kill(os.getpid(), signum)
    return real_import(name, *args, **kwargs)

if when == "parsing":
    TyperGroup.parse_args = parse_args
else:
    builtins.__import__ = imported
main()
"""


@pytest.mark.parametrize("when, args", [("importing", ["worlds", "list"]), ("parsing", ["worlds", "list"]),
                                        ("parsing", ["--version"])])
@pytest.mark.parametrize("signum, code, line", SIGNALS)
def test_a_signal_before_the_command_starts_says_so(tmp_path, signum, code, line, when, args):
    """Typer turned a KeyboardInterrupt during the root's parsing into a bare exit 130, one while the
    commands were imported printed a traceback, and SIGTERM or SIGHUP in either ended metagen with
    nothing on stderr; in a command each prints its one line."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "METAGEN_NO_SERVER": "1"}
    proc = subprocess.run([sys.executable, "-c", _SIGNALLED_AT_START, str(int(signum)), when, *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120,
                          preexec_fn=as_in_a_terminal)
    assert (proc.returncode, proc.stderr) == (code, line + "\n")
    assert proc.stdout == ""


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc to know when torch loads")
@pytest.mark.parametrize("when", ["while torch loads", "while generating"])
def test_a_second_ctrl_c_while_the_first_is_reported_is_ignored(tmp_path, world, model_args, when):
    """Two SIGINTs 10 ms apart: one line, exit 130, no traceback (it printed the line twice, or
    a traceback from one of torch's exit handlers)."""
    proc = start(["-v", "story", "tiny.yaml", "-c", "ada", "-l", "well", "--seed", 1, "--max-tokens", 600, "--min-tokens", 600,
                  "--out", tmp_path / "out", *model_args], tmp_path)
    seen = ""
    if when == "while torch loads":
        deadline = time.monotonic() + 60
        while not _torch_loading(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
    else:
        seen = read_until(proc, "metagen.generator: loaded")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    stderr = seen + proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, stderr
    check_stderr(stderr, "error: interrupted (SIGINT); nothing partial was written")
    assert files_in(tmp_path / "out") == []


def test_interrupt_in_the_middle_of_a_batch_write(runner, tmp_path, world, model_args, monkeypatch):
    (tmp_path / "jobs.yaml").write_text(JOBS.replace("40", "3"), encoding="utf-8")
    restore = _interrupt_during_write(monkeypatch, on_call=3)
    out = tmp_path / "out"
    result = runner.invoke(app, ["batch", "jobs.yaml", "--out", str(out), "--batch-size", 4, *model_args])
    assert result.exit_code == 130, result.output
    lines = check_stderr(result.stderr, "error: interrupted (SIGINT); nothing partial was written")
    assert "interrupted after 2 of 10; rerun with --resume to finish" in lines
    assert [p.name for p in files_in(out)] == ["ada-at-well-100.md", "ada-at-well-101.md"]
    assert leftovers(tmp_path) == []
    restore()
    resumed = runner.invoke(app, ["batch", "jobs.yaml", "--out", str(out), "--resume", *model_args])
    assert resumed.exit_code == 0 and "written 8, skipped 2 (resume)" in resumed.stderr


# issue 14, class 2: no broad `except Exception` may swallow SIGTERM's exception


def _raise_terminated(*args, **kwargs):
    from metagen.errors import Terminated

    raise Terminated()


@pytest.mark.parametrize("where", ["gguf-header", "gguf-tensors", "cache-load", "cache-save"])
def test_sigterm_passes_through_every_broad_handler(tmp_path, tiny_gguf, monkeypatch, where):
    import metagen.converted as converted
    import metagen.generator as generator
    import metagen.gguf as gguf
    from metagen.errors import Terminated

    if where == "gguf-header":
        monkeypatch.setattr(gguf._MetadataReader, "_string", _raise_terminated)
        call = lambda: gguf.read_gguf(tiny_gguf)  # noqa: E731
    elif where == "gguf-tensors":
        monkeypatch.setattr(gguf, "dequantize_tensor", _raise_terminated)
        call = lambda: gguf.read_gguf(tiny_gguf)  # noqa: E731
    elif where == "cache-load":
        (tmp_path / "meta.json").write_text("{}")
        monkeypatch.setattr(converted.json, "loads", _raise_terminated)
        call = lambda: converted.load_converted(tmp_path)  # noqa: E731
    else:
        model, tokenizer, name = generator.build_from_gguf(tiny_gguf, "float32")
        monkeypatch.setattr(converted, "save_aligned_safetensors", _raise_terminated)
        call = lambda: converted.save_converted(tmp_path / "c" / "x", model, tokenizer, name)  # noqa: E731
    with pytest.raises(Terminated):
        call()
    assert not issubclass(Terminated, Exception)
