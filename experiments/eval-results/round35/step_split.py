"""One decoding step split: the model's forward alone against a whole sampled step (prof4-like)."""
import glob, statistics, time, torch
from metagen.cache import KVCache
from metagen.generator import load_model
g = load_model(glob.glob('/tmp/mghome35/models/*.gguf')[0], dtype="int4")
m = g.model
torch.set_num_threads(1)
ids = g.tokenizer.encode_chat([{"role": "user", "content": "Write a short story about a lighthouse keeper who finds a message in a bottle."}])
for rows in (1, 4):
    cache = KVCache(m.args, rows, 512, torch.bfloat16) if 'dtype' in KVCache.__init__.__code__.co_varnames else None
    tokens = torch.tensor([ids] * rows)
    with torch.inference_mode():
        m(tokens, cache)
        step = tokens[:, -1:]
        ts = []
        for i in range(60):
            s = time.perf_counter(); m(step, cache); ts.append(time.perf_counter() - s)
    print(f"rows={rows}: forward {statistics.median(ts)*1e3:.2f} ms a step (1 thread)")
