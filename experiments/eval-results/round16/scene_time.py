import time, statistics, dataclasses
import torch
from metagen.generator import load_model
from metagen.world import load_world
from metagen import pipeline
gen = load_model()
world = load_world("worlds/ashenmere.yaml")
req = pipeline.make_request("scene", world, location="ember-keep")
cfg = pipeline.effective_config(world, "scene", None, {"max_new_tokens": 1})
def once(c):
    t = time.perf_counter()
    pipeline.compose(gen, world, [req], c, seeds=[1])
    return time.perf_counter() - t
for c in (cfg, dataclasses.replace(cfg, context_contrast=0.0)):
    once(c)
    print(c.context_contrast, [round(once(c), 3) for _ in range(5)])
import cProfile, pstats
cProfile.run("once(cfg)", "/tmp/r16/prof")
pstats.Stats("/tmp/r16/prof").sort_stats("cumulative").print_stats(25)
