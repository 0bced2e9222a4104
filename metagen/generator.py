"""Generator: owns a model and its tokenizer; turns prompts into completions.

`load_model` resolves a model name or path (pulling a known model on first use), and
keeps a converted copy of the weights in the cache (metagen.converted), so that later
processes skip the GGUF parsing and dequantization.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from metagen.beam import beam_search
from metagen.config import GenerationConfig
from metagen.catalog import KNOWN_MODELS, KnownModel
from metagen.converted import convert_once, converted_dir, load_converted
from metagen.errors import ConfigError, GenerationError
from metagen.gguf import read_gguf
from metagen.home import path_sha256
from metagen.lora import existing_adapter, load_adapter
from metagen.linears import WEIGHT_FORMATS
from metagen.model import Transformer
from metagen.sampling import Unchoosable
from metagen.search import (PlainPrompts, PrefixReuse, PromptMemo, SearchResult, TextCallback, decode_loop, left_pad,
                            padded_rows_or_none)
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
    seconds: float  # the whole call's wall time, the same for every row decoded in it
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


def adapter_file(choice: str | None, model: KnownModel | None) -> Path | None:
    """The adapter `--adapter` names: default (the known model's own, if it has one), none, or a path."""
    if choice in (None, "default"):
        return model.adapter_path if model else None
    if choice == "none":
        return None
    return Path(choice)


def build_from_gguf(path: Path, weight_format: str, adapter: Path | None = None, sha256: str = "",
                    announce: Callable[[], None] | None = None) -> tuple[Transformer, Tokenizer, str]:
    """The model of a GGUF file in `weight_format`, with `adapter` (made for the file with this
    sha256) merged into its weights first. The file's header (a model metagen cannot run is refused
    there) and the adapter against its shapes are checked before any weight is read (seconds), then
    `announce` is called."""
    header = read_gguf(path, load_tensors=False)
    deltas = load_adapter(adapter, header.args, sha256).deltas() if adapter else None
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
        adapter_sha256 = path_sha256(adapter_path.resolve()) if adapter_path else ""  # reading it: 30 ms a load
        # Everything the Generator is made of, so a kept one is handed out only for the same model.
        key = (resolved.name, str(resolved.path), resolved.sha256, weight_format, str(torch_device),
               str(adapter_path or ""), adapter_sha256, prompt_dtype)
        kept = _loaded_models if use_cache else None
        generator = kept.get(key) if kept is not None else None
        if generator is None:
            folder = converted_dir(cache_dir(), resolved.sha256, weight_format, adapter_sha256)
            loaded = load_converted(folder) if use_cache else None
            if loaded is None:
                announce = (lambda: progress(f"converting {resolved.path.name} to {weight_format} (first use only)")
                            ) if progress else None
                if use_cache:
                    loaded = convert_once(folder, lambda: build_from_gguf(
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
        default model, and about a fifth of a short request's time saved), and the last few prompts'
        keys and values (search.PromptMemo: a scene of the same place again skips its prompt's pass)."""
        generator.model.keep_prompt_weights()
        generator.prompt_memo = PromptMemo()
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


def run_search(model, tokenizer, prompts: list[list[int]], cfg: GenerationConfig,
               generators: list[torch.Generator] | None = None,
               on_text: TextCallback | None = None,
               reuse: PrefixReuse | None = None,
               plain: PlainPrompts | None = None,
               forced: list[list[int]] | None = None,
               memo: PromptMemo | None = None) -> list[SearchResult]:
    """Decode prompts with the strategy cfg asks for: search.decode_loop (greedy, sampling) or beam.beam_search
    (`reuse`, `plain`, `forced` and `memo` serve greedy and sampling).

    On a CPU the strategy runs on one thread but for the model's passes (threads.StepThreads)."""
    if cfg.effective_strategy == "beam" and forced is not None:
        raise ValueError("beam search writes no forced start")
    with model.step_threads.decoding():
        if cfg.effective_strategy == "beam":
            return beam_search(model, tokenizer, prompts, cfg, on_text)
        return decode_loop(model, tokenizer, prompts, cfg, generators, on_text, reuse, plain, forced, memo)


class Generator:
    """A model with its tokenizer: prompts in, completions out."""

    def __init__(self, model: Transformer, tokenizer: Tokenizer, info: ModelInfo):
        self.model = model
        self.tokenizer = tokenizer
        self.info = info
        self.prompt_memo: PromptMemo | None = None  # set while a server keeps it loaded (LoadedModels.keep)

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
                                                     reuse, plain, forced, self.prompt_memo)
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
        pad_or_none = padded_rows_or_none(pad)
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
