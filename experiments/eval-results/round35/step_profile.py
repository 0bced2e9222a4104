"""Where a batch-1 decoding step's time goes: torch.profiler over 40 model steps."""
import glob, sys, time, torch
from torch.profiler import profile, ProfilerActivity
from metagen.cache import KVCache
from metagen.generator import load_model
g = load_model(glob.glob('/tmp/mghome35/models/*.gguf')[0], dtype="int4")
m = g.model
torch.set_num_threads(1)
rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1
ids = g.tokenizer.encode_chat([{"role": "user", "content": "Write a short story about a lighthouse keeper who finds a message in a bottle."}])
cache = KVCache(m.args, rows, 512, torch.bfloat16)
tokens = torch.tensor([ids] * rows)
m(tokens, cache)
step = tokens[:, -1:]
for _ in range(20): m(step, cache)
t = time.perf_counter()
for _ in range(40): m(step, cache)
print(f"rows={rows} plain {(time.perf_counter()-t)/40*1e3:.2f} ms/step")
with profile(activities=[ProfilerActivity.CPU]) as prof:
    for _ in range(40): m(step, cache)
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=22))
