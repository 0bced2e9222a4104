"""Issue 16: a one-token Ember Keep scene (with the contrast's fact-free prompt) with prompts in
float32 and in bfloat16, one process, alternating; weights kept widened as metagen serve keeps them."""
import statistics, sys, time
from metagen import pipeline
from metagen.generator import load_model
from metagen.world import load_world

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
gens = {d: load_model(prompt_dtype=d) for d in ("float32", "bfloat16")}
for g in gens.values():
    g.model.keep_prompt_weights()
world = load_world("worlds/ashenmere.yaml")
req = pipeline.make_request("scene", world, location="ember-keep")
cfg1 = pipeline.effective_config(world, "scene", None, {"max_new_tokens": 1})

def once(g):
    t = time.perf_counter()
    pipeline.compose(g, world, [req], cfg1, seeds=[1])
    return time.perf_counter() - t

for g in gens.values():
    once(g)
times = {d: [] for d in gens}
for _ in range(runs):
    for d, g in gens.items():
        times[d].append(once(g))
for d in gens:
    print(d, f"median {statistics.median(times[d]):.3f} s", [round(t, 3) for t in times[d]])
print("ratio", round(statistics.median(times["float32"]) / statistics.median(times["bfloat16"]), 2))
