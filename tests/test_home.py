"""Tests for metagen.home: where the cache is (METAGEN_HOME, XDG_CACHE_HOME, no home at all),
METAGEN_OFFLINE, and the locks that let metagens share the cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from metagen import catalog
from metagen import home as home_module
from metagen.cli import app
from metagen.errors import EXIT_BAD_INPUT, ModelError

pytestmark = pytest.mark.usefixtures("home")  # conftest: the cache in tmp_path, downloads allowed

NAME = catalog.DEFAULT_MODEL


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


# --- locks -----------------------------------------------------------------------------


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


# --- remembered hashes -------------------------------------------------------------------


def test_a_hashes_file_nested_past_the_parser_is_damaged_and_written_whole(home, tmp_path):
    """hashes.json of "[[[...]]]" 100,000 deep was a RecursionError traceback in every command that loads a model."""
    import hashlib

    home.mkdir()
    (home / "hashes.json").write_text("[" * 100_000 + "]" * 100_000)
    adapter = tmp_path / "adapter.safetensors"
    adapter.write_bytes(b"a" * 64)
    assert home_module.path_sha256(adapter) == hashlib.sha256(b"a" * 64).hexdigest()
    assert list(json.loads((home / "hashes.json").read_text()).values()) == [hashlib.sha256(b"a" * 64).hexdigest()]


def test_a_hashes_file_it_cannot_read_is_left_as_it_is(monkeypatch, home, tmp_path):
    """In a shared cache hashes.json is another user's, 0600: it read as {} and was replaced by a
    file of this user's one entry, dropping every hash the other user had remembered."""
    import hashlib

    from tests.conftest import deny_access

    store = home / "hashes.json"
    home.mkdir()
    store.write_text('{"/other/model.gguf|1|2.3.4": "' + "a" * 64 + '"}\n')
    before = store.read_bytes(), store.stat().st_ino
    adapter = tmp_path / "adapter.safetensors"
    adapter.write_bytes(b"a" * 64)
    deny_access(monkeypatch, "open", store)
    assert home_module.path_sha256(adapter) == hashlib.sha256(b"a" * 64).hexdigest()
    assert (store.read_bytes(), store.stat().st_ino) == before
    assert [p.name for p in home.iterdir()] == ["hashes.json"]  # no .part left either
