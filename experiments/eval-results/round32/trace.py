import hashlib, json, os, sys
import metagen
import torch
from metagen import model as M
orig = M.Transformer.forward
trace = []
def fwd(self, tokens, cache, pad=None, last_only=False):
    out = orig(self, tokens, cache, pad, last_only)
    trace.append([tuple(tokens.shape), hashlib.md5(tokens.numpy().tobytes()).hexdigest()[:8],
                  hashlib.md5(out.float().numpy().tobytes()).hexdigest()[:8], torch.get_num_threads()])
    return out
M.Transformer.forward = fwd
from metagen.cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
json.dump(trace, open(os.environ["TRACE"], "w"))
