"""Probe: how much a regional torch.compile (feed-forward and norms of each block) saves on an
8-row decode step of the default int4 model after a shared 300-token prompt; eager vs compiled,
alternating, medians. Also checks the logits agree."""
import statistics, sys, time
import torch
from metagen.generator import load_model
from metagen.cache import SharedPrefixCache

dtype = sys.argv[1] if len(sys.argv) > 1 else "int4"
gen = load_model(dtype=dtype)
model = gen.model
torch.manual_seed(0)
prompt = torch.randint(100, 5000, (1, 300))
ROWS, STEPS = 8, 24

def run(steps=STEPS):
    cache = model.new_cache(1, 300 + steps + 2)
    model(prompt, cache, None, last_only=True)
    shared = SharedPrefixCache(cache, ROWS, steps + 2)
    tok = torch.full((ROWS, 1), 42)
    times, last = [], None
    for _ in range(steps):
        t = time.perf_counter()
        last = model(tok, shared)
        times.append(time.perf_counter() - t)
    return statistics.median(times[2:]), last

eager_t, eager_out = run()
originals = [(b.feed_forward.forward, b.attention_norm.forward, b.ffn_norm.forward) for b in model.layers]
t0 = time.perf_counter()
for b in model.layers:
    b.feed_forward.forward = torch.compile(b.feed_forward.forward, dynamic=False)
    b.attention_norm.forward = torch.compile(b.attention_norm.forward, dynamic=False)
    b.ffn_norm.forward = torch.compile(b.ffn_norm.forward, dynamic=False)
comp_t, comp_out = run(4)
print(f"compile+warm {time.perf_counter() - t0:.1f} s")
def set_eager(on):
    for b, (f, a, n) in zip(model.layers, originals):
        if on:
            b.feed_forward.__dict__.pop("forward", None); b.attention_norm.__dict__.pop("forward", None); b.ffn_norm.__dict__.pop("forward", None)
compiled = [(b.feed_forward.forward, b.attention_norm.forward, b.ffn_norm.forward) for b in model.layers]
def use(which):
    for b, (f, a, n) in zip(model.layers, which):
        b.feed_forward.forward, b.attention_norm.forward, b.ffn_norm.forward = f, a, n
res = {"eager": [], "compiled": []}
outs = {}
for i in range(5):
    for name, which in (("eager", originals), ("compiled", compiled)):
        use(which)
        t, out = run()
        res[name].append(t); outs[name] = out
for k, v in res.items():
    print(k, f"median step {1000 * statistics.median(v):.2f} ms", [round(1000 * x, 2) for x in v])
print("max |logit diff|", float((outs["eager"] - outs["compiled"]).abs().max()))
print("ratio", statistics.median(res["eager"]) / statistics.median(res["compiled"]))
