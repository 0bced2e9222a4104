"""METAGEN_HOME: where metagen keeps what it downloads and makes, and how processes share it.

The layout, under cache_dir():

    models/       known models pulled with pip (metagen.pull), each with a .json sidecar
    converted/    converted copies of model files (metagen.converted), one folder each
    locks/        flock files, so that metagens started together take turns (cache_lock)
    hashes.json   the sha256 of model files given by path, remembered (path_sha256)

Writes here are atomic: a `.NAME.RANDOM.part` file next to the destination, moved into place.
Nothing here knows which models exist (metagen.catalog does). Kept free of torch and numpy so
the CLI and the console script start fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable, Iterator

from metagen.errors import CacheWriteError, ModelError
from metagen.files import open_regular, read_regular_text

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20  # bytes read per step when hashing or extracting
MAX_JSON_BYTES = 16 * 2**20  # a sidecar or hashes.json larger than this is ignored


# --- where things live -------------------------------------------------------------


def cache_dir() -> Path:
    """$METAGEN_HOME, else $XDG_CACHE_HOME/metagen, else ~/.cache/metagen.

    A relative METAGEN_HOME is taken from the current folder and made absolute, so that messages
    say where it is; a relative XDG_CACHE_HOME is ignored, as the XDG Base Directory spec asks.
    """
    home = os.environ.get("METAGEN_HOME")
    if home:
        return Path(home).expanduser().absolute()
    xdg = Path(os.environ.get("XDG_CACHE_HOME", "")).expanduser()
    if xdg.is_absolute():
        return xdg / "metagen"
    if str(xdg) != ".":
        log.info("ignoring XDG_CACHE_HOME=%s: not an absolute path", xdg)
    try:
        return Path.home() / ".cache" / "metagen"
    except (RuntimeError, KeyError):  # no HOME, and a user id with no entry in the password database
        raise ModelError(f"cannot find a folder for metagen's cache: HOME is not set and user {os.getuid()} "
                         "has no home directory", hint="set METAGEN_HOME to a folder metagen may write in") from None


def offline() -> bool:
    """True when METAGEN_OFFLINE is set to 1, true or yes."""
    return os.environ.get("METAGEN_OFFLINE", "").strip().lower() in ("1", "true", "yes")


def models_dir() -> Path:
    """The folder pulled models are installed in."""
    return cache_dir() / "models"


def converted_folders(sha256: str) -> list[Path]:
    """The converted copies (metagen.converted) of the model file with this sha256: one a weight
    format, kernel and adapter, each a few hundred MB."""
    folder = cache_dir() / "converted"
    # os.path.isdir, not Path.is_dir: a cache behind a folder this user may not search raises there
    return sorted(p for p in folder.glob(f"{sha256[:16]}-*") if p.is_dir()) if os.path.isdir(folder) else []


def unwritable(folder: Path, error: OSError) -> CacheWriteError:
    """The error (exit 1) for a cache folder that cannot be written, saying what to do."""
    import errno

    reason = error.strerror or type(error).__name__
    full = error.errno in (errno.ENOSPC, errno.EDQUOT)
    return CacheWriteError(
        f"cannot write to the model cache folder {folder}: {reason}",
        hint="free some space there, or set METAGEN_HOME to a folder on another disk" if full
        else "set METAGEN_HOME to a writable folder",
    )


def ensure_dir(folder: Path) -> None:
    """Make folder and its parents; unwritable() naming it when that fails."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise unwritable(folder, error) from error
    if not folder.is_dir():
        raise unwritable(folder, NotADirectoryError(20, "not a directory"))


# --- locks -----------------------------------------------------------------------


@contextlib.contextmanager
def cache_lock(name: str, on_wait: Callable[[], None] | None = None, *, shared: bool = False) -> Iterator[bool]:
    """Hold cache_dir()/locks/NAME.lock (flock) while pulling or converting, so that processes started
    together do the work once and never remove each other's temp files; `on_wait` is called before
    waiting for another holder. Yields False, holding nothing, where no lock file can be made (a
    read-only cache: nothing is written there anyway) or taken (a file system without locks).
    `shared`: held beside other shared holders, waited for only by an exclusive one (model_in_use)."""
    folder = cache_dir() / "locks"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(folder / f"{name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except PermissionError:  # another user's lock file, in a shared cache: flock needs no write access
            fd = os.open(folder / f"{name}.lock", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as error:
        log.info("working without a lock in %s: %s", folder, error)
        yield False
        return
    try:
        yield _flock(fd, folder, on_wait, shared)
    finally:
        os.close(fd)  # closing the file releases the lock


def _flock(fd: int, folder: Path, on_wait: Callable[[], None] | None, shared: bool) -> bool:
    """Take the lock on fd, waiting for its holder; False where the file system has no locks (some
    network and FUSE mounts say ENOLCK or EOPNOTSUPP): then the work goes on unlocked, as before."""
    import fcntl

    kind = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        if on_wait:
            on_wait()
    except OSError as error:
        log.info("working without a lock in %s: %s", folder, error)
        return False
    try:
        fcntl.flock(fd, kind)
        return True
    except OSError as error:
        log.info("working without a lock in %s: %s", folder, error)
        return False


# --- writing safely ----------------------------------------------------------------


def read_json(path: Path) -> dict:
    """A JSON object from a regular file of at most MAX_JSON_BYTES; {} for anything else."""
    try:
        data = json.loads(read_regular_text(path, MAX_JSON_BYTES))
    except (OSError, ValueError, RecursionError):  # RecursionError: nested past the parser's depth
        return {}
    return data if isinstance(data, dict) else {}


def create_part(folder: Path, filename: str) -> tuple[int, Path]:
    """Create `.FILENAME.RANDOM.part` in folder (mode 0666 less the umask); raises OSError."""
    import secrets

    while True:
        part = folder / f".{filename}.{secrets.token_hex(4)}.part"
        try:
            return os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), part
        except FileExistsError:
            continue


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON next to its destination and move it into place; raises OSError."""
    fd, tmp = create_part(path.parent, path.name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def remove_stale_parts(folder: Path, filename: str) -> None:
    """Remove temp files left by an interrupted earlier pull of this file."""
    for part in folder.glob(f".{filename}.*.part"):
        try:
            part.unlink()
            log.info("removed stale %s", part)
        except OSError as error:
            log.warning("could not remove stale %s: %s", part, error)


# --- hashing -----------------------------------------------------------------------


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open_regular(path) as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def path_sha256(path: Path) -> str:
    """The sha256 of a user's file (a model, an adapter), remembered in hashes.json by its path, size
    and times and inode: a file written again, or another put in its place, is read again even within
    one tick of the clock (adapters of one model are all the same size). A hashes.json this user
    cannot read (another user's, in a shared cache) is left as it is, not replaced by one entry."""
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}.{stat.st_ctime_ns}.{stat.st_ino}"
    store = cache_dir() / "hashes.json"
    try:
        hashes = json.loads(read_regular_text(store, MAX_JSON_BYTES))
    except (FileNotFoundError, ValueError, RecursionError):  # none yet, or damaged (nested past the parser): written whole below
        hashes = {}
    except OSError as error:  # another user's, in a shared cache: its entries are not ours to drop
        log.info("not remembering the hash of %s: cannot read %s: %s", path, store, error)
        return file_sha256(path)
    hashes = hashes if isinstance(hashes, dict) else {}
    if isinstance(hashes.get(key), str):
        return hashes[key]
    sha = file_sha256(path)
    # One entry per path: a changed file replaces its old entry.
    hashes = {k: v for k, v in hashes.items() if k.rsplit("|", 2)[0] != str(path)}
    hashes[key] = sha
    try:
        ensure_dir(store.parent)
        write_json_atomic(store, hashes)
    except (OSError, ModelError) as error:  # remembering is an optimisation only
        log.info("could not remember the hash of %s in %s: %s", path, store, error)
    return sha


__all__ = [
    "CHUNK_SIZE", "MAX_JSON_BYTES", "cache_dir", "cache_lock", "converted_folders", "create_part", "ensure_dir",
    "file_sha256", "models_dir", "offline", "path_sha256", "read_json", "remove_stale_parts", "unwritable",
    "write_json_atomic",
]
