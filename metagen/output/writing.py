"""Writing output files atomically without clobbering and without following links.

A temp file in the same folder, fsync, then os.link (fails if the name exists, even when
processes race) or os.replace. The file's folder is opened from the output folder down, one
name at a time with O_NOFOLLOW, at the moment of writing (OutputFolder).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import signal
import socket
import stat
import threading
import time
import weakref
from pathlib import Path
from typing import Callable, TypeVar

from metagen.errors import ConfigError, OutputError, OutputExistsError, OutputFolderError, OutputLinkError
from metagen.files import dangling_link, link_loops, os_reason
from metagen.output.formats import check_format, render
from metagen.output.paths import output_path
from metagen.output.piece import Piece
from metagen.text import shorten

_T = TypeVar("_T")
log = logging.getLogger(__package__)  # "metagen.output": one logger for the package, as before the split


def _remove(folder_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=folder_fd)
    except FileNotFoundError:
        pass
    except OSError as error:  # pragma: no cover - the folder vanished or turned read-only
        log.warning("could not remove temp file %s: %s", name, os_reason(error))


# The machine a temp file's writer runs on, in its name: a process killed outright (kill -9) leaves
# its temp file behind, and only on its own machine can a later run tell that the writer is gone.
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:63] or "host"
_TEMP = re.compile(r"\.(?P<name>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>[0-9]+)\.[0-9]+\.[0-9a-f]{8}\.tmp")
_OLD_TEMP = re.compile(r"\.(?P<name>.+)\.(?P<pid>[0-9]+)\.[0-9]+\.[0-9a-f]{8}\.tmp")  # no machine: metagen 0.20 and before
# A temp file lives from a piece's first byte to its rename, milliseconds; one of another machine's
# (or of metagen 0.20 or before, whose names had no machine) this old is taken as left by a killed run.
STALE_TEMP_SECONDS = 3600


def _open_temp(folder_fd: int, name: str) -> tuple[int, str]:
    """Create `.<name>.<host>.<pid>.<thread>.<random>.tmp` in the open folder with O_EXCL; the umask applies."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = f".{name[:100]}.{_HOST}.{os.getpid()}.{threading.get_ident()}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, flags, 0o666, dir_fd=folder_fd), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temp file name", name)  # pragma: no cover


_HELD_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def _signals_held():
    """SIGINT, SIGTERM and SIGHUP wait until the block is done: a Ctrl-C that arrives while a probe file
    exists lands after it is removed, never between.

    Python runs signal handlers in the main thread only, so the block defers the handlers there
    and raises what came afterwards. (Masking the signal in this thread is not enough: the kernel
    hands a process's signal to any thread that does not mask it, torch's worker threads included,
    and Python then interrupts the main thread all the same.)
    """
    handlers = {s: signal.getsignal(s) for s in _HELD_SIGNALS}
    if threading.current_thread() is not threading.main_thread() or None in handlers.values():
        yield  # no Python handler can interrupt this thread (or one set outside Python cannot be put back)
        return
    arrived: list[int] = []
    for signum in _HELD_SIGNALS:
        signal.signal(signum, lambda signum, frame: arrived.append(signum))
    try:
        yield
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        for signum in arrived:  # now, to the handler that was there before
            if callable(handlers[signum]):
                handlers[signum](signum, None)
            elif handlers[signum] == signal.SIG_DFL:
                signal.raise_signal(signum)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_folder(folder_fd: int) -> None:
    """Make the new name itself durable; best effort (not every file system can sync a folder)."""
    try:
        os.fsync(folder_fd)
    except OSError:
        pass


def _no_hard_links(error: OSError) -> bool:
    codes = {errno.EPERM, errno.ENOSYS, errno.EMLINK}
    codes |= {getattr(errno, name) for name in ("ENOTSUP", "EOPNOTSUPP") if hasattr(errno, name)}
    return error.errno in codes


def exists_words(path: str | os.PathLike) -> str:
    """'PATH exists', saying so when it is a dangling link or a loop of links (os.path.exists says no to
    either)."""
    target = dangling_link(path)
    if target is not None and link_loops(path):
        return f"{path} exists as a symbolic link in a loop (it leads back to itself)"
    return f"{path} exists" + (f" as a dangling symbolic link (to {target}, which does not exist)" if target else "")


def _exists_error(path: Path) -> OutputExistsError:
    return OutputExistsError(f"{path} exists", hint="pass --overwrite to replace it, or choose another --out")


def _publish_no_clobber(folder_fd: int, tmp: str, name: str) -> None:
    """Give tmp the name unless it exists; atomic even when processes race."""
    try:
        os.link(tmp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
        return
    except OSError as error:
        if not _no_hard_links(error):
            raise
    # A file system without hard links (FAT, some network mounts): claim the name with
    # O_EXCL, then replace the empty claim with the full file.
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666, dir_fd=folder_fd)
    os.close(fd)
    try:
        os.replace(tmp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    except BaseException:
        _remove(folder_fd, name)
        raise


_FOLDER_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_LINK_HINT = "metagen never writes through a link inside the output folder; remove it or choose another --out"


WALK_TRIES = 10  # walks to a file's folder before a vanishing folder is an error: a try past the first
# follows a folder another process moved or took back (its write failed), and shards failing at once on a
# full disk can take back one folder in turn; each walk is a few system calls.


class OutputFolder:
    """An output folder, pinned the first time it is opened.

    Every write opens the folder again and walks down to the file's folder one name at a
    time with O_NOFOLLOW, at the moment of writing: a folder swapped for a symbolic link
    during a run is refused, and so is the output folder itself once it is replaced.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._pinned: _PinnedFolder | None = None
        self.made: list[Path] = []  # the folders its writes made, top down (remove_made takes them back)

    def pin(self) -> None:
        """Remember which folder the output folder is now, if it exists."""
        try:
            self._pinned = _PinnedFolder(os.open(self.path, _FOLDER_FLAGS))
        except OSError:
            return

    def open_folder_of(self, path: Path) -> int:
        """A descriptor of path's folder, made and opened from the output folder down; links refused.

        A folder that vanishes during the walk (another process moved it) is made again: the
        walk is tried up to WALK_TRIES times before the error is reported.
        """
        return _retried(path, lambda: self._walk(path))

    def write_in_folder_of(self, path: Path, write: Callable[[int], None]) -> None:
        """write(folder_fd) in path's folder, opened as open_folder_of opens it. A folder that vanishes
        before write has put a file in it is walked to (and made) again, as during the walk: an
        empty folder another run made and took back (its write failed) between our walk and our temp file."""

        def walk_and_write() -> None:
            folder_fd = self._walk(path)
            try:
                write(folder_fd)
            finally:
                os.close(folder_fd)

        _retried(path, walk_and_write)

    def _walk(self, path: Path) -> int:
        try:
            parts = path.parent.relative_to(self.path).parts
        except ValueError:
            raise OutputLinkError(f"cannot write {path}: it is not inside the output folder {self.path}") from None
        try:
            missing = [p for p in (*reversed(self.path.parents), self.path) if not os.path.lexists(p)]
            self.path.mkdir(parents=True, exist_ok=True)
            self.made += [p for p in missing if p not in self.made]
            fd = os.open(self.path, _FOLDER_FLAGS)
        except (FileExistsError, NotADirectoryError):
            if not os.path.lexists(self.path):  # something stood there at mkdir and was gone when we looked
                raise _Vanished(self.path) from None
            if self.path.is_symlink() or self.path.is_dir():  # swapped while we looked
                raise self._replaced(path) from None
            raise OutputError(f"cannot write {path}: a file stands where a folder is needed") from None
        except OSError as error:
            if error.errno == errno.ENOENT:  # moved away between making and opening it: walk again
                raise _Vanished(self.path) from None
            raise OutputError(f"cannot write {path}: {os_reason(error)}") from None
        try:
            self._check_pinned(fd, path)
            walked = self.path
            for part in parts:
                walked = walked / part
                child = _open_child(fd, part, walked, path, self.made)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _check_pinned(self, fd: int, path: Path) -> None:
        """Pin the output folder open as fd the first time; later refuse another folder (the pinned one
        was moved away or swapped for a link during the run), unless the pinned one was removed and a
        folder, not a link, stands at its name again: only an empty folder can be removed (another run
        took back the folder it made, its write having failed), so nothing of this run's is elsewhere."""
        if self._pinned is not None and not self._pinned.is_open_as(fd):
            if not _removed(self._pinned.fd):  # moved away, what it holds with it
                raise self._replaced(path)
            if not _is_folder_at(self.path, fd):
                if _removed(fd):  # the folder just opened was taken back too, by the run that made it
                    raise _Vanished(self.path)
                raise self._replaced(path)  # a link stands at the name
            log.debug("output folder %s was taken back by another run and made again", self.path)
            self._pinned = None
        if self._pinned is None:
            self._pinned = _PinnedFolder(os.dup(fd))

    def _replaced(self, path: Path) -> OutputLinkError:
        return OutputLinkError(f"cannot write {path}: the output folder {self.path} was replaced during the run",
                               hint=_LINK_HINT)

    def remove_made(self) -> None:
        """Remove the folders this object's writes made while they are empty, deepest first: a write
        that failed, or a run that in the end kept nothing (a chat with no turn), leaves no folder either."""
        for folder in sorted(self.made, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):  # a file is in it (another piece's), or it is gone: it stays
                os.rmdir(folder)
        self.made = [folder for folder in self.made if os.path.lexists(folder)]


class _PinnedFolder:
    """The output folder as first opened, held open while its OutputFolder lives: a folder at the name
    that is not this one is either this one removed (no link to it left) or this one moved or replaced.
    Held open, its inode number cannot pass to a folder made later (ext4 hands freed numbers straight on)."""

    def __init__(self, fd: int):
        self.fd = fd  # owned: closed when the OutputFolder lets go of this pin
        weakref.finalize(self, os.close, fd)
        info = os.fstat(fd)
        self._identity = (info.st_dev, info.st_ino)

    def is_open_as(self, fd: int) -> bool:
        info = os.fstat(fd)
        return (info.st_dev, info.st_ino) == self._identity


def _removed(folder_fd: int) -> bool:
    """Whether the open folder was removed (no link to it left); moved, it keeps its links."""
    return os.fstat(folder_fd).st_nlink == 0


def _is_folder_at(path: Path, fd: int) -> bool:
    """Whether the name path itself, not a link there, is the folder open as fd."""
    try:
        info, held = os.lstat(path), os.fstat(fd)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and (info.st_dev, info.st_ino) == (held.st_dev, held.st_ino)


def _open_child(folder_fd: int, name: str, shown: Path, target: Path, made: list[Path]) -> int:
    """Make (if missing, adding it to made) and open the folder name inside folder_fd, refusing a link or a file."""
    try:
        try:
            os.mkdir(name, 0o777, dir_fd=folder_fd)
            made.append(shown)
        except FileExistsError:
            pass
        return os.open(name, _FOLDER_FLAGS | os.O_NOFOLLOW, dir_fd=folder_fd)
    except OSError as error:
        try:
            mode = os.stat(name, dir_fd=folder_fd, follow_symlinks=False).st_mode
        except OSError:
            mode = 0
        if stat.S_ISLNK(mode):
            raise OutputLinkError(f"cannot write {target}: {shown} is a symbolic link", hint=_LINK_HINT) from None
        if error.errno == errno.ELOOP or (stat.S_ISDIR(mode) and error.errno == errno.ENOTDIR):
            # O_NOFOLLOW met a link that another process has already swapped back for a folder, or removed
            raise OutputLinkError(f"cannot write {target}: {shown} was replaced by a symbolic link during the run",
                                  hint=_LINK_HINT) from None
        if mode and not stat.S_ISDIR(mode):
            raise OutputError(f"cannot write {target}: a file stands where a folder is needed") from None
        if error.errno in (errno.ENOENT, errno.ENOTDIR):  # gone by the look: whatever stood there, walk again
            raise _Vanished(shown) from None
        raise OutputError(f"cannot write {target}: {os_reason(error)}") from None


class _Vanished(Exception):
    """A folder made or seen a moment ago was gone when opened."""

    def __init__(self, shown: Path):
        super().__init__(str(shown))
        self.shown = shown


def _retried(path: Path, step: Callable[[], _T]) -> _T:
    """step(), tried up to WALK_TRIES times while a folder on the way to path vanishes under it."""
    for attempt in range(WALK_TRIES):
        try:
            return step()
        except _Vanished as vanished:
            if attempt == WALK_TRIES - 1:
                raise OutputError(f"cannot write {path}: {vanished.shown} kept vanishing while it was "
                                  "opened (other processes keep moving or removing the output folders)") from None
    raise AssertionError("unreachable")


def write_atomic(path: str | os.PathLike, data: str, *, overwrite: bool, root: OutputFolder | None = None) -> Path:
    """Write data (UTF-8) to path all at once; OutputExistsError if it exists and not overwrite.

    The file's folder is opened from root (default: the file's own folder) down without
    following links, and the file is made inside that open folder.
    """
    path, encoded = Path(path), data.encode("utf-8")
    root = root or OutputFolder(path.parent)
    try:
        root.write_in_folder_of(path, lambda folder_fd: _write_in(folder_fd, path, encoded, overwrite))
    except BaseException:  # a full disk or a Ctrl-C: no file, and no folder made for it, is left
        root.remove_made()
        raise
    return path


def _write_in(folder_fd: int, path: Path, encoded: bytes, overwrite: bool) -> None:
    name = path.name
    try:
        is_folder = stat.S_ISDIR(os.stat(name, dir_fd=folder_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        is_folder = False
    except OSError as error:
        raise OutputError(f"cannot write {path}: {os_reason(error)}") from None
    if is_folder:
        raise OutputError(f"cannot write {path}: it is a folder")
    try:
        fd, tmp = _open_temp(folder_fd, name)
    except FileNotFoundError:  # the name has no "/": the open folder itself was removed (another run took it back)
        raise _Vanished(path.parent) from None
    except OSError as error:
        raise OutputError(f"cannot write {path}: {os_reason(error)}") from None
    try:
        try:
            _write_all(fd, encoded)
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            # rename() replaces a link at the name itself and never writes through it.
            os.replace(tmp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
        else:
            _publish_no_clobber(folder_fd, tmp, name)
            _remove(folder_fd, tmp)
    except FileExistsError:
        _remove(folder_fd, tmp)
        raise _exists_error(path) from None
    except OSError as error:
        _remove(folder_fd, tmp)
        raise OutputError(f"cannot write {path}: {os_reason(error)}") from None
    except BaseException:  # Ctrl-C or a bug mid-write: still leave no temp file behind
        _remove(folder_fd, tmp)
        raise
    _fsync_folder(folder_fd)
    log.debug("wrote %s (%d bytes)", path, len(encoded))


def _writer_gone(host: str | None, pid: int, age: float) -> bool:
    """Whether the process that made a temp file has ended: on this machine, by its pid; else by age."""
    if host != _HOST:
        return age > STALE_TEMP_SECONDS
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # another user's live process (EPERM)
        return False
    return False


def remove_stale_temps(folder: str | os.PathLike, names: set[str]) -> int:
    """Remove the temp files that writers killed outright (kill -9, the OOM killer) left in folder
    for the given file names; returns how many. A live writer's temp file is never touched."""
    try:
        entries = list(os.scandir(folder))
    except OSError:  # no folder yet, or one that cannot be listed: nothing to tidy
        return 0
    removed = 0
    now = time.time()
    short = {name[:100] for name in names}
    for entry in entries:
        match = _TEMP.fullmatch(entry.name)
        host = match and match["host"]
        if match is None or match["name"] not in short:
            match, host = _OLD_TEMP.fullmatch(entry.name), None
        if match is None or match["name"] not in short:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(info.st_mode) or not _writer_gone(host, int(match["pid"]), now - info.st_mtime):
                continue
            os.unlink(entry.path)
            removed += 1
        except OSError as error:  # gone already (another run tidied it), or not ours to remove
            log.debug("left temp file %s: %s", entry.path, os_reason(error))
    if removed:
        log.info("removed %d temp file(s) that a killed run left in %s", removed, folder)
    return removed


def check_writable(out_dir: str | os.PathLike) -> None:
    """Fail early, before generating, if files cannot be made in out_dir (or where it would be made)."""
    out = Path(out_dir)
    probe_dir = out  # the folder itself, or the nearest parent that exists
    try:
        if out.exists() and not out.is_dir():
            raise OutputFolderError(f"output folder {out} is a file", hint="give a folder, or choose another --out")
        while not probe_dir.exists() and probe_dir.parent != probe_dir:
            target = dangling_link(probe_dir)
            if target is not None:  # nothing can be made through it: a run ended in "replaced during the run"
                at = "" if probe_dir == out else f": {probe_dir}"
                if link_loops(probe_dir):  # not "to lpb, which does not exist": lpb is a link back to it
                    raise OutputLinkError(f"output folder {out}{at} is a symbolic link in a loop (it leads back "
                                          "to itself)", hint="remove the link, or choose another --out")
                raise OutputLinkError(f"output folder {out}{at} is a dangling symbolic link (to {target}, which does "
                                      "not exist)", hint="make the folder it points to, or choose another --out")
            probe_dir = probe_dir.parent
        if not probe_dir.is_dir():
            raise OutputFolderError(f"cannot create output folder {out}: {probe_dir} is a file",
                                    hint="move the file, or choose another --out")
        folder_fd = os.open(probe_dir, _FOLDER_FLAGS)
    except OSError as error:
        _raise_unwritable(out, probe_dir, error)
    try:
        if not _probe_unnamed(folder_fd):
            with _signals_held():  # a Ctrl-C here (or from `metagen serve`) never leaves the probe behind
                fd, tmp = _open_temp(folder_fd, "metagen-probe")
                os.close(fd)
                _remove(folder_fd, tmp)
    except OSError as error:
        _raise_unwritable(out, probe_dir, error)
    finally:
        os.close(folder_fd)


def _probe_unnamed(folder_fd: int) -> bool:
    """Whether a file can be made in the folder, tried with a file that has no name (Linux's
    O_TMPFILE): nothing is left even if the process is killed (SIGKILL) mid-probe. False where the
    system or filesystem has no such files; the caller then probes with a named one."""
    if not hasattr(os, "O_TMPFILE"):
        return False
    try:
        os.close(os.open(".", os.O_TMPFILE | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0), 0o600, dir_fd=folder_fd))
    except OSError as error:
        if error.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            return False
        raise
    return True


def name_too_long(what: str, path: str | os.PathLike) -> ConfigError:
    """ENAMETOOLONG as bad input (exit 2): --out names a path this system cannot hold, shown by its first
    60 characters and its length (a 6,000-character --out had been echoed whole, as a failed disk)."""
    text = str(path)
    return ConfigError(f"{what} {shorten(text, 60)} ({len(text):,} characters): {os.strerror(errno.ENAMETOOLONG)}",
                       hint="choose a shorter --out")


def _raise_unwritable(out: Path, probe_dir: Path, error: OSError):
    if error.errno == errno.ENAMETOOLONG:
        raise name_too_long("cannot write to output folder", out) from None
    if probe_dir == out:
        raise OutputError(f"cannot write to output folder {out}: {os_reason(error)}") from None
    raise OutputError(f"cannot create output folder {out} in {probe_dir}: {os_reason(error)}") from None


def check_not_folder(path: str | os.PathLike) -> None:
    """Fail early: OutputExistsError if a folder stands where a file goes (--overwrite never replaces one)."""
    if os.path.isdir(path):
        raise OutputExistsError(f"{path} is a folder where a piece goes",
                                hint="move the folder away, or choose another --out")


def check_not_exists(path: str | os.PathLike, overwrite: bool) -> None:
    """Fail early: OutputExistsError if path exists and not overwrite, or is a folder (check_not_folder);
    OutputError if --overwrite cannot replace it (check_replaceable)."""
    path = Path(path)
    try:  # os.path's checks below take a name too long for the system for one that is not there
        os.lstat(path)
    except OSError as error:
        if error.errno == errno.ENAMETOOLONG:
            raise name_too_long("cannot write", path) from None
    check_not_folder(path)
    if not overwrite and os.path.lexists(path):
        raise _exists_error(path)
    if overwrite:
        check_replaceable(path)


def check_replaceable(path: Path) -> None:
    """Fail early, before generating: in a folder with the sticky bit (/tmp), only a file's owner, the
    folder's owner or root may replace it, and the atomic rename over it would fail after the work."""
    if not hasattr(os, "geteuid"):  # no owners to compare (Windows)
        return
    try:
        info, folder = os.lstat(path), os.stat(path.parent)
    except OSError:  # not there (nothing to replace), or unreadable: the write says why
        return
    user = os.geteuid()
    if folder.st_mode & stat.S_ISVTX and user not in (0, info.st_uid, folder.st_uid):
        raise OutputError(f"cannot replace {path}: it belongs to another user, in a folder where only a file's "
                          "owner may replace it", hint="choose another --out")


def write_piece(piece: Piece, out_dir: str | os.PathLike, fmt: str, *, overwrite: bool) -> Path:
    """Render piece in fmt and write it atomically to its place under out_dir; returns the path."""
    check_format(piece.kind, fmt)
    path = output_path(out_dir, piece.world_id, piece.kind, piece.subject, piece.seed, fmt, request=piece.request)
    return write_atomic(path, render(piece, fmt), overwrite=overwrite, root=OutputFolder(out_dir))
