"""What a prompt's pass costs in a new process: widening every int4 weight against the pass."""
import glob, time, torch
import metagen  # noqa
from metagen.generator import load_model
from metagen.linears import WidenedForPrompts
t = time.perf_counter()
g = load_model(glob.glob('/tmp/mghome35/models/*.gguf')[0], dtype="int4")
print(f"load {time.perf_counter()-t:.2f} s, prompt dtype {g.model.prompt_dtype}, threads {torch.get_num_threads()}")
lins = [m for m in g.model.modules() if isinstance(m, WidenedForPrompts)]
for rep in range(3):
    t = time.perf_counter()
    for m in lins[:-1]: m.widened(g.model.prompt_dtype)
    print(f"widen all but head: {time.perf_counter()-t:.3f} s")
ids = g.tokenizer.encode("word " * 300)
for rep in range(3):
    cache = g.model.new_cache(1, 400)
    t = time.perf_counter(); g.model(torch.tensor([ids]), cache, last_only=True); print(f"prompt of {len(ids)}: {time.perf_counter()-t:.3f} s")
g.model.keep_prompt_weights()
for rep in range(3):
    cache = g.model.new_cache(1, 400)
    t = time.perf_counter(); g.model(torch.tensor([ids]), cache, last_only=True); print(f"prompt of {len(ids)}, kept weights: {time.perf_counter()-t:.3f} s")
