"""Experiment (issue 16): prompts in bfloat16 instead of float32 on a CPU with avx512_bf16.
Times a one-token scene (with the contrast's second prompt) in one process, alternating, and
shows the full scene text of a few seeds both ways."""
import dataclasses, statistics, time
import torch
import torch.nn.functional as F
from metagen import model as M, linears as L, pipeline
from metagen.generator import load_model
from metagen.world import load_world

gen = load_model()
gen.model.keep_float_weights()  # as the server does
world = load_world("worlds/ashenmere.yaml")
req = pipeline.make_request("scene", world, location="ember-keep")
cfg1 = pipeline.effective_config(world, "scene", None, {"max_new_tokens": 1})
cfg = pipeline.effective_config(world, "scene", None, None)

orig_dtype = M.Transformer.compute_dtype
orig_fwd = L.Int4Linear.forward
bf16_weights = {}

def bf16_dtype(self, positions, begin=0):
    d = orig_dtype(self, positions, begin)
    return torch.bfloat16 if d == torch.float32 and self.weight_format_is_compact else d

def bf16_fwd(self, x):
    if x.dtype == torch.bfloat16 and x.reshape(-1, x.shape[-1]).shape[0] >= M.FLOAT32_POSITIONS:
        w = bf16_weights.get(id(self))
        if w is None:
            w = bf16_weights[id(self)] = self.dequantized().bfloat16()
        return F.linear(x, w)
    return orig_fwd(self, x)

M.Transformer.weight_format_is_compact = True
def use(bf16):
    M.Transformer.compute_dtype = bf16_dtype if bf16 else orig_dtype
    L.Int4Linear.forward = bf16_fwd if bf16 else orig_fwd

def once(c, seed=1):
    t = time.perf_counter()
    piece = pipeline.compose(gen, world, [req], c, seeds=[seed])
    return time.perf_counter() - t, piece
for b in (False, True):
    use(b); once(cfg1)
times = {False: [], True: []}
for _ in range(5):
    for b in (False, True):
        use(b); times[b].append(once(cfg1)[0])
for b in (False, True):
    print("bf16" if b else "fp32", f"median {statistics.median(times[b]):.3f} s", [round(t, 3) for t in times[b]])
for seed in (1, 2, 3):
    for b in (False, True):
        use(b)
        _, pieces = once(cfg, seed)
        text = pieces.pieces[0].text
        print(f"seed {seed} {'bf16' if b else 'fp32'}: {text[:400]}")
