"""The converted copy of a model in the cache: a GGUF's weights, once converted to a weight format
(and merged with an adapter), kept as safetensors whose tensors start 64-byte aligned (memory-mapped,
no pickle) beside the tokenizer, so that later processes skip the GGUF parsing and dequantization.
A copy is checked against the sha256 of each file, made by one process at a time, and copies that
this metagen never loads (older layouts, killed conversions) are removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Callable

import torch

from metagen.files import open_regular, read_regular_text
from metagen.gguf import ModelArgs
from metagen.home import file_sha256
from metagen.linears import KERNEL_ALIGNMENT
from metagen.lora import PAD_PREFIX
from metagen.model import Transformer
from metagen.tokenizer import Tokenizer

log = logging.getLogger(__name__)

CONVERTED_VERSION = 6  # bump when the converted layout changes (2: float32 lookup table, int8 head for int4; 3: int4 plain nibbles; 4: 64-byte aligned tensors; 5: the tokenizer as the library's own JSON; 6: each file's sha256 in meta.json)
_SAFETENSORS_DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.int8: "I8", torch.uint8: "U8",
                       torch.int32: "I32", torch.int64: "I64"}


def converted_dir(cache: Path, sha256: str, weight_format: str, adapter_sha256: str = "") -> Path:
    """Where the copy of the model file with this sha256 goes, in weight_format, with the adapter of
    adapter_sha256 merged (if any)."""
    merged = f"-lora{adapter_sha256[:12]}" if adapter_sha256 else ""
    # int4 weights are kept in the CPU kernel's own packing, which differs between torch's CPU
    # capabilities (AVX2 and AVX-512 lay the nibbles out differently): a copy packed on one CPU
    # gives garbage on the other (a cache shared between machines, ATEN_CPU_CAPABILITY), so
    # each capability keeps its own int4 copy.
    kernel = f"-{torch.backends.cpu.get_cpu_capability().lower()}" if weight_format == "int4" else ""
    return cache / "converted" / f"{sha256[:16]}-{weight_format}{kernel}{merged}-v{CONVERTED_VERSION}"


def save_aligned_safetensors(state: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write a safetensors file whose every tensor starts on a KERNEL_ALIGNMENT boundary.

    The format stores tensors back to back after a JSON header, so a memory-mapped load puts
    them at arbitrary 8-byte offsets, where the compact CPU kernels crash (linears.aligned).
    Here the header is padded with spaces (the format allows it) and small U8 filler entries
    sit between tensors, so the loaded tensors need no aligning copy. The same tensors and
    metadata always give the same bytes.
    """
    header, chunks, offset = ({"__metadata__": dict(metadata)} if metadata else {}), [], 0
    for index, (name, tensor) in enumerate(state.items()):
        gap = -offset % KERNEL_ALIGNMENT
        if gap:
            header[f"{PAD_PREFIX}{index}"] = {"dtype": "U8", "shape": [gap], "data_offsets": [offset, offset + gap]}
            chunks.append(bytes(gap))
            offset += gap
        data = tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": _SAFETENSORS_DTYPES[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-(8 + len(encoded)) % KERNEL_ALIGNMENT)  # data starts 64-byte aligned
    with open(path, "wb") as file:
        file.write(len(encoded).to_bytes(8, "little"))
        file.write(encoded)
        for chunk in chunks:
            file.write(chunk)


_unreadable_copies: set[Path] = set()  # warned about once a process


def load_converted(folder: Path) -> tuple[Transformer, Tokenizer, str] | None:
    """The model, tokenizer and model name of the copy in folder; None when there is none, it cannot
    be read, or it is damaged (then removed, to be rebuilt)."""
    from safetensors.torch import load_file

    meta_path = folder / "meta.json"
    try:
        if not meta_path.exists():
            return None
        meta = json.loads(read_regular_text(meta_path, 1 << 20))
        _check_unchanged(folder, meta)
        for name in CONVERTED_FILES:  # readable by this user (safetensors would say it in its own words)
            open_regular(folder / name).close()
        state = {name: tensor for name, tensor in load_file(str(folder / "weights.safetensors")).items()
                 if not name.startswith(PAD_PREFIX)}
        model = Transformer.from_state(ModelArgs(**meta["args"]), state, meta["weight_format"])
        tokenizer = Tokenizer.load(folder / "tokenizer.json")
        return model, tokenizer, meta["name"]
    except PermissionError as error:  # another user's copy (a cache shared, or made with sudo): not damaged
        say = log.info if folder in _unreadable_copies else log.warning
        say("cannot read the converted copy %s (%s); converting the model without it (its owner can share it "
            "with chmod -R a+rX, or set METAGEN_HOME to a folder of your own)", folder, error.strerror)
        _unreadable_copies.add(folder)
        return None
    except Exception as error:  # a damaged cache entry is rebuilt from the GGUF
        log.warning("converted cache %s is unusable (%s); rebuilding it", folder, error)
        shutil.rmtree(folder, ignore_errors=True)
        return None


# The files of a converted copy, each with its sha256 in meta.json; meta.json holds its own digest.
CONVERTED_FILES = ("weights.safetensors", "tokenizer.json", "tokenizer-meta.json")
_VERIFIED = "verified.json"  # the files' (size, mtime, ctime) when their hashes last matched


def _digest(meta: dict) -> str:
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()


def _check_unchanged(folder: Path, meta: dict) -> None:
    """ValueError unless the copy's files are what was written: meta.json by its own digest, each file
    by its sha256. A copy damaged in place (a disk error, a bad restore, a hand edit) would load and
    write other text with exit 0. Hashing the 250 MB of int4 weights takes about 0.2 s, so it is done
    once per change: a file whose size, mtime and ctime are as when it last matched is not read again
    (ctime moves on every write to the file, whatever its mtime is set back to)."""
    recorded = {k: v for k, v in meta.items() if k != "digest"}
    if meta.get("digest") != _digest(recorded) or not isinstance(meta.get("files"), dict):
        raise ValueError("meta.json does not match its digest")
    stamps = {f: _stamp(folder / f) for f in CONVERTED_FILES}
    try:
        verified = json.loads(read_regular_text(folder / _VERIFIED, 1 << 16))
    except (OSError, ValueError):
        verified = {}
    if verified == stamps:
        return
    for name in CONVERTED_FILES:
        if file_sha256(folder / name) != meta["files"].get(name):
            raise ValueError(f"{name} does not match its sha256 in meta.json")
    with contextlib.suppress(OSError):  # only costs the next load another 0.2 s
        (folder / _VERIFIED).write_text(json.dumps(stamps))


def _stamp(path: Path) -> list[int]:
    info = path.stat()
    return [info.st_size, info.st_mtime_ns, info.st_ctime_ns]


def _unloadable_copies(folder: Path) -> list[Path]:
    """The converted copies of folder's model file that this metagen never loads: another
    CONVERTED_VERSION's, or int4 ones from before each CPU capability kept its own."""
    from metagen.home import converted_folders

    sha = folder.name.split("-", 1)[0]
    untagged_int4 = re.compile(rf"{sha}-int4-(lora|v)")
    return [p for p in converted_folders(sha)
            if not p.name.endswith(f"-v{CONVERTED_VERSION}") or untagged_int4.match(p.name)]


def _make_staging(folder: Path) -> Path:
    """A new empty folder beside folder, to become it. Made with the mode the umask gives (0755
    with the usual 022), as the models folder is: mkdtemp's 0700 kept every other user, a shared
    cache's or one made once with sudo, out of the copy."""
    while True:
        staging = folder.parent / f".staging-{folder.name}-{secrets.token_hex(4)}"
        try:
            staging.mkdir(0o777)
            return staging
        except FileExistsError:
            continue


def save_converted(folder: Path, model: Transformer, tokenizer: Tokenizer, name: str) -> None:
    """Write the copy to folder through a staging folder moved into place; a cache that cannot be
    written only logs a warning."""
    for stale in _unloadable_copies(folder):  # a few hundred MB each, left by an older metagen
        shutil.rmtree(stale, ignore_errors=True)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = _make_staging(folder)
        try:
            save_aligned_safetensors(model.export_state(), staging / "weights.safetensors")
            tokenizer.save(staging / "tokenizer.json")
            meta = {"args": model.args.to_dict(), "weight_format": model.weight_format, "name": name,
                    "files": {f: file_sha256(staging / f) for f in CONVERTED_FILES}}
            (staging / "meta.json").write_text(json.dumps({**meta, "digest": _digest(meta)}))
            os.replace(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except Exception as error:  # the cache is an optimisation: a read-only or full one only costs time
        # safetensors and tokenizers report I/O failures (ENOSPC...) as their own exception types.
        log.warning("could not cache the converted model in %s: %s", folder.parent, error)


def convert_once(folder: Path, build: Callable[[], tuple[Transformer, Tokenizer, str]],
                  progress: Callable[[str], None] | None) -> tuple[Transformer, Tokenizer, str]:
    """Build the model and cache it in folder, one process at a time: metagens started together
    on first use (a script's `&` loop) wait for the first to convert and load its copy, instead of
    each converting (seconds of CPU each) and all but one failing to move theirs into place."""
    from metagen.home import cache_lock

    waited = []

    def wait() -> None:
        waited.append(True)
        if progress:
            progress("waiting for another metagen to finish converting the model")

    with cache_lock(f"convert-{folder.name}", on_wait=wait) as locked:
        # made while this one waited, or just before it took the lock
        # os.path, not Path.exists: a METAGEN_HOME behind a folder this user may not search raises there
        loaded = load_converted(folder) if waited or os.path.lexists(folder) else None
        if loaded is None:
            if locked:
                _remove_dead_staging(folder)
            loaded = build()
            if os.path.lexists(folder):  # a copy this user cannot read (see load_converted) stays its owner's
                log.info("not caching the converted model: %s is in the way", folder)
            else:
                save_converted(folder, *loaded)
    return loaded


STALE_STAGING_SECONDS = 3600  # an unnamed staging folder this old is a dead conversion's


def _remove_dead_staging(folder: Path) -> None:
    """Remove the staging folders of conversions of this copy that were killed outright (SIGKILL,
    the OOM killer, a power cut: no `finally` ran), a few hundred MB each, which nothing else
    would ever delete. Called holding the conversion's lock, so none of them is still being
    written. Those of metagens before the lock do not say their copy: an hour old is dead."""
    if not os.path.isdir(folder.parent):
        return
    now = time.time()
    for staging in folder.parent.glob(".staging-*"):
        if staging.name.startswith(f".staging-{folder.name}-"):
            dead = True
        else:
            unnamed = "-" not in staging.name[len(".staging-"):]  # mkdtemp's suffix has no dash
            try:
                dead = unnamed and now - staging.stat().st_mtime > STALE_STAGING_SECONDS
            except OSError:
                continue
        if dead:
            log.info("removing %s, left by a conversion that was killed", staging)
            shutil.rmtree(staging, ignore_errors=True)


__all__ = ["CONVERTED_FILES", "CONVERTED_VERSION", "convert_once", "converted_dir", "load_converted", "save_aligned_safetensors",
           "save_converted"]
