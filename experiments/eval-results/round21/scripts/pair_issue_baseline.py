"""Blind pairs of today's defaults against the issue's baseline: metagen 0.1.0's own 10-seed eval
(experiments/eval-results/defaults-10-seeds, the run issue 13 quotes) and a new eval of the same
grid. The two runs' requests are recorded in different shapes (new fields, a drawn dialogue
topic), so outputs are matched on world, kind, seed and the cast and place, which must agree.

usage: pair_issue_baseline.py OLD_REPORT NEW_REPORT OUT_DIR SEED PAIRS_PER_KIND
Writes pair-NNN.md, ratings.csv and key.json (metagen.blind.write_blind); A is the old run.
"""
import json
import random
import sys
from pathlib import Path
from types import SimpleNamespace

from metagen import load_world
from metagen.blind import write_blind

old_path, new_path, out, seed, per_kind = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
old, new = json.load(open(old_path)), json.load(open(new_path))


def key(o):
    r = o["request"]
    return o["world"], o["kind"], o["seed"], tuple(r.get("characters") or ()), r.get("location")


new_by_key = {key(o): o for o in new["outputs"] if o["system"] == "metagen"}
old_ours = [o for o in old["outputs"] if o["system"] == "metagen"]
missing = [key(o) for o in old_ours if key(o) not in new_by_key]
if missing:
    sys.exit(f"not in the new run: {missing[:3]}")
rng = random.Random(seed)
chosen = []
for kind in ("story", "scene", "dialogue"):
    of_kind = [o for o in old_ours if o["kind"] == kind]
    chosen += sorted(rng.sample(of_kind, per_kind), key=lambda o: (o["world"], o["seed"]))


def as_run(report, outputs):
    # Both sides carry the new run's request, so a pair shows one request and make_pairs matches them.
    return SimpleNamespace(outputs=[SimpleNamespace(world=o["world"], kind=o["kind"], system="metagen",
                                                    request=new_by_key[key(o)]["request"], seed=o["seed"],
                                                    text=text) for o, text in outputs],
                           settings={**report["settings"], "variant": "metagen"}, model=report["model"],
                           worlds=report["worlds"])


a = as_run(old, [(o, o["text"]) for o in chosen])
b = as_run(new, [(o, new_by_key[key(o)]["text"]) for o in chosen])
worlds = [load_world(w["path"]) for w in new["worlds"]]
pairs = write_blind(out, worlds, a, b, {"code": "0.1.0 (issue 13's baseline)"}, {"code": "today's defaults"}, seed)
print(len(pairs), "pairs")
