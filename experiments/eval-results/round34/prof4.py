import sys, time, cProfile, pstats, torch
torch.set_num_threads(2)
from metagen.config import GenerationConfig
from metagen.generator import load_model
import glob
path = glob.glob('/tmp/mghome-new/models/*.gguf')[0]
g = load_model(path, dtype="int4")
ids = g.tokenizer.encode_chat([{"role": "user", "content": "Write a short story about a lighthouse keeper who finds a message in a bottle."}])
rows = int(sys.argv[1]); tokens = 128
cfg = GenerationConfig(strategy="sample", max_new_tokens=tokens, min_new_tokens=tokens, repetition_penalty=1.0, temperature=0.8, top_p=0.95, top_k=40)
g.complete([ids]*rows, cfg, seeds=list(range(rows)))
for rep in range(2):
    t = time.perf_counter(); g.complete([ids]*rows, cfg, seeds=list(range(rows))); dt = time.perf_counter() - t
    print(f"rows={rows} {rows*tokens/dt:.1f} tok/s  {dt/tokens*1e3:.2f} ms/step", flush=True)
if len(sys.argv) > 2:
    pr = cProfile.Profile(); pr.enable(); g.complete([ids]*rows, cfg, seeds=list(range(rows))); pr.disable()
    pstats.Stats(pr).sort_stats("tottime").print_stats(25)
