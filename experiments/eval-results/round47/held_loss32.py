"""Held-aside loss of the default model with an adapter (or none) on an eval split, float32."""
import sys, time
import torch
from metagen.generator import load_model
from metagen import tune as T
torch.set_num_threads(2)
held = T.read_examples(sys.argv[1])
settings = T.TuneSettings(dtype="float32")
for adapter in sys.argv[2:]:
    t = time.perf_counter()
    g = load_model("smollm2-135m-instruct", dtype="float32", adapter=adapter)
    seqs, _ = T.pack(g.tokenizer, held, settings.max_tokens)
    print(sys.argv[1], adapter, round(T.mean_loss(g.model, seqs, settings, g.model.device), 4), f"{time.perf_counter()-t:.0f} s", flush=True)
