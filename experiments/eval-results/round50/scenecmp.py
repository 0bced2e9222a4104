import json, re, sys
sys.path.insert(0, "/work/main")
from metagen.world import load_world
from metagen.grounding import absent_things
paths = {"nexus-hub": "worlds/nexus-hub.yaml", "ashenmere": "worlds/ashenmere.yaml", "saltgate": "worlds/harbour/world.yaml"}
def wpath(i): return "/work/main/" + paths.get(i, f"corpus/worlds/{i}.yaml")
A = json.load(open(sys.argv[1]))["outputs"]; B = json.load(open(sys.argv[2]))["outputs"]
bans = {}
changed = ha = hb = 0
for a, b in zip(A, B):
    assert (a["world"], a["seed"], a["request"]["location"]) == (b["world"], b["seed"], b["request"]["location"])
    ban = bans.setdefault(a["world"], set(absent_things(load_world(wpath(a["world"])))))
    wa = [w for w in re.findall(r"[a-z]+", a["text"].lower()) if w in ban]
    wb = [w for w in re.findall(r"[a-z]+", b["text"].lower()) if w in ban]
    ha += bool(wa); hb += bool(wb)
    if a["text"] != b["text"]:
        changed += 1; print("changed", a["world"], a["request"]["location"], a["seed"], wa)
print(len(A), "scenes; changed", changed, "; with a banned thing:", ha, "->", hb)
