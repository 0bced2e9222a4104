import time, torch, sys
from metagen.generator import load_model
from metagen.config import GenerationConfig
g = load_model("smollm2-135m-instruct")
torch.set_num_threads(2)
m = g.model
ids = g.tokenizer.encode(" the quiet harbour at night" * 100)[:600]
def step_time(B, n=40):
    cache = m.new_cache(B, 700)
    x = torch.tensor([ids]*B)
    with torch.inference_mode():
        m(x, cache, None, last_only=True)
        tok = torch.tensor([[5]]*B)
        for _ in range(5): m(tok, cache, None, last_only=True)
        t = time.perf_counter()
        for _ in range(n): m(tok, cache, None, last_only=True)
        return (time.perf_counter()-t)/n*1000
for B in (1,4,1,4):
    print(B, "%.1f ms/step" % step_time(B))
if "--prof" in sys.argv:
    B=int(sys.argv[-1])
    cache = m.new_cache(B, 700); x = torch.tensor([ids]*B)
    with torch.inference_mode():
        m(x, cache, None, last_only=True); tok = torch.tensor([[5]]*B)
        for _ in range(3): m(tok, cache, None, last_only=True)
        with torch.profiler.profile() as p:
            for _ in range(20): m(tok, cache, None, last_only=True)
    print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
