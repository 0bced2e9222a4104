"""Probe: the whole decode step compiled (torch.compile of Transformer._forward, dynamic shapes)
against eager, 8 rows with a plain KVCache after a 300-token prompt."""
import statistics, sys, time
import torch
from metagen.generator import load_model

dtype = sys.argv[1] if len(sys.argv) > 1 else "int4"
gen = load_model(dtype=dtype)
model = gen.model
torch.manual_seed(0)
ROWS, STEPS = 8, 24
prompt = torch.randint(100, 5000, (ROWS, 300))
eager_forward = model._forward

def run(steps=STEPS):
    cache = model.new_cache(ROWS, 300 + steps + 2)
    model(prompt, cache, None, last_only=True)
    tok = torch.full((ROWS, 1), 42)
    times, last = [], None
    for _ in range(steps):
        t = time.perf_counter()
        last = model(tok, cache)
        times.append(time.perf_counter() - t)
    return statistics.median(times[2:]), last

compiled = torch.compile(eager_forward, dynamic=True)
def decode_compiled(tokens, cache, pad, head, act):
    if tokens.shape[1] == 1:
        return compiled(tokens, cache, pad, head, act)
    return eager_forward(tokens, cache, pad, head, act)
t0 = time.perf_counter()
model._forward = decode_compiled
run(6)
print(f"compile+warm {time.perf_counter() - t0:.1f} s")
res = {"eager": [], "compiled": []}; outs = {}
for i in range(4):
    for name, fn in (("eager", eager_forward), ("compiled", decode_compiled)):
        model._forward = fn
        t, out = run()
        res[name].append(t); outs[name] = out
for k, v in res.items():
    print(k, f"median step {1000 * statistics.median(v):.2f} ms", [round(1000 * x, 2) for x in v])
print("max |logit diff|", float((outs["eager"] - outs["compiled"]).abs().max()))
print("ratio", statistics.median(res["eager"]) / statistics.median(res["compiled"]))
