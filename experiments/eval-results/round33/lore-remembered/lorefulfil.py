"""Lore beats: does the paragraph hold half the lore fact's content words?"""
import json, sys, re
from metagen.world.load import load_world
from metagen.request import StoryRequest, resolve_request
from metagen.plan import make_plan
from metagen.text import words_of
STOP = set("that this with from have been they them their there what when which would could should wants admits says next paragraph write sentences show matter history world".split())
worlds = {load_world(p).id: load_world(p) for p in sys.argv[2:]}
r = json.load(open(sys.argv[1]))
tot = carried = 0
for o in r["outputs"]:
    w = worlds[o["world"]]
    res = resolve_request(w, StoryRequest(characters=tuple(o["request"]["characters"]), location=o["request"]["location"]))
    plan = make_plan(w, res, o["seed"])
    ps = [p for p in o["text"].split("\n\n") if p.strip()]
    for b, p in zip(plan, ps):
        m = re.search(r"history matter(?: to [^:]+)?: (.*?) Write \d", b.instruction)
        if not m: continue
        want = {x for x in words_of(m.group(1)) if len(x) >= 4 and x not in STOP}
        tot += 1; carried += len(want & set(words_of(p))) * 2 >= len(want)
print(f"lore beats carried: {carried}/{tot}")
