"""Side-by-side speed benchmark: metagen against transformers and llama-cpp-python.

Every engine runs the same GGUF weights on the same prompt token ids and produces exactly
the same number of tokens per row (end-of-text suppressed until the last one). Each engine
lives in its own worker process, so that its load time and peak RSS are its own; the
parent sends one case at a time to each worker in turn, so that the engines alternate
within every repetition and share the machine's noise. Each run reports the whole call's
tokens/s and the decode-only tokens/s after the first token. The metagen-*-avx2 engines run
torch as on a CPU without AVX-512. See bench/README.md.

    python bench/bench.py              # full run: 128 tokens, medians of 3
    python bench/bench.py --quick      # smoke run: 16 tokens, 1 repetition
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS_JSON = BENCH / "results.json"
RESULTS_MD = BENCH / "RESULTS.md"
QUALITY_HEADING = "## Quality of compact formats"

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
SAMPLING = {"temperature": 0.8, "top_p": 0.95, "top_k": 40}  # every engine, every sampling case
# OpenMP wait policies, from the caller's, read before anything imports metagen (which sets PASSIVE
# for itself). The torch engines run with the caller's, else PASSIVE, as metagen does (spinning
# OpenMP waiters starve each other on a busy machine). llama.cpp runs with the caller's, else none,
# so its OpenMP runtime does as it does for its users (GNU OpenMP spins a little, then sleeps): it
# meets a barrier at every small op, and given PASSIVE its two threads on a 2-vCPU AMD EPYC with
# AVX2 only fell from 115 to 30 tok/s (round 46).
LLAMA_CPP_WAIT_POLICY = os.environ.get("OMP_WAIT_POLICY", "")
TORCH_WAIT_POLICY = LLAMA_CPP_WAIT_POLICY or "PASSIVE"
LOAD_WARNING = 0.5  # 1-minute load average above which the results are flagged as noisy

# A long prompt, as metagen's own commands build them (about 1,000 tokens with lore): the
# prefill case times it with one new token. Its throughput counts prompt tokens.
LONG_PROMPT_REQUEST = ["story", "worlds/ashenmere.yaml", "-c", "ysolde,maelle,brannoc", "-l", "crooked-kettle"]
PREFILL = "prefill"

# name -> (label, rows, strategy, beams)
CASES: dict[str, tuple[str, int, str, int]] = {
    PREFILL: ("prompt processing (prompt tokens/s, 1 new token)", 1, "greedy", 1),
    "greedy-1": ("batch-1 greedy", 1, "greedy", 1),
    "sample-1": ("batch-1 top-p sampling", 1, "sample", 1),
    "beam-4": ("beam-4 (batch 1)", 1, "beam", 4),
    "sample-4": ("batch-4 sampling (aggregate)", 4, "sample", 1),
    "sample-8": ("batch-8 sampling (aggregate)", 8, "sample", 1),
    "sample-16": ("batch-16 sampling (aggregate)", 16, "sample", 1),
}


def _metagen_formats() -> tuple[str, ...]:
    """metagen's weight formats, read from its source so that a new one is benchmarked too."""
    import ast

    tree = ast.parse((ROOT / "metagen" / "linears.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "WEIGHT_FORMATS":
            return tuple(ast.literal_eval(node.value))
    return ("float32", "bfloat16", "int8")


# Settings that make torch run as on a CPU with AVX2 and no AVX-512 (nor AVX-512 bfloat16
# units): ATen's own kernels (the int4 and int8 matmuls, elementwise ops) through its
# dispatch, oneDNN (bfloat16 matmuls; torch then uses its own bfloat16 GEMM, as on such a
# CPU) and MKL (float32 GEMM). Each is read once, when torch loads, so the worker's
# environment carries them. The worker reports what torch then says it uses.
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
AVX2_SUFFIX = "-avx2"
# /proc/cpuinfo flags that decide which compact kernels a CPU can run; every amx_* flag too.
KERNEL_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni")

# name -> label; the metagen-* engines differ only in --dtype, and the -avx2 ones in AVX2_ENV.
NATIVE_METAGEN = {"metagen-auto": "metagen --dtype auto (default)",
                  **{f"metagen-{fmt}": f"metagen --dtype {fmt}" for fmt in _metagen_formats()}}
ENGINES: dict[str, str] = {
    **NATIVE_METAGEN,
    **{name + AVX2_SUFFIX: label + ", AVX2 emulated" for name, label in NATIVE_METAGEN.items()},
    "transformers": "transformers float32",
    "llama.cpp": "llama-cpp-python (Q4_1 as stored)",
}
METAGEN_ENGINES = [name for name in ENGINES if name.startswith("metagen-")]
OTHERS = ["transformers", "llama.cpp"]
# What llama-cpp-python's Python API cannot do; those cells say "n/a".
LLAMA_CPP_CASES = {PREFILL, "greedy-1", "sample-1"}


# --- the worker: one engine, one process ---------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def torch_kernels(torch) -> dict:
    """What torch says it runs: ATen's CPU capability, and whether bfloat16 matmuls go to oneDNN."""
    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "onednn_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())}


class MetagenEngine:
    def __init__(self, dtype: str, path: str, threads: int):
        started = time.perf_counter()
        import torch

        from metagen.config import GenerationConfig
        from metagen.generator import load_model

        torch.set_num_threads(threads)
        self.import_s = time.perf_counter() - started
        self.config = GenerationConfig
        started = time.perf_counter()
        self.generator = load_model(path, dtype=dtype)
        self.load_s = time.perf_counter() - started
        self.threads = torch.get_num_threads()
        self.weight_format = self.generator.info.weight_format
        self.kernels = torch_kernels(torch)
        self.first_token_at = None
        model = self.generator.model
        forward = model.forward

        def timed_forward(tokens, *args, **kwargs):
            # The first one-position step comes right after the prompt's pass and the choice of
            # the first token. (A prompt whose last piece of PREFILL_ROWS is one token long would
            # look the same; the bench's short prompt is one piece.)
            if self.first_token_at is None and tokens.shape[1] == 1:
                self.first_token_at = time.perf_counter()
            return forward(tokens, *args, **kwargs)

        model.forward = timed_forward

    def run(self, ids: list[int], case: str, tokens: int, seed: int) -> list[int]:
        _, rows, strategy, beams = CASES[case]
        ids, tokens = case_input(ids, case, tokens)
        cfg = self.config(strategy=strategy, max_new_tokens=tokens, min_new_tokens=tokens,
                          num_beams=beams, repetition_penalty=1.0, **SAMPLING)
        seeds = [seed + row for row in range(rows)]
        completions = self.generator.complete([ids] * rows, cfg, seeds=seeds)
        return [len(c.tokens) for c in completions]


class TransformersEngine:
    def __init__(self, path: str, threads: int, ids: list[int]):
        started = time.perf_counter()
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria, StoppingCriteriaList

        torch.set_num_threads(threads)
        transformers.logging.set_verbosity_error()
        self.torch = torch
        self.kernels = torch_kernels(torch)
        self.first_token_at = None
        engine = self

        class FirstTokenClock(StoppingCriteria):
            """Called after each chosen token (greedy, sampling and beam search alike); never stops."""

            def __call__(self, input_ids, scores, **kwargs):
                if engine.first_token_at is None:
                    engine.first_token_at = time.perf_counter()
                return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

        self.clock = StoppingCriteriaList([FirstTokenClock()])
        self.import_s = time.perf_counter() - started
        folder, name = str(Path(path).parent), Path(path).name
        started = time.perf_counter()
        self.tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        self.model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        self.model.eval()
        self.load_s = time.perf_counter() - started
        self.threads = torch.get_num_threads()
        own = self.tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}],
                                                 add_generation_prompt=True, tokenize=True)
        own = own["input_ids"] if isinstance(own, dict) or hasattr(own, "keys") else own
        self.same_prompt_ids = list(own) == list(ids)
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id

    def run(self, ids: list[int], case: str, tokens: int, seed: int) -> list[int]:
        _, rows, strategy, beams = CASES[case]
        ids, tokens = case_input(ids, case, tokens)
        torch = self.torch
        torch.manual_seed(seed)
        input_ids = torch.tensor([ids] * rows)
        options = dict(max_new_tokens=tokens, min_new_tokens=tokens, repetition_penalty=1.0,
                       pad_token_id=self.pad_id, num_beams=beams)
        if strategy == "sample":
            options.update(do_sample=True, **SAMPLING)
        else:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if strategy == "beam":
            options.update(early_stopping=True)
        with torch.inference_mode():
            out = self.model.generate(input_ids, attention_mask=torch.ones_like(input_ids),
                                      stopping_criteria=self.clock, **options)
        return [out.shape[1] - len(ids)] * rows


class LlamaCppEngine:
    def __init__(self, path: str, threads: int, ids: list[int], tokens: int):
        started = time.perf_counter()
        import llama_cpp
        import llama_cpp._internals as internals

        self.internals = internals  # generate() builds its sampler chain from internals.LlamaSampler
        self.import_s = time.perf_counter() - started
        started = time.perf_counter()
        self.llm = llama_cpp.Llama(model_path=path, n_ctx=max(512, len(ids) + tokens + 8, len(LONG_IDS) + 8),
                                   n_batch=512, n_threads=threads, n_threads_batch=threads,
                                   seed=0, verbose=False)
        self.load_s = time.perf_counter() - started
        self.threads = threads
        vocab = self.llm._model.vocab if hasattr(self.llm._model, "vocab") else None
        self.end_ids = [t for t in range(self.llm.n_vocab())
                        if _llama_is_eog(llama_cpp, self.llm, vocab, t)]
        self.version = llama_cpp.__version__
        self.first_token_at = None
        n_vocab, ban = self.llm.n_vocab(), {t: float("-inf") for t in self.end_ids}
        self.end_set = set(self.end_ids)

        class NoEndSampler(internals.LlamaSampler):
            """The library's own sampler chain with llama.cpp's logit-bias sampler at its head, so that
            end-of-generation is banned in C. (A Python logits processor, or create_completion's
            logit_bias, which llama-cpp-python 0.3 implements as one, runs Python over all 49,152
            candidates at every token.)"""

            def __init__(self):
                super().__init__()
                self.add_logit_bias(n_vocab, ban)

        self.sampler_class = NoEndSampler

    def run(self, ids: list[int], case: str, tokens: int, seed: int) -> list[int]:
        _, rows, strategy, beams = CASES[case]
        if case not in LLAMA_CPP_CASES:
            raise NotImplementedError("llama-cpp-python's Python API has no beam search or batched sampling")
        ids, tokens = case_input(ids, case, tokens)
        self.llm.reset()  # no reuse of the previous run's prompt in the KV cache
        self.llm.set_seed(seed)
        temp = SAMPLING["temperature"] if strategy == "sample" else 0.0
        produced = 0
        internals = self.internals
        plain, internals.LlamaSampler = internals.LlamaSampler, self.sampler_class
        try:
            for token in self.llm.generate(ids, temp=temp, top_k=SAMPLING["top_k"], top_p=SAMPLING["top_p"],
                                           min_p=0.0, typical_p=1.0, repeat_penalty=1.0, reset=True):
                if produced == 0:
                    self.first_token_at = time.perf_counter()
                produced += 1
                # generate() itself never stops at an end token: stop here as the text would, so
                # that a ban that failed shows as a wrong token count
                if produced == tokens or token in self.end_set:
                    break
        finally:
            internals.LlamaSampler = plain
        return [produced]


LONG_IDS: list[int] = []  # set in the workers from --long-ids


def case_input(ids: list[int], case: str, tokens: int) -> tuple[list[int], int]:
    """The prompt and new-token count of a case: the long prompt and one token for prefill."""
    return (LONG_IDS, 1) if case == PREFILL else (ids, tokens)


def _llama_is_eog(llama_cpp, llm, vocab, token: int) -> bool:
    if vocab is not None and hasattr(llama_cpp, "llama_vocab_is_eog"):
        return bool(llama_cpp.llama_vocab_is_eog(vocab, token))
    return bool(llama_cpp.llama_token_is_eog(llm._model.model, token))


def metagen_dtype(engine: str) -> str:
    """The --dtype of a metagen-* engine: metagen-int8-avx2 -> int8."""
    return engine.removeprefix("metagen-").removesuffix(AVX2_SUFFIX)


def run_worker(args: argparse.Namespace) -> None:
    """Serve one engine: a JSON line when loaded, then one JSON line per case asked on stdin."""
    # Keep the real stdout for the protocol; anything a library prints goes to stderr.
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    ids = json.loads(args.ids)
    LONG_IDS[:] = json.loads(args.long_ids)
    rss_start = peak_rss_mb()
    try:
        if args.worker.startswith("metagen-"):
            engine = MetagenEngine(metagen_dtype(args.worker), args.model, args.threads)
        elif args.worker == "transformers":
            engine = TransformersEngine(args.model, args.threads, ids)
        else:
            engine = LlamaCppEngine(args.model, args.threads, ids, args.tokens)
        ready = {"event": "ready", "import_s": engine.import_s, "load_s": engine.load_s,
                 "threads": engine.threads, "rss_start_mb": rss_start, "rss_loaded_mb": peak_rss_mb()}
        for extra in ("weight_format", "same_prompt_ids", "version", "kernels"):
            if hasattr(engine, extra):
                ready[extra] = getattr(engine, extra)
        # One short untimed run so that one-off set-up costs do not land in the first case.
        engine.run(ids, "greedy-1", min(8, args.tokens), 0)
        ready["rss_warm_mb"] = peak_rss_mb()
    except Exception as error:
        protocol.write(json.dumps({"event": "failed", "error": f"{type(error).__name__}: {error}"}) + "\n")
        return
    protocol.write(json.dumps(ready) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        engine.first_token_at = None
        started = time.perf_counter()
        try:
            counts = engine.run(ids, request["case"], args.tokens, request["seed"])
            reply = {"seconds": time.perf_counter() - started, "counts": counts,
                     "first_token_s": engine.first_token_at - started if engine.first_token_at else None}
        except Exception as error:
            reply = {"error": f"{type(error).__name__}: {error}"}
        reply["rss_mb"] = peak_rss_mb()
        protocol.write(json.dumps(reply) + "\n")


# --- the parent: machine, workers, start-up timings, reports -------------------------


def machine_info() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in _read_lines("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor() or "unknown")
    mem_kb = next((int(line.split()[1]) for line in _read_lines("/proc/meminfo")
                   if line.startswith("MemTotal:")), 0)
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
            "memory_gib": round(mem_kb / 2**20, 1), "os": platform.platform(),
            "python": platform.python_version(), "kernel_flags": kernel_flags()}


def kernel_flags() -> dict[str, bool]:
    """Whether the CPU has each of KERNEL_FLAGS, and every amx_* flag it has."""
    flags = set(next((line.split(":", 1)[1].split() for line in _read_lines("/proc/cpuinfo")
                      if line.startswith("flags")), []))
    return {**{flag: flag in flags for flag in KERNEL_FLAGS}, **{f: True for f in sorted(flags) if f.startswith("amx")}}


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def software_info() -> dict:
    info = {"python": platform.python_version()}
    for name in ("torch", "transformers", "llama_cpp", "metagen"):
        try:
            module = __import__(name)
            info[name] = getattr(module, "__version__", "?")
        except Exception:
            info[name] = None
    return info


def git_state() -> dict:
    """The commit benchmarked, and whether metagen/ had uncommitted changes at the time."""
    def git(*argv):
        out = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip() if out.returncode == 0 else None
    dirty = git("status", "--porcelain", "--", "metagen")
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "metagen_dirty": sorted({line[3:] for line in dirty.splitlines()}) if dirty else []}


def model_tokenizer(model_path: str):
    """metagen's tokenizer for the model file (its GGUF metadata only)."""
    from metagen.gguf import read_gguf
    from metagen.tokenizer import Tokenizer

    return Tokenizer.from_data(read_gguf(Path(model_path), load_tensors=False).tokenizer)


def prompt_ids(tokenizer) -> list[int]:
    """The chat-templated prompt as token ids (metagen's tokenizer); every engine gets these."""
    return tokenizer.encode(tokenizer.render_chat([{"role": "user", "content": PROMPT}]))


def long_prompt_ids(tokenizer) -> list[int]:
    """The long prompt: what `metagen prompt` gives for LONG_PROMPT_REQUEST, as token ids."""
    metagen = str(Path(sys.executable).with_name("metagen"))
    shown = subprocess.run([metagen, "prompt", *LONG_PROMPT_REQUEST, "--json"], cwd=ROOT, check=True,
                           capture_output=True, text=True)
    return tokenizer.encode(json.loads(shown.stdout)["prompt"])


def prepare_converted(model_path: str, engines: list[str], threads: int) -> None:
    """Fill metagen's converted-weights cache first, so load times measure the cached path
    (int4's copy is packed per CPU capability, so the emulated engines fill their own)."""
    code = ("import sys; from metagen.generator import load_model\n"
            "for d in sys.argv[2:]: load_model(sys.argv[1], dtype=d)")
    for emulated in (False, True):
        dtypes = [metagen_dtype(e) for e in engines if e.startswith("metagen-") and e.endswith(AVX2_SUFFIX) == emulated]
        if dtypes:
            subprocess.run([sys.executable, "-c", code, model_path, *dtypes], check=True,
                           env=worker_env(threads, AVX2_SUFFIX if emulated else ""))


class Worker:
    """A running engine process, asked one case at a time."""

    def __init__(self, name: str, model_path: str, ids: list[int], tokens: int, threads: int, long_ids: list[int]):
        self.name = name
        self.log = tempfile.TemporaryFile(mode="w+")
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--model", model_path,
                   "--ids", json.dumps(ids), "--long-ids", json.dumps(long_ids), "--tokens", str(tokens),
                   "--threads", str(threads)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.log, text=True, bufsize=1, env=worker_env(threads, name))
        self.ready = self._reply()

    def _reply(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.log.seek(0)
            tail = self.log.read()[-2000:]
            return {"event": "failed", "error": f"worker exited ({self.process.poll()}): {tail.strip()}"}
        return json.loads(line)

    def ask(self, case: str, seed: int) -> dict:
        self.process.stdin.write(json.dumps({"case": case, "seed": seed}) + "\n")
        return self._reply()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=60)
        self.log.close()


def worker_env(threads: int, engine: str = "") -> dict:
    """One environment for every engine but the wait policy (TORCH_WAIT_POLICY, LLAMA_CPP_WAIT_POLICY),
    plus AVX2_ENV for an -avx2 one."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1",
               **(AVX2_ENV if engine.endswith(AVX2_SUFFIX) else {}))
    policy = LLAMA_CPP_WAIT_POLICY if engine == "llama.cpp" else TORCH_WAIT_POLICY
    env.pop("OMP_WAIT_POLICY", None)
    return {**env, "OMP_WAIT_POLICY": policy} if policy else env


def emulation_error(engine: str, ready: dict) -> str | None:
    """Why an -avx2 engine's torch does not run as on a CPU without AVX-512, or None."""
    kernels = ready.get("kernels") or {}
    if engine.endswith(AVX2_SUFFIX) and (kernels.get("cpu_capability") != "AVX2" or kernels.get("onednn_bf16")):
        return f"the AVX2 emulation did not take: torch reports {kernels}"
    return None


def time_process(command: list[str], threads: int) -> dict:
    """Wall time of a fresh process to its first byte on stdout and to its exit; its peak RSS."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               env=worker_env(threads))
    process.stdout.read(1)
    first = time.perf_counter() - started
    process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return {"first_output_s": first, "exit_s": time.perf_counter() - started,
            "rss_mb": usage.ru_maxrss / 1024, "rc": process.returncode}


def measure_startup(repeats: int, threads: int) -> dict:
    """`metagen generate ... --max-tokens 1` (without a server) and `metagen --help`, each in a new
    process; then a one-token scene with `metagen serve` running (a new client process each time
    and the warm server; one is started and stopped here unless the user's already runs)."""
    metagen = str(Path(sys.executable).with_name("metagen"))
    commands = {
        "cold_start": [metagen, "--no-server", "generate", PROMPT, "--max-tokens", "1", "--min-tokens", "1",
                       "--quiet"],
        "help": [metagen, "--help"],
    }
    out = _time_commands(commands, repeats, threads)
    env = worker_env(threads)
    status = [metagen, "serve", "--status"]
    running = subprocess.run(status, env=env, capture_output=True).returncode == 0  # the user's: used, left on
    server = None if running else subprocess.Popen([metagen, "serve"], stdout=subprocess.DEVNULL,
                                                   stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 120
        while subprocess.run(status, env=env, capture_output=True).returncode != 0:
            if server.poll() is not None or time.monotonic() > deadline:
                return out  # no server: the served row is left out, and its target reads "not measured"
            time.sleep(0.2)
        served = {"served_scene": [metagen, "describe-scene", str(ROOT / "worlds/ashenmere.yaml"), "--location",
                                   "crooked-kettle", "--max-tokens", "1", "--stdout", "--quiet"]}
        return out | _time_commands(served, repeats, threads)
    finally:
        if server is not None:
            subprocess.run([metagen, "serve", "--stop"], env=env, capture_output=True)
            server.wait(timeout=60)


def _time_commands(commands: dict[str, list[str]], repeats: int, threads: int) -> dict:
    for command in commands.values():  # untimed: warm the page cache and the converted weights
        time_process(command, threads)
    runs = {name: [] for name in commands}
    for _ in range(repeats):
        for name, command in commands.items():
            runs[name].append(time_process(command, threads))
    out = {}
    for name, samples in runs.items():
        out[name] = {
            "command": shlex.join(["metagen", *commands[name][1:]]).replace(str(ROOT) + "/", ""),
            "runs": samples,
            "median_first_output_s": statistics.median(s["first_output_s"] for s in samples),
            "median_exit_s": statistics.median(s["exit_s"] for s in samples),
            "peak_rss_mb": max(s["rss_mb"] for s in samples),
            "ok": all(s["rc"] == 0 for s in samples),
        }
    return out


def run_cases(workers: dict[str, Worker], cases: list[str], repeats: int, tokens: int, long_tokens: int) -> dict:
    """Every case for every engine, engines alternating within each repetition."""
    results = {case: {name: {"seconds": [], "tok_s": [], "first_token_s": [], "decode_tok_s": [], "counts_ok": True,
                             "errors": []}
                      for name in workers} for case in cases}
    names = list(workers)
    for rep in range(repeats):
        order = names[rep % len(names):] + names[:rep % len(names)]  # rotate who goes first
        for case in cases:
            rows = CASES[case][1]
            for name in order:
                if name == "llama.cpp" and case not in LLAMA_CPP_CASES:
                    continue
                reply = workers[name].ask(case, seed=1000 * (rep + 1))
                cell = results[case][name]
                if rep == 0:  # the worker's peak so far: load, warm-up and the cases before this one
                    cell["peak_rss_mb"] = reply.get("rss_mb")
                if "error" in reply:
                    cell["errors"].append(reply["error"])
                    print(f"  rep {rep + 1} {case:10s} {name:17s} ERROR {reply['error']}", flush=True)
                    continue
                cell["seconds"].append(reply["seconds"])
                if case == PREFILL:
                    cell["tok_s"].append(long_tokens / reply["seconds"])
                    cell["counts_ok"] &= reply["counts"] == [1]
                else:
                    cell["tok_s"].append(rows * tokens / reply["seconds"])
                    cell["counts_ok"] &= reply["counts"] == [tokens] * rows
                    first = reply.get("first_token_s")
                    if first is not None and tokens > 1:  # decode only: the tokens after the first
                        cell["first_token_s"].append(first)
                        cell["decode_tok_s"].append(rows * (tokens - 1) / (reply["seconds"] - first))
                decode = f"  decode {cell['decode_tok_s'][-1]:8.1f} tok/s" if cell["decode_tok_s"] else ""
                print(f"  rep {rep + 1} {case:10s} {name:24s} {cell['tok_s'][-1]:8.1f} tok/s{decode}"
                      f"  {reply['seconds']:6.2f} s  rss {reply['rss_mb']:.0f} MiB", flush=True)
    for per_case in results.values():
        for cell in per_case.values():
            for key in ("tok_s", "decode_tok_s"):
                cell[f"median_{key}"] = statistics.median(cell[key]) if cell[key] else None
    return results


def compute_ratios(cases: dict, key: str = "median_tok_s") -> dict:
    """case -> metagen engine -> other engine (and, for an -avx2 engine, "native": the same
    format without emulation) -> ratio of the medians of `key`."""
    ratios = {}
    for case, per_engine in cases.items():
        ratios[case] = {}
        for mine in METAGEN_ENGINES:
            if mine not in per_engine or not per_engine[mine].get(key):
                continue
            against = OTHERS + ([mine.removesuffix(AVX2_SUFFIX)] if mine.endswith(AVX2_SUFFIX) else [])
            ratios[case][mine] = {
                "native" if other == mine.removesuffix(AVX2_SUFFIX) else other:
                    per_engine[mine][key] / per_engine[other][key]
                for other in against if other in per_engine and per_engine[other].get(key)}
    return ratios


def evaluate_targets(report: dict) -> list[dict]:
    """The project's speed and size targets, each met, not met, or not measured."""
    cases, ratios, startup = report["cases"], report["ratios"], report.get("startup") or {}
    default = "metagen-auto"

    def cell(case, engine, key="median_tok_s"):
        return cases.get(case, {}).get(engine, {}).get(key)

    def ratio(case, other):
        return ratios.get(case, {}).get(default, {}).get(other)

    def started(command, key):  # a command that failed in any run measures nothing
        entry = startup.get(command, {})
        return entry.get(key) if entry.get("ok") else None

    own_1, own_4, own_16 = (cell(case, default) for case in ("sample-1", "sample-4", "sample-16"))
    llama_1 = cell("sample-1", "llama.cpp")
    rss = max(filter(None, [cell("greedy-1", default, "peak_rss_mb"), cell("sample-1", default, "peak_rss_mb")]),
              default=None)
    # Issue 16's targets; the two marked "earlier" are an earlier round's, still kept. The compiled
    # decode step's targets (compile <= 3 min, load <= 1 s) have no row: metagen has no compiled step.
    targets = [
        ("batch-1 greedy >= 0.75x llama.cpp's tok/s", ratio("greedy-1", "llama.cpp"), ">=", 0.75, "x"),
        ("batch-4 sampling aggregate >= 3.5x metagen's own batch-1 sampling",
         own_4 / own_1 if own_1 and own_4 else None, ">=", 3.5, "x"),
        ("batch-16 sampling aggregate >= 2x llama.cpp's batch-1 sampling",
         own_16 / llama_1 if llama_1 and own_16 else None, ">=", 2.0, "x"),
        ("cold start (`metagen generate --max-tokens 1`, to first output) <= 2.5 s",
         started("cold_start", "median_first_output_s"), "<=", 2.5, "s"),
        ("with `metagen serve` running, `metagen describe-scene ... --max-tokens 1` <= 0.5 s to exit",
         started("served_scene", "median_exit_s"), "<=", 0.5, "s"),
        ("peak RSS with the default model (batch-1, --dtype auto) <= 600 MB", rss, "<=", 600.0, "MiB"),
        ("(earlier) beam-4 >= 3x transformers' beam-4", ratio("beam-4", "transformers"), ">=", 3.0, "x"),
        ("(earlier) `metagen --help` <= 0.3 s", started("help", "median_exit_s"), "<=", 0.3, "s"),
    ]
    out = []
    for name, value, op, limit, unit in targets:
        met = None if value is None else (value >= limit if op == ">=" else value <= limit)
        out.append({"target": name, "value": value, "limit": limit, "op": op, "unit": unit, "met": met})
    return out


# --- writing the results -------------------------------------------------------------


def _fmt(value, digits=1, suffix=""):
    return "n/a" if value is None else f"{value:.{digits}f}{suffix}"


def _flags_text(flags: dict[str, bool]) -> str:
    amx = [f for f in flags if f.startswith("amx")]
    return (", ".join(f"{f} {'yes' if flags.get(f) else 'no'}" for f in KERNEL_FLAGS)
            + f"; amx: {', '.join(amx) if amx else 'none'}")


def _tok_s_table(report: dict, names: list[str], labels: dict[str, str], key: str, heading: str) -> list[str]:
    """A case x engine table of the medians (and ranges) of `key`; cases with no value at all left out."""
    lines = ["", heading, "", "| case | " + " | ".join(labels[n] for n in names) + " |",
             "|---" * (len(names) + 1) + "|"]
    for case, per_engine in report["cases"].items():
        cells = []
        for n in names:
            cell = per_engine.get(n) or {}
            values = cell.get(key) or []
            if not values:
                cells.append("n/a")
                continue
            text = f"{statistics.median(values):.1f}"
            if len(values) > 1:
                text += f" ({min(values):.1f}-{max(values):.1f})"
            if not cell["counts_ok"]:
                text += " (wrong token count!)"
            cells.append(text)
        if any(c != "n/a" for c in cells):
            lines.append(f"| {CASES[case][0]} | " + " | ".join(cells) + " |")
    return lines


def _ratio_table(ratios: dict, pairs: list[tuple[str, str, str]], heading: str) -> list[str]:
    """A case x (engine, against, title) table of ratios; cases with no ratio at all left out."""
    if not pairs:
        return []
    lines = ["", heading, "", "| case | " + " | ".join(title for _, _, title in pairs) + " |",
             "|---" * (len(pairs) + 1) + "|"]
    for case, per_mine in ratios.items():
        cells = [_fmt(per_mine.get(n, {}).get(o), 2, "x") for n, o, _ in pairs]
        if any(c != "n/a" for c in cells):
            lines.append(f"| {CASES[case][0]} | " + " | ".join(cells) + " |")
    return lines


def render_markdown(report: dict) -> str:
    s = report["settings"]
    m = report["machine"]
    engines = report["engines"]
    lines = [
        "# Benchmarks",
        "",
        "Regenerated by `bench/bench.py` on every full run; see bench/README.md for what each case",
        "means and how far to trust it. All numbers below come from one run.",
        "",
        f"- Date: {report['date']}",
        f"- Command: `{report['command']}`",
        f"- Machine: {m['cpu']}, {m['usable_cpus']} usable CPUs, {m['memory_gib']} GiB memory, {m['os']}",
        f"- CPU flags for the kernels (/proc/cpuinfo): {_flags_text(m.get('kernel_flags') or {})}",
        "- torch's kernels in each worker (ATen CPU capability; bfloat16 matmuls through oneDNN or not): "
        + ", ".join(f"{n} {e['kernels']['cpu_capability']}{'' if e['kernels']['onednn_bf16'] else ' (no oneDNN bf16)'}"
                    for n, e in engines.items() if e.get("ok") and e.get("kernels"))
        + (f"; the -avx2 engines ran with {' '.join(f'{k}={v}' for k, v in AVX2_ENV.items())}"
           if any(n.endswith(AVX2_SUFFIX) for n in engines) else ""),
        f"- Software: Python {report['software']['python']}, torch {report['software']['torch']}, "
        f"transformers {report['software']['transformers']}, llama-cpp-python "
        f"{report['software']['llama_cpp'] or 'not installed'}, metagen {report['software']['metagen']} "
        f"(commit {report['git']['commit']}"
        + (f", uncommitted changes in {', '.join(report['git']['metagen_dirty'])}" if report['git']['metagen_dirty'] else "")
        + ")" + ("; metagen/ changed while the run went on (the start-up timings ran the later code)"
                 if report["git"].get("changed_during_run") else ""),
        f"- Threads: {s['threads']} (torch.set_num_threads / llama.cpp n_threads; OMP_NUM_THREADS={s['threads']}, "
        f"OMP_WAIT_POLICY={s['omp_wait_policy']} for the torch engines, "
        f"{s.get('llama_cpp_wait_policy') or 'unset (its default)'} for llama.cpp); "
        f"measured in the workers: " + ", ".join(f"{n} {e.get('threads')}" for n, e in engines.items() if e.get("ok")),
        f"- Model: `{Path(s['model']).name}` (sha256 {s['sha256'][:16]}...), the same file for every engine",
        f"- Prompt: \"{s['prompt']}\", chat-templated: {s['prompt_tokens']} tokens, the same ids for every engine"
        + ("" if engines.get("transformers", {}).get("same_prompt_ids", True)
           else " (transformers' own tokenizer gives different ids)"),
        f"- Output: exactly {s['tokens']} new tokens per row (end-of-text suppressed; llama.cpp: by its C logit-bias "
        f"sampler), medians of "
        f"{s['repeats']} repetition(s); sampling: temperature {SAMPLING['temperature']}, top-p "
        f"{SAMPLING['top_p']}, top-k {SAMPLING['top_k']}; no repetition penalty",
        *([f"- Prompt processing: the prompt of `{s.get('long_prompt')}` ({s.get('long_prompt_tokens')} tokens, "
           "the chat template and metagen's opening included), one new token; tok/s counts prompt tokens"]
          if s.get("long_prompt_tokens") else []),
        f"- 1-minute load average: {report['load_average']['before']:.2f} before, "
        f"{report['load_average']['after']:.2f} after",
    ]
    if report["load_average"]["warning"]:
        lines += ["", f"**Warning: {report['load_average']['warning']}**"]
    for name, engine in engines.items():
        if not engine.get("ok"):
            lines += ["", f"- {ENGINES[name]} was not measured: {engine.get('error')}"]

    names = [n for n in ENGINES if n in engines and engines[n].get("ok")]
    labels = {n: ENGINES[n] for n in names}
    for auto in ("metagen-auto", "metagen-auto" + AVX2_SUFFIX):
        resolved = engines.get(auto, {}).get("weight_format")
        if resolved:
            labels[auto] = ENGINES[auto].replace("(default)", f"(default: {resolved})")
    lines += _tok_s_table(report, names, labels, "tok_s",
                          f"## Throughput (new tokens/s, median of {s['repeats']}; batch cases: rows x tokens / s)")
    lines += ["", "n/a for llama-cpp-python: its Python API has no beam search and no batched sampling.",
              "Ranges in brackets are the lowest and highest of the repetitions."]
    lines += _tok_s_table(report, names, labels, "decode_tok_s",
                          f"## Decode only (tokens after the first per second, median of {s['repeats']})")
    lines += ["", "Decode only: rows x (tokens - 1) / (seconds - time to first token), the steps after the",
              "prompt's pass. The time to first token (the prompt's pass and the choice of the first token)",
              "is taken inside each engine: metagen, the start of its first one-position model step;",
              "transformers, the first call of a stopping criterion (made after each chosen token);",
              "llama-cpp-python, the first token its generate() yields."]

    others = [o for o in OTHERS if o in names]
    mine = [n for n in NATIVE_METAGEN if n in names]
    pairs = [(n, o, f"{n.removeprefix('metagen-')} / {o}") for n in mine for o in others]
    lines += _ratio_table(report["ratios"], pairs,
                          "## metagen / other (ratio of the medians; > 1 means metagen is faster)")
    lines += _ratio_table(report.get("decode_ratios") or {}, pairs, "## metagen / other, decode only")
    emulated = [n for n in METAGEN_ENGINES if n.endswith(AVX2_SUFFIX) and n in names
                and n.removesuffix(AVX2_SUFFIX) in names]
    if emulated:
        lines += _ratio_table(report["ratios"], [(n, "native", n.removeprefix("metagen-")) for n in emulated],
                              "## AVX2 emulated / native (same format; < 1 means slower without AVX-512)")
        lines += _ratio_table(report.get("decode_ratios") or {},
                              [(n, "native", n.removeprefix("metagen-")) for n in emulated],
                              "## AVX2 emulated / native, decode only")

    lines += ["", "## Load time and peak memory (each engine in its own process)", "",
              "| engine | import (s) | load (s) | peak RSS after load (MiB) | after batch-1 cases | "
              "after beam-4 | after batch-16 (overall) |",
              "|---|---|---|---|---|---|---|"]
    for n in names:
        e = engines[n]
        per = {case: report["cases"].get(case, {}).get(n, {}).get("peak_rss_mb") for case in CASES}
        batch1 = max(filter(None, [per["greedy-1"], per["sample-1"]]), default=None)
        lines.append(f"| {labels[n]} | {e['import_s']:.2f} | {e['load_s']:.2f} | {e['rss_warm_mb']:.0f} | "
                     f"{_fmt(batch1, 0)} | {_fmt(per['beam-4'], 0)} | {_fmt(per['sample-16'], 0)} |")
    lines += ["", "Peak RSS is the process's ru_maxrss, which only grows: each column is the peak up to and",
              "including that case in the first repetition (load, an 8-token warm-up, then the cases in",
              "table order). Load time is from the engine's load call to a model ready to run (metagen:",
              "its converted-weights cache, filled before timing; transformers: GGUF dequantized to",
              "float32; llama.cpp: the GGUF memory-mapped as it is)."]

    startup = report.get("startup")
    if startup:
        lines += ["", "## Start-up (a new process each time, model already cached)", "",
                  "| command | to first output (s, median) | to exit (s, median) | peak RSS (MiB) |",
                  "|---|---|---|---|"]
        for entry in startup.values():
            failed = "" if entry["ok"] else " (**failed**: a non-zero exit)"
            lines.append(f"| `{entry['command']}`{failed} | {entry['median_first_output_s']:.2f} | "
                         f"{entry['median_exit_s']:.2f} | {entry['peak_rss_mb']:.0f} |")

    lines += ["", "## Targets", "", "| target | measured | met? |", "|---|---|---|"]
    for t in report["targets"]:
        value = "not measured" if t["value"] is None else f"{t['value']:.2f} {t['unit']}"
        met = "not measured" if t["met"] is None else ("met" if t["met"] else "**not met**")
        lines.append(f"| {t['target']} | {value} | {met} |")
    lines.append("")
    return "\n".join(lines)


def kept_quality_section() -> str:
    """The quality section bench/quality.py wrote, carried over when the tables are redone."""
    if not RESULTS_MD.exists():
        return ""
    text = RESULTS_MD.read_text()
    at = text.find(QUALITY_HEADING)
    return text[at:] if at >= 0 else ""


def write_results(report: dict, quick: bool) -> list[Path]:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    if quick:  # a smoke run leaves the committed results alone
        path = BENCH / f"results-quick-{stamp}.json"
        path.write_text(json.dumps(report, indent=2) + "\n")
        return [path]
    if RESULTS_JSON.exists():
        previous = json.loads(RESULTS_JSON.read_text())
        if "quality" in previous:
            report["quality"] = previous["quality"]
    text = json.dumps(report, indent=2) + "\n"
    stamped = BENCH / f"results-{stamp}.json"
    for path in (RESULTS_JSON, stamped):
        path.write_text(text)
    quality = kept_quality_section()
    RESULTS_MD.write_text(render_markdown(report) + ("\n" + quality if quality else ""))
    return [RESULTS_JSON, stamped, RESULTS_MD]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="repetitions per case; medians are reported (default 3)")
    parser.add_argument("--tokens", type=int, default=None, help="new tokens per row (default 128; 16 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 16 tokens, 1 repetition, results not committed")
    parser.add_argument("--threads", type=int, default=2, help="threads for every engine (default 2)")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated subset of: " + ", ".join(ENGINES))
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of: " + ", ".join(CASES))
    parser.add_argument("--no-startup", action="store_true", help="skip the cold-start and --help timings")
    parser.add_argument("--model", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--ids", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--long-ids", default="[]", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args)
        return
    repeats = 1 if args.quick else args.repeats
    tokens = args.tokens or (16 if args.quick else 128)
    engines = [e for e in args.engines.split(",") if e]
    cases = [c for c in args.cases.split(",") if c]
    for name in engines + cases:
        if name not in ENGINES and name not in CASES:
            parser.error(f"unknown engine or case {name!r}")

    from metagen.catalog import resolve_model

    git_before = git_state()  # the workers import metagen as it is now
    resolved = resolve_model()
    model_path = str(resolved.path)
    tokenizer = model_tokenizer(model_path)
    ids = prompt_ids(tokenizer)
    long_ids = long_prompt_ids(tokenizer) if PREFILL in cases else []
    load_before = os.getloadavg()[0]
    print(f"model {model_path}\nprompt: {len(ids)} tokens; {tokens} new tokens; {repeats} repetition(s); "
          f"{args.threads} threads; load average {load_before:.2f}", flush=True)
    if load_before > LOAD_WARNING:
        print(f"warning: the 1-minute load average is {load_before:.2f} (> {LOAD_WARNING}); timings will be noisy",
              flush=True)

    prepare_converted(model_path, engines, args.threads)
    report_engines = {}
    workers = {}
    for name in engines:
        if name == "llama.cpp" and importlib.util.find_spec("llama_cpp") is None:
            report_engines[name] = {"ok": False, "error": "llama-cpp-python is not installed (pip install llama-cpp-python)"}
            print(f"{name}: skipped, llama-cpp-python is not installed", flush=True)
            continue
        worker = Worker(name, model_path, ids, tokens, args.threads, long_ids)
        ready = worker.ready
        error = ready.get("error") if ready.get("event") != "ready" else emulation_error(name, ready)
        if error:
            report_engines[name] = {"ok": False, "error": error}
            print(f"{name}: failed to start: {error}", flush=True)
            worker.close()
            continue
        report_engines[name] = {"ok": True, **{k: v for k, v in ready.items() if k != "event"}}
        workers[name] = worker
        print(f"{name}: loaded in {ready['load_s']:.2f} s (import {ready['import_s']:.2f} s), "
              f"{ready['threads']} threads, peak RSS {ready['rss_warm_mb']:.0f} MiB", flush=True)
    try:
        case_results = run_cases(workers, cases, repeats, tokens, len(long_ids))
    finally:
        for worker in workers.values():
            worker.close()
    startup = None if args.no_startup else measure_startup(max(repeats, 1 if args.quick else 5), args.threads)
    load_after = os.getloadavg()[0]
    worst = max(load_before, load_after)
    report = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": shlex.join(["python", "bench/bench.py", *sys.argv[1:]]),
        "machine": machine_info(),
        "software": software_info(),
        "git": {**git_before, "changed_during_run": git_state() != git_before},
        "settings": {"model": model_path, "sha256": resolved.sha256, "prompt": PROMPT, "prompt_ids": ids,
                     "prompt_tokens": len(ids), "long_prompt": shlex.join(["metagen", "prompt", *LONG_PROMPT_REQUEST]),
                     "long_prompt_tokens": len(long_ids), "tokens": tokens, "repeats": repeats, "threads": args.threads,
                     "sampling": SAMPLING, "repetition_penalty": 1.0,
                     "omp_wait_policy": TORCH_WAIT_POLICY, "llama_cpp_wait_policy": LLAMA_CPP_WAIT_POLICY},
        "load_average": {"before": load_before, "after": load_after,
                         "warning": (f"1-minute load average {worst:.2f} > {LOAD_WARNING}: other work shared "
                                     "the CPUs, so absolute numbers are noisy; compare ratios within this run")
                         if worst > LOAD_WARNING else None},
        "engines": report_engines,
        "cases": case_results,
        "ratios": compute_ratios(case_results),
        "decode_ratios": compute_ratios(case_results, "median_decode_tok_s"),
        "startup": startup,
    }
    report["targets"] = evaluate_targets(report)
    written = write_results(report, args.quick)
    print()
    print(render_markdown(report))
    print("wrote " + ", ".join(str(p.relative_to(ROOT)) for p in written))


if __name__ == "__main__":
    main()
