import time, torch, sys
torch.set_num_threads(int(sys.argv[1]))
from metagen.config import GenerationConfig
from metagen.generator import load_model
g = load_model("/tmp/r47/home/models/SmolLM2-135M-Instruct.Q4_1.gguf", dtype=sys.argv[2])
ids = list(range(100,146))
cfg = GenerationConfig(strategy="greedy", max_new_tokens=128, min_new_tokens=128, repetition_penalty=1.0)
g.complete([ids], cfg, seeds=[1])
r=[]
for _ in range(int(sys.argv[3]) if len(sys.argv)>3 else 3):
    t=time.perf_counter(); g.complete([ids], cfg, seeds=[1]); r.append(128/(time.perf_counter()-t))
print(sys.argv[1:], torch.get_num_threads(), g.info.weight_format, "tok/s", sorted(r))
