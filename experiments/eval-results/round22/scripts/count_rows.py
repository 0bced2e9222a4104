"""Row-steps and time the README story spends in one-position model passes."""
import sys, time
import metagen.model as M
calls = {"rows": 0, "steps": 0, "secs": 0.0}
orig = M.Transformer.forward
def counting(self, tokens, cache, pad=None, last_only=False):
    t = time.perf_counter()
    out = orig(self, tokens, cache, pad, last_only)
    if tokens.shape[1] == 1:
        calls["rows"] += tokens.shape[0]; calls["steps"] += 1; calls["secs"] += time.perf_counter() - t
    return out
M.Transformer.forward = counting
from metagen.cli import app
sys.argv = ["metagen", "story", "worlds/ashenmere.yaml", "--characters", "ysolde,maelle", "--location", "crooked-kettle", "--seed", "7", "--stdout"]
try:
    app()
except SystemExit:
    pass
print(calls, file=sys.stderr)
