"""Hashes of a 300-token prompt pass's logits and of three steps after it, int4, in a fresh process.

usage: prompt_pass_hash.py [cache|built]: the model from the converted cache (default), or built from
the GGUF (use_cache=False). Run many times: every line should be the same.
"""
import hashlib, sys, torch
import metagen
from metagen.generator import load_model
source = sys.argv[1] if len(sys.argv) > 1 else "cache"
g = load_model(None, dtype="int4", use_cache=source == "cache")
ids = g.tokenizer.encode(open("/work/main/README.md").read()[:4000])[:300]
m = g.model
h = lambda t: hashlib.md5(t.float().contiguous().numpy().tobytes()).hexdigest()[:8]
with torch.no_grad():
    cache = m.new_cache(1, 400)
    hs = [h(m.forward(torch.tensor([ids]), cache))]
    tok = torch.tensor([[ids[-1]]])
    for i in range(3):
        hs.append(h(m.forward(tok, cache)))
print(source, " ".join(hs), torch.get_num_threads())
