"""Prototype: a decoding step's blocks on the count StepThreads chose, the output head on
HEAD threads; against today's step, alternating, sampled like bench.py (46-token prompt)."""
import glob, statistics, sys, time
import metagen  # noqa: F401
import torch
from metagen.config import GenerationConfig
from metagen.generator import load_model
from metagen import model as model_module

g = load_model(glob.glob('/tmp/mghome35/models/*.gguf')[0], dtype="int4")
m = g.model
original = model_module.Transformer.forward
HEAD = int(sys.argv[2]) if len(sys.argv) > 2 else 2

def split_forward(self, tokens, cache, pad=None, last_only=False):
    B, T = tokens.shape
    if T != 1:
        return original(self, tokens, cache, pad, last_only)
    act, widened = self.piece_mode(1)
    with torch.inference_mode(), model_module.widened_weights(widened):
        with self.step_threads.step(B):
            x = self._residual(tokens, cache, pad, act)
        current = torch.get_num_threads()
        torch.set_num_threads(HEAD)
        try:
            return self.output(self.norm(x, act)).float()
        finally:
            torch.set_num_threads(current)

ids = g.tokenizer.encode_chat([{"role": "user", "content": "Write a short story about a lighthouse keeper who finds a message in a bottle."}])
rows = int(sys.argv[1]); tokens = 128
cfg = GenerationConfig(strategy="sample", max_new_tokens=tokens, min_new_tokens=tokens, repetition_penalty=1.0, temperature=0.8, top_p=0.95, top_k=40)
times = {"today": [], "split": []}
outs = {}
for rep in range(4):
    for name in ("today", "split"):
        model_module.Transformer.forward = original if name == "today" else split_forward
        t = time.perf_counter(); c = g.complete([ids] * rows, cfg, seeds=list(range(rows))); dt = time.perf_counter() - t
        if rep: times[name].append(rows * tokens / dt)
        outs[name] = [x.tokens for x in c] if hasattr(c[0], "tokens") else c
a, b = statistics.median(times["today"]), statistics.median(times["split"])
print(f"rows={rows} head threads={HEAD}: today {a:.1f} tok/s {times['today']}, split {b:.1f} ({b/a:.2f}x); same tokens: {outs['today'] == outs['split']}")
