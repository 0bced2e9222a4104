"""python plans.py WORLD... : JSON lines {world, seed, plan} for seeds 1-12, drawn cast (the CLI's path)."""
import json, sys
from metagen.world.load import load_world
from metagen.plan import make_plan, with_cast
from metagen.prompts import resolve_request, StoryRequest
for path in sys.argv[1:]:
    world = load_world(path)
    for seed in range(1, 13):
        req = with_cast(world, StoryRequest(), seed)
        plan = make_plan(world, resolve_request(world, req), seed)
        print(json.dumps({"world": path, "seed": seed, "plan": [b.instruction for b in plan]}))
