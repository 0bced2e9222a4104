import sys, time, collections
import metagen  # sets OMP_WAIT_POLICY before torch loads, as the CLI does
import torch
from metagen import model as M
orig = M.Transformer.forward
acc = collections.defaultdict(float); cnt = collections.Counter(); toks = collections.Counter()
def fwd(self, tokens, cache, pad=None, last_only=False):
    models.add(self)
    t = time.perf_counter(); out = orig(self, tokens, cache, pad, last_only)
    k = 'step' if tokens.shape[1] == 1 else 'prompt'
    acc[k] += time.perf_counter() - t; cnt[k] += 1; toks[k] += tokens.numel()
    return out
models = set()
M.Transformer.forward = fwd
from metagen.cli import app
t0 = time.perf_counter()
try:
    app(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
total = time.perf_counter() - t0
print({k: (round(v, 2), cnt[k], toks[k]) for k, v in acc.items()}, 'total', round(total, 2), file=sys.stderr)
for m in models:
    print({k: (v.chosen, {n: round(1000*min(x),1) for n, x in v.times.items()}) for k, v in m.step_threads._tunings.items()}, file=sys.stderr)
