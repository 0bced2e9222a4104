import sys, torch
import metagen
from metagen.generator import load_model
g = load_model(sys.argv[1], dtype="int4")
ids = g.tokenizer.encode(open("/work/main/README.md").read()[:3000])[:202]
m = g.model
def run():
    cache = m.new_cache(1, 260)
    with torch.no_grad():
        return m.forward(torch.tensor([ids]), cache).clone(), cache
ref, refc = run()
bad = 0
for i in range(int(sys.argv[2])):
    out, c = run()
    if not torch.equal(out, ref):
        bad += 1
        d = (out - ref).abs()
        print("run", i, "max diff", d.max().item(), "first position differing", int((d.amax(-1) > 0).nonzero()[0, 1]))
print("differing", bad, "of", sys.argv[2], "threads", torch.get_num_threads())
