"""Generator: owns a model and its tokenizer; turns prompts into completions.

`load_model` resolves a model name or path (pulling a known model on first use), and
keeps a converted copy of the weights in the cache as safetensors (memory-mapped, no
pickle), so that later processes skip the GGUF parsing and dequantization.
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
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from metagen.config import GenerationConfig
from metagen.catalog import KNOWN_MODELS, KnownModel
from metagen.errors import ConfigError, GenerationError
from metagen.files import open_regular, read_regular_text
from metagen.gguf import ModelArgs, read_gguf
from metagen.home import file_sha256
from metagen.lora import PAD_PREFIX, existing_adapter, load_adapter
from metagen.linears import KERNEL_ALIGNMENT, WEIGHT_FORMATS
from metagen.model import Transformer
from metagen.sampling import Unchoosable
from metagen.search import PlainPrompts, PrefixReuse, SearchResult, TextCallback, left_pad, run_search
from metagen.tokenizer import Tokenizer

log = logging.getLogger(__name__)

DTYPES = ("auto", *WEIGHT_FORMATS)
DEVICES = ("cpu", "cuda", "auto")
# The compact form used on the CPU unless --dtype says otherwise (see bench/RESULTS.md):
# int4 groups hold the GGUF's Q4_1 weights as quantized; bfloat16 matmuls with more than one
# row run 3-5x slower than float32 on CPUs without native bfloat16 (AVX2).
DEFAULT_CPU_FORMAT = "int4"
# A prompt's matmuls on the CPU: float32, or bfloat16 where the CPU has bfloat16 units
# (avx512_bf16 or AMX). There a prompt piece of 64-257 rows x 576 -> 3072 takes 0.88-3.25 ms
# against float32's 1.86-8.28 ms; on AVX2 alone bfloat16 prompts ran 5.8x slower (12.8 s vs 2.2 s).
PROMPT_DTYPES = ("auto", "float32", "bfloat16")
CONVERTED_VERSION = 6  # bump when the converted layout changes (2: float32 lookup table, int8 head for int4; 3: int4 plain nibbles; 4: 64-byte aligned tensors; 5: the tokenizer as the library's own JSON; 6: each file's sha256 in meta.json)
_SAFETENSORS_DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.int8: "I8", torch.uint8: "U8",
                       torch.int32: "I32", torch.int64: "I64"}


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model is, as recorded in every output file."""

    name: str
    path: str
    sha256: str
    weight_format: str
    device: str
    context_length: int
    adapter: str = ""  # the merged LoRA adapter's path ("" none)
    adapter_sha256: str = ""
    prompt_dtype: str = "float32"  # a CPU prompt's matmuls (PROMPT_DTYPES)

    def to_dict(self) -> dict:
        record = {"name": self.name, "path": self.path, "sha256": self.sha256,
                  "dtype": self.weight_format, "device": self.device}
        if self.device == "cpu":
            record["prompt_dtype"] = self.prompt_dtype
        if self.adapter:
            record["adapter"] = {"path": self.adapter, "sha256": self.adapter_sha256}
        return record


@dataclass
class Completion:
    """One generated text and how it came about."""

    text: str
    tokens: list[int]
    prompt_tokens: int
    logprob: float
    finish_reason: str
    seed: int
    seconds: float
    alternatives: list[dict] = field(default_factory=list)  # n-best beyond the first

    @property
    def output_tokens(self) -> int:
        return len(self.tokens)


def resolve_device(device: str) -> torch.device:
    if device not in DEVICES:
        raise ConfigError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available here", hint="use --device cpu")
    return torch.device(device)


def resolve_format(dtype: str, device: torch.device) -> str:
    if dtype not in DTYPES:
        raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if dtype == "auto":
        return DEFAULT_CPU_FORMAT if device.type == "cpu" else "bfloat16"
    if dtype == "int4" and device.type != "cpu":
        raise ConfigError(f"--dtype int4 runs on the CPU only; on {device.type} use bfloat16 or float32")
    return dtype


def cpu_has_bfloat16_units() -> bool:
    """Whether this CPU multiplies bfloat16 natively (avx512_bf16 or AMX tiles) and torch's own
    kernels may use them: with its capability held below AVX-512 (ATEN_CPU_CAPABILITY=avx2) on
    such a CPU, torch 2.13's bfloat16 attention over 64 or more positions fails ("pack_vnni2 is
    only supported when avx512 is supported"), so prompts stay float32 there."""
    try:
        units = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        return bool(units) and torch.backends.cpu.get_cpu_capability() == "AVX512"
    except (AttributeError, RuntimeError):  # a torch without these probes: assume not
        return False


def resolve_prompt_dtype(prompt_dtype: str, weight_format: str, device: torch.device) -> str:
    """"auto": bfloat16 for a model in a compact or bfloat16 format on a CPU with bfloat16 units
    (its text is not float32's anyway; prompts take about half the time), else float32: a
    float32 model stays exact, and CPUs without the units would run bfloat16 prompts slower."""
    if prompt_dtype not in PROMPT_DTYPES:
        raise ConfigError(f"--prompt-dtype must be one of {', '.join(PROMPT_DTYPES)}, got {prompt_dtype!r}")
    if prompt_dtype != "auto":
        return prompt_dtype
    native = device.type == "cpu" and weight_format != "float32" and cpu_has_bfloat16_units()
    return "bfloat16" if native else "float32"


def _converted_dir(cache: Path, sha256: str, weight_format: str, adapter_sha256: str = "") -> Path:
    merged = f"-lora{adapter_sha256[:12]}" if adapter_sha256 else ""
    # int4 weights are kept in the CPU kernel's own packing, which differs between torch's CPU
    # capabilities (AVX2 and AVX-512 lay the nibbles out differently): a copy packed on one CPU
    # gives garbage on the other (a cache shared between machines, ATEN_CPU_CAPABILITY), so
    # each capability keeps its own int4 copy.
    kernel = f"-{torch.backends.cpu.get_cpu_capability().lower()}" if weight_format == "int4" else ""
    return cache / "converted" / f"{sha256[:16]}-{weight_format}{kernel}{merged}-v{CONVERTED_VERSION}"


def adapter_file(choice: str | None, model: KnownModel | None) -> Path | None:
    """The adapter `--adapter` names: default (the known model's own, if it has one), none, or a path."""
    if choice in (None, "default"):
        return model.adapter_path if model else None
    if choice == "none":
        return None
    return Path(choice)


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


def _load_converted(folder: Path) -> tuple[Transformer, Tokenizer, str] | None:
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


def _save_converted(folder: Path, model: Transformer, tokenizer: Tokenizer, name: str) -> None:
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


def _convert_once(folder: Path, build: Callable[[], tuple[Transformer, Tokenizer, str]],
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
        loaded = _load_converted(folder) if waited or folder.exists() else None
        if loaded is None:
            if locked:
                _remove_dead_staging(folder)
            loaded = build()
            if folder.exists():  # a copy this user cannot read (see _load_converted) stays its owner's
                log.info("not caching the converted model: %s is in the way", folder)
            else:
                _save_converted(folder, *loaded)
    return loaded


STALE_STAGING_SECONDS = 3600  # an unnamed staging folder this old is a dead conversion's


def _remove_dead_staging(folder: Path) -> None:
    """Remove the staging folders of conversions of this copy that were killed outright (SIGKILL,
    the OOM killer, a power cut: no `finally` ran), a few hundred MB each, which nothing else
    would ever delete. Called holding the conversion's lock, so none of them is still being
    written. Those of metagens before the lock do not say their copy: an hour old is dead."""
    if not folder.parent.is_dir():
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


def build_from_gguf(path: Path, weight_format: str, adapter: Path | None = None, sha256: str = "",
                    announce: Callable[[], None] | None = None) -> tuple[Transformer, Tokenizer, str]:
    """The model of a GGUF file in `weight_format`, with `adapter` (made for the file with this
    sha256) merged into its weights first. The adapter is checked against the file's shapes before
    any weight is read (seconds), then `announce` is called."""
    deltas = load_adapter(adapter, read_gguf(path, load_tensors=False).args, sha256).deltas() if adapter else None
    if announce:
        announce()
    contents = read_gguf(path)
    # F32 tensors come back as read-only memory maps; torch wants writable memory.
    tensors = {name: torch.from_numpy(np.require(array, requirements="W")) for name, array in contents.tensors.items()}
    model = Transformer.from_weights(contents.args, tensors, weight_format, deltas)
    tokenizer = Tokenizer.from_data(contents.tokenizer)
    tokenizer.origin = Path(path).name
    return model, tokenizer, contents.name


def load_model(spec: str | None = None, *, dtype: str = "auto", device: str = "cpu",
               progress: Callable[[str], None] | None = None, use_cache: bool = True,
               adapter: str | None = "default", prompt_dtype: str = "auto") -> "Generator":
    """Load a known model by name (pulled on first use) or any llama-family GGUF by path.

    adapter: "default" (the known model's packaged LoRA adapter, if any), "none", or the path
    of an adapter file (`metagen tune`); it is merged into the weights, and the converted cache
    keeps the merged model under the adapter's hash. prompt_dtype: PROMPT_DTYPES, what a CPU
    prompt's matmuls run in (resolve_prompt_dtype)."""
    from metagen.catalog import model_in_use, resolve_model
    from metagen.home import cache_dir

    torch_device = resolve_device(device)
    weight_format = resolve_format(dtype, torch_device)
    prompt_dtype = resolve_prompt_dtype(prompt_dtype, weight_format, torch_device)
    with model_in_use(spec):  # `metagen models remove` waits until this load has read its files
        resolved = resolve_model(spec, progress=progress)
        started = time.perf_counter()
        adapter_path = adapter_file(adapter, KNOWN_MODELS.get(resolved.name) if resolved.known else None)
        adapter_path = existing_adapter(adapter_path) if adapter_path else None
        adapter_sha256 = file_sha256(adapter_path) if adapter_path else ""
        # Everything the Generator is made of, so a kept one is handed out only for the same model.
        key = (resolved.name, str(resolved.path), resolved.sha256, weight_format, str(torch_device),
               str(adapter_path or ""), adapter_sha256, prompt_dtype)
        kept = _loaded_models if use_cache else None
        generator = kept.get(key) if kept is not None else None
        if generator is None:
            folder = _converted_dir(cache_dir(), resolved.sha256, weight_format, adapter_sha256)
            loaded = _load_converted(folder) if use_cache else None
            if loaded is None:
                announce = (lambda: progress(f"converting {resolved.path.name} to {weight_format} (first use only)")
                            ) if progress else None
                if use_cache:
                    loaded = _convert_once(folder, lambda: build_from_gguf(
                        resolved.path, weight_format, adapter_path, resolved.sha256, announce), progress)
                else:
                    loaded = build_from_gguf(resolved.path, weight_format, adapter_path, resolved.sha256, announce)
            model, tokenizer, _ = loaded
            tokenizer.origin = resolved.path.name  # a cached tokenizer does not know its file
            model.to_device(torch_device)
            model.set_prompt_dtype(getattr(torch, prompt_dtype))
            info = ModelInfo(name=resolved.name, path=str(resolved.path), sha256=resolved.sha256,
                             weight_format=weight_format, device=str(torch_device),
                             context_length=model.args.max_seq_len,
                             adapter=str(adapter_path) if adapter_path else "", adapter_sha256=adapter_sha256,
                             prompt_dtype=prompt_dtype)
            generator = Generator(model, tokenizer, info)
            if kept is not None:
                kept.keep(key, generator)
    log.info("loaded %s (%s, %s, prompts in %s) in %.2f s", resolved.name, weight_format, torch_device,
             prompt_dtype, time.perf_counter() - started)
    return generator


class LoadedModels:
    """Generators kept loaded between the requests of `metagen serve`, by everything that makes
    one (model file and hash, weight format, device, adapter and hash, prompt dtype); the least recently used
    goes first when more than `most` are kept."""

    def __init__(self, most: int):
        self.most = most
        self._kept: OrderedDict[tuple, Generator] = OrderedDict()
        self._lock = threading.Lock()  # describe() is called from the server's other threads

    def get(self, key: tuple) -> "Generator | None":
        """The kept Generator, as load_model would make it now; None if none is kept."""
        with self._lock:
            generator = self._kept.pop(key, None)
            if generator is not None:
                self._kept[key] = generator  # the most recently used goes last
        if generator is not None:
            model = generator.model
            model.to_device(model.device)  # the rope tables built afresh, as after a load
        return generator

    def keep(self, key: tuple, generator: "Generator") -> None:
        """Keep a new Generator, its weights also widened for prompts (about 0.5 GB in float32 for the
        default model, and about a fifth of a short request's time saved)."""
        generator.model.keep_prompt_weights()
        with self._lock:
            self._kept[key] = generator
            while len(self._kept) > self.most:
                self._kept.popitem(last=False)

    def describe(self) -> list[str]:
        """One short line per kept model: name, weight format, device, adapter."""
        with self._lock:
            infos = [generator.info for generator in self._kept.values()]
        return [f"{i.name} ({i.weight_format}, {i.device}" + (f", adapter {Path(i.adapter).name})" if i.adapter else ")")
                for i in infos]


_loaded_models: LoadedModels | None = None  # set by keep_loaded_models (metagen serve); None: every call loads


def keep_loaded_models(most: int) -> LoadedModels:
    """From now on load_model keeps what it loads, up to `most` models, and hands the same
    Generator out again (metagen serve); returns the keeper."""
    global _loaded_models
    _loaded_models = LoadedModels(most)
    return _loaded_models


def draw_seed() -> int:
    """A fresh random seed, recorded with the output so the result can be reproduced."""
    return secrets.randbits(63)


class Generator:
    """A model with its tokenizer: prompts in, completions out."""

    def __init__(self, model: Transformer, tokenizer: Tokenizer, info: ModelInfo):
        self.model = model
        self.tokenizer = tokenizer
        self.info = info

    @property
    def context_length(self) -> int:
        return self.model.args.max_seq_len

    def encode_prompt(self, prompt: str | list[dict], *, chat: bool = True) -> list[int]:
        """Text or chat messages -> prompt token ids (the chat template applied when chat).

        A text that cannot fit the context whatever it tokenizes to is refused before it is
        tokenized: a 1 MiB prompt would otherwise cost seconds and hundreds of MB first.
        """
        texts = [m.get("content") or "" for m in prompt] if isinstance(prompt, list) else [prompt]
        least = sum(self.tokenizer.least_tokens(t) for t in texts)
        if least > self.context_length:
            raise ConfigError(f"the prompt has at least {least:,} tokens and the model's context is "
                              f"{self.context_length:,}", hint="shorten the prompt")
        if isinstance(prompt, list):
            return self.tokenizer.encode_chat(prompt)
        if chat:
            return self.tokenizer.encode_chat([{"role": "user", "content": prompt}])
        return self.tokenizer.encode(prompt)

    def count_tokens(self, text: str) -> int:
        return self.tokenizer.count(text)

    def generate(self, prompts: list[str | list[dict]] | str, cfg: GenerationConfig, *,
                 chat: bool = True, seeds: list[int] | None = None,
                 on_text: TextCallback | None = None) -> list[Completion]:
        """Generate one completion per prompt (text, or chat messages)."""
        if isinstance(prompts, str):
            prompts = [prompts]
        ids = [self.encode_prompt(p, chat=chat) for p in prompts]
        return self.complete(ids, cfg, seeds=seeds, on_text=on_text)

    def complete(self, prompts: list[list[int]], cfg: GenerationConfig, *,
                 seeds: list[int] | None = None, on_text: TextCallback | None = None,
                 reuse: PrefixReuse | None = None, plain: PlainPrompts | None = None,
                 forced: list[list[int]] | None = None) -> list[Completion]:
        """Decode token prompts together; each row uses its own seed (cfg.seed, or drawn).

        `reuse` (one prompt, greedy or sampling) carries the KV cache from one call to the
        next, so a prompt that extends the previous one prefills only its new tokens.
        `plain`: the prompts without the world's facts, for cfg.context_contrast (search.ContextContrast).
        `forced`: per row, the tokens its text starts with whatever the model chooses (greedy, sampling).
        """
        if not prompts:
            return []
        for ids in prompts:
            if not ids:
                raise ConfigError("the prompt is empty")
            cfg.check_context(len(ids), self.context_length)
        if seeds is None:
            seeds = [cfg.seed if cfg.seed is not None else draw_seed() for _ in prompts]
        if len(seeds) != len(prompts):
            raise ValueError("one seed per prompt")
        generators = [torch.Generator(device=self.model.device).manual_seed(s) for s in seeds]
        started = time.perf_counter()
        try:
            results: list[SearchResult] = run_search(self.model, self.tokenizer, prompts, cfg, generators, on_text,
                                                     reuse, plain, forced)
        except (RuntimeError, torch.cuda.OutOfMemoryError) as error:
            raise GenerationError(f"the model failed while generating: {error}") from error
        except Unchoosable as error:  # NaN from weights a converted copy holds, or every token banned
            raise GenerationError(f"{self.info.path}: {error}", hint=error.hint) from error
        seconds = time.perf_counter() - started
        completions = []
        for result, seed in zip(results, seeds):
            best, *rest = result.sequences
            completions.append(Completion(
                text=best.text, tokens=best.tokens, prompt_tokens=result.prompt_tokens,
                logprob=best.logprob, finish_reason=best.finish_reason, seed=seed, seconds=seconds,
                alternatives=[{"text": s.text, "tokens": s.tokens, "logprob": s.logprob,
                               "score": s.score, "finish_reason": s.finish_reason} for s in rest]))
        return completions

    def score_continuations(self, rows: list[list[int]], shared: int) -> list[float]:
        """Per row of token ids, the sum of the raw model's log-probabilities of its tokens after
        the first `shared` (which every row has in common), all rows in one batched pass."""
        model = self.model
        tokens, pad = left_pad(rows, self.tokenizer.pad_id, model.device)  # (B, W), (B,)
        B, W = tokens.shape
        K = max(len(r) for r in rows) - shared + 1  # the last K columns predict every continuation token
        pad_or_none = pad if bool((pad > 0).any()) else None
        cache = model.new_cache(B, W)
        # a. the shared context, keeping no logits; b. the tail, keeping logits (B, K, V)
        if W > K:
            model(tokens[:, : W - K], cache, pad_or_none, last_only=True)
        logprobs = torch.log_softmax(model(tokens[:, W - K :], cache, pad_or_none), dim=-1)  # (B, K, V)
        scores = []
        for b, row in enumerate(rows):
            # token j of row b sits in column pad_b + j; its prediction in tail column pad_b + j - 1 - (W - K)
            offset = int(pad[b]) - 1 - (W - K)
            scores.append(sum(float(logprobs[b, offset + j, row[j]]) for j in range(shared, len(row))))
        return scores
