"""Wall time of startup phases (no profiler): wraps functions, runs the CLI, prints totals."""
import atexit, functools, importlib, sys, time
T0 = time.perf_counter()
import torch  # noqa
T_TORCH = time.perf_counter() - T0
totals = {}
def wrap(modname, qual):
    mod = importlib.import_module(modname)
    owner, _, name = qual.rpartition(".")
    obj = getattr(mod, owner) if owner else mod
    fn = obj.__dict__[name] if isinstance(obj, type) else getattr(obj, name)
    raw = fn.__func__ if isinstance(fn, (classmethod, staticmethod)) else fn
    @functools.wraps(raw)
    def timed(*a, **k):
        t = time.perf_counter()
        try:
            return raw(*a, **k)
        finally:
            key = f"{modname}.{qual}"
            totals[key] = totals.get(key, 0) + time.perf_counter() - t
    if isinstance(fn, functools.cached_property):
        return
    if isinstance(fn, classmethod):
        setattr(obj, name, classmethod(timed))
    else:
        setattr(obj, name, timed)
for m, q in [("metagen.tokenizer", "Tokenizer.load"), ("metagen.tokenizer", "Tokenizer.encode_chat"),
             ("metagen.generator", "load_model"), ("metagen.sampling", "script_guard"), ("metagen.tokenizer", "Tokenizer.encode_plain"), ("metagen.commands.pieces", "run_pieces"), ("metagen.commands.options", "load_generator"), ("metagen.moderation", "policy_for"), ("metagen.pipeline", "_compose_scenes"), ("metagen.sampling", "build_processors"),
             ("metagen.sampling", "build_processors"), ("metagen.moderation", "load_lexicon"),
             ("metagen.search", "_prefill"), ("metagen.linears", "WidenedForPrompts.widened"),
             ("metagen.linears", "Int4Linear.dequantized"),
             ("metagen.world.load", "load_world"), ("metagen.pipeline", "compose")]:
    wrap(m, q)
@atexit.register
def report():
    print(f"total {time.perf_counter()-T0:.3f}  torch import {T_TORCH:.3f}", file=sys.stderr)
    for k, v in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {v:.3f} {k}", file=sys.stderr)
from metagen.client import main
sys.argv = ["metagen"] + sys.argv[1:]
main()
