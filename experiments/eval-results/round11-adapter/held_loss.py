"""Held-aside loss (corpus/eval.jsonl) of the default model with each adapter merged in, float32 weights,
bfloat16 autocast as in the training run."""
import sys, time
import torch
from metagen.generator import load_model
from metagen import tune as T
torch.set_num_threads(2)
held = T.read_examples("corpus/eval.jsonl")
settings = T.TuneSettings(dtype="bfloat16")
for adapter in sys.argv[1:]:
    t = time.perf_counter()
    g = load_model("smollm2-135m-instruct", dtype="float32", adapter=adapter)
    seqs, _ = T.pack(g.tokenizer, held, settings.max_tokens)
    print(adapter, round(T.mean_loss(g.model, seqs, settings, g.model.device), 4), f"{time.perf_counter()-t:.0f} s", flush=True)
