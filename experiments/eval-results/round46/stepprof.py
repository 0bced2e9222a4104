# stepprof.py: where a one-position decode step's time goes at 1 and 4 rows (int4, this CPU)
import statistics, time, torch
from torch.profiler import profile, ProfilerActivity
from metagen.generator import load_model
torch.set_num_threads(2)
g = load_model(None)
m = g.model
ids = g.encode_prompt([{"role": "user", "content": "Write a short story about a lighthouse keeper who finds a message in a bottle."}])
for B in (1, 4):
    cache = m.new_cache(B, len(ids) + 80)
    m(torch.tensor([ids] * B), cache, None, last_only=True)
    tok = torch.full((B, 1), 1000)
    with g.model.step_threads.decoding():
        for _ in range(5): m(tok, cache, None, last_only=True)
        ts = []
        for _ in range(25):
            t = time.perf_counter(); m(tok, cache, None, last_only=True); ts.append(time.perf_counter() - t)
        print(f"rows {B}: step median {statistics.median(ts)*1000:.1f} ms; threads chosen {m.step_threads.chosen(B)}")
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(10): m(tok, cache, None, last_only=True)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=40))
