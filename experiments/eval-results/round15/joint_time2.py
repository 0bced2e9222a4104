"""Scenes and dialogues: the contrast's rows joined to the candidates' pass and the plain prompts' cache
reused (on) or not (off), alternating, one process; medians."""
import sys, time, statistics
import torch
from metagen import search, pipeline
from metagen.generator import load_model
from metagen.world import load_world
torch.set_num_threads(2)
MODE = ["on"]
orig_join = search.ContextContrast.joined_with
search.ContextContrast.joined_with = lambda self, cache: orig_join(self, cache) if MODE[0] == "on" else None
orig_init = search.ContextContrast.__init__
def init(self, model, plain, *a, **k):
    if MODE[0] == "off":
        plain = search.PlainPrompts(plain.ids, plain.starts)  # no reuse
    orig_init(self, model, plain, *a, **k)
search.ContextContrast.__init__ = init
g = load_model()
w = load_world("worlds/ashenmere.yaml")
for kind, fields in (("scene", dict(location="crooked-kettle")), ("dialogue", dict(characters=["ysolde", "maelle"], turns=4))):
    times = {"on": [], "off": []}
    for rep in range(int(sys.argv[1])):
        for mode in ("off", "on"):
            MODE[0] = mode
            req = pipeline.make_request(kind, w, **fields)
            cfg = pipeline.effective_config(w, kind, None, None, req)
            t = time.perf_counter()
            pipeline.compose(g, w, [req], cfg, seeds=[rep + 1])
            times[mode].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(kind, {k: [round(x, 2) for x in v] for k, v in times.items()}, "medians off %.2f on %.2f ratio %.2f" % (med["off"], med["on"], med["off"] / med["on"]), flush=True)
